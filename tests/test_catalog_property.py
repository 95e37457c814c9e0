"""Property: any CSV-ish file either loads or raises DataLoadError, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotqa.catalog import Catalog
from autotqa.errors import DataLoadError

cells = st.text(alphabet=st.sampled_from(list('ab1 2.,;\t|"\'\\\r\néÿ\x00-')), max_size=8)
lines = st.lists(cells, min_size=0, max_size=5).map(lambda cs: ",".join(cs))
csv_text = st.one_of(
    st.lists(lines, max_size=12).map(lambda ls: "\n".join(ls)).map(str.encode),
    st.binary(max_size=300),
    st.tuples(st.sampled_from([",", ";", "\t", "|"]), st.lists(st.lists(cells, min_size=1, max_size=4),
                                                               max_size=8))
    .map(lambda t: "\n".join(t[0].join(r) for r in t[1]).encode("latin-1", errors="replace")),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_text, suffix=st.sampled_from([".csv", ".tsv", ".txt"]))
def test_any_csv_loads_or_raises_data_load_error(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t{suffix}"
        path.write_bytes(data)
        try:
            cat = Catalog.from_sources([path])
        except DataLoadError as e:
            assert str(path) in e.message
            return
        # Loaded: the reported shape matches what the connection holds, and stats work on it.
        (info,) = cat.tables.values()
        assert cat.con.execute(f"SELECT count(*) FROM {info.name}").fetchall() == [(info.n_rows,)]
        assert cat.schema().render().startswith(f"Table {info.name} (")
        assert path.read_bytes() == data
