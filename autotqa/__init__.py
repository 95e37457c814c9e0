"""autotqa: ask questions about tables; five agents answer together.

>>> import autotqa
>>> autotqa.Answer.__name__, callable(autotqa.ask), autotqa.Session.__name__
('Answer', True, 'Session')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Answer", "Session", "__version__", "ask"]

if TYPE_CHECKING:
    from .answer import Answer
    from .api import Session, ask


def __getattr__(name: str) -> Any:
    # Lazy: `autotqa --version` and the CLI's start-up should not pay for the agents and serving imports.
    if name == "Answer":
        from .answer import Answer

        return Answer
    if name in ("ask", "Session"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'autotqa' has no attribute {name!r}")
