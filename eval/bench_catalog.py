"""Benchmark: Catalog load cost vs raw DuckDB, and the safe SQL executor's per-query overhead.

    .venv/bin/python eval/bench_catalog.py [--rows 1000000] [--repeats 3] [--queries 100]

1. Load time and peak memory for one generated CSV: ``Catalog.from_sources([csv])`` vs raw
   ``con.read_csv(csv).to_table(...)``. Each measurement runs in a fresh subprocess (so peak RSS,
   ``ru_maxrss``, is that side's alone); the time is measured inside it, imports excluded. Target:
   catalog time <= 1.3x raw.
2. SQL executor overhead: 100 small queries on a frozen catalog, each timed through
   ``SQLExecutor.run`` and through raw ``cursor.execute(q).fetchall()`` (median of N runs each).
   Target: median overhead <= 2 ms a query.
3. pandas sandbox per-call cost, warm spare child vs cold start vs in-process (no target; reported).

Prints figures as it goes; the LAST stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_LOAD_CHILD = r"""
import json, resource, sys, time
side, path = sys.argv[1], sys.argv[2]
import duckdb
if side == "catalog":
    from autotqa.catalog import Catalog
start = time.perf_counter()
if side == "catalog":
    cat = Catalog.from_sources([path])
    n = next(iter(cat.tables.values())).n_rows
else:
    con = duckdb.connect(":memory:")
    con.read_csv(path).to_table("t")
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
elapsed = time.perf_counter() - start
print(json.dumps({"side": side, "seconds": elapsed, "rows": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_csv(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"""
        COPY (SELECT i AS id, 'name_' || (i % 50000) AS name,
                     ['oslo', 'rome', 'lima', 'kyiv', 'pune'][1 + i % 5] AS city,
                     round((i * 7919 % 100000) / 100.0, 2) AS amount,
                     DATE '2020-01-01' + CAST(i % 1500 AS INTEGER) AS day,
                     i % 3 = 0 AS flag
              FROM range({rows}) r(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()


def load_once(side: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _LOAD_CHILD, side, str(path)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_load(path: Path, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"raw": [], "catalog": []}
    for i in range(repeats):  # alternate sides so machine noise hits both alike
        for side in ("raw", "catalog") if i % 2 == 0 else ("catalog", "raw"):
            r = load_once(side, path)
            runs[side].append(r)
            print(f"load {side:7s} run {i + 1}: {r['seconds']:.3f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                  f"{r['rows']:,} rows", flush=True)
    med = {s: statistics.median(r["seconds"] for r in rs) for s, rs in runs.items()}
    rss = {s: statistics.median(r["peak_rss_mb"] for r in rs) for s, rs in runs.items()}
    ratio = med["catalog"] / med["raw"]
    print(f"load median: raw {med['raw']:.3f} s, catalog {med['catalog']:.3f} s -> {ratio:.2f}x "
          f"(target <= 1.3x); peak RSS raw {rss['raw']:.0f} MB, catalog {rss['catalog']:.0f} MB", flush=True)
    return {"raw_s": med["raw"], "catalog_s": med["catalog"], "time_ratio": ratio,
            "raw_peak_rss_mb": rss["raw"], "catalog_peak_rss_mb": rss["catalog"],
            "rss_ratio": rss["catalog"] / rss["raw"], "runs": runs}


def small_queries(n: int) -> list[str]:
    """``n`` varied small read queries over the two benchmark tables."""
    shapes = [
        "SELECT count(*) FROM people WHERE age > {k}",
        "SELECT city, avg(age) FROM people WHERE age > {k} GROUP BY city ORDER BY city",
        "SELECT name FROM people WHERE id = {k}",
        "SELECT p.city, count(*) FROM people p JOIN orders o ON p.id = o.person_id "
        "WHERE o.amount > {k} GROUP BY p.city ORDER BY 2 DESC",
        "SELECT max(amount), min(amount) FROM orders WHERE person_id < {k}",
        "WITH big AS (SELECT person_id, sum(amount) AS s FROM orders GROUP BY person_id) "
        "SELECT count(*) FROM big WHERE s > {k}",
        "SELECT name, age FROM people ORDER BY age DESC, id LIMIT {k}",
        "SELECT city FROM people WHERE age < {k} UNION SELECT city FROM people WHERE age > 60",
        "SELECT id FROM people WHERE id IN (SELECT person_id FROM orders WHERE amount > {k}) LIMIT 5",
        "SELECT age, count(*) AS n FROM people GROUP BY age HAVING n > {k} ORDER BY age",
    ]
    return [shapes[i % len(shapes)].format(k=10 + i) for i in range(n)]


def bench_sql(n_queries: int, reps: int, threads: int | None = None) -> dict:
    """``threads``: instead of the Catalog's connection, a plain frozen one with that many DuckDB
    threads (on an oversubscribed machine, DuckDB's workers spinning after each query slow the
    Python work that follows, which inflates the measured overhead)."""
    import pandas as pd

    from autotqa.catalog import Catalog
    from autotqa.config import ExecutorConfig
    from autotqa.executors.sql import SQLExecutor

    people = pd.DataFrame({"id": range(1000), "name": [f"p{i}" for i in range(1000)],
                           "city": [["oslo", "rome", "lima"][i % 3] for i in range(1000)],
                           "age": [18 + i % 60 for i in range(1000)]})
    orders = pd.DataFrame({"order_id": range(3000), "person_id": [i % 1000 for i in range(3000)],
                           "amount": [(i * 37) % 200 / 2 for i in range(3000)]})
    if threads is None:
        catalog = Catalog.from_sources({"people": people, "orders": orders})
        con, columns = catalog.con, catalog.columns_by_table()
    else:
        import duckdb

        con = duckdb.connect(config={"threads": threads})
        for name, frame in (("people", people), ("orders", orders)):
            con.register("_frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _frame")
            con.unregister("_frame")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        columns = {"people": list(people.columns), "orders": list(orders.columns)}
    executor = SQLExecutor(con, columns, ExecutorConfig())
    queries = small_queries(n_queries)
    overheads, min_overheads, cpu_overheads, raw_times, exec_times, guard_times = [], [], [], [], [], []
    for q in queries:
        sql = executor.check(q)
        raw, ran, guard, raw_cpu, ran_cpu = [], [], [], [], []
        for _ in range(reps):
            t, c = time.perf_counter(), time.thread_time()
            cur = con.cursor()
            cur.execute(sql).fetchall()
            cur.close()
            raw.append(time.perf_counter() - t)
            raw_cpu.append(time.thread_time() - c)
            t, c = time.perf_counter(), time.thread_time()
            result = executor.run(q)
            ran.append(time.perf_counter() - t)
            ran_cpu.append(time.thread_time() - c)
            t = time.perf_counter()
            executor.check(q)
            guard.append(time.perf_counter() - t)
            assert result.ok, (q, result.error)
        raw_times.append(statistics.median(raw))
        exec_times.append(statistics.median(ran))
        guard_times.append(statistics.median(guard))
        overheads.append(exec_times[-1] - raw_times[-1])
        # Best-of-N per side: on a shared, busy machine the minimum is the cost, the rest is waiting.
        min_overheads.append(min(ran) - min(raw))
        # CPU time of the calling thread: what the executor itself costs, waiting for a core excluded.
        cpu_overheads.append(statistics.median(ran_cpu) - statistics.median(raw_cpu))
    con.close()
    ms = 1000.0
    figures = {"queries": len(queries), "reps": reps, "duckdb_threads": threads or "catalog default",
               "raw_median_ms": statistics.median(raw_times) * ms,
               "executor_median_ms": statistics.median(exec_times) * ms,
               "overhead_median_ms": statistics.median(overheads) * ms,
               "overhead_p90_ms": sorted(overheads)[int(0.9 * len(overheads))] * ms,
               "guard_median_ms": statistics.median(guard_times) * ms,
               "overhead_best_of_reps_median_ms": statistics.median(min_overheads) * ms,
               "overhead_thread_cpu_median_ms": statistics.median(cpu_overheads) * ms}
    where = "catalog connection" if threads is None else f"{threads} DuckDB thread(s)"
    print(f"sql ({where}): raw median {figures['raw_median_ms']:.2f} ms, executor median "
          f"{figures['executor_median_ms']:.2f} ms, overhead median {figures['overhead_median_ms']:.2f} ms "
          f"(p90 {figures['overhead_p90_ms']:.2f} ms; target <= 2 ms), of which guard "
          f"{figures['guard_median_ms']:.2f} ms; best-of-{reps} overhead median "
          f"{figures['overhead_best_of_reps_median_ms']:.2f} ms; calling-thread CPU overhead median "
          f"{figures['overhead_thread_cpu_median_ms']:.2f} ms", flush=True)
    return figures


def bench_pandas(calls: int, pause_s: float) -> dict:
    """Per-call cost of the pandas sandbox: with a warm spare child (the interactive case: the next
    call comes seconds later, after an LLM turn) and cold (a fresh process for every call), against
    the same code run in-process."""
    import pandas as pd

    from autotqa.executors.pandas_exec import PandasExecutor

    people = pd.DataFrame({"id": range(1000), "city": [["oslo", "rome", "lima"][i % 3] for i in range(1000)],
                           "age": [18 + i % 60 for i in range(1000)]})
    code = "people.groupby('city')['age'].mean()"
    inproc = []
    for _ in range(20):
        t = time.perf_counter()
        people.groupby("city")["age"].mean().reset_index()
        inproc.append(time.perf_counter() - t)
    warm, cold = [], []
    with PandasExecutor({"people": people}) as ex:
        for _ in range(calls):
            time.sleep(pause_s)  # an LLM turn: the spare child imports pandas meanwhile
            t = time.perf_counter()
            assert ex.run(code).ok
            warm.append(time.perf_counter() - t)
    with PandasExecutor({"people": people}, prestart=False) as ex:
        for _ in range(max(2, calls // 2)):
            t = time.perf_counter()
            assert ex.run(code).ok
            cold.append(time.perf_counter() - t)
    ms = 1000.0
    figures = {"calls": calls, "in_process_ms": statistics.median(inproc) * ms,
               "warm_median_ms": statistics.median(warm) * ms, "cold_median_ms": statistics.median(cold) * ms}
    figures["warm_overhead_ms"] = figures["warm_median_ms"] - figures["in_process_ms"]
    print(f"pandas sandbox: warm spare {figures['warm_median_ms']:.0f} ms a call, cold start "
          f"{figures['cold_median_ms']:.0f} ms, in-process {figures['in_process_ms']:.1f} ms", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5, help="timed runs per query and side")
    parser.add_argument("--sql-threads", type=int, default=None,
                        help="also measure SQL overhead on a plain connection with this many DuckDB threads")
    parser.add_argument("--pandas-calls", type=int, default=6, help="sandbox calls (0: skip)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "bench.csv"
        t = time.perf_counter()
        make_csv(csv, args.rows)
        print(f"generated {args.rows:,}-row CSV ({csv.stat().st_size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        load = bench_load(csv, args.repeats)
    sql = bench_sql(args.queries, args.reps)
    sql_threads = bench_sql(args.queries, args.reps, args.sql_threads) if args.sql_threads else None
    pandas = bench_pandas(args.pandas_calls, pause_s=4.0) if args.pandas_calls else None
    summary = {"rows": args.rows, "loadavg_1m_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(), "load": {k: v for k, v in load.items() if k != "runs"}, "sql": sql, "sql_fixed_threads": sql_threads, "pandas": pandas,
               "targets": {"load_time_ratio_max": 1.3, "sql_overhead_median_ms_max": 2.0},
               "pass": {"load": load["time_ratio"] <= 1.3, "sql": sql["overhead_median_ms"] <= 2.0}}
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
