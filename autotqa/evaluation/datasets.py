"""Benchmark loaders: typed records for the two layouts ``autotqa eval`` understands.

* **spider** — multi-table databases with gold SQL: ``databases/<db_id>.sqlite`` and
  ``questions.jsonl`` with lines ``{"id", "db_id", "question", "gold_sql"}``.
* **wtq** — single tables with gold answers (WikiTableQuestions): ``tables/<context>`` CSV files and
  ``questions.tsv`` with columns ``id, utterance, context, targetValue`` (several values joined by
  ``|``, escaped the official way: ``\\p`` for ``|``, ``\\n`` for a newline, ``\\\\`` for ``\\``).

Each item splits into what the system may see (:class:`Task`: id, question, sources) and what
only the harness may see (the gold SQL or answer). Strategies receive a ``Task`` and nothing else,
so ground truth cannot reach the answering code.

Sampling is deterministic: the same ``seed`` and ``limit`` select the same questions on any
machine (a seeded ``random.Random`` over the file order, not Python's hash order).

>>> sample_items(list(range(10)), limit=3, seed=0)
[6, 9, 0]
>>> sample_items(list(range(10)), limit=3, seed=0) == sample_items(list(range(10)), limit=3, seed=0)
True
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ..errors import DataLoadError

DatasetKind = Literal["spider", "wtq"]
T = TypeVar("T")


class Task(BaseModel):
    """What a strategy is allowed to see of one benchmark question: no gold anywhere.

    ``source`` is the database file (spider) or the table file (wtq); ``source_key`` groups
    questions that share data, so a strategy can reuse one session (and its warm prefix) for them.
    """

    model_config = ConfigDict(frozen=True)
    id: str
    question: str
    source: str
    source_key: str
    dataset: DatasetKind


class SpiderItem(BaseModel):
    """One Spider-style question: a SQLite database and the gold SQL that answers it."""

    model_config = ConfigDict(frozen=True)
    id: str
    db_id: str
    question: str
    gold_sql: str
    db_path: str

    def task(self) -> Task:
        return Task(id=self.id, question=self.question, source=self.db_path, source_key=self.db_id,
                    dataset="spider")


class WTQItem(BaseModel):
    """One WikiTableQuestions-style question: a CSV table and the gold answer values."""

    model_config = ConfigDict(frozen=True)
    id: str
    question: str
    context: str
    table_path: str
    target_values: list[str]

    def task(self) -> Task:
        return Task(id=self.id, question=self.question, source=self.table_path, source_key=self.context,
                    dataset="wtq")


EvalItem = SpiderItem | WTQItem


def tsv_unescape(text: str) -> str:
    r"""Undo the WTQ TSV escaping (``\n`` newline, ``\p`` vertical bar, ``\\`` backslash).

    >>> tsv_unescape(r"a\pb\\c")
    'a|b\\c'
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "np\\":
            out.append({"n": "\n", "p": "|", "\\": "\\"}[text[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tsv_unescape_list(text: str) -> list[str]:
    r"""Split a WTQ target on ``|`` and unescape each value.

    >>> tsv_unescape_list(r"Morocco|France|A\pB")
    ['Morocco', 'France', 'A|B']
    """
    return [tsv_unescape(part) for part in text.split("|")]


def load_spider(root: str | Path) -> list[SpiderItem]:
    """Read ``questions.jsonl`` under ``root``; every item points at its ``databases/<db_id>.sqlite``."""
    root = Path(root)
    qfile = root / "questions.jsonl"
    if not qfile.is_file():
        raise DataLoadError(f"no questions.jsonl in {root}", path=str(root),
                            hint="--data must be a folder with questions.jsonl and databases/")
    items: list[SpiderItem] = []
    with qfile.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                db_path = root / "databases" / f"{rec['db_id']}.sqlite"
                items.append(SpiderItem(id=str(rec["id"]), db_id=rec["db_id"], question=rec["question"],
                                        gold_sql=rec["gold_sql"], db_path=str(db_path)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataLoadError(f"{qfile}:{lineno}: bad question record ({exc})", path=str(qfile)) from None
    return items


def load_wtq(root: str | Path) -> list[WTQItem]:
    """Read ``questions.tsv`` under ``root``; tables are resolved against ``root/tables``."""
    root = Path(root)
    qfile = root / "questions.tsv"
    if not qfile.is_file():
        raise DataLoadError(f"no questions.tsv in {root}", path=str(root),
                            hint="--data must be a folder with questions.tsv and tables/")
    items: list[WTQItem] = []
    with qfile.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        want = ["id", "utterance", "context", "targetValue"]
        if header is None or header[:4] != want:
            raise DataLoadError(f"{qfile}: header must start with {'/'.join(want)}, got {header}",
                                path=str(qfile))
        for lineno, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) < 4:
                raise DataLoadError(f"{qfile}:{lineno}: expected 4 tab-separated fields, got {len(row)}",
                                    path=str(qfile))
            qid, utterance, context, target = row[:4]
            items.append(WTQItem(id=qid, question=utterance, context=context,
                                 table_path=str(root / "tables" / context),
                                 target_values=tsv_unescape_list(target)))
    return items


def load_dataset(kind: DatasetKind, root: str | Path) -> list[SpiderItem] | list[WTQItem]:
    """Load every item of a benchmark folder of the given layout."""
    if kind == "spider":
        return load_spider(root)
    if kind == "wtq":
        return load_wtq(root)
    raise DataLoadError(f"unknown dataset kind {kind!r}", hint="use spider or wtq")


def sample_items(items: Sequence[T], limit: int | None, seed: int = 0) -> list[T]:
    """Pick ``limit`` items at random with a fixed ``seed`` (all of them, in order, when no limit)."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    return random.Random(seed).sample(list(items), limit)


def read_wtq_table(path: str | Path) -> list[list[str]]:
    """Read a WTQ CSV (header row first) with the escaping the dataset uses (``escapechar='\\'``)."""
    with Path(path).open(encoding="utf-8", newline="") as fh:
        return [row for row in csv.reader(fh, escapechar="\\")]
