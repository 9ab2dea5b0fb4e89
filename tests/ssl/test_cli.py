"""`lcd-ssl train | export` on a manifest of image files written by the test; bad input exits with 2."""

import json

import numpy as np
import pandas as pd
import tifffile
from lcd_ssl.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def _manifest(tmp_path, n=8):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = tmp_path / f"field{i}.tif"
        tifffile.imwrite(
            path, (rng.random((3, 64, 64)) * 4000).astype(np.uint16), photometric="minisblack"
        )  # 3 planes
        rows.append(
            {"path": path.name, "replica": f"R{i % 2}", "compound": f"c{i // 4}", "dose": 1.0, "timepoint": 0}
        )
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


TINY = {
    "model_kwargs": {"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8},
    "hidden_dim": 64,
    "bottleneck_dim": 16,
    "n_local_crops": 2,
    "window_size": None,
    "progress": False,
    "precision": "fp32",
    "warmup_epochs": 0.5,
}


def test_train_then_export_from_a_manifest(tmp_path):
    import lcd_embed

    manifest = _manifest(tmp_path)
    args = [
        "train",
        str(manifest),
        "--out",
        str(tmp_path / "run"),
        "--variant",
        "dino+barlow+xb",
        "--model",
        "vit_tiny_patch16_224",
    ]
    args += ["--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "4", "--global-crop-size", "32"]
    args += ["--local-crop-size", "16", "--out-dim", "64", "--set", json.dumps(TINY)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert recs[0]["n_replicas"] == 2 and recs[-1]["step"] == 3
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    _, config = lcd_embed.load_backbone(tmp_path / "ckpt", device="cpu")
    provenance = lcd_embed.read_config(tmp_path / "ckpt")["lcd_ssl"]
    assert config["in_chans"] == 3 and provenance["variant"] == "dino+barlow+xb" and provenance["step"] == 3


def test_bad_input_exits_2_with_one_line(tmp_path):
    manifest = _manifest(tmp_path)
    cases = [
        ["train", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "r")],
        ["train", str(manifest), "--out", str(tmp_path / "r"), "--variant", "simclr"],
        ["train", str(manifest), "--out", str(tmp_path / "r"), "--set", "{not json"],
        ["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1
    bad = pd.read_csv(manifest).drop(columns="replica")
    bad.to_csv(tmp_path / "bad.csv", index=False)
    args = [
        "train",
        str(tmp_path / "bad.csv"),
        "--out",
        str(tmp_path / "r"),
        "--variant",
        "dino+xb",
        "--set",
        json.dumps(TINY),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "'replica'" in result.output


def test_config_file_is_checked_against_train_config(tmp_path):
    """An unknown key or a value of the wrong type in --config / --set is one line naming it, exit 2."""
    manifest = _manifest(tmp_path, n=4)
    cases = [
        ({"epochs": 1, "lerning_rate": 0.1}, "lerning_rate: unknown option"),
        ({"epochs": "3"}, "epochs: expected int, got str '3'"),
        ({"global_crop_scale": [0.4]}, "global_crop_scale: expected"),
        ({"normalization": {"method": "percentile", "gamma": 2}}, "unknown normalization key"),
    ]
    for options, expected in cases:
        (tmp_path / "config.json").write_text(json.dumps(options))
        args = [
            "train",
            str(manifest),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(tmp_path / "config.json"),
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (options, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], lines
    result = runner.invoke(
        app, ["train", str(manifest), "--out", str(tmp_path / "r"), "--set", '{"batchsize": 4}']
    )
    assert (
        result.exit_code == 2
        and "--set.batchsize: unknown option; did you mean 'batch_size'?" in result.output
    )
    assert not (tmp_path / "r").exists()  # refused before any work


def test_version_and_module_entry_point():
    import subprocess
    import sys

    import lcd_ssl

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lcd-ssl {lcd_ssl.__version__}"
    proc = subprocess.run(
        [sys.executable, "-m", "lcd_ssl", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "train" in proc.stdout and "export" in proc.stdout
