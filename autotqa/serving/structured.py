"""Structured outputs: parse a reply into a pydantic model, with one repair round.

Engines that can constrain decoding (grammar / JSON schema) do so; this module still validates
their output, and for engines that cannot it extracts the JSON object from the reply.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import OutputParseError

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """Find the first JSON value in ``text`` (bare, or inside a ```json fence).

    >>> extract_json('Sure: {"a": 1} done')
    {'a': 1}
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for cand in candidates:
        for i, ch in enumerate(cand):
            if ch in "{[":
                try:
                    value, _ = decoder.raw_decode(cand[i:])
                    return value
                except json.JSONDecodeError:
                    continue
    raise ValueError("no JSON object found in the reply")


def parse_output(model: type[BaseModel], text: str) -> BaseModel:
    """Validate ``text`` as ``model``; raise :class:`OutputParseError` carrying the raw text."""
    try:
        return model.model_validate(extract_json(text))
    except (ValueError, ValidationError) as exc:
        raise OutputParseError(f"reply is not a valid {model.__name__}: {exc}", raw=text) from exc


def repair_instruction(model: type[BaseModel], error: OutputParseError) -> str:
    """The tail appended for the single repair round."""
    schema = json.dumps(model.model_json_schema(), separators=(",", ":"))
    return (f"Your previous reply could not be used: {error.message}\n"
            f"Previous reply: {error.raw[:500]}\n"
            f"Reply again with only a JSON object matching this schema: {schema}")
