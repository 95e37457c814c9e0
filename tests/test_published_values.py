"""Numbers and dates written for readers ("1,582", "45%", "September 5, 2001") are typed at load."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from autotqa.catalog import Catalog

CSV = '''Name,Attendance,Share,Played on,Code,Mixed,Note,Rank
A,"1,582",45%,"September 5, 2001",007,12 (3),x,1
B,17[3],12.5%,"5 October 2002",010,4,,2
C,—,N/A,—,011,5,z,3
D,"−2,000",$1,"Sep 5, 2001",012,6,,Total
'''


def _load(path: Path) -> tuple[Catalog, str]:
    cat = Catalog.from_sources(path, freeze=False)
    return cat, next(iter(cat.tables))


def _types(cat: Catalog, table: str) -> dict[str, str]:
    return {c.name: c.type for c in cat.tables[table].columns}


def test_csv_published_numbers_and_dates_become_typed(tmp_path: Path) -> None:
    src = tmp_path / "games.csv"
    src.write_text(CSV, encoding="utf-8")
    cat, t = _load(src)
    assert _types(cat, t) == {"Name": "VARCHAR", "Attendance": "BIGINT", "Share": "DOUBLE",
                              "Played on": "DATE", "Code": "VARCHAR", "Mixed": "VARCHAR",
                              "Note": "VARCHAR", "Rank": "VARCHAR"}
    rows = cat.con.execute(f'SELECT Attendance, Share, "Played on", Code, Mixed FROM {t} ORDER BY Name').fetchall()
    assert rows == [(1582, 45.0, dt.date(2001, 9, 5), "007", "12 (3)"),
                    (17, 12.5, dt.date(2002, 10, 5), "010", "4"),
                    (None, None, None, "011", "5"),
                    (-2000, 1.0, dt.date(2001, 9, 5), "012", "6")]
    # What the retyping is for: arithmetic and comparisons on numbers, not on strings.
    assert cat.con.execute(f"SELECT sum(Attendance), max(Attendance) FROM {t}").fetchall() == [(-401, 1582)]
    cat.con.close()


def test_a_text_value_after_the_first_rows_keeps_the_column_text(tmp_path: Path) -> None:
    # 3,000 grouped numbers, then one value that is not a number: nothing may be lost.
    lines = ["id,amount"] + [f'{i},"{i * 1000:,}"' for i in range(3000)] + ['3000,"about 5,000"']
    src = tmp_path / "amounts.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cat, t = _load(src)
    assert _types(cat, t)["amount"] == "VARCHAR"
    assert cat.con.execute(f"SELECT amount FROM {t} WHERE id = 3000").fetchall() == [("about 5,000",)]
    cat.con.close()


def test_workbook_text_numbers_become_typed(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["Club", "Members"], ["North", "12,400"], ["South", "n/a"], ["East", "9,050"]):
        sheet.append(row)
    src = tmp_path / "clubs.xlsx"
    book.save(src)
    cat, t = _load(src)
    assert _types(cat, t)["Members"] == "BIGINT"
    assert cat.con.execute(f"SELECT Club FROM {t} ORDER BY Members DESC NULLS LAST LIMIT 1").fetchall() == [("North",)]
    cat.con.close()


@pytest.mark.parametrize("kind", ["parquet", "frame"])
def test_typed_sources_keep_their_owners_types(tmp_path: Path, kind: str) -> None:
    df = pd.DataFrame({"amount": ["1,582", "17"]})
    if kind == "parquet":
        src: Path | pd.DataFrame = tmp_path / "t.parquet"
        df.to_parquet(src)
    else:
        src = df
    cat = Catalog.from_sources(src, freeze=False)
    assert [c.type for c in next(iter(cat.tables.values())).columns] == ["VARCHAR"]
    cat.con.close()


def test_file_row_order_is_queryable_as_rowid(tmp_path: Path) -> None:
    """"Who is listed after B?" needs the file's row order: the schema names rowid and the executor runs it."""
    from autotqa.executors.sql import SQLExecutor
    from autotqa.executors.sql_guard import SQLGuard

    src = tmp_path / "games.csv"
    src.write_text(CSV, encoding="utf-8")
    cat = Catalog.from_sources(src)
    assert "Table games (4 rows in file order, rowid 0..3)" in cat.schema().render()
    ex = SQLExecutor.from_catalog(cat)
    res = ex.run("SELECT Name FROM games WHERE rowid = (SELECT rowid + 1 FROM games WHERE Name = 'B')")
    assert res.ok and res.rows == [["C"]], res.error
    # Only the SQL executor knows the pseudo-column: a plain guard still refuses it.
    with pytest.raises(Exception, match="unknown column"):
        SQLGuard(cat.columns_by_table()).check("SELECT rowid FROM games")
    # Databases and DataFrames have no file order to speak of.
    frame = Catalog.from_sources(pd.DataFrame({"a": [1, 2]}))
    assert "file order" not in frame.schema().render()
