"""Kill/resume reproducibility, non-finite loss handling, export round trip."""

import json

import lcd_ssl
import lcd_ssl.losses
import pytest
import torch
from lcd_ssl import NonFiniteLossError, export_backbone, train
from lcd_ssl.checkpoint import load_state


def _weights(run):
    s = load_state(run / "checkpoint.pt")
    return s


def _assert_same_state(a, b):
    for part in ("student", "teacher", "loss"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k]))
    assert a["step"] == b["step"]


@pytest.mark.parametrize("variant", ["pa+dino+barlow+xb", "dino"])
def test_killed_and_resumed_run_is_bit_identical(tmp_path, tiny_images, variant, tiny_config):
    cfg = tiny_config(variant=variant, precision="bf16" if variant == "dino" else "fp32")
    full = train(tiny_images, cfg, tmp_path / "full")

    # a crash after step 5 (checkpoints at 3 and at the epoch end, 4): the run restarts from step 4
    def crash(record):
        if record["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_images, cfg, tmp_path / "resumed", on_step=crash)
    assert load_state(tmp_path / "resumed" / "checkpoint.pt")["step"] == 4
    train(tiny_images, cfg, tmp_path / "resumed")
    _assert_same_state(_weights(full), _weights(tmp_path / "resumed"))
    steps = [
        json.loads(line).get("step")
        for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(9))  # the start record (step 0), then each step once (crashed step 5 replaced)


def test_max_steps_stops_with_checkpoint_and_continues(tmp_path, tiny_images, tiny_config):
    cfg = tiny_config(variant="dino+barlow")
    full = train(tiny_images, cfg, tmp_path / "full")
    train(tiny_images, cfg, tmp_path / "part", max_steps=2)
    assert load_state(tmp_path / "part" / "checkpoint.pt")["step"] == 2
    train(tiny_images, cfg, tmp_path / "part")
    _assert_same_state(_weights(full), _weights(tmp_path / "part"))


def test_resume_with_different_options_is_refused(tmp_path, tiny_images, tiny_config):
    train(tiny_images, tiny_config(), tmp_path / "run", max_steps=1)
    with pytest.raises(lcd_ssl.ConfigError, match="lr"):
        train(tiny_images, tiny_config(lr=0.1), tmp_path / "run")


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path, tiny_images, monkeypatch, tiny_config):
    cfg = tiny_config(variant="dino")
    run = tmp_path / "run"
    train(tiny_images, cfg, run, max_steps=3)
    before = _weights(run)
    real = lcd_ssl.losses.dino_cross_entropy

    def poisoned(logp, q):
        return real(logp, q) * float("nan")

    monkeypatch.setattr(lcd_ssl.losses, "dino_cross_entropy", poisoned)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 4"):
        train(tiny_images, cfg, run)
    _assert_same_state(before, _weights(run))


def test_export_round_trip_with_lcd_embed(tmp_path, tiny_images, tiny_config):
    import lcd_embed

    cfg = tiny_config(variant="dino+barlow+xb")
    run = train(tiny_images, cfg, tmp_path / "run", max_steps=2)
    folder = export_backbone(run, tmp_path / "ckpt")
    model, config = lcd_embed.load_backbone(folder, device="cpu")
    assert config["in_chans"] == 3 and config["embed_dim"] == 64 and config["patch_size"] == 8
    assert config["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    # the exported weights are the teacher backbone's: same features on the same input
    state = load_state(run / "checkpoint.pt")
    teacher = {
        k.removeprefix("backbone."): v for k, v in state["teacher"].items() if k.startswith("backbone.")
    }
    for k, v in model.state_dict().items():
        assert torch.equal(v, teacher[k]), k
    x = torch.randn(2, 3, 48, 48)
    ref = lcd_embed.load_backbone(cfg.model, **cfg.model_kwargs, in_chans=3, img_size=32, device="cpu")[0]
    ref.load_state_dict(teacher)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))


def test_dataloader_workers_do_not_change_results(tmp_path, tiny_images, tiny_config):
    """Crops come from per-sample seeds, so 2 worker processes give the weights of in-process loading."""
    cfg = tiny_config(variant="pa+dino+barlow+xb", epochs=1, steps_per_epoch=3)
    a = train(tiny_images, cfg, tmp_path / "w0")
    b = train(tiny_images, cfg.replace(num_workers=2), tmp_path / "w2")
    _assert_same_state(_weights(a), _weights(b))


def test_unusable_training_checkpoints_are_one_line(tmp_path, tiny_images, tiny_config):
    """A plain state dict, a truncated file, or a pickle that runs code: `<path> is not an lcd checkpoint: ...`."""
    import os

    from lcd_core import CheckpointError

    run = train(tiny_images, tiny_config(), tmp_path / "run", max_steps=1)
    state_file = run / "checkpoint.pt"
    good = state_file.read_bytes()

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    plain = {k: v for k, v in load_state(state_file)["teacher"].items()}
    cases = {
        "a plain state dict": lambda: torch.save(plain, state_file),
        "truncated or damaged": lambda: state_file.write_bytes(good[: len(good) // 2]),
        "it holds a Python object": lambda: torch.save({"format": RunsCode()}, state_file),
    }
    for reason, damage in cases.items():
        damage()
        for call in (
            lambda: export_backbone(run, tmp_path / "ckpt"),
            lambda: train(tiny_images, tiny_config(), run),
        ):
            with pytest.raises(CheckpointError) as err:
                call()
            message = str(err.value)
            assert message.startswith(f"{state_file} is not an lcd checkpoint: {reason}"), message
            assert "\n" not in message and "Weights only load failed" not in message


def test_export_init_is_the_runs_weights_before_its_first_step(tmp_path, tiny_images, tiny_config):
    """Oracle: the student after one step at a learning rate of 1e-30 (no weight moves measurably)."""
    import lcd_embed

    cfg = tiny_config(variant="dino", lr=1e-30, min_lr=0.0, warmup_epochs=0.0, precision="fp32")
    run = train(tiny_images, cfg, tmp_path / "still", max_steps=1)
    init = export_backbone(run, tmp_path / "init", which="init")
    student = export_backbone(run, tmp_path / "student", which="student")
    m_init, _ = lcd_embed.load_backbone(init, device="cpu")
    m_student, _ = lcd_embed.load_backbone(student, device="cpu")
    a, b = m_init.state_dict(), m_student.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-20), k
    meta = json.loads((init / "config.json").read_text())
    assert meta["lcd_ssl"]["which"] == "init" and meta["lcd_ssl"]["step"] == 0
    assert meta["preprocessing"] == json.loads((student / "config.json").read_text())["preprocessing"]
    # a trained run's teacher is not its init
    trained = train(tiny_images, tiny_config(variant="dino"), tmp_path / "trained")
    t = lcd_embed.load_backbone(export_backbone(trained, tmp_path / "t"), device="cpu")[0].state_dict()
    i = lcd_embed.load_backbone(export_backbone(trained, tmp_path / "i", which="init"), device="cpu")[0]
    assert any(not torch.equal(t[k], i.state_dict()[k]) for k in t)


def test_export_which_is_checked(tmp_path, tiny_images, tiny_config):
    run = train(tiny_images, tiny_config(variant="dino"), tmp_path / "run", max_steps=1)
    import lcd_core

    with pytest.raises(lcd_core.ConfigError, match="init"):
        export_backbone(run, tmp_path / "x", which="random")
