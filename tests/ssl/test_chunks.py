"""``batch_chunks``: one process running the global batch as N DDP processes would.

Bit-equality with a real 2-process run is tested in test_ddp.py (torchrun); here, in one process:
the chunked gradient is the gradient of the same loss (an independent oracle: the unchunked run,
which sums the batch in one reduction), and the option's refusals.
"""

import dataclasses

import pytest
import torch
from lcd_ssl import ConfigError, train
from lcd_ssl import distributed as D
from lcd_ssl.checkpoint import load_state


def test_chunked_run_is_the_same_training_in_another_summation_order(tmp_path, tiny_images, tiny_config):
    cfg = tiny_config(variant="dino+barlow+xb", drop_path_rate=0.0, epochs=1, steps_per_epoch=2, threads=1)
    plain = load_state(train(tiny_images, cfg, tmp_path / "plain") / "checkpoint.pt")
    chunked = load_state(
        train(tiny_images, dataclasses.replace(cfg, batch_chunks=2), tmp_path / "chunked") / "checkpoint.pt"
    )
    assert chunked["step"] == plain["step"] == 2
    for part in ("student", "teacher", "loss"):
        for k, v in plain[part].items():
            x = chunked[part][k]
            if k.endswith(
                "attn.qkv.bias"
            ):  # the key bias's gradient is exactly zero: Adam scales its noise to ~lr
                dim = v.shape[0] // 3
                x, v = torch.cat([x[:dim], x[2 * dim :]]), torch.cat([v[:dim], v[2 * dim :]])
            torch.testing.assert_close(x, v, rtol=1e-4, atol=1e-5, msg=f"{part}.{k}")
    moved = max(float((plain["student"][k] - plain["teacher"][k]).abs().max()) for k in plain["student"])
    assert (
        moved > 1e-3
    )  # two steps moved the student away from its EMA teacher: the comparison is not trivial


@pytest.mark.parametrize("value", [0, 3, True])
def test_batch_chunks_must_divide_the_batch(tiny_config, value):
    with pytest.raises(ConfigError, match="batch_chunks"):
        tiny_config(batch_chunks=value).validate()  # batch_size 8


def test_batch_chunks_under_torchrun_must_be_the_number_of_processes(
    tmp_path, tiny_images, tiny_config, monkeypatch
):
    monkeypatch.setattr(D, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match="batch_chunks=4 with 2 processes"):
        train(tiny_images, tiny_config(batch_chunks=4), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
