"""Benchmark loaders on a few rows of the shared data, and deterministic sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotqa.errors import ConfigError, DataLoadError
from autotqa.evaluation.datasets import (SpiderItem, WTQItem, load_dataset, load_spider, load_wtq,
                                         read_wtq_table, sample_items, tsv_unescape_list)
from autotqa.evaluation.execution import run_gold
from autotqa.evaluation.harness import RunSpec, bind_spec


def test_spider_loader_reads_shared_questions(spider_dir: Path) -> None:
    items = load_spider(spider_dir)
    assert len(items) == 6722
    first = items[0]
    assert first == SpiderItem(id="spider-train-00000", db_id="activity_1",
                               question="How many faculty do we have?",
                               gold_sql='SELECT COUNT(*) FROM "Faculty"',
                               db_path=str(spider_dir / "databases" / "activity_1.sqlite"))
    assert first.task().source_key == "activity_1" and "gold" not in first.task().model_dump_json()
    assert run_gold(first.db_path, first.gold_sql) == [(58,)]


def test_wtq_loader_reads_shared_questions(wtq_dir: Path) -> None:
    items = load_wtq(wtq_dir)
    assert len(items) == 14152
    by_id = {i.id: i for i in items[:200]}
    assert by_id["nt-0"] == WTQItem(
        id="nt-0", question="what was the last year where this team was a part of the usl a-league?",
        context="csv/204-csv/590.csv", table_path=str(wtq_dir / "tables" / "csv/204-csv/590.csv"),
        target_values=["2004"])
    assert by_id["nt-9"].target_values == ["Siim Ennemuist", "Andri Aganits"]
    assert by_id["nt-3"].target_values == ["12,467"]
    table = read_wtq_table(by_id["nt-0"].table_path)
    assert table[0][0] == "Year" and len(table) > 5


def test_sampling_is_deterministic(spider_dir: Path) -> None:
    items = load_spider(spider_dir)
    a = [i.id for i in sample_items(items, 5, seed=7)]
    assert a == [i.id for i in sample_items(load_spider(spider_dir), 5, seed=7)]
    assert a != [i.id for i in sample_items(items, 5, seed=8)]
    assert len(set(a)) == 5
    assert sample_items(items, None, 3) == items and sample_items(items, 10**6, 3) == items


def test_tsv_unescape_list() -> None:
    assert tsv_unescape_list(r"a\pb|c\\d|e\nf") == ["a|b", "c\\d", "e\nf"]


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="no questions.jsonl"):
        load_dataset("spider", tmp_path)
    (tmp_path / "questions.tsv").write_text("a\tb\n", encoding="utf-8")
    with pytest.raises(DataLoadError, match="header must start with"):
        load_wtq(tmp_path)
    (tmp_path / "questions.jsonl").write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(DataLoadError, match="questions.jsonl:1: bad question record"):
        load_spider(tmp_path)


def test_run_folder_refuses_a_different_sample(tmp_path: Path) -> None:
    spec = RunSpec(dataset="wtq", data=str(tmp_path), limit=5, sample_seed=1)
    assert bind_spec(tmp_path / "run", spec) == spec
    assert bind_spec(tmp_path / "run", spec) == spec              # resuming: same spec is fine
    with pytest.raises(ConfigError, match="already holds a different run"):
        bind_spec(tmp_path / "run", spec.model_copy(update={"sample_seed": 2}))
