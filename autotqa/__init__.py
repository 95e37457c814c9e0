"""autotqa: ask questions about tables; five agents answer together."""

__version__ = "0.1.0"
