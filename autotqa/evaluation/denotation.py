"""WikiTableQuestions denotation accuracy, ported from the official ``evaluator.py``
(github ppasupat/WikiTableQuestions, version 1.0).

The official rules, kept exactly:

* strings are normalised: accents removed (NFKD, combining marks dropped), curly quotes and dashes
  made plain, trailing citations (``[1]``, ``*``, ``†`` ...) and trailing parenthesised details
  (``"Paris (France)"``) removed, outer double quotes removed, one final ``.`` removed, whitespace
  collapsed, lower-cased;
* a value is a **number** if its canonical form parses as ``int``/``float``, a **date** if it has the
  form ``yyyy-mm-dd`` with ``xx`` for unknown parts (a year-only date becomes the number), else a string;
* a target matches a prediction when their normalised strings are equal, or both are numbers within
  1e-6, or both are dates with the same (year, month, day);
* a denotation is correct when the predicted list (as a set) has as many values as the target list and
  every target value matches some predicted value — order does not matter.

What differs, and why: the official evaluator takes each target's canonical form from Stanford
CoreNLP's tagging (the ``targetCanon`` column of the tagged release). Our data has only
``targetValue``, so :func:`canonical` plays CoreNLP's part with a small, documented subset: numbers
with thousands separators (``"1,000"`` -> ``1000``) and common English dates (``"September 8, 2010"``,
``"8 September 2010"``, ``"May 1999"``, ISO dates). It is applied to predictions too, so a model
answering ``"1,000"`` is read the way the gold ``"1,000"`` is.

>>> denotation_match(["1,000"], [1000.0])
True
>>> denotation_match(["Bangkok, Thailand"], ["bangkok, thailand"])
True
>>> denotation_match(["Morocco", "France"], ["France", "Morocco"])
True
>>> denotation_match(["2004"], ["2005"])
False
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_CITATION = re.compile(r"((?<!^)\[[^\]]*\]|\[\d+\]|[•♦†‡*#+])*$")
_PAREN = re.compile(r"(?<!^)( \([^)]*\))*$")
_OUTER_QUOTES = re.compile(r'^"([^"]*)"$')


def normalize(text: str) -> str:
    """The official string normalisation.

    >>> normalize("  São   Paulo [3] ")
    'sao paulo'
    >>> normalize("“Hello” world.")
    '"hello" world'
    >>> normalize("Paris (France)")
    'paris'
    >>> normalize("1990–91")
    '1990-91'
    """
    x = "".join(c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) != "Mn")
    x = re.sub(r"[‘’´`]", "'", x)
    x = re.sub(r"[“”]", '"', x)
    x = re.sub(r"[‐‑‒–—−]", "-", x)
    while True:
        old = x
        x = _CITATION.sub("", x.strip())
        x = _PAREN.sub("", x.strip())
        x = _OUTER_QUOTES.sub(r"\1", x.strip())
        if x == old:
            break
    if x and x[-1] == ".":
        x = x[:-1]
    return re.sub(r"\s+", " ", x, flags=re.U).lower().strip()


@dataclass(frozen=True)
class Value:
    """One denotation item: kind ``s``/``n``/``d``, its normalised text and its typed content."""

    kind: str
    normalized: str
    amount: float | int | None = None
    ymd: tuple[int, int, int] | None = field(default=None)

    def key(self) -> tuple[Any, ...]:
        """Identity used to build the predicted *set* (the official ``__eq__``/``__hash__``)."""
        if self.kind == "n":
            return ("n", self.amount)
        if self.kind == "d":
            return ("d", self.ymd)
        return ("s", self.normalized)

    def match(self, other: Value) -> bool:
        if self.normalized == other.normalized:
            return True
        if self.kind == "n" and other.kind == "n":
            assert self.amount is not None and other.amount is not None
            return abs(self.amount - other.amount) < 1e-6
        if self.kind == "d" and other.kind == "d":
            return self.ymd == other.ymd
        return False


def parse_number(text: str) -> int | float | None:
    """The official number parse: ``int`` first, then a finite ``float``.

    >>> parse_number("12"), parse_number("1e3"), parse_number("nan"), parse_number("x")
    (12, 1000.0, None, None)
    """
    try:
        return int(text)
    except ValueError:
        pass
    try:
        amount = float(text)
    except ValueError:
        return None
    return None if math.isnan(amount) or math.isinf(amount) else amount


def parse_date(text: str) -> tuple[int, int, int] | None:
    """The official ``yyyy-mm-dd`` parse with ``xx`` placeholders (-1 in the tuple).

    >>> parse_date("2010-09-xx"), parse_date("xx-05-01"), parse_date("2010-13-01")
    ((2010, 9, -1), (-1, 5, 1), None)
    """
    parts = text.lower().split("-")
    if len(parts) != 3:
        return None
    try:
        year = -1 if parts[0] in ("xx", "xxxx") else int(parts[0])
        month = -1 if parts[1] == "xx" else int(parts[1])
        day = -1 if parts[2] == "xx" else int(parts[2])
    except ValueError:
        return None
    if year == month == day == -1:
        return None
    if not (month == -1 or 1 <= month <= 12) or not (day == -1 or 1 <= day <= 31):
        return None
    return (year, month, day)


_MONTHS = {name: i for i, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
     ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
     ("october", "oct"), ("november", "nov"), ("december", "dec")], 1) for name in names}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUMBER_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$|^[+-]?\.\d+$")
_DATE_PATTERNS = [
    # "September 8, 2010", "Sept. 8 2010"
    (re.compile(rf"^({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?,? (\d{{3,4}})$"), ("m", "d", "y")),
    # "8 September 2010"
    (re.compile(rf"^(\d{{1,2}})(?:st|nd|rd|th)? ({_MONTH_RE})\.?,? (\d{{3,4}})$"), ("d", "m", "y")),
    # "September 2010"
    (re.compile(rf"^({_MONTH_RE})\.?,? (\d{{3,4}})$"), ("m", "y")),
    # "September 8"
    (re.compile(rf"^({_MONTH_RE})\.? (\d{{1,2}})(?:st|nd|rd|th)?$"), ("m", "d")),
    # "8 September"
    (re.compile(rf"^(\d{{1,2}})(?:st|nd|rd|th)? ({_MONTH_RE})\.?$"), ("d", "m")),
    # ISO date or timestamp: "2010-09-08", "2010-09-08 00:00:00", "2010-09-08T00:00:00"
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ t]00:00(?::00(?:\.0+)?)?)?$"), ("y", "m", "d")),
]


def canonical(text: str) -> str:
    """Stand-in for CoreNLP's canonical value: a bare number, a ``yyyy-mm-dd`` date, or ``text``.

    >>> canonical("1,000"), canonical("12,467.5"), canonical("3.0")
    ('1000', '12467.5', '3.0')
    >>> canonical("September 8, 2010"), canonical("8 Sept. 2010"), canonical("May 1999")
    ('2010-09-08', '2010-09-08', '1999-05-xx')
    >>> canonical("July 4"), canonical("1,00"), canonical("Bangkok, Thailand")
    ('xx-07-04', '1,00', 'Bangkok, Thailand')
    """
    s = text.strip()
    if _NUMBER_RE.match(s):
        return s.replace(",", "")
    low = re.sub(r"\s+", " ", s.lower())
    for pattern, order in _DATE_PATTERNS:
        m = pattern.match(low)
        if not m:
            continue
        parts = dict(zip(order, m.groups()))
        year = parts.get("y", "xx")
        month = parts["m"]
        month_num = _MONTHS[month] if month in _MONTHS else int(month)
        day = parts.get("d")
        day_txt = f"{int(day):02d}" if day is not None else "xx"
        if parse_date(f"{year}-{month_num:02d}-{day_txt}") is None:
            return text
        return f"{year}-{month_num:02d}-{day_txt}"
    return text


def to_value(original: Any, canon: str | None = None) -> Value:
    """Build a :class:`Value` (the official ``to_value``); non-strings are formatted first.

    >>> to_value("1,000").key(), to_value(3.0).key(), to_value("2010").key()
    (('n', 1000), ('n', 3), ('n', 2010))
    >>> to_value("May 1999").key(), to_value("Ghana").key()
    (('d', (1999, 5, -1)), ('s', 'ghana'))
    """
    text = _format(original)
    canon = canonical(text) if canon is None else canon
    amount = parse_number(canon)
    if amount is not None:
        return _number(amount, text)
    ymd = parse_date(canon)
    if ymd is not None:
        if ymd[1] == ymd[2] == -1:
            return _number(ymd[0], text)
        return Value("d", normalize(text), ymd=ymd)
    return Value("s", normalize(text))


def _number(amount: float | int, original: str) -> Value:
    if abs(amount - round(amount)) < 1e-6:
        amount = int(round(amount))
    return Value("n", normalize(original) if original else str(amount), amount=amount)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_value_list(values: Iterable[Any]) -> list[Value]:
    """The official ``to_value_list``: a *set* of values (duplicates collapse)."""
    unique: dict[tuple[Any, ...], Value] = {}
    for v in values:
        val = to_value(v)
        unique.setdefault(val.key(), val)
    return list(unique.values())


def check_denotation(target: list[Value], predicted: list[Value]) -> bool:
    """Same size, and every target value matches some predicted value."""
    if len(target) != len(predicted):
        return False
    return all(any(t.match(p) for p in predicted) for t in target)


def denotation_match(gold: Iterable[str], predicted: Iterable[Any]) -> bool:
    """True when the predicted values are a correct denotation for the gold values."""
    return check_denotation(to_value_list(gold), to_value_list(predicted))


def answer_type(gold: list[str]) -> str:
    """Report category of a WTQ question by its gold answer: number, date, string or multiple.

    >>> answer_type(["1,000"]), answer_type(["May 1999"]), answer_type(["Ghana"]), answer_type(["a", "b"])
    ('number', 'date', 'string', 'multiple')
    """
    if len(gold) > 1:
        return "multiple"
    kind = to_value(gold[0]).kind if gold else "s"
    return {"n": "number", "d": "date", "s": "string"}[kind]
