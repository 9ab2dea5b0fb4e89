"""Tables and small files: one suffix table, atomic writes with the user's umask, one-line errors."""

from __future__ import annotations

import gzip
import os
import stat

import numpy as np
import pandas as pd
import pytest
from lcd_core import (
    FileFormatError,
    InputError,
    read_json,
    read_npz,
    read_table,
    table_format,
    write_json,
    write_npz,
    write_table,
)

FRAME = pd.DataFrame({"Metadata_well": ["B03", "B04"], "f1": [1.5, 2.5], "f2": [3, 4]})


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("x.pq", "parquet"),
        ("x.parquet", "parquet"),
        ("x.tsv", "tab"),
        ("x.txt", "tab"),
        ("x.TSV", "tab"),
        ("x.csv", "comma"),
        ("x.csv.gz", "comma-gz"),
        ("x.tsv.gz", "tab-gz"),
    ],
)
def test_written_bytes_match_the_suffix(tmp_path, name, kind):
    path = tmp_path / name
    write_table(FRAME, path)
    raw = path.read_bytes()
    if kind == "parquet":
        assert raw[:4] == b"PAR1"  # parquet magic number
    elif kind.endswith("-gz"):
        text = gzip.decompress(raw).decode()
        assert text.splitlines()[0] == (
            "Metadata_well,f1,f2" if kind.startswith("comma") else "Metadata_well\tf1\tf2"
        )
    else:
        sep = "," if kind == "comma" else "\t"
        assert raw.decode().splitlines()[0] == sep.join(FRAME.columns)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, FRAME)


@pytest.mark.parametrize("name", ["x.xlsx", "x.json", "x", "x.h5ad"])
def test_unwritable_suffix_is_refused_before_writing(tmp_path, name):
    with pytest.raises(InputError, match="x"):
        write_table(FRAME, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_table_format_prefers_the_longest_suffix():
    assert table_format("a.b.csv.gz") == "csv"
    assert table_format("run.txt.gz") == "tsv"
    with pytest.raises(InputError, match=r"unknown table format '\.xlsx'"):
        table_format("a.xlsx")


def test_read_errors_are_one_line_and_name_the_file(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        read_table(tmp_path / "missing.csv")
    assert "missing.csv" in str(e.value)
    with pytest.raises(InputError, match="is a folder"):
        read_table(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(FileFormatError, match="empty"):
        read_table(empty)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(FileFormatError, match=r"bad.parquet: is not a valid parquet file") as e:
        read_table(bad)
    assert "\n" not in str(e.value)
    csv_named_pq = tmp_path / "csv.pq"
    csv_named_pq.write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match=r"csv.pq"):
        read_table(csv_named_pq)
    h5 = tmp_path / "x.h5ad"
    h5.write_bytes(b"")
    with pytest.raises(InputError, match="AnnData, not a table"):
        read_table(h5)


def test_truncated_parquet_is_refused(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(FRAME, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"t.parquet"):
        read_table(path)


def test_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    write_table(FRAME, path)
    before = path.read_bytes()

    class Boom(pd.DataFrame):
        def to_csv(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_table(Boom(FRAME), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_get_the_umask_mode_like_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_table(FRAME, tmp_path / "a.parquet")
        write_json({"a": 1}, tmp_path / "b.json")
        write_npz({"x": np.arange(3)}, tmp_path / "c.npz")
        with open(tmp_path / "plain.txt", "w") as fh:  # the oracle: what open() gives
            fh.write("x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    for name in ("a.parquet", "b.json", "c.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_json_and_npz_round_trip_and_errors(tmp_path):
    write_json({"b": np.float32(1.5), "a": [1, 2]}, tmp_path / "x.json")
    assert read_json(tmp_path / "x.json") == {"a": [1, 2], "b": 1.5}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FileFormatError, match=r"bad.json: is not a valid JSON file"):
        read_json(tmp_path / "bad.json")
    arrays = {"w": np.arange(6.0).reshape(2, 3), "names": np.array(["a", "b"])}
    write_npz(arrays, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz.npz").exists()
    back = read_npz(tmp_path / "m.npz")
    np.testing.assert_array_equal(back["w"], arrays["w"])
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"trunc.npz: is not a valid .npz file"):
        read_npz(tmp_path / "trunc.npz")
    np.savez(tmp_path / "obj.npz", o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FileFormatError, match=r"obj.npz"):  # a pickle inside is refused, never loaded
        read_npz(tmp_path / "obj.npz")


def test_text_columns_keep_leading_zeros(tmp_path):
    path = tmp_path / "plates.tsv"
    path.write_text("plate\twell\tn\n0001\tA01\t3\n0002\tA02\t4\n")
    plain = read_table(path)
    assert plain["plate"].tolist() == [1, 2]  # what pandas infers without being told
    kept = read_table(path, text_columns=["plate", "not_a_column"])
    assert kept["plate"].tolist() == ["0001", "0002"] and kept["n"].tolist() == [3, 4]
