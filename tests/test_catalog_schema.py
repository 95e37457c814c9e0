"""SchemaInfo: statistics, key and foreign-key candidates, and the deterministic schema block."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from autotqa.catalog import Catalog, ForeignKey, SchemaInfo, estimate_tokens
from autotqa.catalog import catalog as catalog_module
from autotqa.catalog.linking import link_tables

CUSTOMERS = """customer_id,name,signup_date,city,notes
1,Ana Silva,2021-01-03,Lisbon,first customer
2,Bo Chen,2022-05-10,Porto,
3,Carla Diaz,2023-07-21,Lisbon,"a very long note that goes on and on, well past forty characters"
4,Dev Patel,2024-06-30,,
"""
ORDERS = """order_id,customer_id,amount,status
10,1,19.99,paid
11,1,5.00,paid
12,2,120.50,refunded
13,3,7.25,paid
14,4,0.99,open
15,3,33.10,paid
"""
SHOP_RENDER = """\
Table customers (4 rows in file order, rowid 0..3) -- from customers.csv
  customer_id BIGINT, primary key, 1..4
  name VARCHAR, e.g. 'Ana Silva', 'Bo Chen', 'Carla Diaz'
  signup_date DATE, 2021-01-03..2024-06-30
  city VARCHAR, 25% null, e.g. 'Lisbon', 'Porto'
  notes VARCHAR, 50% null, e.g. 'a very long note that goes on and on,...', 'first customer'
Table orders (6 rows in file order, rowid 0..5) -- from orders.csv
  order_id BIGINT, primary key, 10..15
  customer_id BIGINT, 1..4
  amount DOUBLE, 0.99..120.5
  status VARCHAR, e.g. 'paid', 'open', 'refunded'
Foreign keys: orders.customer_id -> customers.customer_id"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "customers.csv").write_text(CUSTOMERS)
    (folder / "orders.csv").write_text(ORDERS)
    return folder


def test_column_statistics(shop: Path) -> None:
    info = Catalog.from_sources([shop]).schema()
    customers = info.table("customers")
    assert customers.n_rows == 4
    city, notes = customers.column("city"), customers.column("notes")
    assert (city.null_share, city.samples) == (0.25, ["Lisbon", "Porto"])  # most frequent first
    assert notes.samples == ["a very long note that goes on and on,...", "first customer"]
    assert len(notes.samples[0]) == 40
    signup = customers.column("signup_date")
    assert (signup.type, signup.min, signup.max) == ("DATE", "2021-01-03", "2024-06-30")
    status = info.table("orders").column("status")
    assert status.samples == ["paid", "open", "refunded"]  # 4x paid, then ties in value order
    assert (status.min, status.max) == (None, None)  # ranges only for numbers and dates
    amount = info.table("orders").column("amount")
    assert (amount.min, amount.max, amount.null_share) == ("0.99", "120.5", 0.0)


def test_sample_count_is_configurable_and_cached(shop: Path) -> None:
    cat = Catalog.from_sources([shop])
    assert cat.schema(sample_values=1).table("orders").column("status").samples == ["paid"]
    assert cat.schema() is cat.schema()
    assert cat.schema().table("orders").column("status").samples == ["paid", "open", "refunded"]


def test_schema_is_lazy(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = catalog_module.table_schema

    def counting(con, info, n):  # type: ignore[no-untyped-def]
        calls.append(info.name)
        return real(con, info, n)

    monkeypatch.setattr(catalog_module, "table_schema", counting)
    cat = Catalog.from_sources([shop])
    assert calls == []
    cat.schema()
    cat.schema()
    assert calls == ["customers", "orders"]


def test_primary_key_candidates_prefer_id_names() -> None:
    frames = {
        "customers": pd.DataFrame({"name": ["a", "b", "c"], "email": ["x", "y", "z"],
                                   "customer_id": [7, 8, 9], "score": [1, 1, 2]}),
        "tags": pd.DataFrame({"label": ["p", "q"], "id": [1, 2]}),
        "events": pd.DataFrame({"kind": ["a", "a"], "n": [None, 1]}),
        "empty": pd.DataFrame({"id": pd.Series([], dtype="int64")}),
    }
    pks = Catalog.from_sources([frames]).schema().primary_keys
    assert pks == {"customers": ["customer_id", "name", "email"], "tags": ["id", "label"]}


def test_foreign_keys_need_names_and_contained_values() -> None:
    frames = {
        "customers": pd.DataFrame({"id": [1, 2, 3, 4]}),
        "orders": pd.DataFrame({"order_id": [1, 2, 3], "customer_id": [1, 2, 2],
                                "qty": [1, 2, 3]}),  # qty values are customer ids too: no name, no key
        "returns": pd.DataFrame({"customer_id": [1, 9, 8]}),  # 1/3 contained: not a reference
    }
    fks = Catalog.from_sources([frames]).schema().foreign_keys
    assert fks == [ForeignKey("orders", "customer_id", "customers", "id", 1.0)]


def test_one_stemmer_links_courses_by_name_and_by_question() -> None:
    # The catalog's singulariser cut "courses" to "cours" (while the agents' stemmer said "course"):
    # enrollments.course_id -> courses.id went unfound, and "course" in a question missed the table.
    frames = {"courses": pd.DataFrame({"id": [1, 2, 3], "title": ["Art", "Law", "Math"]}),
              "enrollments": pd.DataFrame({"student": ["a", "b"], "course_id": [1, 3]})}
    catalog = Catalog.from_sources([frames])
    assert catalog.schema().foreign_keys == [ForeignKey("enrollments", "course_id", "courses", "id", 1.0)]
    assert link_tables("Which course has the most enrollments?", catalog.columns_by_table()) == [
        "courses", "enrollments"]


def test_foreign_keys_match_declared_ones_in_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "school.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript("""
            CREATE TABLE students (student_id INTEGER PRIMARY KEY, name TEXT, advisor TEXT);
            CREATE TABLE courses (course_code TEXT PRIMARY KEY, title TEXT);
            CREATE TABLE enrollments (student_id INTEGER REFERENCES students(student_id),
                                      course_code TEXT REFERENCES courses(course_code), grade REAL);
            INSERT INTO students VALUES (1, 'Ana', 'x'), (2, 'Bo', 'y'), (3, 'Cy', 'z');
            INSERT INTO courses VALUES ('M1', 'Maths'), ('P1', 'Physics');
            INSERT INTO enrollments VALUES (1, 'M1', 3.5), (1, 'P1', 2.0), (3, 'M1', 4.0);
        """)
        declared = {(t, r[3], r[2], r[4]) for t in ("enrollments",)
                    for r in con.execute(f"PRAGMA foreign_key_list({t})")}
    con.close()
    found = {f.pair() for f in Catalog.from_sources([db]).schema().foreign_keys}
    assert declared == {("enrollments", "student_id", "students", "student_id"),
                        ("enrollments", "course_code", "courses", "course_code")}
    assert found == declared


# Spider's declared foreign keys (its tables.json). The shared copies were rebuilt from CSV exports
# and carry no FOREIGN KEY clauses (PRAGMA foreign_key_list is empty), so they are written out here;
# each pair is also a join condition of the gold SQL in questions.jsonl.
SPIDER_FKS = {
    "department_management": {
        ("management", "department_id", "department", "department_id"),
        ("management", "head_id", "head", "head_id"),
    },
    "dorm_1": {
        ("has_amenity", "dormid", "dorm", "dormid"),
        ("has_amenity", "amenid", "dorm_amenity", "amenid"),
        ("lives_in", "stuid", "student", "stuid"),
        ("lives_in", "dormid", "dorm", "dormid"),
    },
    "college_1": {
        ("class", "crs_code", "course", "crs_code"),
        ("class", "prof_num", "employee", "emp_num"),
        ("course", "dept_code", "department", "dept_code"),
        ("department", "emp_num", "employee", "emp_num"),
        ("enroll", "class_code", "class", "class_code"),
        ("enroll", "stu_num", "student", "stu_num"),
        ("professor", "emp_num", "employee", "emp_num"),
        ("professor", "dept_code", "department", "dept_code"),
        ("student", "dept_code", "department", "dept_code"),
    },
    "store_1": {
        ("albums", "artist_id", "artists", "id"),
        ("employees", "reports_to", "employees", "id"),
        ("customers", "support_rep_id", "employees", "id"),
        ("invoices", "customer_id", "customers", "id"),
        ("tracks", "media_type_id", "media_types", "id"),
        ("tracks", "genre_id", "genres", "id"),
        ("tracks", "album_id", "albums", "id"),
        ("playlist_tracks", "track_id", "tracks", "id"),
        ("playlist_tracks", "playlist_id", "playlists", "id"),
        ("invoice_lines", "track_id", "tracks", "id"),
        ("invoice_lines", "invoice_id", "invoices", "id"),
    },
}
#: Declared keys without any name evidence (``prof_num -> emp_num``, ``reports_to -> id``): by design
#: the detector does not guess these from value overlap alone.
NO_NAME_EVIDENCE = {
    ("class", "prof_num", "employee", "emp_num"),
    ("employees", "reports_to", "employees", "id"),
    ("customers", "support_rep_id", "employees", "id"),
}


@pytest.mark.parametrize("db", sorted(SPIDER_FKS))
def test_spider_foreign_keys_are_found_exactly(spider_dir: Path, db: str) -> None:
    cat = Catalog.from_sources([spider_dir / "databases" / f"{db}.sqlite"])
    found = {f.pair() for f in cat.schema().foreign_keys}
    assert found == SPIDER_FKS[db] - NO_NAME_EVIDENCE
    assert all(0.5 < f.score <= 1.0 for f in cat.schema().foreign_keys)


def test_render_exact_text(shop: Path) -> None:
    assert Catalog.from_sources([shop]).schema().render() == SHOP_RENDER


def test_render_is_byte_identical_across_catalogs(shop: Path, spider_dir: Path) -> None:
    db = spider_dir / "databases" / "college_1.sqlite"
    a = Catalog.from_sources([shop, db])
    b = Catalog.from_sources([shop, db])
    assert a.schema().render() == b.schema().render()
    assert a.fingerprint() == b.fingerprint()
    q = "Which professors teach accounting classes?"
    assert a.schema().render(q, 300) == b.schema().render(q, 300)
    assert len(a.fingerprint()) == 64


def test_fingerprint_changes_with_the_data(shop: Path) -> None:
    before = Catalog.from_sources([shop]).fingerprint()
    (shop / "orders.csv").write_text(ORDERS + "16,2,1.00,open\n")
    assert Catalog.from_sources([shop]).fingerprint() != before


def test_budget_larger_than_the_schema_gives_the_full_render(shop: Path) -> None:
    info = Catalog.from_sources([shop]).schema()
    assert info.render("anything", token_budget=10_000) == SHOP_RENDER


@pytest.fixture(scope="module")
def baseball(spider_dir: Path) -> SchemaInfo:
    """Spider's largest schema (26 tables, 352 columns), loaded once for the linking tests."""
    return Catalog.from_sources([spider_dir / "databases" / "baseball_1.sqlite"]).schema()


def test_budgeted_render_keeps_relevant_tables(baseball: SchemaInfo) -> None:
    info = baseball
    full = info.render()
    assert estimate_tokens(full) > 3000 and len(info.tables) == 26
    question = "What is the average salary of players in 2010?"
    text = info.render(question, token_budget=600)
    assert estimate_tokens(text) <= 600
    lines = text.splitlines()
    assert "Table salary (25575 rows) -- from baseball_1.sqlite" in lines
    assert "  salary BIGINT, 0..33000000" in lines
    # The player table is joined through salary.player_id, and keeps its key.
    assert "  player_id VARCHAR, primary key, e.g. 'aardsda01', 'aaronha01', 'aaronto01'" in lines
    assert "salary.player_id -> player.player_id" in text
    assert lines[-1].startswith("Other tables: ")
    assert text == info.render(question, token_budget=600)


def test_budgeted_render_without_question_still_fits(baseball: SchemaInfo) -> None:
    for budget in (50, 200, 1000):
        assert estimate_tokens(baseball.render(None, budget)) <= budget
    # Without a question nothing is preferred: tables come in catalog order.
    assert baseball.render(None, 200).startswith("Table team (2805 rows)")


def test_budget_is_counted_by_the_tokenizer_given(baseball: SchemaInfo) -> None:
    # A tokenizer that counts characters: the render fills the budget to within a column line and
    # never passes it. Counted by the estimate (3.5 characters a token) the text is 3.5 times longer.
    question = "Which players earned the highest salary?"
    full = baseball.render()
    assert baseball.render(question, len(full), count_tokens=len) == full
    for budget in (600, 2000, 6000, len(full) - 1):
        text = baseball.render(question, budget, count_tokens=len)
        assert budget - 60 <= len(text) <= budget
        assert text == baseball.render(question, budget, count_tokens=len)
    assert len(baseball.render(question, 2000)) > 3 * 2000


def test_render_is_identical_across_processes(shop: Path, spider_dir: Path) -> None:
    """String hashing differs per process (PYTHONHASHSEED): no set order may leak into the text."""
    import os
    import subprocess
    import sys
    code = ("import sys; from autotqa.catalog import Catalog; "
            "info = Catalog.from_sources(sys.argv[1:]).schema(); "
            "sys.stdout.write(info.render() + '\\n---\\n' + info.render('students in physics', 250))")
    db = spider_dir / "databases" / "college_1.sqlite"
    outs = [subprocess.run([sys.executable, "-c", code, str(shop), str(db)], capture_output=True,
                           text=True, check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1]
    assert outs[0].startswith(SHOP_RENDER.rsplit("\n", 1)[0])  # the FK line moves to the end
