"""`lcd run` under torchrun: 2 gloo processes on CPU give the outputs of 1 process; failures stop every rank.

The reduced demo plate (3 replicas, 9 MoA compounds + 1 inert at 10 µM, 2 timepoints, 2 fields per well,
20 SSL steps) keeps every stage of `lcd demo` and fits the test budget. Training runs DDP with the
global batch split over the two processes; stochastic depth is off (it draws a mask per process, so
two processes cannot reproduce one process's draws: the same distribution, not the same numbers).
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

REDUCED = {
    "preset": "quick",
    "ssl": {"steps_per_epoch": 20, "batch_size": 16, "drop_path_rate": 0.0},
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
    res = _lcd("run", str(one_cfg))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    two_cfg = root / "two.yaml"
    two_cfg.write_text(
        yaml.safe_dump({**REDUCED, "results": "two", "input": {"manifest": "one/manifest.parquet"}})
    )
    res2 = _lcd("run", "--nproc", "2", str(two_cfg))
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
def test_two_processes_give_the_one_process_outputs(runs):
    one, two, _ = runs
    # Two processes differ from one only by the order of float sums (DDP's gradient all-reduce, the
    # gathered Barlow batch): on 2026-12-02 the exported weights differed by at most 7e-7, tile
    # features by 1.2e-6 (values up to 3.4), MAD-robustized profiles by 9e-5 (MAD divides by small
    # spreads), and mAP-ES, activity calls, MoA predictions and nuclei counts were identical.
    t1, t2 = read_tiles(one / "embeddings.parquet"), read_tiles(two / "embeddings.parquet")
    pd.testing.assert_frame_equal(t2.obs.astype(str), t1.obs.astype(str))
    np.testing.assert_allclose(t2.X, t1.X, rtol=1e-5, atol=1e-5)
    f1, f2 = read_h5ad(one / "profiles_fov.h5ad"), read_h5ad(two / "profiles_fov.h5ad")
    pd.testing.assert_frame_equal(f2.obs, f1.obs)
    np.testing.assert_allclose(f2.X, f1.X, rtol=1e-5, atol=1e-5)
    for key in f1.obsm:
        np.testing.assert_allclose(f2.obsm[key], f1.obsm[key], rtol=1e-4, atol=1e-3, err_msg=key)
    w1, w2 = read_h5ad(one / "profiles_well.h5ad"), read_h5ad(two / "profiles_well.h5ad")
    pd.testing.assert_frame_equal(w2.obs, w1.obs)
    np.testing.assert_allclose(w2.X, w1.X, rtol=1e-4, atol=1e-3)
    c1, c2 = read_h5ad(one / "nuclei" / "counts.h5ad"), read_h5ad(two / "nuclei" / "counts.h5ad")
    np.testing.assert_array_equal(c2.obs["nuclei_count"].to_numpy(), c1.obs["nuclei_count"].to_numpy())


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="lcd-metrics 0.3.0 map_es (merged 2026-12-02): well profiles differing by <= 5.6e-5 (values up "
    "to 7.7) give mAP-ES differing by up to 2.2 on this reduced plate and flip 2 of 20 calls; deterministic "
    "on equal input. Passed with lcd-metrics 0.2. For the integrator / h-metrics to decide.",
)
def test_two_processes_give_the_one_process_activity_and_moa(runs):
    one, two, _ = runs
    a1, a2 = pd.read_parquet(one / "activity.parquet"), pd.read_parquet(two / "activity.parquet")
    keys = ["compound", "dose", "timepoint"]
    pd.testing.assert_frame_equal(a2[[*keys, "status", "active"]], a1[[*keys, "status", "active"]])
    assert a1["active"].sum() >= 4  # the MoA stage had active compounds to work on
    np.testing.assert_allclose(a2["map_es"], a1["map_es"], rtol=0, atol=1e-3)
    p1 = pd.read_parquet(one / "moa" / "predictions.parquet")
    p2 = pd.read_parquet(two / "moa" / "predictions.parquet")
    assert len(p1) > 0
    pd.testing.assert_frame_equal(
        p2[["method", "compound", "predicted"]], p1[["method", "compound", "predicted"]]
    )


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
