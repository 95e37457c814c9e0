"""Text encodings the sniffer must tell apart, end to end through the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotqa.catalog import Catalog
from autotqa.catalog.sniff import sniff_encoding
from autotqa.errors import DataLoadError

TEXT = "id,city\n1,Zürich\n2,São Paulo\n3,Oslo\n"


@pytest.mark.parametrize(("data", "expected"), [
    (TEXT.encode("utf-8"), "utf-8"),
    (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8"),
    (TEXT.encode("latin-1"), "latin-1"),
    (TEXT.encode("utf-16-le"), "utf-16"),  # no BOM: every other byte NUL, still valid UTF-8
    (b"\xff\xfe" + TEXT.encode("utf-16-le"), "utf-16"),
])
def test_encodings(data: bytes, expected: str) -> None:
    assert sniff_encoding(data) == expected


def test_utf16_without_bom_loads_as_text(tmp_path: Path) -> None:
    path = tmp_path / "cities.csv"
    path.write_bytes(TEXT.encode("utf-16-le"))
    catalog = Catalog.from_sources([path])
    try:
        rows = catalog.con.execute("SELECT id, city FROM cities ORDER BY id").fetchall()
    finally:
        catalog.close()
    assert rows == [(1, "Zürich"), (2, "São Paulo"), (3, "Oslo")]


@pytest.mark.parametrize("data", [b"\xfe\xff" + TEXT.encode("utf-16-be"), TEXT.encode("utf-16-be")])
def test_big_endian_utf16_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(DataLoadError, match="UTF-16 big-endian text cannot be read") as err:
        sniff_encoding(data, Path("x.csv"))
    assert err.value.message.startswith("x.csv: ") and err.value.hint and "UTF-8" in err.value.hint
