"""Catalog loading: every input format, messy files, naming, freezing, and source files left untouched."""

from __future__ import annotations

import datetime as dt

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autotqa.catalog import Catalog, ColumnInfo
from autotqa.errors import DataLoadError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(cat: Catalog, table: str, order: str = "") -> list[tuple]:
    return cat.con.execute(f"SELECT * FROM {table} {order}").fetchall()


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.fixture
def unchanged() -> Iterator[list[Path]]:
    """Paths appended here must have the same bytes at the end of the test (sources are never written)."""
    before: dict[Path, str] = {}

    class Watch(list):
        def append(self, p: Path) -> None:
            before[p] = digest(p)
            super().append(p)

    yield Watch()
    for p, sha in before.items():
        assert digest(p) == sha, f"{p} was modified"


# --- CSV ----------------------------------------------------------------------------------------

def test_csv_with_quoted_delimiters_and_escaped_quotes(tmp_path: Path, unchanged: list[Path]) -> None:
    src = write(tmp_path / "people.csv", 'name,quote,amount\n"Silva, Ana","she said ""hi""",3\nBo,plain,4\n')
    unchanged.append(src)
    cat = Catalog.from_sources([src])
    assert list(cat.tables) == ["people"]
    info = cat.tables["people"]
    assert (info.display_name, info.source, info.n_rows) == ("people", str(src), 2)
    assert info.columns == [ColumnInfo("name", "VARCHAR"), ColumnInfo("quote", "VARCHAR"),
                            ColumnInfo("amount", "BIGINT")]
    assert rows(cat, "people", "ORDER BY amount") == [("Silva, Ana", 'she said "hi"', 3), ("Bo", "plain", 4)]


def test_tsv_and_semicolon_delimiters(tmp_path: Path) -> None:
    tsv = write(tmp_path / "a.tsv", "x\ty\n1\tone, two\n2\tthree\n")
    semi = write(tmp_path / "b.csv", "x;y\n1;2,5\n")
    cat = Catalog.from_sources([tsv, semi])
    assert rows(cat, "a", "ORDER BY x") == [(1, "one, two"), (2, "three")]
    assert cat.columns_by_table() == {"a": ["x", "y"], "b": ["x", "y"]}
    assert rows(cat, "b") == [(1, "2,5")]


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    src = write(tmp_path / "bom.csv", b"\xef\xbb\xbfname,val\nAna,1\n")
    cat = Catalog.from_sources([src])
    assert cat.columns_by_table() == {"bom": ["name", "val"]}
    assert cat.con.execute("SELECT val FROM bom WHERE name = 'Ana'").fetchone() == (1,)


def test_latin1_file(tmp_path: Path, unchanged: list[Path]) -> None:
    src = write(tmp_path / "cities.csv", "name;city\nJosé;São Paulo\nZoë;Köln\n".encode("latin-1"))
    unchanged.append(src)
    cat = Catalog.from_sources([src])
    assert rows(cat, "cities", "ORDER BY name") == [("José", "São Paulo"), ("Zoë", "Köln")]


def test_latin1_byte_after_the_sniffed_head_falls_back(tmp_path: Path) -> None:
    # The first 64 KiB are plain ASCII, so the sniffer says UTF-8; DuckDB then fails on a later line.
    body = "".join(f"{i},plain\n" for i in range(20000))
    src = write(tmp_path / "late.csv", ("id,word\n" + body + "20000,café\n").encode("latin-1"))
    cat = Catalog.from_sources([src])
    assert cat.tables["late"].n_rows == 20001
    assert cat.con.execute("SELECT word FROM late WHERE id = 20000").fetchone() == ("café",)


def test_duplicate_and_empty_column_names(tmp_path: Path) -> None:
    src = write(tmp_path / "dup.csv", "a,a,,b,\n1,2,3,4,5\n")
    frame = pd.DataFrame([[1, 2, 3, 4]], columns=["a", "a", "", "A"])
    cat = Catalog.from_sources([src, {"frame": frame}])
    # One convention for every source: DuckDB's CSV one (empty -> column<i>, repeats -> _1, _2).
    assert cat.columns_by_table() == {"dup": ["a", "a_1", "column2", "b", "column4"],
                                      "frame": ["a", "a_1", "column2", "A_2"]}
    assert rows(cat, "dup") == [(1, 2, 3, 4, 5)]


def test_header_only_csv_is_an_empty_table_with_columns(tmp_path: Path) -> None:
    cat = Catalog.from_sources([write(tmp_path / "ho.csv", "x,y,z\n")])
    assert cat.tables["ho"].n_rows == 0
    assert cat.columns_by_table() == {"ho": ["x", "y", "z"]}


def test_ragged_rows_are_padded_with_nulls(tmp_path: Path) -> None:
    src = write(tmp_path / "ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n")
    cat = Catalog.from_sources([src])
    assert rows(cat, "ragged", "ORDER BY a") == [(1, 2, 3), (4, 5, None), (6, 7, 8)]


def test_type_change_after_the_sniff_sample_does_not_fail(tmp_path: Path) -> None:
    body = "".join(f"{i}\n" for i in range(30000))
    src = write(tmp_path / "late_text.csv", "n\n" + body + "n/a\n")
    cat = Catalog.from_sources([src])
    assert cat.tables["late_text"].n_rows == 30001
    # "n/a" is a published placeholder: the column is typed, the value read as missing (published.py).
    assert [c.type for c in cat.tables["late_text"].columns] == ["BIGINT"]
    assert cat.con.execute("SELECT count(*) FROM late_text WHERE n IS NULL").fetchone() == (1,)


def test_gzipped_csv(tmp_path: Path) -> None:
    import gzip
    src = write(tmp_path / "z.csv.gz", gzip.compress(b"k,v\n1,a\n2,b\n"))
    cat = Catalog.from_sources([src])
    assert list(cat.tables) == ["z"]
    assert rows(cat, "z", "ORDER BY k") == [(1, "a"), (2, "b")]


# --- messy inputs --------------------------------------------------------------------------------

def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    src = write(tmp_path / "empty.csv", b"")
    with pytest.raises(DataLoadError, match="file is empty") as err:
        Catalog.from_sources([src])
    assert err.value.path == str(src) and err.value.hint


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="no such file") as err:
        Catalog.from_sources([tmp_path / "nope.csv"])
    assert err.value.path == str(tmp_path / "nope.csv")


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match=r"unsupported file type '\.xyz'") as err:
        Catalog.from_sources([write(tmp_path / "data.xyz", "a,b\n")])
    assert ".csv" in (err.value.hint or "")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(tmp_path / "secret.csv", "a\n1\n")
    real_open = Path.open

    def denied(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self == src:  # chmod 0 does not stop root, so permission is refused here instead
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(DataLoadError, match="cannot be read \\(Permission denied\\)") as err:
        Catalog.from_sources([src])
    assert err.value.hint == "check the file's permissions"


def test_corrupt_parquet(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="corrupt or misnamed"):
        Catalog.from_sources([write(tmp_path / "bad.parquet", b"this is not parquet at all")])
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), good)
    cut = write(tmp_path / "cut.parquet", good.read_bytes()[:200])  # PAR1 header, no footer
    with pytest.raises(DataLoadError, match="could not be read as parquet") as err:
        Catalog.from_sources([cut])
    assert err.value.path == str(cut)


def test_misnamed_sqlite_extension_with_text_inside(tmp_path: Path) -> None:
    with pytest.raises(DataLoadError, match="not sqlite's"):
        Catalog.from_sources([write(tmp_path / "x.sqlite", "a,b\n1,2\n")])


def test_failed_source_leaves_no_tables(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder / "a.csv", "x\n1\n")
    write(folder / "b.csv", b"")
    cat = Catalog()
    with pytest.raises(DataLoadError, match="b.csv: file is empty"):
        cat.add(folder)
    assert cat.tables == {}
    assert cat.con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)


def test_no_sources() -> None:
    with pytest.raises(DataLoadError, match="no sources"):
        Catalog.from_sources([])


# --- other formats --------------------------------------------------------------------------------

def test_parquet_keeps_types(tmp_path: Path, unchanged: list[Path]) -> None:
    src = tmp_path / "p.parquet"
    pq.write_table(pa.table({"d": pa.array([pd.Timestamp("2024-01-02").date()]), "x": [1.5]}), src)
    unchanged.append(src)
    cat = Catalog.from_sources([src])
    assert cat.tables["p"].columns == [ColumnInfo("d", "DATE"), ColumnInfo("x", "DOUBLE")]


def test_json_array_and_ndjson(tmp_path: Path) -> None:
    arr = write(tmp_path / "arr.json", '[{"a": 1, "b": "x"}, {"a": 2, "b": null}]')
    nd = write(tmp_path / "lines.ndjson", '{"a": 1}\n{"a": 2, "c": true}\n')
    cat = Catalog.from_sources([arr, nd])
    assert rows(cat, "arr", "ORDER BY a") == [(1, "x"), (2, None)]
    assert rows(cat, "lines", "ORDER BY a") == [(1, None), (2, True)]


def test_excel_one_and_several_sheets(tmp_path: Path, unchanged: list[Path]) -> None:
    one, two = tmp_path / "one.xlsx", tmp_path / "two.xlsx"
    pd.DataFrame({"a": [1, 2]}).to_excel(one, index=False)
    with pd.ExcelWriter(two) as w:
        pd.DataFrame({"x": ["p"]}).to_excel(w, sheet_name="First", index=False)
        pd.DataFrame({"y": [3.5]}).to_excel(w, sheet_name="Second Sheet", index=False)
    unchanged.append(one)
    unchanged.append(two)
    cat = Catalog.from_sources([one, two])
    assert list(cat.tables) == ["one", "two_first", "two_second_sheet"]
    assert cat.tables["two_second_sheet"].display_name == "two_Second Sheet"
    assert rows(cat, "one", "ORDER BY a") == [(1,), (2,)]
    assert rows(cat, "two_second_sheet") == [(3.5,)]


def test_folder_loads_one_table_per_file_in_sorted_order(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / "b.csv", "v\n2\n")
    write(folder / "a.json", '[{"v": 1}]')
    write(folder / "README.md", "not data")
    write(folder / ".hidden.csv", "v\n9\n")
    cat = Catalog.from_sources([folder])
    assert list(cat.tables) == ["a", "b"]
    assert cat.tables["b"].source == str(folder / "b.csv")


def test_sqlite_all_tables_with_loose_typing(tmp_path: Path, unchanged: list[Path]) -> None:
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as src:
        src.execute('CREATE TABLE "Order Items" '
                    '(id INTEGER, qty, note TEXT, price REAL, empty_int INTEGER)')
        src.executemany('INSERT INTO "Order Items" VALUES (?, ?, ?, ?, ?)',
                        [(1, 5, "a", 1.5, None), (2, "lots", None, 2, None),
                         (3, b"\x01\x02", "c", None, None)])
        src.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        src.execute("INSERT INTO customers VALUES (1, 'Ana')")
    src.close()
    unchanged.append(db)
    cat = Catalog.from_sources([db])
    assert list(cat.tables) == ["order_items", "customers"]
    assert cat.tables["order_items"].display_name == "Order Items"
    assert cat.tables["order_items"].columns == [
        ColumnInfo("id", "BIGINT"), ColumnInfo("qty", "VARCHAR"), ColumnInfo("note", "VARCHAR"),
        ColumnInfo("price", "DOUBLE"), ColumnInfo("empty_int", "BIGINT")]
    assert rows(cat, "order_items", "ORDER BY id") == [
        (1, "5", "a", 1.5, None), (2, "lots", None, 2.0, None), (3, "\x01\x02", "c", None, None)]
    assert not list(tmp_path.glob("shop.sqlite-*")), "no journal or WAL files may appear"


def test_duckdb_file_copied_read_only(tmp_path: Path, unchanged: list[Path]) -> None:
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as src:
        src.execute("CREATE TABLE sales AS SELECT range AS id, range * 2 AS amount FROM range(5)")
        src.execute("CREATE SCHEMA stage")
        src.execute("CREATE TABLE stage.raw (x VARCHAR)")
        src.execute("INSERT INTO stage.raw VALUES ('r')")
    unchanged.append(db)
    cat = Catalog.from_sources([db])
    assert list(cat.tables) == ["sales", "stage_raw"]
    assert cat.tables["stage_raw"].display_name == "stage.raw"
    assert cat.con.execute("SELECT sum(amount) FROM sales").fetchone() == (20,)
    # Copied, not attached: nothing refers to the file once loaded.
    assert cat.con.execute("SELECT count(*) FROM duckdb_databases() WHERE NOT internal").fetchone() == (1,)


def test_dataframes_dict_and_bare(tmp_path: Path) -> None:
    keyed = pd.DataFrame({"v": [10, 20]}, index=pd.Index(["a", "b"], name="key"))
    mixed = pd.DataFrame({"m": [1, "x", None]})
    cat = Catalog.from_sources([{"Keyed": keyed}, mixed, pd.DataFrame({"z": [1.0]})])
    assert list(cat.tables) == ["keyed", "df1", "df2"]
    assert {i.source for i in cat.tables.values()} == {"<dataframe>"}
    assert rows(cat, "keyed", "ORDER BY key") == [("a", 10), ("b", 20)]
    assert rows(cat, "df1") == [("1",), ("x",), (None,)]
    assert list(keyed.columns) == ["v"], "the caller's frame is not modified"


def test_name_collisions_digits_and_keywords(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = write(tmp_path / "x" / "Sales.csv", "v\n1\n")
    b = write(tmp_path / "y" / "sales.csv", "v\n2\n")
    c = write(tmp_path / "order.csv", "v\n3\n")
    d = write(tmp_path / "2024 Report.csv", "v\n4\n")
    cat = Catalog.from_sources([a, b, c, d, {"sales": pd.DataFrame({"v": [5]})}])
    assert list(cat.tables) == ["sales", "sales_2", "t_order", "t_2024_report", "sales_3"]
    assert [i.display_name for i in cat.tables.values()] == ["Sales", "sales", "order", "2024 Report",
                                                            "sales"]
    assert cat.con.execute("SELECT v FROM t_order").fetchone() == (3,)


def test_arrow_export(tmp_path: Path) -> None:
    cat = Catalog.from_sources([{"t": pd.DataFrame({"a": [1, 2], "b": ["x", None]})}])
    table = cat.arrow("t")
    assert isinstance(table, pa.Table)
    assert table.to_pydict() == {"a": [1, 2], "b": ["x", None]}
    with pytest.raises(KeyError, match="no table 'nope'"):
        cat.arrow("nope")


# --- freezing ------------------------------------------------------------------------------------

def test_freeze_blocks_file_access_and_more_loading(tmp_path: Path) -> None:
    src = write(tmp_path / "t.csv", "a\n1\n")
    cat = Catalog.from_sources([src])
    assert cat.frozen
    with pytest.raises(duckdb.PermissionException):
        cat.con.execute("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(duckdb.PermissionException):
        cat.con.cursor().execute(f"SELECT * FROM read_csv('{src}')")
    with pytest.raises(duckdb.Error, match="lock"):
        cat.con.execute("SET enable_external_access = true")
    with pytest.raises(DataLoadError, match="frozen"):
        cat.add(src)
    assert cat.con.execute("SELECT a FROM t").fetchone() == (1,)


def test_unfrozen_catalog_can_keep_loading(tmp_path: Path) -> None:
    cat = Catalog.from_sources([write(tmp_path / "a.csv", "a\n1\n")], freeze=False)
    assert cat.add(write(tmp_path / "b.csv", "b\n2\n")) == ["b"]
    cat.freeze()
    cat.freeze()  # idempotent
    assert cat.frozen and list(cat.tables) == ["a", "b"]


def test_header_with_an_empty_first_cell_is_still_a_header(tmp_path: Path) -> None:
    # WikiTableQuestions layout: DuckDB's sniffer alone reads the header line as a data row here.
    src = write(tmp_path / "wtq.csv", '"","Name","Took office"\n"1","Ana","March 4, 1789"\n'
                                      '"2","Bo","March 3, 1791"\n')
    cat = Catalog.from_sources([src])
    assert cat.columns_by_table() == {"wtq": ["column0", "Name", "Took office"]}
    # Dates written for readers are typed (published.py).
    assert rows(cat, "wtq", "ORDER BY column0") == [(1, "Ana", dt.date(1789, 3, 4)), (2, "Bo", dt.date(1791, 3, 3))]


def test_headerless_numeric_csv_keeps_generated_names(tmp_path: Path) -> None:
    cat = Catalog.from_sources([write(tmp_path / "nums.csv", "1,2.5\n3,4.5\n")])
    assert cat.columns_by_table() == {"nums": ["column0", "column1"]}
    assert cat.tables["nums"].n_rows == 2


def test_single_column_whose_name_holds_a_comma(tmp_path: Path) -> None:
    cat = Catalog.from_sources([write(tmp_path / "one.csv", '"last, first"\n"Silva, Ana"\n"Chen, Bo"\n')])
    assert cat.columns_by_table() == {"one": ["last, first"]}
    assert rows(cat, "one", 'ORDER BY "last, first"') == [("Chen, Bo",), ("Silva, Ana",)]


def test_sqlite_text_that_is_not_utf8_is_kept_leniently(tmp_path: Path) -> None:
    db = tmp_path / "latin.sqlite"
    with sqlite3.connect(db) as src:
        src.execute("CREATE TABLE t (x TEXT)")
        src.execute("INSERT INTO t VALUES (CAST(x'4a6fe9' AS TEXT)), ('ok')")  # 'Jo' + latin-1 é
    src.close()
    cat = Catalog.from_sources([db])
    assert rows(cat, "t", "ORDER BY x") == [("Jo\ufffd",), ("ok",)]
