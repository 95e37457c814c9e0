"""Per-question result records and the append-only JSONL file that makes runs resumable.

One line per evaluated question in ``DIR/results-<strategy>.jsonl``, appended and flushed as soon
as the question is scored. On start the file is read back: ids already present are never evaluated
again, and a last line cut short by a kill is dropped (that question simply runs again).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> store = ResultStore(d / "results-x.jsonl")
>>> store.append(ResultRecord(id="q1", strategy="x", dataset="wtq", question="?", correct=True))
>>> _ = (d / "results-x.jsonl").open("a").write('{"id": "q2", "stra')  # a kill mid-write
>>> sorted(ResultStore(d / "results-x.jsonl").done_ids())
['q1']
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

#: Rows / values kept per record: enough to read a mistake, small enough to keep the file light.
KEEP_ROWS = 20


class ResultRecord(BaseModel):
    """The scored outcome of one question under one strategy."""

    id: str
    strategy: str
    dataset: str
    question: str
    source: str = ""
    prediction: dict[str, Any] = Field(default_factory=dict)
    gold: dict[str, Any] = Field(default_factory=dict)
    correct: bool = False
    #: Spider: the predicted query run on the source SQLite file, as the official evaluator scores
    #: it (see ``official.py``); None for WTQ and for runs recorded before it existed.
    official_correct: bool | None = None
    official: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    gold_error: str | None = None
    tokens: dict[str, int] = Field(default_factory=dict)
    reuse: float = 0.0
    latency_s: float = 0.0
    trace_path: str | None = None
    categories: dict[str, str] = Field(default_factory=dict)


def results_path(out_dir: str | Path, strategy: str) -> Path:
    return Path(out_dir) / f"results-{strategy}.jsonl"


def read_records(path: str | Path) -> list[ResultRecord]:
    """Every complete, valid record of a results file (first occurrence of each id wins)."""
    path = Path(path)
    if not path.is_file():
        return []
    seen: set[str] = set()
    records: list[ResultRecord] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n") or not line.strip():
                continue  # a partial last line from an interrupted write
            try:
                rec = ResultRecord.model_validate_json(line)
            except ValidationError:
                continue
            if rec.id not in seen:
                seen.add(rec.id)
                records.append(rec)
    return records


class ResultStore:
    """Append-only JSONL of :class:`ResultRecord`, safe to append from several threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._drop_partial_tail()

    def _drop_partial_tail(self) -> None:
        """Cut a last line without its newline, so the next append starts on a fresh line."""
        if not self.path.is_file():
            return
        with self.path.open("rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def done_ids(self) -> set[str]:
        return {r.id for r in read_records(self.path)}

    def append(self, record: ResultRecord) -> None:
        line = record.model_dump_json() + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def write_trace(out_dir: str | Path, strategy: str, qid: str, trace: Any) -> str:
    """Write one question's trace to ``DIR/traces/<strategy>/<id>.json``; return the path relative to DIR."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in qid)
    rel = Path("traces") / strategy / f"{safe}.json"
    target = Path(out_dir) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(trace, indent=1, default=str, ensure_ascii=False), encoding="utf-8")
    return rel.as_posix()
