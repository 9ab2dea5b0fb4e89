"""Manifests: Opera Phenix names, glob + regex, plate-map joins, validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import write_table
from lcd_embed import (
    InputError,
    manifest_from_opera,
    manifest_from_pattern,
    plane_paths,
    read_field,
    read_manifest,
    well_name,
)


def test_well_names():
    assert [well_name(1, 1), well_name(2, 3), well_name(16, 24), well_name(27, 1)] == [
        "A01",
        "B03",
        "P24",
        "AA01",
    ]


def test_opera_manifest_joined_with_plate_map(tmp_path, write_opera_plate):
    images = tmp_path / "PLATE7" / "Images"
    written = write_opera_plate(images, wells=[(2, 3), (2, 4)])
    write_opera_plate(tmp_path / "noise", wells=[(1, 1)], planes=1)  # another folder: not scanned
    pm = pd.DataFrame(
        {"well": ["B3", "B04", "C01"], "compound": ["DMSO", "taxol", "x"], "dose": [0.0, 1.0, 2.0]}
    )
    pm_path = tmp_path / "map.csv"
    pm.to_csv(pm_path, index=False)

    man = manifest_from_opera(images, pm_path)
    # 2 wells x 2 fields x 2 timepoints, 3 planes each
    assert len(man) == 8
    assert set(man["plate"]) == {"PLATE7"}
    assert [c for c in man.columns if c.startswith("path_z")] == ["path_z0", "path_z1", "path_z2"]
    row = man[(man["well"] == "B04") & (man["fov"] == 2) & (man["timepoint"] == 1)].iloc[0]
    assert row["compound"] == "taxol" and row["dose"] == 1.0
    expected = [f"r02c04f02p0{p}-ch1sk1fk1fl1.tiff" for p in (1, 2, 3)]
    assert [p.split("/")[-1] for p in plane_paths(row)] == expected
    field = read_field(row)
    np.testing.assert_array_equal(field, np.stack([written[n] for n in expected]).astype(np.float32))

    # written and read back through the validated reader (CSV and parquet)
    for suffix in (".csv", ".parquet"):
        back = read_manifest(write_table(man, tmp_path / f"manifest{suffix}"))
        assert back["plate"].tolist() == man["plate"].tolist()
        assert back["path_z2"].tolist() == man["path_z2"].tolist()
        assert back["fov"].dtype.kind == "i"


def test_opera_errors(tmp_path, write_opera_plate):
    images = tmp_path / "P1"
    write_opera_plate(images, wells=[(1, 1)], fields=1, channels=(1, 2))
    with pytest.raises(InputError, match="channels"):
        manifest_from_opera(images)
    man = manifest_from_opera(images, channel=2)
    assert set(man["channel"]) == {2}
    # plate map lacking a well that has images
    with pytest.raises(InputError, match="A01"):
        manifest_from_opera(images, pd.DataFrame({"well": ["B01"], "compound": ["x"]}), channel=1)
    # a missing plane file: inconsistent plane counts
    (images / "r01c01f01p02-ch1sk1fk1fl1.tiff").unlink()
    with pytest.raises(InputError, match="inconsistent plane counts"):
        manifest_from_opera(images, channel=1)
    with pytest.raises(InputError, match="nowhere: image folder not found"):
        manifest_from_opera(tmp_path / "nowhere")


def test_pattern_manifest(tmp_path):
    rng = np.random.default_rng(1)
    for plate in ("P1", "P2"):
        (tmp_path / plate).mkdir()
        for well in ("A1", "B2"):
            for z in range(2):
                tifffile.imwrite(
                    tmp_path / plate / f"{well}_s1_z{z}.tif", rng.integers(0, 255, (8, 8), dtype=np.uint8)
                )
    (tmp_path / "P1" / "notes.txt").write_text("ignored")
    man = manifest_from_pattern(
        "*/*.tif", r"(?P<plate>P\d)/(?P<well>[A-P]\d+)_s(?P<fov>\d+)_z(?P<plane>\d)", root=tmp_path
    )
    assert len(man) == 4
    assert sorted(man["well"].unique()) == ["A01", "B02"]
    assert man["fov"].tolist() == [1, 1, 1, 1]
    assert all(p.endswith("_z0.tif") for p in man["path_z0"]) and all(
        p.endswith("_z1.tif") for p in man["path_z1"]
    )
    # without a plane group: one row per file with 'path'
    single = manifest_from_pattern("P1/*_z0.tif", r"(?P<well>[A-P]\d+)_s", root=tmp_path)
    assert list(single.columns) == ["well", "path"] and len(single) == 2


def test_read_manifest_validation(tmp_path):
    img = tmp_path / "a.tif"
    tifffile.imwrite(img, np.zeros((4, 4), np.uint8))
    # relative paths resolve against the manifest's folder
    pd.DataFrame({"plate": ["0001"], "well": ["A01"], "path": ["a.tif"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    man = read_manifest(tmp_path / "m.csv")
    assert man.loc[0, "path"] == str(img.resolve())
    assert man.loc[0, "plate"] == "0001"  # barcodes stay strings

    def bad(df, match):
        df.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(InputError, match=match):
            read_manifest(tmp_path / "bad.csv")

    bad(pd.DataFrame({"well": ["A01"], "image": ["a.tif"]}), "no image path column")
    bad(pd.DataFrame({"path_z0": ["a", "b"], "path_z1": ["c", None]}), "inconsistent plane counts")
    bad(pd.DataFrame({"path_z0": ["a"], "path_z2": ["c"]}), "path_z0..path_z1")
    bad(pd.DataFrame({"path": ["a.tif", "a.tif"]}), "row 1 repeats")
    bad(pd.DataFrame({"path": ["a.tif", None]}), "row 1 has an empty 'path'")
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        read_manifest(tmp_path / "missing.csv")
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(InputError, match="unknown table format"):
        read_manifest(tmp_path / "m.xlsx")
