"""Real Opera time series: one Harmony export per timepoint, Index.idx.xml, hours since the first measurement.

The fixture writes exports the way Harmony does (folder ``<barcode>__<date>-Measurement 1/Images`` with
``Index.idx.xml`` in the HarmonyV5 namespace; ``TimepointID`` counts from 0 in the Index file while
``sk`` in file names counts from 1; every export restarts at ``sk1``). Expected values are written
from that layout by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest
from lcd_core import FileFormatError, InputError
from lcd_embed import opera_files, read_index


def _images(start_minute: int, *, channels=(1,)) -> list[dict]:
    out = []
    for w, (row, col) in enumerate([(2, 3), (2, 4)]):
        for field in (1, 2):
            for plane in (1, 2, 3):
                for ch in channels:
                    when = pd.Timestamp("2024-03-01T10:00:00") + pd.Timedelta(
                        minutes=start_minute + 2 * w + field
                    )
                    out.append(
                        {
                            "row": row,
                            "col": col,
                            "field": field,
                            "plane": plane,
                            "ch": ch,
                            "time": when.isoformat() + "+01:00",
                        }
                    )
    return out


@pytest.fixture
def screen(tmp_path, harmony_export):
    """Plate B0001 imaged at three timepoints (three exports, each sk1), two channels in the Index."""
    dirs = []
    for i, (day_hour, minute) in enumerate(
        [("01T10_00_00", 0), ("01T22_00_00", 12 * 60), ("02T10_00_00", 24 * 60)]
    ):
        folder = tmp_path / f"B0001__2024-03-{day_hour}-Measurement {i + 1}"
        dirs.append(
            harmony_export(
                folder,
                "B0001",
                f"2024-03-{day_hour.replace('_', ':')}+01:00",
                _images(minute, channels=(1, 2)),
            )
        )
    return dirs


def test_index_file_is_read(screen):
    plate, images = read_index(screen[0] / "Index.idx.xml")
    assert plate["PlateID"] == "B0001"
    assert len(images) == 2 * 2 * 3 * 2
    assert set(images["timepoint"]) == {1}  # TimepointID 0 -> timepoint 1
    assert set(images["channel_name"]) == {"Brightfield", "Hoechst"}
    assert images["abs_time"].min() == pd.Timestamp("2024-03-01T09:01:00")  # UTC


def test_exports_of_one_plate_become_one_time_series(screen):
    shuffled = [screen[2], screen[0], screen[1]]  # order given does not matter: start times do
    files = opera_files(shuffled)
    bf = files[files["channel"] == 1]
    assert set(bf["plate"]) == {"B0001"}
    assert sorted(bf["timepoint"].unique()) == [1, 2, 3]
    per_tp = bf.groupby("timepoint")["timepoint_h"].unique()
    # each timepoint starts with field 1 of the first well, 1 minute after the measurement's start
    assert [round(float(v[0]), 3) for v in per_tp] == [0.0, 12.0, 24.0]
    assert len(bf) == 3 * 2 * 2 * 3
    first = bf[(bf["timepoint"] == 2) & (bf["row"] == 2) & (bf["column"] == 4) & (bf["field"] == 2)]
    assert sorted(first["plane"]) == [1, 2, 3]
    assert all("Measurement 2" in f for f in first["file"])


def test_folders_without_index_are_ordered_by_the_date_in_their_name(tmp_path, harmony_export):
    dirs = []
    for i, day_hour in enumerate(["02T10_00_00", "01T10_00_00"]):
        folder = tmp_path / f"P7__2024-03-{day_hour}-Measurement {i + 1}"
        dirs.append(harmony_export(folder, "P7", "", _images(0), index=False))
    files = opera_files(dirs)
    assert set(files["plate"]) == {"P7"}
    early = files[files["timepoint"] == 1]["file"].iloc[0]
    assert "2024-03-01" in early
    assert sorted(files.groupby("timepoint")["timepoint_h"].first()) == [0.0, 24.0]


def test_refusals(tmp_path, screen, harmony_export):
    a = harmony_export(tmp_path / "plateA", "A", "", _images(0), index=False)
    b = harmony_export(tmp_path / "other" / "plateA", "A", "", _images(0), index=False)
    with pytest.raises(InputError, match=r"plate 'plateA' has 2 exports but .* has no measurement start"):
        opera_files([a, b])
    bad = tmp_path / "bad" / "Images"
    bad.mkdir(parents=True)
    (bad / "Index.idx.xml").write_text("<EvaluationInputData><Images>")
    with pytest.raises(FileFormatError, match=r"Index.idx.xml: is not a valid Harmony index file"):
        opera_files([bad])
    (screen[0] / next(p.name for p in screen[0].glob("*.tiff"))).unlink()
    with pytest.raises(InputError, match="listed images are missing"):
        opera_files(screen)
