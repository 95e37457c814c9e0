"""The data catalog: load tables into one DuckDB connection and describe them for the agents.

``Catalog.from_sources`` loads CSV/TSV (sniffed delimiter, header and encoding), Parquet, JSON/NDJSON,
Excel, folders of those, SQLite (all tables, via ``sqlite3``), DuckDB files (copied from a read-only
attach) and pandas DataFrames into one in-memory connection, then freezes it (no file access, settings
locked). ``Catalog.schema()`` computes statistics lazily and ``SchemaInfo.render()`` turns them into
the deterministic schema block that starts every prompt.

Modules, one idea each: ``naming`` (safe names), ``sniff`` (format and encoding), ``frames`` (Arrow
conversion), ``loaders`` (one per format), ``stats`` (column statistics), ``keys`` (key candidates),
``render`` (the text), ``linking`` (fitting a token budget), ``schema`` and ``catalog`` (the API).

>>> from autotqa.catalog import Catalog
>>> Catalog.from_sources([]) # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
autotqa.errors.DataLoadError: no sources given
"""

from autotqa.catalog.catalog import Catalog, Source
from autotqa.catalog.models import ColumnInfo, ColumnSchema, ForeignKey, TableInfo, TableSchema
from autotqa.catalog.render import estimate_tokens
from autotqa.catalog.schema import SchemaInfo

__all__ = ["Catalog", "ColumnInfo", "ColumnSchema", "ForeignKey", "SchemaInfo", "Source", "TableInfo",
           "TableSchema", "estimate_tokens"]
