"""The pandas sandbox: ordinary code gives exact results; escapes, endless loops, memory blow-ups and
crashes come back as failed results while the parent and the data stay intact."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from autotqa.config import ExecutorConfig
from autotqa.executors import _sandbox_child as child
from autotqa.executors import confine
from autotqa.executors.pandas_exec import PandasExecutor

PEOPLE = pa.table({"id": [1, 2, 3, 4], "name": ["ann", "bob", "cy", "dee"],
                   "city": ["oslo", "rome", "oslo", "oslo"], "age": [31, 42, 27, 50]})
PETS = pa.table({"owner_id": [1, 1, 3], "kind": ["cat", "dog", "cat"]})
CONFIG = ExecutorConfig(row_cap=3, pandas_timeout_s=3, pandas_cpu_s=10, pandas_memory_mb=512)


@pytest.fixture(scope="module")
def ex() -> PandasExecutor:
    with PandasExecutor({"people": PEOPLE, "pets": PETS}, CONFIG) as executor:
        yield executor


@pytest.mark.parametrize(("code", "columns", "rows", "n_rows"), [
    ("people.groupby('city')['age'].mean()", ["city", "age"], [["oslo", 36.0], ["rome", 42.0]], 2),
    ("people.merge(pets, left_on='id', right_on='owner_id').groupby('name').size()",
     ["name", "value"], [["ann", 2], ["cy", 1]], 2),
    ("result = int(people['age'].sum())", ["result"], [[150]], 1),
    ("import numpy as np\nnp.median(tables['people'].age)", ["result"], [[36.5]], 1),
    ("people[people.age > 30].sort_values('age')[['name', 'age']]",
     ["name", "age"], [["ann", 31], ["bob", 42], ["dee", 50]], 3),
    ("people.name", ["name"], [["ann"], ["bob"], ["cy"]], 4),  # a Series, capped at row_cap=3
    ("people.query('age > 40').name.tolist()", ["result"], [["bob"], ["dee"]], 2),
    ("import datetime\nresult = datetime.date(2024, 2, 29) + datetime.timedelta(days=1)",
     ["result"], [["2024-03-01"]], 1),
    ("print(people.shape[0])", ["output"], [["4"]], 1),
])
def test_ordinary_code(ex: PandasExecutor, code: str, columns: list, rows: list, n_rows: int) -> None:
    r = ex.run(code)
    assert r.ok, r.error
    assert (r.language, r.columns, r.rows, r.n_rows, r.truncated) == (
        "pandas", columns, rows, n_rows, n_rows > len(rows))
    assert r.code == code


@pytest.mark.parametrize(("code", "kind", "needle"), [
    ("import os\nos.system('id')", "forbidden_import", 'import of "os" is not allowed'),
    ("import subprocess", "forbidden_import", 'import of "subprocess"'),
    ("from pandas import io", "forbidden_attribute", '"io" from pandas is not allowed'),
    ("open('/etc/passwd').read()", "forbidden_name", '"open" is not allowed'),
    ("().__class__.__mro__[1].__subclasses__()", "forbidden_attribute", "dunder"),
    ("__builtins__['eval']('1')", "forbidden_name", '"__builtins__" is not allowed'),
    ("eval('1+1')", "forbidden_name", '"eval" is not allowed'),
    ("getattr(people, 'to_csv')('/tmp/x')", "forbidden_name", '"getattr" is not allowed'),
    ("pd.read_csv('/etc/passwd')", "forbidden_attribute", '".read_csv" is not allowed: reads files'),
    ("people.to_csv('/tmp/out.csv')", "forbidden_attribute", '".to_csv" is not allowed: writes files'),
    ("people.to_pickle('/tmp/out.pkl')", "forbidden_attribute", "writes files"),
    ("pd.DataFrame.to_parquet(people, '/tmp/p')", "forbidden_attribute", "writes files"),
    ("pd.io.parsers.read_csv('/etc/passwd')", "forbidden_attribute", "reads files"),
    ("pd.io.parsers", "forbidden_attribute", '".io" is not allowed'),
    ("import numpy as np\nnp.load('/tmp/x.npy')", "forbidden_attribute", "reads files"),
    ("import numpy as np\nnp.save('/tmp/x', [1])", "forbidden_attribute", "writes files"),
    ("import numpy as np\nnp.fromfile('/etc/passwd')", "forbidden_attribute", "reads files"),
    ("people.agg('to_pickle', '/tmp/x')", "forbidden_attribute", '"to_pickle" is not allowed'),
    ("q = 'age > 1'\npeople.query(q)", "forbidden_expression", "literal string"),
    ("people.query('@people.__class__')", "forbidden_expression", "'__'"),
    ("pd.eval('people.__class__')", "forbidden_attribute", '".eval"'),
    ("def f(:\n  pass", "syntax", "syntax error"),
])
def test_static_refusals(ex: PandasExecutor, code: str, kind: str, needle: str) -> None:
    r = ex.run(code)
    assert (r.ok, r.error_type) == (False, kind), r.error
    assert needle in r.error


def test_runtime_write_through_an_allowed_method_is_refused(ex: PandasExecutor, tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_text("precious")
    r = ex.run(f"people.to_string({str(target)!r})")  # to_string may write when given a path
    # The audit hook would refuse it too, but the confined child does not even see the folder.
    assert (r.ok, r.error_type) == (False, "runtime")
    assert r.error.startswith("OSError: Cannot save file into a non-existent directory")
    assert target.read_text() == "precious"  # not even truncated
    # A method name built at run time slips past the static check; the OS still holds.
    r = ex.run(f"people.apply('to' + '_pickle', path={str(target)!r})")
    assert (r.ok, r.error_type) == (False, "runtime")
    assert r.error.startswith("OSError: Cannot save file into a non-existent directory")
    assert target.read_text() == "precious"


def test_timeout_kills_an_endless_loop(ex: PandasExecutor) -> None:
    assert ex._spare is not None and ex._spare.wait_ready(60)  # time the code, not the start-up
    r = ex.run("while True:\n    pass")
    assert (r.ok, r.error_type, r.error) == (False, "timeout", "stopped after 3 s (wall-clock limit)")
    assert 3 <= r.elapsed_s < 5  # the CPU limit (10 s) did not have to act
    assert ex.run("len(people)").rows == [[4]]  # the parent carries on


def test_cpu_limit() -> None:
    cfg = ExecutorConfig(pandas_timeout_s=30, pandas_cpu_s=1, pandas_memory_mb=512)
    with PandasExecutor({"people": PEOPLE}, cfg) as ex:
        r = ex.run("n = 0\nwhile True:\n    n += 1")
    assert (r.ok, r.error_type, r.error) == (False, "cpu_time", "CPU time limit exceeded")


@pytest.mark.parametrize("code", ["x = 'a' * 10**11", "import numpy\nnumpy.ones(10**11)",
                                  "import numpy as np\nresult = np.zeros((10**5, 10**5))"])
def test_memory_limit(ex: PandasExecutor, code: str) -> None:
    r = ex.run(code)
    assert (r.ok, r.error_type) == (False, "memory")
    assert r.error.startswith("out of memory (line ")
    assert ex.run("people.age.max()").rows == [[50]]


def test_crashing_child_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in interpreter that says it is ready on the reply pipe and then segfaults. It lives in
    # tmp_path, which the confined sandbox cannot see: this one runs unconfined, by the opt-in flag.
    fake = tmp_path / "segfaulting-python"
    fake.write_text(f"#!{sys.executable}\nimport json, os, signal, sys\n"
                    "size = int.from_bytes(sys.stdin.buffer.read(8), 'big')\n"
                    "os.write(json.loads(sys.stdin.buffer.read(size))['reply_fd'], b'R')\n"
                    "os.kill(os.getpid(), signal.SIGSEGV)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(confine.Launcher, "_probe", lambda self: "switched off for this test")
    cfg = CONFIG.model_copy(update={"pandas_unconfined_ok": True})
    with PandasExecutor({"people": PEOPLE}, cfg, python=str(fake)) as ex:
        r = ex.run("len(people)")
    assert (r.ok, r.error_type) == (False, "crashed")
    assert r.error.startswith("the process crashed (segmentation fault)")


def test_runtime_errors_name_the_line(ex: PandasExecutor) -> None:
    r = ex.run("x = 1\npeople['nme']")
    assert (r.ok, r.error_type, r.error) == (False, "runtime", "KeyError: 'nme' (line 2)")
    assert ex.run("x = 1").error_type == "no_result"


def test_from_catalog_uses_arrow_tables() -> None:
    class FakeCatalog:
        tables = {"people": object()}

        def arrow(self, name: str) -> pa.Table:
            return PEOPLE

    with PandasExecutor.from_catalog(FakeCatalog(), CONFIG, prestart=False) as ex:
        assert ex.run("tables['people'].city.nunique()").rows == [[2]]


def test_source_bytes_unchanged_after_escape_attempts(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    PEOPLE.to_pandas().to_csv(source, index=False)
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    with PandasExecutor({"people": PEOPLE}, CONFIG) as ex:
        for code in (f"people.to_string({str(source)!r})", f"pd.read_csv({str(source)!r})",
                     f"people.to_csv({str(source)!r})"):
            assert not ex.run(code).ok
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


def test_audit_hook_layer() -> None:
    hook = child._audit_hook(child._read_roots())
    with pytest.raises(PermissionError, match="reading files"):
        hook("open", ("/etc/passwd", "r", os.O_RDONLY))
    with pytest.raises(PermissionError, match="writing files"):
        hook("open", ("/tmp/x", "w", os.O_WRONLY | os.O_CREAT))
    with pytest.raises(PermissionError, match="os.system"):
        hook("os.system", ("id",))
    with pytest.raises(PermissionError, match="socket.connect"):
        hook("socket.connect", (None, ("1.1.1.1", 80)))
    hook("open", (pa.__file__, "r", os.O_RDONLY))  # library files may still be read (lazy imports)
    hook("open", (3, "rb", 0))


def test_parallel_calls_each_get_a_child(ex: PandasExecutor) -> None:
    from concurrent.futures import ThreadPoolExecutor

    codes = [f"int(people.age.sum()) + {i}" for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(ex.run, codes))
    assert [r.rows for r in results] == [[[150]], [[151]], [[152]]]


def test_column_names_that_look_like_io_are_usable() -> None:
    frame = pa.table({"to_station": ["a", "b", "a"], "read_count": [1, 2, 3], "_id": [7, 8, 9]})
    with PandasExecutor({"trips": frame}, CONFIG, prestart=False) as ex:
        r = ex.run("trips.groupby('to_station')['read_count'].sum()")
        assert (r.ok, r.rows) == (True, [["a", 4], ["b", 2]]), r.error
        assert ex.run("int(trips['_id'].max())").rows == [[9]]
        refused = ex.run("trips.read_count.sum()")
        assert refused.error == ('line 1: ".read_count" is not allowed: reads files '
                                 "(hint: for a column of that name write df['read_count'])")


def test_close_stops_the_spare_and_starts_no_other() -> None:
    import time

    ex = PandasExecutor({"people": PEOPLE}, CONFIG)
    deadline = time.monotonic() + 30
    while ex._spare is None and time.monotonic() < deadline:  # started in the background
        time.sleep(0.05)
    spare = ex._spare
    assert spare is not None and spare.alive()
    ex.close()
    assert spare.proc.returncode is not None and ex._spare is None
    ex._restock()  # a call finishing after close must not leave a child behind
    assert ex._spare is None


def test_close_waits_for_the_prestart_about_to_read_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    # Session.close closes its executors, then the catalog. A prestart thread that had passed its
    # "closed?" check but not yet read the tables then read a closed connection ("Connection already
    # closed" in a thread). The pause below holds the thread in exactly that window.
    import threading

    from autotqa.catalog import Catalog

    errors: list[object] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    paused, release = threading.Event(), threading.Event()
    read_tables = PandasExecutor._tables

    def pausing(self: PandasExecutor) -> tuple:
        paused.set()
        release.wait(10)
        return read_tables(self)

    monkeypatch.setattr(PandasExecutor, "_tables", pausing)
    catalog = Catalog.from_sources([PEOPLE.to_pandas()])
    ex = PandasExecutor.from_catalog(catalog, CONFIG)
    assert paused.wait(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    try:
        ex.close()
        catalog.close()
    finally:
        release.set()
        timer.join()
    assert ex._prestarter is not None
    ex._prestarter.join(10)
    assert (errors, ex._prestarter.is_alive(), ex._spare) == ([], False, None)


def test_without_confinement_pandas_is_off_unless_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confine.Launcher, "_probe", lambda self: "bubblewrap (bwrap) is not installed")
    with PandasExecutor({"people": PEOPLE}, CONFIG) as ex:
        assert ex._spare is None  # no child is started in advance either
        r = ex.run("len(people)")
        assert (r.ok, r.error_type, r.error) == (False, "unavailable", (
            "pandas execution is off on this machine: bubblewrap (bwrap) is not installed; write SQL "
            "instead (or set executor.pandas_unconfined_ok = true to run pandas code without OS "
            "confinement)"))
        assert ex.run("import os").error_type == "forbidden_import"  # the filter still answers first
    opted_in = CONFIG.model_copy(update={"pandas_unconfined_ok": True})
    with PandasExecutor({"people": PEOPLE}, opted_in, prestart=False) as ex:
        assert (ex.confined, ex.run("len(people)").rows) == (False, [[4]])


def test_confined_child_sees_no_host_files_network_or_environment(ex: PandasExecutor) -> None:
    assert ex.confined
    # Past the AST filter on purpose (real builtins through re.enum): only the OS holds here.
    r = ex.run("import re\nB = re.enum.bltns\nG = {'_' * 2 + 'builtins' + '_' * 2: B}\n"
               "B.exec('import os, sys\\nsys.modules[\"_\" \"_main_\" \"_\"].BLOCKED_EVENT_PREFIXES = (\"-\",)\\n'\n"
               "'result = [sorted(os.listdir(\"/\")), sorted(os.environ), os.getuid()]', G)\n"
               "result = G['result']")
    assert r.ok, r.error
    top, env, uid = (row[0] for row in r.rows)
    python_tops = {Path(root).parts[1] for root in confine._python_roots(sys.executable)}
    assert set(top) <= {"dev", "proc", "sandbox", "usr", "lib", "lib64", "lib32", "etc"} | python_tops
    assert "tmp" not in top and "home" not in top
    assert "PATH" in env and not any(k.startswith("AUTOTQA") or "KEY" in k for k in env)
    assert uid == 65534  # nobody; network and processes: see tests/test_adversarial_pandas.py


def test_result_byte_cap() -> None:
    cfg = CONFIG.model_copy(update={"result_max_bytes": 50_000, "row_cap": 100})
    with PandasExecutor({"people": PEOPLE}, cfg, prestart=False) as ex:
        r = ex.run("pd.DataFrame({'x': ['y' * 1000] * 60})")
        assert (r.ok, r.error_type) == (False, "too_large")
        # 60 rows of ["y...y"] (1,004 bytes) + a comma each, and the column names ["x"]
        assert r.error == ("result too large: 60305 bytes > 50000 bytes cap; aggregate or select fewer "
                           "columns/rows")
        assert ex.run("pd.DataFrame({'x': ['y' * 1000] * 40})").n_rows == 40
