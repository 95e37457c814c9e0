"""Recognise a source file's format (magic bytes first, then extension) and a text file's encoding.

Magic bytes win over the extension because files are often misnamed (a ``.db`` that is SQLite, a
``.data`` that is Parquet); the extension decides only for formats without a signature (CSV, JSON).
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from autotqa.errors import DataLoadError

Format = Literal["csv", "parquet", "json", "excel", "sqlite", "duckdb"]

SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # at byte offset 8 of a DuckDB database file
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip archive

_BY_EXTENSION: dict[str, Format] = {
    ".csv": "csv", ".tsv": "csv", ".tab": "csv", ".txt": "csv", ".psv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".ndjson": "json", ".jsonl": "json",
    ".xlsx": "excel", ".xlsm": "excel",
    ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite",
    ".duckdb": "duckdb", ".ddb": "duckdb",
}
#: Compression suffixes DuckDB's CSV/JSON readers undo themselves.
_COMPRESSED = (".gz", ".zst")

SUPPORTED = ", ".join(sorted(_BY_EXTENSION))


def text_suffix(path: Path) -> str:
    """The format-bearing suffix, looking through a compression suffix.

    >>> text_suffix(Path("sales.CSV.gz"))
    '.csv'
    >>> text_suffix(Path("notes"))
    ''
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def extension_format(path: Path) -> Format | None:
    """The format a file's extension claims, or None when it names no supported format.

    >>> extension_format(Path("a.JSONL")), extension_format(Path("readme.md"))
    ('json', None)
    """
    return _BY_EXTENSION.get(text_suffix(path))


def display_stem(path: Path) -> str:
    """The file name without its format (and compression) suffix: the table's original name.

    >>> display_stem(Path("dir/Sales.Report.csv.gz")), display_stem(Path("README"))
    ('Sales.Report', 'README')
    """
    name = path.name
    if path.suffix.lower() in _COMPRESSED:
        name = name[: -len(path.suffix)]
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix and name != suffix else name


def detect_format(path: Path, head: bytes) -> Format:
    """The loader to use for ``path`` whose first bytes are ``head``.

    >>> detect_format(Path("x.db"), b"SQLite format 3\\x00" + bytes(84))
    'sqlite'
    >>> detect_format(Path("x.bin"), bytes(8) + b"DUCK" + bytes(4))
    'duckdb'
    >>> detect_format(Path("data.tsv"), b"a\\tb\\n")
    'csv'
    """
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head[8:12] == DUCKDB_MAGIC:
        return "duckdb"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    suffix = text_suffix(path)
    fmt = extension_format(path)
    if fmt is None:
        hint = "convert legacy .xls to .xlsx" if suffix == ".xls" else f"use one of {SUPPORTED}"
        raise DataLoadError(f"{path}: unsupported file type {suffix or '(no extension)'!r}",
                            path=str(path), hint=hint)
    # A signature-bearing format must carry its signature: otherwise the file is damaged or misnamed.
    if fmt in ("sqlite", "duckdb", "parquet") or (fmt == "excel" and not head.startswith(ZIP_MAGIC)):
        raise DataLoadError(f"{path}: named like a {fmt} file but its header bytes are not {fmt}'s "
                            "(file corrupt or misnamed)", path=str(path),
                            hint="re-export the file, or give it the extension of its real format")
    return fmt


def sniff_encoding(head: bytes, path: Path | None = None) -> str:
    """DuckDB ``encoding`` for a text file starting with ``head``: utf-16, utf-8 or latin-1.

    A BOM decides; UTF-8 is tried next (a multi-byte character cut at the end of ``head`` is not an
    error); bytes that are not valid UTF-8 mean latin-1, which decodes every byte. NUL bytes are
    valid UTF-8 but almost never text: that head goes to charset-normalizer, which recognises UTF-16
    without a BOM. DuckDB reads UTF-16 little-endian only, so big-endian is a clear error.

    >>> sniff_encoding(b"\\xef\\xbb\\xbfname\\n")
    'utf-8'
    >>> sniff_encoding("José Lima".encode("latin-1"))
    'latin-1'
    >>> sniff_encoding("José".encode("utf-8")[:-1])
    'utf-8'
    >>> sniff_encoding("id,city\\n1,Zürich\\n2,Oslo\\n".encode("utf-16-le"))
    'utf-16'
    """
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF16_BE):
        _big_endian(path)
    if b"\x00" in head:
        from charset_normalizer import from_bytes

        best = from_bytes(head).best()
        found = best.encoding if best is not None else ""
        if found in ("utf_16", "utf_16_le"):
            return "utf-16"
        if found == "utf_16_be":
            _big_endian(path)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _big_endian(path: Path | None) -> None:
    where = f"{path}: " if path is not None else ""
    raise DataLoadError(f"{where}UTF-16 big-endian text cannot be read", path=str(path) if path else None,
                        hint="re-save the file as UTF-8 (or UTF-16 little-endian)")
