"""`lcd run` under torchrun: 2 gloo processes on CPU give the outputs of 1 process, bit for bit; failures stop every rank.

The reduced demo plate (3 replicas, 9 MoA compounds + 1 inert at 10 µM, 2 timepoints, 2 fields per well,
20 SSL steps) keeps every stage of `lcd demo` and fits the test budget.

Why the two runs are equal, not merely close (measured 2026-12-02, x86_64, 2 cores, no GPU):

- train: the 2-process run trains DDP with the global batch of 16 split 8 + 8; the 1-process run sets
  ``ssl.batch_chunks: 2`` (lcd-ssl 0.3.0; both configs carry it: under torchrun it must equal the number
  of processes, and it changes nothing there) and runs the two halves as the two processes do: each half
  forwarded alone, its gradient halved, the two added (and the teacher centers from the two halves'
  sums). Every sum that crosses processes then has two terms, and a + b == b + a in floating point,
  so the exported weights are bit-identical. Without it the 1-process run sums the 16 rows in one
  reduction: the weights differed by up to 8.9e-7, tile features by 1.4e-6, MAD profiles by 1.3e-4,
  which moved mAP-ES by up to 1.45 and flipped 2 of 20 activity calls (the former strict xfail): the
  compounds' mAP were equal, the null of random control sets moved (mean 0.294 -> 0.261 at timepoint 2), as
  control wells are alike and their ranks are decided by differences of that size.
  Both runs use one torch thread (``threads: 1``, ``OMP_NUM_THREADS=1``): torch sums layer-norm
  gradients in an order that depends on the thread count. Stochastic depth is off: it draws a mask per
  process, which one process cannot reproduce.
- embed: the manifest is cut into shards of ``shard_size`` rows whatever the number of processes and
  batches are made inside a shard, so every tile goes through the model in the same batch; rank k
  embeds shards k, k+2, ... (the same model on the same batches: bit-identical features; also
  measured identical with 1 and 2 threads).
- every other stage runs on rank 0 from the same files with the same seeds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lcd_core import read_h5ad, read_tiles
from lcd_pipeline.distributed import (
    DISTRIBUTED_STAGES,
    Ranks,
    everywhere,
    launch,
    on_main,
    run_stage,
    torchrun_command,
)
from safetensors.torch import load_file

REDUCED = {
    "preset": "quick",
    "threads": 1,
    "ssl": {"steps_per_epoch": 20, "batch_size": 16, "drop_path_rate": 0.0, "batch_chunks": 2},
    "embed": {"shard_size": 16},
    "metrics": {"n_draws": 50},
    "moa": {"n_folds": 2, "drop_small_classes": True},
    "attention": {"n_fields": 1},
    "nuclei": {"fields_per_well": 1},
}
PLATE = {
    "preset": "demo",
    "seed": 3,
    "n_replicas": 3,
    "moas": ["tubulin", "actin", "hdac"],
    "compounds_per_moa": 3,
    "n_inert": 1,
    "doses": [10.0],
    "timepoint_hours": [24.0, 48.0],
    "n_dmso": 16,
    "fovs_per_well": 2,
}

ONE_THREAD = {
    "OMP_NUM_THREADS": "1"
}  # numpy's BLAS too: the per-process count `lcd run --nproc 2` sets on 2 cores


def _lcd(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "lcd_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same config run by one process, then by `lcd run --nproc 2` on the same images."""
    root = tmp_path_factory.mktemp("dist")
    one_cfg = root / "one.yaml"
    one_cfg.write_text(yaml.safe_dump({**REDUCED, "results": "one", "input": {"simulate": PLATE}}))
    res = _lcd("run", str(one_cfg), env=ONE_THREAD)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    two_cfg = root / "two.yaml"
    two_cfg.write_text(
        yaml.safe_dump({**REDUCED, "results": "two", "input": {"manifest": "one/manifest.parquet"}})
    )
    res2 = _lcd("run", "--nproc", "2", str(two_cfg), env=ONE_THREAD)
    assert res2.returncode == 0, res2.stdout[-3000:] + res2.stderr[-5000:]
    return root / "one", root / "two", res2


@pytest.mark.slow
def test_two_processes_ran_train_and_embed_and_rank0_the_rest(runs):
    _, two, res = runs
    records = [json.loads(line) for line in (two / "stages.jsonl").read_text().splitlines()]
    ran = {r["stage"]: r for r in records if r["status"] == "ran"}
    assert set(ran) == {
        "manifest",
        "train",
        "embed",
        "normalize",
        "wells",
        "nuclei",
        "activity",
        "moa",
        "attention",
        "report",
    }
    for name in ran:  # rank 0 records every stage once; only train and embed ran on 2 processes
        assert ran[name]["processes"] == (2 if name in ("train", "embed") else 1), name
    assert res.stdout.count("[done] embed") == 1  # the other rank is silent
    assert (two / "report.html").exists()


@pytest.mark.slow
def test_two_processes_give_the_one_process_outputs_bit_for_bit(runs):
    one, two, _ = runs
    m1 = load_file(one / "model" / "model.safetensors")
    m2 = load_file(two / "model" / "model.safetensors")
    assert sorted(m2) == sorted(m1)
    assert [k for k in m1 if not torch.equal(m1[k], m2[k])] == []
    t1, t2 = read_tiles(one / "embeddings.parquet"), read_tiles(two / "embeddings.parquet")
    pd.testing.assert_frame_equal(t2.obs.astype(str), t1.obs.astype(str))
    np.testing.assert_array_equal(t2.X, t1.X)
    f1, f2 = read_h5ad(one / "profiles_fov.h5ad"), read_h5ad(two / "profiles_fov.h5ad")
    pd.testing.assert_frame_equal(f2.obs, f1.obs)
    np.testing.assert_array_equal(f2.X, f1.X)
    assert sorted(f2.obsm) == sorted(f1.obsm) and len(f1.obsm) >= 4  # MAD, Harmony, MAD+Harmony/FOV, MNN
    for key in f1.obsm:
        np.testing.assert_array_equal(f2.obsm[key], f1.obsm[key], err_msg=key)
    w1, w2 = read_h5ad(one / "profiles_well.h5ad"), read_h5ad(two / "profiles_well.h5ad")
    pd.testing.assert_frame_equal(w2.obs, w1.obs)
    np.testing.assert_array_equal(w2.X, w1.X)
    c1, c2 = read_h5ad(one / "nuclei" / "counts.h5ad"), read_h5ad(two / "nuclei" / "counts.h5ad")
    np.testing.assert_array_equal(c2.obs["nuclei_count"].to_numpy(), c1.obs["nuclei_count"].to_numpy())


@pytest.mark.slow
def test_two_processes_give_the_one_process_activity_and_moa(runs):
    one, two, _ = runs
    a1, a2 = pd.read_parquet(one / "activity.parquet"), pd.read_parquet(two / "activity.parquet")
    pd.testing.assert_frame_equal(a2, a1)  # every column: mAP-ES, p-values, status, active
    assert a1["active"].sum() >= 4  # the MoA stage had active compounds to work on
    p1 = pd.read_parquet(one / "moa" / "predictions.parquet")
    p2 = pd.read_parquet(two / "moa" / "predictions.parquet")
    assert len(p1) > 0
    pd.testing.assert_frame_equal(p2, p1)


# ------------------------------------------------------------------ the layer itself (fast)


def test_one_process_is_plain_calls():
    alone = Ranks()
    assert on_main(alone, lambda: 3) == 3 and everywhere(alone, lambda: 4) == 4
    assert run_stage(alone, "train", lambda: 5) == 5 and run_stage(alone, "report", lambda: 6) == 6
    with pytest.raises(ZeroDivisionError):  # a bug keeps its own exception and traceback
        on_main(alone, lambda: 1 / 0)
    assert DISTRIBUTED_STAGES == ("train", "embed")


def test_torchrun_command_and_refusals(monkeypatch):
    from lcd_core import InputError

    cmd = torchrun_command(2, ["run", "cfg.yaml"])
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert "--nproc_per_node=2" in cmd and cmd[-3:] == ["lcd_pipeline", "run", "cfg.yaml"]
    with pytest.raises(InputError, match="at least 1"):
        launch(0, ["run", "x.yaml"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="drop it"):
        launch(2, ["run", "x.yaml"])


FAILING = textwrap.dedent(
    """
    import sys
    from lcd_core import InputError
    from lcd_pipeline import distributed as d
    ranks = d.join()
    which = sys.argv[1]
    try:
        if which == "main":
            d.run_stage(ranks, "normalize", lambda: (_ for _ in ()).throw(InputError("bad table x.parquet")))
        else:
            def work():
                if ranks.rank == 1:
                    raise InputError("rank one cannot read f.tif")
                return "ok"
            d.run_stage(ranks, "embed", work)
    except InputError as exc:
        print(f"rank {ranks.rank}: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(2)
    finally:
        d.leave(ranks)
    """
)


@pytest.mark.parametrize("which", ["main", "everywhere"])
def test_a_failing_stage_stops_every_rank_with_its_reason(tmp_path, which):
    """No rank is left waiting in a collective: each exits with the failing rank's one-line reason."""
    script = tmp_path / "fail.py"
    script.write_text(FAILING)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        which,
    ]
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert res.returncode != 0
    # two processes share stdout: one rank's line can land in the middle of the other's, so the
    # messages are split at each "rank N: " rather than at newlines
    lines = sorted(m.strip() for m in re.findall(r"rank \d+: (?:(?!rank \d+: )[^\n])*", res.stdout))
    if which == "main":
        assert lines == [
            "rank 0: InputError: bad table x.parquet",
            "rank 1: RankFailed: rank 0 failed: InputError: bad table x.parquet",
        ]
    else:
        assert lines == [
            "rank 0: RankFailed: rank 1 failed: InputError: rank one cannot read f.tif",
            "rank 1: InputError: rank one cannot read f.tif",
        ]
