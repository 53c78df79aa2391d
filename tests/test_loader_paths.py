"""The loader's short cuts give what the long way gives: parquet columns taken from pyarrow directly equal
``pd.read_parquet``'s as plain columns, for every kind of table (the kinds pandas converts otherwise take the long
way); spike counts made slice by slice equal one bincount; saved labels equal their cell-by-cell reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phy_bcreason.demo import DEMO_DATA
from phy_bcreason.io import kilosort, parquet
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE, _label_text, _label_texts
from phy_bcreason.io.kilosort import spike_counts

PANDAS_TABLES = {
    "numpy dtypes": pd.DataFrame({"f64": [1.0, np.nan], "f32": np.array([1, np.nan], np.float32),
                                  "f16": np.array([1, 2], np.float16), "i64": [1, 2], "u8": np.array([1, 2], np.uint8),
                                  "bool": [True, False], "text": ["GOOD", " MUA "]}),
    "text with a missing cell": pd.DataFrame({"text": ["a", None]}),
    "text as objects": pd.DataFrame({"text": pd.Series(["a", "b"], dtype=object)}),
    "pandas string": pd.DataFrame({"text": pd.array(["a", "b"], dtype="string")}),
    "pandas string with NA": pd.DataFrame({"text": pd.array(["a", None], dtype="string")}),
    "Int64 with NA": pd.DataFrame({"n": pd.array([1, None], "Int64")}),
    "Int64": pd.DataFrame({"n": pd.array([1, 2], "Int64")}),
    "boolean": pd.DataFrame({"b": pd.array([True, False], "boolean")}),
    "Float32 with NA": pd.DataFrame({"x": pd.array([1.5, None], "Float32")}),
    "Float32": pd.DataFrame({"x": pd.array([1.5, 2], "Float32")}),
    "pyarrow float": pd.DataFrame({"x": pd.array([1.5, None], "float32[pyarrow]")}),
    "pyarrow int": pd.DataFrame({"x": pd.array([1, 2], "int64[pyarrow]")}),
    "categorical": pd.DataFrame({"c": pd.Categorical(["a", "b"])}),
    "an index": pd.DataFrame({"x": [1.0, 2.0]}, index=[5, 7]),
    "a text index": pd.DataFrame({"x": [1.0, 2.0]}, index=["u", "v"]),
    "number names": pd.DataFrame({0: [1.0, 2.0], 1: [3, 4]}),
    "dates": pd.DataFrame({"d": pd.to_datetime(["2020-01-01", "2021-01-01"])}),
    "booleans and None": pd.DataFrame({"b": pd.Series([True, None], dtype=object)}),
    "nothing but None": pd.DataFrame({"n": [None, None], "x": [1.0, 2.0]}),
    "one row of every kind": pd.DataFrame([{"none": None, "x": 1.0, "text": "x", "on": True, "n": 3}]),
    "no rows": pd.DataFrame({"x": np.array([], float), "text": np.array([], object)}),
}
ARROW_TABLES = {  # as MATLAB's parquetwrite and pyarrow write them: no pandas metadata
    "plain": pa.table({"x": [1.0, None], "n": pa.array([1, 2], pa.int32()), "text": ["a", "b"], "b": [True, False]}),
    "integers with a null": pa.table({"n": pa.array([1, None], pa.int64())}),
    "booleans with a null": pa.table({"b": pa.array([True, None])}),
    "text with a null": pa.table({"text": pa.array(["a", None])}),
    "large text": pa.table({"text": pa.array(["a", "b"], pa.large_string())}),
    "chunks": pa.concat_tables([pa.table({"x": [1.0]}), pa.table({"x": [2.0]})]),
    "float16": pa.table({"h": pa.array(np.array([1, 2], np.float16))}),
    "nulls": pa.table({"n": pa.nulls(2)}),
}


def long_way(path) -> pd.DataFrame:
    return pd.DataFrame({name: column.to_numpy() for name, column in pd.read_parquet(path).items()})


def assert_same_table(path) -> None:
    table = parquet.read_tables([path])[0]
    expected = long_way(path)
    pd.testing.assert_frame_equal(table, expected)
    assert list(table.dtypes) == list(expected.dtypes)
    if len(expected):  # the parameter file's row, as the loader reads it
        row, expected_row = table.iloc[0].to_dict(), expected.iloc[0].to_dict()
        assert list(row) == list(expected_row)
        for name, value in expected_row.items():
            assert type(row[name]) is type(value) and (row[name] == value or value != value), name


@pytest.mark.parametrize("name", sorted(PANDAS_TABLES))
def test_a_table_pandas_wrote_reads_as_pandas_reads_it(tmp_path, name):
    path = tmp_path / "table.parquet"
    PANDAS_TABLES[name].to_parquet(path)
    assert_same_table(path)


@pytest.mark.parametrize("name", sorted(ARROW_TABLES))
def test_a_table_pyarrow_wrote_reads_as_pandas_reads_it(tmp_path, name):
    path = tmp_path / "table.parquet"
    pq.write_table(ARROW_TABLES[name], path)
    assert_same_table(path)


def test_a_repeated_column_name_is_refused_as_pandas_refuses_it(tmp_path):
    path = tmp_path / "table.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["x", "x"]), path)
    with pytest.raises(Exception) as by_pandas:
        pd.read_parquet(path)
    assert parquet.read_tables([path]) == [str(by_pandas.value).splitlines()[0]]


def test_bombcells_tables_take_the_short_way_and_read_as_pandas_reads_them():
    for name in (METRICS_FILE, PARAMS_FILE):  # a real run's: text, numbers, columns of None
        path = DEMO_DATA / "bombcell" / name
        assert parquet._plain_columns(pq.read_table(path)) is not None, name
        assert_same_table(path)


def test_spike_counts_by_slices_equal_one_count(tmp_path, monkeypatch):
    monkeypatch.setattr(kilosort, "SPIKES_AT_ONCE", 1000)
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 50, 10_500).astype(np.int32)
    clusters[-3:] = [70, 70, 90]  # ids first seen in the last slice
    np.save(tmp_path / "spike_clusters.npy", clusters)
    path, ids, counts = spike_counts(tmp_path, [])
    expected = np.bincount(clusters)
    assert path.name == "spike_clusters.npy"
    np.testing.assert_array_equal(ids, np.flatnonzero(expected))
    np.testing.assert_array_equal(counts, expected[expected > 0])


def test_a_negative_spike_cluster_is_a_note_in_any_slice(tmp_path, monkeypatch):
    monkeypatch.setattr(kilosort, "SPIKES_AT_ONCE", 1000)
    clusters = np.zeros(2500, dtype=np.int64)
    clusters[2100] = -1
    np.save(tmp_path / "spike_clusters.npy", clusters)
    notes: list[str] = []
    assert spike_counts(tmp_path, notes) is None
    assert len(notes) == 1 and "cannot read" in notes[0] and "\n" not in notes[0]


@pytest.mark.parametrize("cells", [
    ["GOOD", " MUA ", "NOISE\t", "NON-SOMA"],
    ["GOOD", None, np.nan, "MUA"],
    [1, 2.5, True, None, "GOOD", pd.NA],
])
def test_saved_label_cells_read_as_each_cell_alone(cells):
    column = pd.Series(cells, dtype=object)
    assert _label_texts(column) == [_label_text(cell) for cell in cells]
    if all(isinstance(cell, str) for cell in cells):
        assert _label_texts(pd.Series(cells, dtype="str")) == [cell.strip() for cell in cells]
