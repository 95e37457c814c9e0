"""One evaluation run from start to end, independent of the command line.

``RunSpec`` names what is evaluated (dataset, data folder, sample); it is written to ``DIR/run.json``
on the first run and checked on every later one, so a resumed run can never mix questions of two
different samples into one results file.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from ..errors import ConfigError
from .datasets import DatasetKind, EvalItem, load_dataset, sample_items


class RunSpec(BaseModel):
    """What a run folder evaluates.

    >>> RunSpec(dataset="wtq", data="/d", limit=5, sample_seed=1).describe()
    'wtq from /d, 5 questions sampled with seed 1'
    """

    dataset: DatasetKind
    data: str
    limit: int | None = None
    sample_seed: int = 0
    #: The database server the questions run on (``--target``), password masked; None: DuckDB.
    target: str | None = None

    def describe(self) -> str:
        sample = f"{self.limit} questions sampled with seed {self.sample_seed}" if self.limit else "all questions"
        return f"{self.dataset} from {self.data}, {sample}" + (f", on {self.target}" if self.target else "")

    def items(self) -> list[EvalItem]:
        """The questions of this run, in sample order."""
        return sample_items(load_dataset(self.dataset, self.data), self.limit, self.sample_seed)


SPEC_FILE = "run.json"


def bind_spec(out_dir: str | Path, spec: RunSpec) -> RunSpec:
    """Record ``spec`` in ``DIR/run.json``, or check it equals the one recorded there."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPEC_FILE
    if path.is_file():
        try:
            old = RunSpec.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ConfigError(f"{path} is not a run description: {exc}",
                              hint="remove it, or use another --out folder") from None
        same = (old.dataset, old.limit, old.sample_seed, Path(old.data).resolve(), old.target) == \
            (spec.dataset, spec.limit, spec.sample_seed, Path(spec.data).resolve(), spec.target)
        if not same:
            raise ConfigError(f"{out} already holds a different run ({old.describe()})",
                              hint="resume with the same --dataset/--data/--limit/--sample-seed/--target, "
                                   "or choose another --out folder")
        return old
    path.write_text(json.dumps(spec.model_dump(), indent=2) + "\n", encoding="utf-8")
    return spec


def read_spec(out_dir: str | Path) -> RunSpec | None:
    path = Path(out_dir) / SPEC_FILE
    if not path.is_file():
        return None
    return RunSpec.model_validate_json(path.read_text(encoding="utf-8"))
