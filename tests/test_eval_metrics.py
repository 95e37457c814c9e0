"""Benchmark metrics on hand-made cases: WTQ denotation accuracy and Spider execution accuracy."""

from __future__ import annotations

import decimal
import sqlite3
from pathlib import Path

import pytest

from autotqa.evaluation.categories import spider_categories
from autotqa.evaluation.denotation import (answer_type, canonical, denotation_match, normalize, to_value,
                                           to_value_list)
from autotqa.evaluation.execution import has_top_level_order_by, results_match, run_gold

# ---------------------------------------------------------------- WTQ: official normalisation


@pytest.mark.parametrize(("raw", "expected"), [
    ("Bangkok, Thailand", "bangkok, thailand"),
    ("  Wolfe   Tones ", "wolfe tones"),
    ("Crème Brûlée", "creme brulee"),                 # accents stripped (NFKD, Mn dropped)
    ("Łódź", "łodz"),                                 # Ł has no decomposition: kept, lower-cased
    ("‘quoted’", "'quoted'"),
    ("“Thriller”", "thriller"),                        # curly quotes -> '"', then outer quotes removed
    ("1990–91", "1990-91"),                           # en dash -> hyphen
    ("Paris (France)", "paris"),                      # trailing parenthesised detail
    ("(France)", "(france)"),                         # ... but not when it is the whole string
    ("Usain Bolt[1]", "usain bolt"),                  # citation
    ("Gold*", "gold"),
    ("Gold†‡", "gold"),
    ("[1]", ""),                                      # a bare [n] citation goes too
    ("Jr.", "jr"),                                    # one final period
    ("A.B..", "a.b."),                                # only one
    ('"Hello"', "hello"),
    ("Hello (a) (b)", "hello"),
])
def test_normalize_official_rules(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("1,000", "1000"), ("12,467", "12467"), ("-3", "-3"), ("2.50", "2.50"), (".5", ".5"),
    ("1,00", "1,00"),                          # not a thousands grouping: left alone
    ("September 8, 2010", "2010-09-08"), ("8 September 2010", "2010-09-08"),
    ("Sept. 8, 2010", "2010-09-08"), ("May 1999", "1999-05-xx"), ("July 4", "xx-07-04"),
    ("4th July", "xx-07-04"), ("2010-9-8", "2010-09-08"), ("2010-09-08 00:00:00", "2010-09-08"),
    ("February 30, 2010", "2010-02-30"),       # the official parser checks ranges only, not calendars
    ("Feb 32, 2010", "Feb 32, 2010"),          # day out of range: not a date
    ("Bangkok", "Bangkok"),
])
def test_canonical_numbers_and_dates(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


def test_value_kinds() -> None:
    assert to_value("2004").key() == ("n", 2004)               # a year alone is a number
    assert to_value("3.0").key() == ("n", 3)                    # integral floats become ints
    assert to_value(2.5).key() == ("n", 2.5)
    assert to_value("2010-09-08").key() == ("d", (2010, 9, 8))
    assert to_value("xx-07-04").key() == ("d", (-1, 7, 4))
    assert to_value(None).key() == ("s", "")
    assert to_value(True).key() == ("s", "true")
    assert len(to_value_list(["a", "A", "b"])) == 2             # the predicted list is a set


@pytest.mark.parametrize(("gold", "pred", "ok"), [
    (["2004"], ["2004"], True),
    (["2004"], [2004], True),
    (["2004"], [2004.0], True),
    (["2004"], ["2004.0"], True),
    (["1,000"], ["1000"], True),
    (["1,000"], [1000], True),
    (["1000"], ["1,000"], True),
    (["12,467"], [12467.0000001], True),              # numbers within 1e-6
    (["12,467"], [12467.01], False),
    (["0.5"], [".5"], True),
    (["Bangkok, Thailand"], ["bangkok, thailand"], True),
    (["Wolfe Tones"], ["Wolfe Tones."], True),
    (["Wolfe Tones"], ["Wolfe"], False),
    (["September 8, 2010"], ["2010-09-08"], True),
    (["September 8, 2010"], ["8 September 2010"], True),
    (["September 8, 2010"], ["September 9, 2010"], False),
    (["May 1999"], ["1999-05"], False),               # "1999-05" is neither the ISO form nor the text
    (["Siim Ennemuist", "Andri Aganits"], ["Andri Aganits", "Siim Ennemuist"], True),  # order-free
    (["Siim Ennemuist", "Andri Aganits"], ["Andri Aganits"], False),                    # too few
    (["Siim Ennemuist", "Andri Aganits"], ["Andri Aganits", "Siim Ennemuist", "X"], False),  # too many
    (["a", "b"], ["a", "a"], False),                  # duplicates collapse: {a} has one value
    (["3"], ["3", "3"], True),                        # ... so a repeated right value is still right
    (["Peru"], [], False),
    (["Peru"], ["Peru (country)"], True),
    (["45%"], ["45"], False),                         # a percentage is a string, as in the gold
    (["yes"], ["Yes"], True),
    (["-5"], [-5], True),
])
def test_denotation_cases(gold: list[str], pred: list[object], ok: bool) -> None:
    assert denotation_match(gold, pred) is ok


def test_answer_types() -> None:
    assert [answer_type(g) for g in (["12"], ["1,000"], ["May 1999"], ["Ghana"], ["a", "b"])] == \
        ["number", "number", "date", "string", "multiple"]


# ---------------------------------------------------------------- Spider: execution accuracy


@pytest.mark.parametrize(("gold", "pred", "ordered", "ok"), [
    ([(1,), (2,), (2,)], [[2], [1], [2]], False, True),                 # multiset, any order
    ([(1,), (2,), (2,)], [[2], [1], [1]], False, False),                # counts matter
    ([(1,), (2,)], [[1], [2], [2]], False, False),
    ([(1,), (2,)], [[2], [1]], True, False),                            # ORDER BY: order matters
    ([(1,), (2,)], [[1], [2]], True, True),
    ([(3,)], [[3.0]], False, True),                                     # int == float
    ([(3,)], [[decimal.Decimal("3.00")]], False, True),
    ([(0.1 + 0.2,)], [[0.3]], False, True),                             # tolerance
    ([(1000000.0,)], [[1000000.5]], False, True),                       # 5e-7 relative: within
    ([(1000000.0,)], [[1000002.0]], False, False),                      # 2e-6 relative: outside
    ([(None, "a")], [[None, "a"]], False, True),                        # NULL == NULL
    ([(None,)], [[0]], False, False),
    ([(None,)], [[""]], False, False),
    ([("Paris",)], [["paris"]], False, False),                          # strings are exact
    ([("3",)], [[3]], False, True),                                     # numeric text == number
    ([("2010-09-08 00:00:00",)], [["2010-09-08"]], False, True),        # zero time == bare date
    ([("2010-09-08 10:30:00",)], [["2010-09-08T10:30:00"]], False, True),
    ([(1, "a"), (2, "b")], [["a", 1], ["b", 2]], False, True),          # column order free
    ([(1, "a"), (2, "b")], [["a", 2], ["b", 1]], False, False),         # ... but rows stay rows
    ([(1, 2)], [[1]], False, False),                                    # column count must agree
    ([], [], False, True),
    ([], [[None]], False, False),
    ([(True,)], [[1]], False, True),
])
def test_results_match_cases(gold, pred, ordered, ok) -> None:  # noqa: ANN001
    assert results_match(gold, pred, ordered=ordered) is ok


def test_results_match_permutes_many_equal_columns() -> None:
    gold = [(1, 1, "x"), (2, 1, "y")]
    pred = [["x", 1, 1], ["y", 1, 2]]
    assert results_match(gold, pred, ordered=False)
    assert results_match(gold, pred, ordered=True)


@pytest.mark.parametrize(("sql", "ordered"), [
    ("SELECT name FROM t ORDER BY age DESC", True),
    ("SELECT name FROM t ORDER BY age DESC LIMIT 1", True),
    ("SELECT name FROM (SELECT name, age FROM t ORDER BY age) AS s", False),
    ("SELECT name FROM t WHERE age > (SELECT avg(age) FROM t)", False),
    ("SELECT a FROM t UNION SELECT a FROM u", False),
    ("select count(*) from t", False),
])
def test_top_level_order_by(sql: str, ordered: bool) -> None:
    assert has_top_level_order_by(sql) is ordered


def test_run_gold_reads_original_sqlite_read_only(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE "Singer" (id INTEGER, name TEXT, age REAL)')
        conn.executemany('INSERT INTO "Singer" VALUES (?, ?, ?)', [(1, "Ann", 30.0), (2, "Bo", None)])
    assert run_gold(db, 'SELECT name, age FROM "Singer" ORDER BY id') == [("Ann", 30.0), ("Bo", None)]
    with pytest.raises(sqlite3.OperationalError):
        run_gold(db, 'DELETE FROM "Singer"')                 # read-only connection
    with pytest.raises(sqlite3.OperationalError):
        run_gold(db, "SELECT nope FROM Singer")


@pytest.mark.parametrize(("sql", "expected"), [
    ('SELECT COUNT(*) FROM "Faculty"', ("no", "no", "yes")),
    ("SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id", ("yes", "no", "no")),
    ("SELECT a FROM t1, t2 WHERE t1.x = t2.y", ("yes", "no", "no")),
    ("SELECT name FROM a EXCEPT SELECT name FROM b", ("no", "yes", "no")),
    ("SELECT dept, max(sal) FROM e GROUP BY dept", ("no", "no", "yes")),
    ("SELECT name FROM e WHERE sal > (SELECT avg(sal) FROM e)", ("no", "yes", "yes")),
    ("SELECT dept FROM e GROUP BY dept", ("no", "no", "yes")),
    ("SELEC oops", ("unparsed", "unparsed", "unparsed")),
])
def test_spider_categories(sql: str, expected: tuple[str, str, str]) -> None:
    c = spider_categories(sql)
    assert (c["joins"], c["nesting"], c["aggregation"]) == expected
