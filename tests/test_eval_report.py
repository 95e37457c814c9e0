"""The report renders from results files: exact table rows, the shared-question comparison, the plot."""

from __future__ import annotations

from pathlib import Path

from autotqa.evaluation.harness import RunSpec, bind_spec
from autotqa.evaluation.report import render_markdown, write_report
from autotqa.evaluation.results import ResultRecord, ResultStore, results_path


def rec(qid: str, strategy: str, correct: bool, latency: float, joins: str, *, error: str | None = None,
        prompt: int = 100) -> ResultRecord:
    return ResultRecord(id=qid, strategy=strategy, dataset="spider", question="?", correct=correct,
                        latency_s=latency, error=error, reuse=0.5,
                        tokens={"prompt": prompt, "reused": prompt // 2, "completion": 10},
                        categories={"joins": joins, "nesting": "no", "aggregation": "no"})


def write(out: Path, records: list[ResultRecord]) -> None:
    for r in records:
        ResultStore(results_path(out, r.strategy)).append(r)


def test_report_tables_from_results(tmp_path: Path) -> None:
    bind_spec(tmp_path, RunSpec(dataset="spider", data="/data/spider-train", limit=4, sample_seed=0))
    write(tmp_path, [
        rec("a", "agents", True, 4.0, "yes"), rec("b", "agents", True, 6.0, "no"),
        rec("c", "agents", False, 10.0, "no", error="crash: X"), rec("d", "agents", True, 2.0, "no"),
        rec("a", "baseline", False, 1.0, "yes", prompt=300), rec("b", "baseline", True, 1.0, "no"),
        rec("c", "baseline", True, 3.0, "no"),
    ])
    path = write_report(tmp_path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "Run: spider from /data/spider-train, 4 questions sampled with seed 0." in lines
    assert "| agents | 4 | 3 | 75.0% | 1 | 5.00 | 100 | 10 | 50.0% |" in lines
    assert "| baseline | 3 | 2 | 66.7% | 0 | 1.00 | 167 | 10 | 50.0% |" in lines
    # The fair comparison on the three questions both strategies answered.
    assert "## On the 3 questions every strategy answered" in lines
    shared = lines[lines.index("## On the 3 questions every strategy answered"):]
    assert "| agents | 3 | 2 | 66.7% | 1 | 6.00 | 100 | 10 | 50.0% |" in shared
    assert "| category | value | agents (n, acc) | baseline (n, acc) |" in lines
    assert "| joins | no | 3, 66.7% | 2, 100.0% |" in lines
    assert "| joins | yes | 1, 100.0% | 1, 0.0% |" in lines
    assert "| nesting | no | 4, 75.0% | 3, 66.7% |" in lines
    assert "![accuracy and median latency per strategy](report.png)" in lines
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_report_of_an_empty_folder(tmp_path: Path) -> None:
    assert render_markdown({}) == "# autotqa evaluation report\n\nNo results yet.\n"
    assert write_report(tmp_path).read_text() == "# autotqa evaluation report\n\nNo results yet.\n"
    assert not (tmp_path / "report.png").exists()
