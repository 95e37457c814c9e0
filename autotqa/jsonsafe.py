"""JSON that every parser accepts: Python's ``json`` writes ``NaN`` and ``Infinity`` bare, which is
not JSON (RFC 8259) and breaks ``jq``, browsers and strict parsers reading ``--json`` output.

NaN becomes ``null`` (no value, as SQL NULL); infinities become the strings ``"Infinity"`` and
``"-Infinity"`` (a value a reader can still see). ``dumps`` then refuses any non-finite float left.

>>> dumps({"x": float("inf"), "y": [float("nan"), 1.5], "z": -float("inf")})
'{"x": "Infinity", "y": [null, 1.5], "z": "-Infinity"}'
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists and tuples) replaced."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``finite(value)`` with ``allow_nan=False``; other keywords pass through."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
