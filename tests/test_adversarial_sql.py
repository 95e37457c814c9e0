"""The hostile SQL cases of tests/adversarial/sql_cases.sql, run through the real executor.

Every case runs on a frozen catalog loaded from a CSV, beside a canary file holding a secret. Each
must come back with its expected outcome, quickly (the guard's limits act before any parsing), and
leave the canary and the source byte-for-byte as they were, with the secret nowhere in the result.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotqa import cli
from autotqa.catalog import Catalog
from autotqa.config import ExecutorConfig
from autotqa.executors.sql import SQLExecutor

CASES_FILE = Path(__file__).parent / "adversarial" / "sql_cases.sql"
SECRET = "canary-7f3a9c-do-not-leak"
#: Every case, refused or run, finishes well inside this (the executor's own limit is 10 s).
BOUND_S = 3.0


def _expand(text: str) -> str:
    """``{TEXT*N}`` -> TEXT repeated N times (keeps huge and deep cases one short line each)."""
    return re.sub(r"\{(.*?)\*(\d+)\}", lambda m: m.group(1) * int(m.group(2)), text)


def load_cases() -> list[tuple[str, str]]:
    cases = []
    for line in CASES_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        query, expect = line.rsplit(" -- expect: ", 1)
        cases.append((query, expect.strip()))
    return cases


CASES = load_cases()


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("adversarial_sql")
    source = root / "people.csv"
    source.write_text("id,name,age\n1,ann,31\n2,bob,42\n3,cy,27\n")
    canary = root / "secret.txt"
    canary.write_text(f"{SECRET}\n")
    before = {p: _digest(p) for p in (source, canary)}
    catalog = Catalog.from_sources([source])
    executor = SQLExecutor.from_catalog(catalog, ExecutorConfig())
    yield {"root": root, "source": source, "canary": canary, "executor": executor}
    catalog.close()
    assert {p: _digest(p) for p in before} == before
    assert sorted(p.name for p in root.iterdir()) == ["people.csv", "secret.txt"]


def test_the_suite_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert {e for _, e in CASES} >= {"not_read_only", "forbidden_function", "unknown_table", "too_complex",
                                     "multiple_statements", "forbidden_source", "too_large", "ok"}


@pytest.mark.parametrize(("query", "expect"), CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_hostile_query(sandbox: dict, query: str, expect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sandbox["root"])  # a DuckDB spill directory (./.tmp) would show up here
    sql = _expand(query).replace("$CANARY", str(sandbox["canary"])).replace("$SOURCE", str(sandbox["source"]))
    start = time.perf_counter()
    result = sandbox["executor"].run(sql)
    elapsed = time.perf_counter() - start
    assert elapsed < BOUND_S, f"{elapsed:.1f} s"
    if expect == "ok":
        assert result.ok, result.error
    else:
        assert (result.ok, result.error_type) == (False, expect), result.error
        assert result.error and "\n" not in result.error
    assert SECRET not in repr(result.rows) + (result.error or "")
    assert _digest(sandbox["canary"])[0] == hashlib.sha256(f"{SECRET}\n".encode()).hexdigest()
    assert sorted(p.name for p in sandbox["root"].iterdir()) == ["people.csv", "secret.txt"]


def test_byte_cap_error_says_what_to_do(sandbox: dict) -> None:
    result = sandbox["executor"].run("SELECT repeat('x', 200000) AS s FROM range(5000)")
    assert result.error_type == "too_large"
    assert result.error == ("result too large: more than 8,388,608 bytes in the first 42 rows "
                            "(hint: select fewer columns, aggregate, or add LIMIT)")


def test_row_cap_still_bounds_small_rows(sandbox: dict) -> None:
    result = sandbox["executor"].run("SELECT range AS i FROM range(100000)")
    assert (len(result.rows), result.n_rows, result.truncated) == (1000, 100000, True)


def test_duckdb_limits_are_set_and_locked(sandbox: dict) -> None:
    con = sandbox["executor"]._con
    threads, temp_dir, memory = con.execute(
        "SELECT current_setting('threads'), current_setting('temp_directory'), "
        "current_setting('memory_limit')").fetchone()
    assert (threads, temp_dir) == (ExecutorConfig().sql_threads, "")
    assert memory == "2.0 GiB"  # sql_memory_limit_mb on top of a few KiB of data, not 80 % of RAM
    with pytest.raises(Exception, match="lock"):
        con.execute("SET memory_limit = '100GB'")


def test_deep_nesting_is_one_line_on_the_cli(sandbox: dict) -> None:
    cli._register()
    query = "SELECT * FROM " + "(SELECT * FROM " * 100 + "people" + ")" * 100
    res = CliRunner().invoke(cli.app, ["sql", str(sandbox["source"]), query])
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [
        "error: the query nests 100 levels deep; at most 24 are allowed (hint: write it flatter: name the "
        "parts in WITH (CTEs) and join them) [too_complex]"]
