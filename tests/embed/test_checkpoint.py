"""Checkpoint format: save/load round trip, timm name + local weights (safetensors, weights-only pth)."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch
from lcd_embed import CheckpointError, InputError, load_backbone, read_config, save_checkpoint


def test_round_trip_identical_outputs(tmp_path, tiny_vit):
    model, config = tiny_vit(in_chans=3, seed=3)
    config["preprocessing"]["mean"] = [0.1, 0.2, 0.3]
    folder = save_checkpoint(model, tmp_path / "ckpt", config)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    saved = json.loads((folder / "config.json").read_text())
    assert saved["timm_kwargs"]["depth"] == 2 and saved["embed_dim"] == 64 and saved["in_chans"] == 3
    torch.manual_seed(99)  # a different init: the weights must come from the file
    loaded, cfg2 = load_backbone(folder, device="cpu")
    assert cfg2["preprocessing"]["mean"] == [0.1, 0.2, 0.3]
    x = torch.randn(2, 3, 48, 64)  # dynamic image size
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert read_config(folder)["timm_name"] == "vit_tiny_patch16_224"


def _load_tiny(weights, **overrides):
    """``load_backbone`` of the one-plane tiny ViT (depth 2, 64 dims, 2 heads) with local weights."""
    arch = {"in_chans": 1, "depth": 2, "embed_dim": 64, "num_heads": 2, **overrides}
    return load_backbone("vit_tiny_patch16_224", weights=weights, device="cpu", **arch)


def test_timm_name_with_local_weights(tmp_path, tiny_vit):
    model, _ = tiny_vit(in_chans=1, seed=4)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.head.weight"] = torch.zeros(10, 64)  # a classifier head is dropped
    torch.save({"teacher": state, "epoch": 3}, tmp_path / "dino.pth")
    loaded, _ = _load_tiny(tmp_path / "dino.pth", img_size=32)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    # weights trained at another size: position embedding resampled
    big, _ = _load_tiny(tmp_path / "dino.pth", img_size=64)
    assert big.pos_embed.shape == (1, 1 + 16, 64)
    # wrong architecture named
    with pytest.raises(InputError, match="shape"):
        _load_tiny(tmp_path / "dino.pth", embed_dim=32)


def test_refuses_pickles_and_bad_specs(tmp_path):
    # any non-tensor object needs unpickling code execution, which weights_only refuses
    torch.save({"obj": argparse.Namespace(cmd="rm -rf /")}, tmp_path / "evil.pth")
    with pytest.raises(InputError, match="weights_only"):
        load_backbone("vit_tiny_patch16_224", weights=tmp_path / "evil.pth")
    with pytest.raises(InputError, match="neither a checkpoint folder nor a timm model"):
        load_backbone(str(tmp_path / "no_such_ckpt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no config\.json"):
        load_backbone(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        load_backbone("vit_tiny_patch16_224", weights=tmp_path / "missing.safetensors")


class _RunsCode:
    """Pickles as a call of os.system: what a malicious .pth holds (never executed: weights_only refuses)."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_checkpoint_errors_are_one_line(tmp_path, tiny_vit):
    model, config = tiny_vit(in_chans=1, seed=5)
    folder = save_checkpoint(model, tmp_path / "ckpt", config)

    def one_line(call, start):
        with pytest.raises(CheckpointError) as err:
            call()
        message = str(err.value)
        assert message.startswith(start) and "\n" not in message and len(message) < 400, message
        assert "Weights only load failed" not in message
        return message

    # a code-carrying pickle as weights of a timm name: refused, torch's long explanation not passed on
    torch.save(_RunsCode(), tmp_path / "evil.pth")
    message = one_line(
        lambda: _load_tiny(tmp_path / "evil.pth"),
        f"{tmp_path / 'evil.pth'} is not an lcd checkpoint: it holds",
    )
    assert "system" in message
    # a truncated torch file
    torch.save(model.state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    one_line(
        lambda: _load_tiny(tmp_path / "cut.pth"),
        f"{tmp_path / 'cut.pth'} is not an lcd checkpoint: truncated",
    )
    # a file given where a checkpoint folder is expected
    one_line(
        lambda: load_backbone(tmp_path / "full.pth"),
        f"{tmp_path / 'full.pth'} is not an lcd checkpoint: a file",
    )
    # a damaged config and truncated weights in a checkpoint folder
    (folder / "config.json").write_text("{not json")
    one_line(
        lambda: load_backbone(folder), f"{folder} is not an lcd checkpoint: config.json is not valid JSON"
    )
    save_checkpoint(model, folder, config)
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[: len(weights) // 3])
    one_line(
        lambda: load_backbone(folder), f"{folder} is not an lcd checkpoint: model.safetensors is truncated"
    )
    assert issubclass(CheckpointError, InputError)
