"""The evaluation report: a markdown table per strategy and category, and one PNG plot.

Reads every ``results-*.jsonl`` in a run folder, so strategies run separately (or resumed) end up
side by side. When the strategies did not all answer the same questions, the comparison is also
given on the questions they share, since only that comparison is fair.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CLASSES, classify_run
from .harness import read_spec
from .results import ResultRecord, read_records

CATEGORY_ORDER = ("joins", "nesting", "aggregation", "answer_type")


@dataclass(frozen=True)
class Stats:
    n: int
    correct: int
    errors: int
    median_latency_s: float
    mean_prompt_tokens: float
    mean_completion_tokens: float
    mean_reuse: float
    #: Records scored the official Spider way (``official_correct`` set), and how many of them right.
    official_n: int = 0
    official_correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def official(self) -> str:
        """Official execution accuracy as a table cell; "-" when no record was scored that way."""
        return f"{self.official_correct / self.official_n:.1%}" if self.official_n else "-"


def stats(records: Sequence[ResultRecord]) -> Stats:
    """Aggregate figures of a set of records.

    >>> r = [ResultRecord(id="a", strategy="s", dataset="wtq", question="?", correct=True, latency_s=1.0),
    ...      ResultRecord(id="b", strategy="s", dataset="wtq", question="?", latency_s=3.0, error="x")]
    >>> s = stats(r); (s.n, s.correct, s.errors, s.accuracy, s.median_latency_s)
    (2, 1, 1, 0.5, 2.0)
    """
    n = len(records)
    if not n:
        return Stats(0, 0, 0, 0.0, 0.0, 0.0, 0.0)
    return Stats(
        n=n, correct=sum(r.correct for r in records), errors=sum(r.error is not None for r in records),
        median_latency_s=statistics.median(r.latency_s for r in records),
        mean_prompt_tokens=statistics.fmean(r.tokens.get("prompt", 0) for r in records),
        mean_completion_tokens=statistics.fmean(r.tokens.get("completion", 0) for r in records),
        mean_reuse=statistics.fmean(r.reuse for r in records),
        official_n=sum(r.official_correct is not None for r in records),
        official_correct=sum(bool(r.official_correct) for r in records))


def has_official(runs: dict[str, list[ResultRecord]]) -> bool:
    """True when some record carries the official Spider score (runs before it existed do not)."""
    return any(r.official_correct is not None for recs in runs.values() for r in recs)


def load_run(out_dir: str | Path) -> dict[str, list[ResultRecord]]:
    """Records of every strategy in a run folder, by strategy name (sorted)."""
    runs: dict[str, list[ResultRecord]] = {}
    for path in sorted(Path(out_dir).glob("results-*.jsonl")):
        name = path.stem.removeprefix("results-")
        runs[name] = read_records(path)
    return runs


def _overall_table(runs: dict[str, list[ResultRecord]], official: bool) -> list[str]:
    extra = (" official EX (SQLite) |", "---:|") if official else ("", "")
    lines = [f"| strategy | questions | correct | accuracy |{extra[0]} errors | median latency (s) "
             "| prompt tok/q | completion tok/q | prefix reuse |",
             f"|---|---:|---:|---:|{extra[1]}---:|---:|---:|---:|---:|"]
    for name, recs in runs.items():
        s = stats(recs)
        cell = f" {s.official} |" if official else ""
        lines.append(f"| {name} | {s.n} | {s.correct} | {s.accuracy:.1%} |{cell} {s.errors} | "
                     f"{s.median_latency_s:.2f} | {s.mean_prompt_tokens:.0f} | "
                     f"{s.mean_completion_tokens:.0f} | {s.mean_reuse:.1%} |")
    return lines


def _category_table(runs: dict[str, list[ResultRecord]], official: bool) -> list[str]:
    names = list(runs)
    facets: dict[tuple[str, str], None] = {}
    for recs in runs.values():
        for r in recs:
            for facet, value in r.categories.items():
                facets[(facet, value)] = None
    order = {f: i for i, f in enumerate(CATEGORY_ORDER)}
    keys = sorted(facets, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    if not keys:
        return []
    what = "n, acc, official" if official else "n, acc"
    lines = ["| category | value | " + " | ".join(f"{n} ({what})" for n in names) + " |",
             "|---|---|" + "---:|" * len(names)]
    for facet, value in keys:
        cells = []
        for n in names:
            sub = [r for r in runs[n] if r.categories.get(facet) == value]
            s = stats(sub)
            cell = f"{s.n}, {s.accuracy:.1%}" + (f", {s.official}" if official else "")
            cells.append(cell if s.n else "-")
        lines.append(f"| {facet} | {value} | " + " | ".join(cells) + " |")
    return lines


def right_only(runs: dict[str, list[ResultRecord]]) -> dict[str, int]:
    """Per strategy: questions it got right and every other strategy got wrong (shared questions only).

    >>> r = lambda i, s, ok: ResultRecord(id=i, strategy=s, dataset="wtq", question="?", correct=ok)
    >>> right_only({"a": [r("1", "a", True), r("2", "a", True), r("3", "a", True)],
    ...             "b": [r("1", "b", False), r("2", "b", True)]})
    {'a': 1, 'b': 0}
    """
    right = {name: {r.id for r in recs if r.correct} for name, recs in runs.items()}
    common = set.intersection(*({r.id for r in recs} for recs in runs.values())) if runs else set()
    return {name: len({i for i in right[name] & common
                       if not any(i in ids for other, ids in right.items() if other != name)})
            for name in runs}


def _error_table(runs: dict[str, list[ResultRecord]], classes: dict[str, dict[str, str]]) -> list[str]:
    names = list(runs)
    lines = ["| class | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for cls in CLASSES:
        lines.append(f"| {cls} | " + " | ".join(
            str(sum(c == cls for c in classes.get(n, {}).values())) for n in names) + " |")
    lines.append("| wrong, all classes | " + " | ".join(
        str(sum(not r.correct for r in runs[n])) for n in names) + " |")
    if len(names) > 1:
        only = right_only(runs)
        lines.append("| right only by this strategy | " + " | ".join(str(only[n]) for n in names) + " |")
    return lines


def metric_differences(records: Sequence[ResultRecord]) -> str:
    """One line: questions right on one Spider metric and wrong on the other, and why.

    >>> r = lambda i, ours, off, err=None, oerr=None: ResultRecord(id=i, strategy="s", dataset="spider",
    ...     question="?", correct=ours, official_correct=off, error=err, official={"error": oerr})
    >>> metric_differences([r("a", False, True, err="sql: Binder Error"), r("b", False, True),
    ...                     r("c", True, False, oerr="OperationalError: x"), r("d", True, True)])
    '2 right only on SQLite (1 failed on DuckDB, 1 returned other rows); 1 right only as answered (1 failed on SQLite, 0 returned other rows); 0 predicted queries ran on SQLite only once transpiled from DuckDB'
    """
    scored = [r for r in records if r.official_correct is not None]
    only_sqlite = [r for r in scored if r.official_correct and not r.correct]
    only_ours = [r for r in scored if r.correct and not r.official_correct]
    transpiled = sum(bool(r.official.get("transpiled")) for r in scored)
    note = f"; {transpiled} predicted queries ran on SQLite only once transpiled from DuckDB"
    if not only_sqlite and not only_ours:
        return f"the two metrics agree on all {len(scored)} questions{note}"
    duck_failed = sum(r.error is not None for r in only_sqlite)
    sqlite_failed = sum(bool(r.official.get("error")) for r in only_ours)
    return (f"{len(only_sqlite)} right only on SQLite ({duck_failed} failed on DuckDB, "
            f"{len(only_sqlite) - duck_failed} returned other rows); "
            f"{len(only_ours)} right only as answered ({sqlite_failed} failed on SQLite, "
            f"{len(only_ours) - sqlite_failed} returned other rows){note}")


def render_markdown(runs: dict[str, list[ResultRecord]], *, plot_name: str | None = None,
                    run_description: str | None = None,
                    error_classes: dict[str, dict[str, str]] | None = None) -> str:
    """The report text for the given records (strategy name -> records).

    ``error_classes`` (strategy -> id -> class, see ``errors.py``) come from the records and their
    traces; without them the classes are derived from the records alone.
    """
    datasets = sorted({r.dataset for recs in runs.values() for r in recs})
    out = ["# autotqa evaluation report", ""]
    if run_description:
        out += [f"Run: {run_description}.", ""]
    if not runs or not any(runs.values()):
        return "\n".join(out + ["No results yet.", ""])
    out += [f"Dataset: {', '.join(datasets)}. Strategies: {', '.join(runs)}. "
            "Correct = execution accuracy (Spider) or denotation accuracy (WTQ); errors = questions "
            "where no usable result came out (counted wrong).", "", "## Overall", ""]
    official = has_official(runs)
    if official:
        out += ["Official EX = the predicted query run on the source SQLite file and compared with the "
                "gold there, as Spider's evaluator does (transpiled from DuckDB only when SQLite "
                "refuses it as written); accuracy = the rows the user actually got from DuckDB.", ""]
    out += _overall_table(runs, official)
    id_sets = [{r.id for r in recs} for recs in runs.values()]
    common = set.intersection(*id_sets) if id_sets else set()
    if len(runs) > 1 and any(s != common for s in id_sets):
        shared = {n: [r for r in recs if r.id in common] for n, recs in runs.items()}
        noun = "question" if len(common) == 1 else "questions"
        out += ["", f"## On the {len(common)} {noun} every strategy answered", ""]
        out += _overall_table(shared, official)
    gold_errors = sorted({r.id for recs in runs.values() for r in recs if r.gold_error})
    cats = _category_table(runs, official)
    if cats:
        out += ["", "## By category", ""] + cats
    classes = error_classes if error_classes is not None else classify_run(None, runs)
    note = ("; right only by this strategy counts, of the questions every strategy answered, those "
            "all others got wrong" if len(runs) > 1 else "")
    out += ["", "## Why answers were wrong", "",
            f"One class per wrong answer, the first that applies in this order (see "
            f"`autotqa/evaluation/errors.py`){note}.", ""]
    out += _error_table(runs, classes)
    if official:
        out += ["", "## Where the two metrics differ", ""]
        out += [f"- {name}: {metric_differences(recs)}" for name, recs in runs.items()]
    if gold_errors:
        out += ["", f"Gold query failed on {len(gold_errors)} question(s): {', '.join(gold_errors[:20])}."]
    if plot_name:
        out += ["", f"![accuracy and median latency per strategy]({plot_name})"]
    return "\n".join(out) + "\n"


def render_plot(runs: dict[str, list[ResultRecord]], path: str | Path) -> Path:
    """Two bar charts (accuracy, median latency) per strategy, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    all_stats = [stats(runs[n]) for n in names]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    try:
        ax1.bar(names, [s.accuracy * 100 for s in all_stats], color="#4C72B0")
        ax1.set_ylabel("accuracy (%)")
        ax1.set_ylim(0, 100)
        for i, s in enumerate(all_stats):
            ax1.text(i, s.accuracy * 100 + 1, f"{s.accuracy:.1%}\n(n={s.n})", ha="center", fontsize=8)
        ax2.bar(names, [s.median_latency_s for s in all_stats], color="#DD8452")
        ax2.set_ylabel("median latency (s)")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return Path(path)


def write_report(out_dir: str | Path, *, target: str | Path | None = None, plot: bool = True) -> Path:
    """Render the report of every results file in ``out_dir``.

    It goes to ``DIR/report.md`` with its plot ``DIR/report.png``, or to ``target`` with the plot
    beside it under the same stem (``eval_wtq.md`` + ``eval_wtq.png``), for publishing a run.
    """
    out_dir = Path(out_dir)
    target = Path(target) if target is not None else out_dir / "report.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    runs = load_run(out_dir)
    plot_name = None
    if plot and any(runs.values()):
        try:
            plot_name = render_plot(runs, target.with_suffix(".png")).name
        except ImportError:  # no matplotlib: a finished run still gets its report, without the plot
            plot_name = None
    spec = read_spec(out_dir)
    text = render_markdown(runs, plot_name=plot_name, run_description=spec.describe() if spec else None,
                           error_classes=classify_run(out_dir, runs))
    target.write_text(text, encoding="utf-8")
    return target
