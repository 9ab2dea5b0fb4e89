"""Bad input is an lcd_core.InputError (CLI: one line, exit 2); a bug is not posed as bad input."""

import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import CheckpointError, InputError
from lcd_nuclei import DiscoveryParams, count_nuclei, discover_field
from lcd_nuclei.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def _one_error_line(result, *expected):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture
def field_manifest(tmp_path, dsb_cases):
    image = tmp_path / "field.tif"
    tifffile.imwrite(image, dsb_cases[0][2][:128, :128].astype(np.uint8))
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"plate": ["P1"], "well": ["A01"], "compound": ["DMSO"], "path": [image.name]}).to_csv(
        path, index=False
    )
    return path


def test_missing_column(tmp_path, tiny_vit, field_manifest):
    bad = tmp_path / "no_path.csv"
    pd.DataFrame({"plate": ["P1"], "image": ["field.tif"]}).to_csv(bad, index=False)
    args = ["count", str(bad), "--model", str(tiny_vit[2]), "--out", str(tmp_path / "x.h5ad")]
    _one_error_line(runner.invoke(app, args), str(bad), "no image path column")
    (tmp_path / "labels").mkdir()
    args = ["evaluate", str(tmp_path / "labels"), str(field_manifest), "--reference-column", "truth"]
    _one_error_line(runner.invoke(app, args), "column 'truth' not found")


def test_bad_image(tmp_path, tiny_vit, field_manifest):
    (tmp_path / "field.tif").write_bytes(b"II*\x00" + bytes(40))  # a TIFF header, then nothing
    args = ["count", str(field_manifest), "--model", str(tiny_vit[2]), "--out", str(tmp_path / "x.h5ad")]
    _one_error_line(runner.invoke(app, args), "field.tif")
    with pytest.raises(InputError, match="NaN or inf"):
        discover_field(np.full((64, 64), np.nan), tiny_vit[0], tiny_vit[1])
    with pytest.raises(InputError, match="n_clusters"):
        DiscoveryParams(n_clusters=1)


def test_bad_checkpoint(tmp_path, tiny_vit, field_manifest):
    args = ["count", str(field_manifest), "--out", str(tmp_path / "x.h5ad"), "--model"]
    empty = tmp_path / "empty_ckpt"
    empty.mkdir()
    _one_error_line(
        runner.invoke(app, [*args, str(empty)]), f"{empty} is not an lcd checkpoint: no config.json"
    )
    cut = tmp_path / "cut_ckpt"
    shutil.copytree(tiny_vit[2], cut)
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    _one_error_line(
        runner.invoke(app, [*args, str(cut)]),
        f"{cut} is not an lcd checkpoint: model.safetensors is truncated",
    )
    with pytest.raises(CheckpointError):
        count_nuclei(field_manifest, cut, progress=False, device="cpu")


def test_a_bug_keeps_its_traceback(tmp_path, tiny_vit, field_manifest, monkeypatch):
    """A KeyError inside the library is a bug: the CLI does not turn it into 'bad input' (exit 2)."""
    import lcd_nuclei.count

    def broken(*args, **kwargs):
        raise KeyError("a bug in discovery")

    monkeypatch.setattr(lcd_nuclei.count, "discover_field", broken)
    args = ["count", str(field_manifest), "--model", str(tiny_vit[2]), "--out", str(tmp_path / "x.h5ad")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
    assert "error:" not in result.output
