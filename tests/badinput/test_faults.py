"""Faults: ``kill -9`` during every stage of ``lcd run``, during ``lcd-embed embed`` and ``lcd-ssl train``;
two runs on one results folder; thread counts.

What must hold (issue #19, item 3):

- a killed run leaves every output either as it was before (intact) or absent, never half-written;
- the rerun resumes to the same result as an uninterrupted run (bit-identical on CPU), and leaves no
  temporary files or folders (``.tmp-*``, ``.old-*``, ``<out>.shards/``) behind;
- a second ``lcd run`` on a results folder in use refuses in one line naming the lock;
- map_es, MoA, SSL and nuclei give identical results with ``OMP_NUM_THREADS=1`` and ``2``.

Every run is a real subprocess (the kill is a real SIGKILL). The reduced plate keeps each pipeline run
to seconds; these tests are marked ``slow`` (still in the default run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: The reduced plate: 2 replicas x (9 compounds + 8 DMSO) wells, one dose, one timepoint, 2 fields per
#: well of 64 px; 4 training steps with a checkpoint after each; every stage of `lcd run` applies.
FAULT_CONFIG = {
    "preset": "quick",
    "threads": 1,
    "input": {
        "simulate": {
            "preset": "demo",
            "seed": 1,
            "timepoint_hours": [48.0],
            "doses": [10.0],
            "n_replicas": 2,
            "moas": ["tubulin", "actin"],
            "compounds_per_moa": 4,
            "n_inert": 1,
            "n_dmso": 8,
            "fovs_per_well": 2,
            "image_size": 64,
        }
    },
    "ssl": {"steps_per_epoch": 4, "batch_size": 8, "checkpoint_every": 1},
    "embed": {"batch_size": 16, "shard_size": 8},
    "norm": {"null_size": 20},
    # every compound x condition is called active (mAP-ES >= -10), so the MoA stage has its two classes of
    # four compounds on this tiny plate; activity calls are not what these tests check
    "metrics": {"n_draws": 20, "threshold": -10.0},
    "moa": {"n_folds": 2, "drop_small_classes": True},
    "attention": {"n_fields": 1},
    "nuclei": {"fields_per_well": 1},
}

TEMP_MARKERS = (".tmp-", ".old-")


def _env(threads: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _lcd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lcd_pipeline", *args]


def _write_config(folder: Path, results: Path, **changes) -> Path:
    cfg = json.loads(json.dumps(FAULT_CONFIG))
    cfg["results"] = str(results)
    for key, value in changes.items():
        section, leaf = key.split(".")
        cfg[section][leaf] = value
    path = folder / f"config-{results.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_to_end(config: Path, timeout: int = 600) -> str:
    done = subprocess.run(
        _lcd("run", str(config)), capture_output=True, text=True, env=_env(), timeout=timeout, cwd=REPO
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _run_and_kill(args: list[str], wait_for: str, delay: float, *, timeout: float = 300) -> str:
    """Start ``args``; once a stdout line contains ``wait_for``, wait ``delay`` s and SIGKILL it."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        cwd=REPO,
        start_new_session=True,
    )
    seen, start = [], time.monotonic()
    try:
        for line in proc.stdout:
            seen.append(line)
            if wait_for in line:
                time.sleep(delay)
                break
            assert time.monotonic() - start < timeout, "".join(seen)
        else:
            pytest.fail(f"the run ended before {wait_for!r}:\n{''.join(seen)[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process and any worker it started
        proc.wait()
    return "".join(seen)


# ------------------------------------------------------------------------------ comparing folders


def _leftovers(root: Path) -> list[str]:
    """Temporary files/folders and shard folders anywhere under ``root``."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if any(m in p.name for m in TEMP_MARKERS) or p.name.endswith(".shards")
    )


def _relative(frame: pd.DataFrame, root: Path | None) -> pd.DataFrame:
    """Text columns with the results folder written as ``<results>`` (image paths are absolute)."""
    if root is None:
        return frame
    frame = frame.copy()
    # path columns may be categorical (their categories are the absolute paths): compared as text
    text = [
        c
        for c in frame.columns
        if frame[c].dtype == object or isinstance(frame[c].dtype, pd.CategoricalDtype)
    ]
    for col in text:
        frame[col] = frame[col].astype(str).str.replace(str(root), "<results>", regex=False)
    return frame


def _same_h5ad(a: Path, b: Path, roots=(None, None)) -> None:
    from lcd_core import read_h5ad

    x, y = read_h5ad(a), read_h5ad(b)
    assert np.array_equal(np.asarray(x.X), np.asarray(y.X)), a
    pd.testing.assert_frame_equal(_relative(x.obs, roots[0]), _relative(y.obs, roots[1]))
    assert sorted(x.obsm) == sorted(y.obsm), a
    for key in x.obsm:
        assert np.array_equal(np.asarray(x.obsm[key]), np.asarray(y.obsm[key])), (a, key)


def _same_parquet(a: Path, b: Path, roots=(None, None)) -> None:
    x, y = pd.read_parquet(a), pd.read_parquet(b)
    pd.testing.assert_frame_equal(_relative(x, roots[0]), _relative(y, roots[1]))


def _same_file(a: Path, b: Path, roots=(None, None)) -> None:
    """Equal contents; ``roots`` (this run's and the reference's results folders) for image paths."""
    if a.suffix == ".h5ad":
        _same_h5ad(a, b, roots)
    elif a.suffix == ".parquet":
        _same_parquet(a, b, roots)
    elif a.suffix == ".npz":
        x, y = np.load(a), np.load(b)
        assert sorted(x.files) == sorted(y.files)
        for k in x.files:
            nan = x[k].dtype.kind in "fc"  # attention maps pad outside the field with NaN
            assert np.array_equal(x[k], y[k], equal_nan=nan), (a, k)
    elif a.suffix in (".safetensors", ".csv", ".png", ".tif", ".tiff"):
        assert a.read_bytes() == b.read_bytes(), a


#: outputs compared between a resumed run and the uninterrupted one (report.html embeds timings)
COMPARED = (
    "plate",
    "manifest.parquet",
    "model",
    "embeddings.parquet",
    "profiles_fov.h5ad",
    "norm_compare.parquet",
    "profiles_well.h5ad",
    "nuclei",
    "activity.parquet",
    "ap_samples.parquet",
    "activity_none.parquet",
    "cell_count.parquet",
    "inhibition.parquet",
    "moa",
    "attention",
)


def _compare_output(name: str, got: Path, want: Path) -> None:
    a, b = got / name, want / name
    assert a.exists() == b.exists(), name
    if b.is_dir():
        files = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()), name
        for rel in files:
            if rel.suffix in (".json", ".html") or rel.name == "norm_compare.parquet":
                continue  # seconds and absolute paths differ between runs
            _same_file(a / rel, b / rel, (got, want))
    elif b.exists() and name != "norm_compare.parquet":  # image paths: the same relative to each folder
        _same_file(a, b, (got, want))
    elif b.exists():  # the normalization table records each method's seconds
        x, y = pd.read_parquet(a).drop(columns="seconds"), pd.read_parquet(b).drop(columns="seconds")
        pd.testing.assert_frame_equal(x, y)


def _stage_outputs() -> dict[str, tuple[str, ...]]:
    from lcd_pipeline.engine import STAGES

    return {s.name: s.outputs for s in STAGES}


def _readable(path: Path) -> None:
    """A complete output opens (a half-written file would not)."""
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file() and not any(m in p.name for m in TEMP_MARKERS):
                _readable(p)
    elif path.suffix == ".h5ad":
        from lcd_core import read_h5ad

        read_h5ad(path)
    elif path.suffix == ".parquet":
        pd.read_parquet(path)
    elif path.suffix == ".npz":
        dict(np.load(path))
    elif path.suffix == ".json":
        json.loads(path.read_text())


# ---------------------------------------------------------------------------------- lcd run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the reduced plate: its results folder and each stage's seconds."""
    folder = tmp_path_factory.mktemp("reference")
    config = _write_config(folder, folder / "results")
    _run_to_end(config)
    records = [json.loads(x) for x in (folder / "results" / "stages.jsonl").read_text().splitlines()]
    seconds = {r["stage"]: r["seconds"] for r in records if r["status"] == "ran"}
    return folder / "results", seconds


def test_kill_during_every_stage_then_resume(reference, tmp_path):
    """One run killed during each stage in turn; each kill leaves finished outputs intact and the stage's
    own output absent or complete; the last run completes to the uninterrupted result, leaving no
    temporaries."""
    want, seconds = reference
    results = tmp_path / "results"
    config = _write_config(tmp_path, results)
    outputs = _stage_outputs()
    done: dict[str, str] = {}  # output -> digest once its stage has finished
    from census import digest

    for stage in seconds:  # stage order
        log = _run_and_kill(_lcd("run", str(config)), f"[run ] {stage}:", delay=0.5 * seconds[stage])
        assert "Traceback" not in log, log
        for name, before in done.items():
            assert digest(results / name) == before, f"killed in {stage}: finished output {name} changed"
        for name in outputs[stage]:
            if (results / name).exists():
                _readable(results / name)
        # the stages this run finished before the kill are now done
        jsonl = results / "stages.jsonl"  # absent when the kill came before the first stage finished
        lines = jsonl.read_text().splitlines() if jsonl.is_file() else []
        recorded = [json.loads(x) for x in lines if x.strip()]
        for rec in recorded:
            if rec["status"] == "ran":
                for name in outputs[rec["stage"]]:
                    done.setdefault(name, digest(results / name))
    log = _run_to_end(config)
    assert "[clean]" in log or not _leftovers(results), log
    assert not _leftovers(results), _leftovers(results)
    for name in COMPARED:
        _compare_output(name, results, want)
    assert (results / "report.html").is_file()


def test_kill_while_a_changed_stage_reruns(reference, tmp_path):
    """A finished run whose threshold changes re-runs `activity`; killed there, the old activity table is
    intact (or already the new one), the rerun gives the new calls on the same effect sizes."""
    import shutil

    from census import digest

    want, seconds = reference
    results = tmp_path / "results"
    shutil.copytree(want, results)
    config = _write_config(tmp_path, results, **{"metrics.threshold": 0.5})
    old = digest(results / "activity.parquet")
    wells = digest(results / "profiles_well.h5ad")
    _run_and_kill(_lcd("run", str(config)), "[run ] activity:", delay=0.5 * seconds["activity"])
    now = digest(results / "activity.parquet")
    if now != old:
        _readable(results / "activity.parquet")
    assert digest(results / "profiles_well.h5ad") == wells
    _run_to_end(config)
    assert not _leftovers(results)
    new = pd.read_parquet(results / "activity.parquet")
    ref = pd.read_parquet(want / "activity.parquet")
    np.testing.assert_array_equal(new["map_es"].to_numpy(), ref["map_es"].to_numpy())
    np.testing.assert_array_equal(new["active"].to_numpy(), (new["map_es"] >= 0.5).to_numpy())


def test_second_run_on_the_same_folder_refuses(tmp_path):
    """While one `lcd run` holds the results folder, a second refuses in one line naming the lock."""
    from lcd_pipeline.cli import app
    from lcd_pipeline.engine import LOCK_FILE
    from typer.testing import CliRunner

    results = tmp_path / "results"
    config = _write_config(tmp_path, results)
    proc = subprocess.Popen(
        _lcd("run", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        cwd=REPO,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            if "[run ] train:" in line:
                break
        else:
            pytest.fail("the first run ended before its train stage")
        # paused (still alive, still holding the lock): the first run cannot finish while the second
        # validates its config, which on a loaded machine takes longer than the rest of this tiny run
        os.killpg(proc.pid, signal.SIGSTOP)
        second = CliRunner().invoke(app, ["run", str(config)])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert second.exit_code == 2, second.output
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), second.stderr
    assert str(results / LOCK_FILE) in lines[0] and "in use" in lines[0], lines[0]


# ---------------------------------------------------------------------------- lcd-embed embed


def _embed_args(manifest: Path, model: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "lcd_embed", "embed", str(manifest), "--model", str(model), "-o", str(out),
        "--workers", "0", "--device", "cpu", "--shard-size", "2", "--batch-size", "4", "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def embed_inputs(corpus, tmp_path_factory):
    """16 fields (the corpus manifest twice, other crops) and the tiny checkpoint."""
    import tifffile
    from corpus import MANIFEST_META, field_stack

    folder = tmp_path_factory.mktemp("embed_inputs")
    rows = []
    for k in range(16):
        tifffile.imwrite(folder / f"f{k}.tif", field_stack(corpus, k + 8), photometric="minisblack")
        meta = {key: values[k % 8] for key, values in MANIFEST_META.items()}
        rows.append({**meta, "fov": meta["fov"] + 2 * (k // 8), "path": f"f{k}.tif"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv", corpus.path("ckpt")


def test_kill_during_embed_then_resume(embed_inputs, tmp_path):
    manifest, model = embed_inputs
    want = tmp_path / "want.h5ad"
    done = subprocess.run(_embed_args(manifest, model, want), capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    out = tmp_path / "got.h5ad"
    shards = Path(f"{out}.shards")
    proc = subprocess.Popen(_embed_args(manifest, model, out), env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(shards.glob("*.json"))) < 2:  # two of eight shards finished
            assert proc.poll() is None and time.monotonic() < deadline, "embed ended before the kill"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists(), "a killed embed left a (half-written) output"
    rerun = subprocess.run(_embed_args(manifest, model, out), capture_output=True, text=True, env=_env())
    assert rerun.returncode == 0, rerun.stderr
    _same_h5ad(out, want)
    assert not _leftovers(tmp_path), _leftovers(tmp_path)


# ------------------------------------------------------------------------------ lcd-ssl train


def _ssl_args(manifest: Path, out: Path, config: Path) -> list[str]:
    return [
        sys.executable, "-m", "lcd_ssl", "train", str(manifest), "-o", str(out), "--config", str(config),
        "--steps-per-epoch", "6", "--checkpoint-every", "1",
    ]  # fmt: skip


def test_kill_during_ssl_train_then_resume(corpus, tmp_path):
    """Killed after a checkpoint, the resumed run ends bit-identical to an uninterrupted one."""
    import torch

    manifest, config = corpus.path("manifest"), corpus.path("ssl_tiny_json")
    want = tmp_path / "want"
    done = subprocess.run(_ssl_args(manifest, want, config), capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    got = tmp_path / "got"
    proc = subprocess.Popen(_ssl_args(manifest, got, config), env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        metrics = got / "metrics.jsonl"
        while not metrics.exists() or len(metrics.read_text().splitlines()) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "training ended before the kill"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    torch.load(got / "checkpoint.pt", map_location="cpu", weights_only=True)  # complete, not half-written
    rerun = subprocess.run(_ssl_args(manifest, got, config), capture_output=True, text=True, env=_env())
    assert rerun.returncode == 0, rerun.stderr
    a = torch.load(got / "checkpoint.pt", map_location="cpu", weights_only=True)
    b = torch.load(want / "checkpoint.pt", map_location="cpu", weights_only=True)
    for part in ("student", "teacher"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert not _leftovers(got), _leftovers(got)


# ------------------------------------------------------------------------------- thread counts


def test_results_do_not_depend_on_the_thread_count(corpus, tmp_path):
    """map_es, MoA cross-validation, SSL training and nuclei counting, each run in a fresh process with
    OMP_NUM_THREADS (and the BLAS variables) at 1 and at 2: identical numbers."""
    inputs = {
        "screen": corpus["screen_csv"],
        "activity": corpus["activity_csv"],
        "manifest": corpus["manifest"],
        "ckpt": corpus["ckpt"],
        "ssl_config": corpus["ssl_tiny_json"],
    }
    outs = {}
    for threads in (1, 2):
        out = tmp_path / f"threads{threads}"
        done = subprocess.run(
            [sys.executable, str(HERE / "thread_probe.py"), json.dumps(inputs), str(out)],
            capture_output=True,
            text=True,
            env=_env(threads),
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outs[threads] = out
    for name in ("map_es.parquet", "moa_predictions.parquet", "nuclei.parquet", "ssl.npz"):
        _same_file(outs[1] / name, outs[2] / name)
    reported = json.loads((outs[2] / "threads.json").read_text())
    assert reported["torch"] == 2 and reported["omp"] == "2", reported
