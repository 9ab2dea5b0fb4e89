"""Bad fields: named errors by default; with on_error='skip' recorded in uns and a CSV, the rest embedded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import read_h5ad
from lcd_embed import InputError, embed
from lcd_embed.cli import app
from typer.testing import CliRunner


@pytest.fixture
def messy(tmp_path, rng):
    """Two good 3-plane fields, then a missing file, a corrupt file, a 2-plane stack and an undersized field."""
    paths = []
    for name, shape in (
        ("good0", (3, 40, 40)),
        ("good1", (3, 40, 40)),
        ("twoplanes", (2, 40, 40)),
        ("small", (3, 20, 40)),
    ):
        p = tmp_path / f"{name}.tif"
        tifffile.imwrite(p, rng.integers(0, 999, shape, dtype=np.uint16), photometric="minisblack")
        paths.append(p)
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + bytes(50))
    order = [paths[0], tmp_path / "missing.tif", corrupt, paths[1], paths[2], paths[3]]
    man = pd.DataFrame({"well": [f"A0{i + 1}" for i in range(6)], "path": [str(p) for p in order]})
    man_path = tmp_path / "manifest.csv"
    man.to_csv(man_path, index=False)
    return man_path


def test_raise_names_the_file(messy, tiny_vit):
    model = tiny_vit(in_chans=3)
    with pytest.raises(InputError, match=r"missing\.tif"):
        embed(messy, model, num_workers=0, progress=False)


def test_skip_records_failures(messy, tiny_vit, tmp_path):
    model = tiny_vit(in_chans=3)
    out = tmp_path / "emb.h5ad"
    adata = embed(messy, model, out=out, on_error="skip", num_workers=0, progress=False, shard_size=2)
    assert sorted(set(adata.obs["manifest_row"])) == [0, 3]
    assert adata.n_obs == 2 and adata.obs["well"].astype(str).tolist() == ["A01", "A04"]
    fails = pd.read_csv(tmp_path / "emb.failures.csv")
    assert fails["manifest_row"].tolist() == [1, 2, 4, 5]
    errors = dict(zip(fails["manifest_row"], fails["error"], strict=True))
    assert "missing.tif" in errors[1] and "corrupt.tif" in errors[2]
    assert "2 planes, but the first field of the manifest has 3" in errors[4]
    assert "smaller than one 32x32 tile" in errors[5] and "small.tif" in errors[5]
    stored = read_h5ad(out).uns["lcd_embed"]["failures"]
    assert list(stored["manifest_row"]) == [1, 2, 4, 5]


def test_cli_exit_code_2(messy, tmp_path):
    runner = CliRunner()
    args = [
        "embed",
        str(messy),
        "--model",
        "vit_tiny_patch16_224",
        "--out",
        str(tmp_path / "x.h5ad"),
        "--workers",
        "0",
        "--tile-size",
        "32",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "missing.tif" in res.output
    res = runner.invoke(
        app, ["embed", str(tmp_path / "nope.csv"), "--model", "vit_tiny_patch16_224", "--out", "x.h5ad"]
    )
    assert res.exit_code == 2 and "nope.csv" in res.output
    res = runner.invoke(
        app, ["embed", str(messy), "--model", "vit_tiny_patch16_224", "--out", str(tmp_path / "x.txt")]
    )
    assert res.exit_code == 2 and ".h5ad or .zarr" in res.output
