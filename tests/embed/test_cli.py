"""The lcd-embed commands end to end: Opera export -> manifest -> embed -> attention; from-table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lcd_core import read_h5ad
from lcd_embed import (
    attention_and_keys,
    from_table,
    load_backbone,
    normalize_intensity,
    read_field,
    read_manifest,
    save_checkpoint,
    stitch_tiles,
)
from lcd_embed.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_opera_to_embeddings_and_attention(tmp_path, write_opera_plate, tiny_vit):
    images = tmp_path / "PLATE1" / "Images"
    write_opera_plate(images, wells=[(1, 1), (1, 2)], fields=1, timepoints=(1,), size=64)
    pd.DataFrame({"well": ["A01", "A02"], "compound": ["DMSO", "taxol"], "dose": [0.0, 1.0]}).to_csv(
        tmp_path / "map.csv", index=False
    )
    res = runner.invoke(
        app,
        [
            "manifest",
            "--opera",
            str(images),
            "--plate-map",
            str(tmp_path / "map.csv"),
            "--out",
            str(tmp_path / "m.csv"),
        ],
    )
    assert res.exit_code == 0, res.output
    man = read_manifest(tmp_path / "m.csv")
    assert man["plate"].tolist() == ["PLATE1", "PLATE1"] and man["compound"].tolist() == ["DMSO", "taxol"]

    model, config = tiny_vit(in_chans=3, seed=8)
    save_checkpoint(model, tmp_path / "ckpt", config)
    out = tmp_path / "emb.h5ad"
    res = runner.invoke(
        app,
        [
            "embed",
            str(tmp_path / "m.csv"),
            "--model",
            str(tmp_path / "ckpt"),
            "--out",
            str(out),
            "--workers",
            "0",
            "--planes",
            "0,1,2",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    adata = read_h5ad(out)
    assert adata.shape == (2 * 4, 64)
    assert adata.obs["compound"].astype(str).tolist() == ["DMSO"] * 4 + ["taxol"] * 4

    res = runner.invoke(
        app,
        [
            "attention",
            str(tmp_path / "m.csv"),
            "--model",
            str(tmp_path / "ckpt"),
            "--out",
            str(tmp_path / "att"),
            "--rows",
            "0,1",
        ],
    )
    assert res.exit_code == 0, res.output
    z = np.load(tmp_path / "att" / "row1_attention.npz")
    assert (tmp_path / "att" / "row1_attention.png").stat().st_size > 1000
    assert z["tile_attention"].shape == (4, 2, 2, 2) and z["field"].shape == (2, 64, 64)
    # oracle: the embedding's tile order and attention_and_keys on the same tile
    loaded, _ = load_backbone(tmp_path / "ckpt", device="cpu")

    field = normalize_intensity(read_field(man.iloc[1]))
    tile = torch.from_numpy(field[:, 32:64, 0:32][None])
    x = (tile - 0.5) / 0.5
    direct = attention_and_keys(loaded, x)["cls_attention"].reshape(1, 2, 2, 2).numpy()
    np.testing.assert_allclose(z["tile_attention"][2], direct[0], rtol=1e-4, atol=1e-6)
    # stitched field: each patch's value fills its 16x16 pixels
    np.testing.assert_allclose(
        z["field"][:, 32:64, 0:32].astype(np.float32),
        np.kron(direct[0], np.ones((16, 16))),
        rtol=1e-3,
        atol=1e-4,
    )


def test_stitch_overlapping_tiles_is_mean():
    values = np.stack([np.ones((1, 1, 1)), 3 * np.ones((1, 1, 1))]).astype(np.float32)
    out = stitch_tiles(values, np.array([[0, 0], [0, 2]]), (4, 6), tile_size=4)
    assert out.shape == (1, 4, 6)
    np.testing.assert_array_equal(out[0, 0], [1, 1, 2, 2, 3, 3])


def test_from_table_real_lincs(shared_data, tmp_path):
    path = shared_data / "profiles" / "lincs_a549_SQ00015054" / "SQ00015054_normalized_feature_select.csv.gz"
    df = pd.read_csv(path)
    adata = from_table(path)
    feats = [c for c in df.columns if not c.startswith("Metadata_")]
    assert adata.var_names.tolist() == feats
    np.testing.assert_array_equal(adata.X, df[feats].to_numpy(np.float32))
    assert adata.obs["Metadata_broad_sample"].tolist() == df["Metadata_broad_sample"].tolist()
    assert adata.uns["lcd"]["level"] == "fov"
    res = runner.invoke(app, ["from-table", str(path), "--out", str(tmp_path / "cp.h5ad"), "--level", "well"])
    assert res.exit_code == 0, res.output
    assert read_h5ad(tmp_path / "cp.h5ad").uns["lcd"]["level"] == "well"


def test_from_table_cellprofiler_columns_and_nan(tmp_path):
    df = pd.DataFrame(
        {
            "ImageNumber": [1, 2, 3],
            "Plate": ["p", "p", "q"],
            "Cells_Area": [1.0, 2.0, 3.0],
            "Nuclei_Intensity": [0.1, np.nan, 0.3],
            "Image_Count_Cells": [10, 20, 30],
        }
    )
    with pytest.raises(ValueError, match=r"1 NaN/inf values in 1 rows \(first rows \[1\]"):
        from_table(df)
    adata = from_table(df, nonfinite="drop_features")
    assert adata.var_names.tolist() == ["Cells_Area", "Image_Count_Cells"]
    assert adata.uns["lcd_embed"]["dropped_features"] == ["Nuclei_Intensity"]
    assert adata.obs.columns.tolist() == ["ImageNumber", "Plate"]
    df.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["from-table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "t.h5ad")])
    assert res.exit_code == 2 and "t.csv" in res.output and "NaN" in res.output


def test_version_and_the_one_list_syntax():
    import lcd_embed
    from lcd_core import split_ints

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lcd-embed {lcd_embed.__version__}"
    # --planes 0,2 and --planes 0 --planes 2 are the same list
    assert split_ints(["0,2"], option="--planes") == split_ints(["0", "2"], option="--planes") == [0, 2]
    result = runner.invoke(app, ["embed", "m.csv", "--model", "x", "--out", "x.h5ad", "--planes", "0,a"])
    assert result.exit_code == 2 and "--planes: expected integers" in result.output
