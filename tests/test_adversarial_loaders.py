"""Hostile source files, made by a small factory, each loaded in a fresh child process.

Every case must end in one clear ``DataLoadError`` line (or load, where it says so) within a time
and peak-memory bound, leave the hostile file and a canary beside it unchanged, and never show the
canary's content. A child process per case lets the test measure its peak memory (ru_maxrss) and
kill it if it runs away.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

SECRET = "canary-51d0e2-do-not-leak"
TIME_BOUND_S = 20.0  # a child process start included; the cases take ~1-3 s
MEMORY_BOUND_MB = 1_000

# -- the factory -----------------------------------------------------------------------------------


SHEET = "xl/worksheets/sheet1.xml"


def _workbook(path: Path, fill: Callable[[openpyxl.Workbook], None] | None = None) -> None:
    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    book.active.append([1, "ann"])
    if fill:
        fill(book)
    book.save(path)


def _rewrite_part(path: Path, name: str, edit: Callable[[bytes], bytes], extra: dict[str, bytes] | None = None,
                  compress: int = zipfile.ZIP_DEFLATED) -> None:
    """Rewrite one part of the zip at ``path`` (and add ``extra`` parts)."""
    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    parts[name] = edit(parts[name])
    parts.update(extra or {})
    with zipfile.ZipFile(path, "w", compress) as zf:
        for part, data in parts.items():
            zf.writestr(part, data)


def wide_csv(d: Path, canary: Path) -> Path:
    path = d / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" * 10_000) + "\n")
    return path


def wide_sqlite(d: Path, canary: Path) -> Path:
    path = d / "wide.sqlite"
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE t ({', '.join(f'c{i} INT' for i in range(1_990))})")
    return path


def huge_sheet_range(d: Path, canary: Path) -> Path:
    """Cells at A1 and XFD1048576 (openpyxl declares A1:XFD1048576 for it): ~5 KB on disk."""
    path = d / "huge_range.xlsx"
    _workbook(path, lambda book: book.active.cell(row=1_048_576, column=16_384, value="x"))
    return path


def declared_range_only(d: Path, canary: Path) -> Path:
    """Two real rows under a dimension claiming A1:XFD1048576: loads as the two rows."""
    path = d / "declared.xlsx"
    _workbook(path)
    _rewrite_part(path, SHEET, lambda xml: xml.replace(b'<dimension ref="A1:B2" />',
                                                       b'<dimension ref="A1:XFD1048576" />'))
    return path


def zip_bomb(d: Path, canary: Path) -> Path:
    """A sheet part padded with 60 MB of whitespace: ~60 KB compressed (ratio ~1000)."""
    path = d / "bomb.xlsx"
    _workbook(path)
    _rewrite_part(path, SHEET, lambda xml: xml.replace(b"<sheetData>", b" " * 60_000_000 + b"<sheetData>", 1))
    return path


def _with_doctype(doctype: str, entity: str) -> Callable[[bytes], bytes]:
    """Put ``doctype`` before the sheet and ``&entity;`` into cell B2's text."""
    def edit(xml: bytes) -> bytes:
        return doctype.encode() + xml.replace(b"<t>ann</t>", f"<t>&{entity};</t>".encode(), 1)
    return edit


def billion_laughs(d: Path, canary: Path) -> Path:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    path = d / "laughs.xlsx"
    _workbook(path)
    _rewrite_part(path, SHEET, _with_doctype(f"<!DOCTYPE worksheet [{entities}]>", "l9"))
    return path


def external_entity(d: Path, canary: Path) -> Path:
    path = d / "xxe.xlsx"
    _workbook(path)
    _rewrite_part(path, SHEET, _with_doctype(f'<!DOCTYPE worksheet [<!ENTITY secret SYSTEM "file://{canary}">]>',
                                             "secret"))
    return path


def link_out_of_folder(d: Path, canary: Path) -> Path:
    folder = d / "folder"
    folder.mkdir()
    (folder / "stolen.csv").symlink_to(canary)
    return folder


def link_beside_data(d: Path, canary: Path) -> Path:
    """A folder with a real table and a link out: the table loads, the link is skipped."""
    folder = d / "mixed"
    folder.mkdir()
    (folder / "people.csv").write_text("id,name\n1,ann\n")
    (folder / "stolen.csv").symlink_to(canary)
    return folder


#: name -> (factory, expected: an error fragment, or "tables:..." for what loads)
CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "wide_csv": (wide_csv, "wide.csv has 10,000 columns; autotqa reads at most 1,000"),
    "wide_sqlite": (wide_sqlite, "wide.sqlite (table 't') has 1,990 columns; autotqa reads at most 1,000"),
    "huge_sheet_range": (huge_sheet_range, "has 16,384 columns; autotqa reads at most 1,000"),
    "declared_range_only": (declared_range_only, "tables:declared"),
    "zip_bomb": (zip_bomb, "inflates"),
    "billion_laughs": (billion_laughs, "could not be read as an Excel workbook: EntitiesForbidden"),
    "external_entity": (external_entity, "could not be read as an Excel workbook: EntitiesForbidden"),
    "link_out_of_folder": (link_out_of_folder, "folder has no loadable data files (skipped links out of "
                                               "the folder: stolen.csv)"),
    "link_beside_data": (link_beside_data, "tables:people"),
}

_CHILD = textwrap.dedent("""
    import json, resource, sys
    from autotqa.catalog import Catalog
    from autotqa.errors import DataLoadError
    out = {}
    try:
        cat = Catalog.from_sources([sys.argv[1]])
        out["tables"] = list(cat.tables)
        out["rows"] = [cat.con.execute(f'SELECT * FROM "{t}"').fetchall() for t in cat.tables]
        cat.schema()
    except DataLoadError as e:
        out["error"] = str(e)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(out, default=str))
""")


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_source(tmp_path: Path, name: str) -> None:
    factory, expected = CASES[name]
    canary = tmp_path / "secret.txt"
    canary.write_text(f"{SECRET}\n")
    source = factory(tmp_path, canary)
    before = _snapshot(tmp_path)
    env = {**os.environ, "AUTOTQA_ENGINE__N_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(source)], capture_output=True, text=True,
                          timeout=TIME_BOUND_S, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    if expected.startswith("tables:"):
        assert out.get("tables") == expected.split(":", 1)[1].split(","), out
    else:
        assert expected in out.get("error", ""), out
        assert "\n" not in out["error"]
        assert "Traceback" not in proc.stderr
    assert out["peak_mb"] < MEMORY_BOUND_MB
    assert SECRET not in proc.stdout + proc.stderr
    assert _snapshot(tmp_path) == before


def test_skipped_link_is_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from autotqa.catalog import Catalog

    canary = tmp_path / "secret.txt"
    canary.write_text(f"{SECRET}\n")
    folder = link_beside_data(tmp_path, canary)
    with caplog.at_level("WARNING", logger="autotqa.catalog"):
        Catalog.from_sources([folder]).close()
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder / 'stolen.csv'}: skipped, a link to {canary} outside the folder (follow_links=True loads it)"]
    followed = Catalog.from_sources([folder], follow_links=True)
    assert list(followed.tables) == ["people", "stolen"]
    followed.close()
