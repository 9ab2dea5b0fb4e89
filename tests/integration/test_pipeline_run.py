"""End to end on a reduced synthetic plate: every stage, resume, the report in headless Chromium, and the
science check with the simulator's ground truth as the oracle.

The reduced config keeps the real code path of `lcd demo` (simulate → lcd-embed manifest → lcd-ssl
training → lcd-embed embedding → lcd-norm compare → lcd-metrics map_es → lcd-moa CV → attention →
report) but on 2 doses × 2 timepoints and 20 training steps of the tiny ViT, so it fits the test budget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from lcd_pipeline.config import demo_nuclei, resolve
from lcd_pipeline.engine import STAGES, run_pipeline
from lcd_pipeline.report import SECTIONS
from lcd_pipeline.truth import activity_vs_truth

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

REDUCED = {
    "preset": "quick",
    "input": {
        "simulate": {
            "preset": "demo",
            "seed": 3,
            "timepoint_hours": [24.0, 48.0],
            "doses": [1.0, 10.0],
        }
    },
    # 20 SSL steps instead of the demo's 60
    "ssl": {"steps_per_epoch": 20, "batch_size": 16},
    "metrics": {"n_draws": 100, "threshold": 0.8},
    "moa": {"n_folds": 3},
    "attention": {"n_fields": 1},
    "nuclei": {"fields_per_well": 1},
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("run") / "results"
    cfg = resolve({**REDUCED, "results": str(root)})
    logs: list[str] = []
    old_umask = os.umask(0o022)  # the common default; test_outputs_are_group_readable checks its effect
    try:
        run_pipeline(cfg, log=logs.append)
    finally:
        os.umask(old_umask)
    return root, cfg, logs


def test_every_stage_wrote_its_outputs(results):
    root, _, logs = results
    for stage in STAGES:
        for out in stage.outputs:
            assert (root / out).exists(), f"{stage.name}: {out} missing; log: {logs}"


def test_outputs_are_group_readable_under_umask_022(results):
    """Every file and folder the pipeline wrote has the mode open()/mkdir give under umask 022.

    Oracle: the umask rule itself (0o644 files, 0o755 folders). tempfile's 0o600/0o700, kept by a
    renamed temporary, would make results unreadable for colleagues on a shared filesystem.
    """
    root, _, _ = results
    paths = [root, *root.rglob("*")]
    assert len(paths) > 100  # every stage's outputs, the simulated plate's images included
    wrong = []
    for path in paths:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o755 if path.is_dir() else 0o644
        group_ok = mode & 0o040 and (not path.is_dir() or mode & 0o010)
        if mode != want or not group_ok:
            wrong.append(f"{oct(mode)} {path.relative_to(root)}")
    assert not wrong, f"{len(wrong)} paths without the umask's mode, e.g. {wrong[:5]}"


def test_scanpy_reads_the_corrected_well_profiles_and_needs_no_use_rep(results):
    """scverse habits: X is the chosen correction, .raw the uncorrected features, params in uns."""
    import scanpy as sc

    root, cfg, _ = results
    adata = sc.read_h5ad(root / "profiles_well.h5ad")
    chosen = adata.uns["lcd_pipeline"]
    assert chosen["method"] == cfg["norm"]["use"]
    np.testing.assert_array_equal(adata.X, adata.obsm[chosen["X"]])  # X is the correction, not raw
    raw = adata.raw.to_adata()
    fov = sc.read_h5ad(root / "profiles_fov.h5ad")
    assert raw.n_vars == fov.n_vars and not np.array_equal(raw.X[:, : adata.n_vars], adata.X)
    for key in adata.obsm:
        assert "params" in adata.uns[key], f"{key}: its parameters are not in uns"
    text = [c for c in ("plate", "well", "compound", "moa", "replica") if c in adata.obs]
    assert text and all(isinstance(adata.obs[c].dtype, pd.CategoricalDtype) for c in text)
    assert "timepoint_h" in adata.obs and adata.obs["timepoint_h"].notna().all()
    sc.pp.neighbors(adata)  # no use_rep: scanpy takes X (PCA of X when it has > 50 features)
    sc.tl.umap(adata)
    umap = adata.obsm["X_umap"]
    assert umap.shape == (adata.n_obs, 2) and np.isfinite(umap).all() and umap.std(axis=0).min() > 0
    doc = (root / "report.html").read_text()
    section = doc.split('<section id="wells">', 1)[1].split("</section>", 1)[0]
    assert section.count("data:image/png;base64,") == 2 and chosen["X"] in section


def test_rerun_skips_every_stage(results):
    _root, cfg, _ = results
    logs: list[str] = []
    run_pipeline(cfg, log=logs.append)
    assert logs and all(line.startswith("[skip]") for line in logs), logs


def test_report_sections_and_embedded_figures(results):
    root, _, _ = results
    doc = (root / "report.html").read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in doc
    assert "section failed" not in doc, re.findall(r"section failed[^<]*", doc)
    assert doc.count("data:image/png;base64,") >= 5
    assert 'src="http' not in doc and "src='http" not in doc  # self-contained


def test_report_in_headless_chromium(results, tmp_path):
    if CHROMIUM is None:
        message = "Debian `chromium` not installed (apt-get install chromium)"
        if os.environ.get("CI"):  # CI (.ci/run) installs chromium: a missing browser there is a failure
            pytest.fail(f"CI is set but no chromium/chromium-browser on PATH: {message}", pytrace=False)
        pytest.skip(message)
    root, _, _ = results
    # a copy of the report with a probe script: after load it records, in the DOM, how many images
    # decoded (naturalWidth > 0) and which sections exist; --dump-dom prints the DOM after scripts ran
    probe = (
        "<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
        "const pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify({"
        "n:imgs.length,ok:imgs.filter(i=>i.complete&&i.naturalWidth>0).length,"
        "sections:[...document.querySelectorAll('section')].map(s=>s.id)});document.body.appendChild(pre);});</script>"
    )
    page = tmp_path / "report_probe.html"
    page.write_text((root / "report.html").read_text().replace("</body>", probe + "</body>"))
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout)
    assert match, dom.stderr[-2000:]
    found = json.loads(match.group(1).replace("&quot;", '"'))
    assert found["n"] >= 5 and found["ok"] == found["n"], found
    assert found["sections"] == list(SECTIONS)
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def test_science_check_against_ground_truth(results):
    """Oracle: the simulator's truth tables (independent of every package under test)."""
    root, _, _ = results
    conditions = pd.read_parquet(root / "plate" / "truth" / "conditions.parquet")
    both = activity_vs_truth(pd.read_parquet(root / "activity.parquet"), conditions)
    top = both[both["dose"] == both["dose"].max()]
    recall = top.loc[top["true_active"], "called"].mean()
    false_pos = both.loc[both["inert"], "called"].mean()
    assert recall >= 0.9, f"called {recall:.0%} of truly active compound x conditions at the top dose"
    assert false_pos <= 0.1, f"called {false_pos:.0%} of inert compound x conditions active"
    # planted replica/plate/FOV effects: a Harmony-based method must retrieve replicates better than none
    norm = pd.read_parquet(root / "norm_compare.parquet").set_index("method")
    best_harmony = norm.loc[["harmony", "mad_harmony_fov"], "map"].max()
    assert best_harmony > norm.loc["none", "map"], norm[["status", "map", "batch_silhouette"]]
    # MoA: compound-level accuracy against the true MoA, above chance (1 / number of MoA classes)
    pred = pd.read_parquet(root / "moa" / "predictions.parquet")
    truth = pd.read_parquet(root / "plate" / "truth" / "compounds.parquet")
    n_classes = truth.loc[~truth["inert"], "moa"].nunique()
    pred = pred.merge(truth[["compound", "moa"]].rename(columns={"moa": "true_moa"}), on="compound")
    metrics = pd.read_parquet(root / "moa" / "metrics.parquet")
    incremental = metrics[metrics["kind"] == "incremental"]
    all_doses = incremental.loc[incremental["step"].idxmax(), "method"]  # every dose added
    final = pred[pred["method"] == all_doses]
    accuracy = (final["predicted"] == final["true_moa"]).mean()
    assert accuracy > 1.5 / n_classes, final[["compound", "true_moa", "predicted"]]


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "use_vit"), [(2, True), (4, False)])
def test_every_stage_completes_on_other_seeds(tmp_path, seed, use_vit):
    """`lcd demo --seed 2` crashed in the nuclei stage (an all-empty metadata column could not be written
    to h5ad); every stage must complete and the report must have no failed section, whatever the seed.
    Seed 4 counts the demo's way (no ViT): the confluency then comes from the planes (lcd_nuclei.cell_area)
    and the report still plots count- vs confluency-based inhibition."""
    root = tmp_path / f"seed{seed}"
    nuclei = {"fields_per_well": 1, **({} if use_vit else demo_nuclei(8.0))}
    cfg = resolve(
        {
            **REDUCED,
            "seed": seed,
            "input": {"simulate": {**REDUCED["input"]["simulate"], "seed": seed}},
            "nuclei": nuclei,
            "results": str(root),
        }
    )
    run_pipeline(cfg, log=lambda line: None)
    for stage in STAGES:
        for out in stage.outputs:
            assert (root / out).exists(), f"seed {seed}: {stage.name} did not write {out}"
    doc = (root / "report.html").read_text()
    assert "section failed" not in doc, re.findall(r"section failed[^<]*", doc)
    assert "Inhibition per well from nuclei counts and from confluency" in doc
    inhibition = pd.read_parquet(root / "inhibition.parquet")
    assert set(inhibition["value"]) == {"nuclei_count", "confluency"}
    if not use_vit:  # oracle: the simulator's true cell area of the same fields
        obs = ad.read_h5ad(root / "nuclei" / "counts.h5ad").obs
        keys = ["plate", "well", "fov", "timepoint"]
        truth = pd.read_parquet(root / "plate" / "truth" / "fields.parquet")[[*keys, "confluency"]]
        both = obs[[*keys, "confluency"]].merge(truth, on=keys, suffixes=("", "_true"))
        assert len(both) == len(obs) > 50
        # full demo plates of seeds 0-4 gave r 0.72-0.93 (lcd-pipeline README), this reduced plate 0.83;
        # the ViT's cell area and the in-focus texture give 0.1-0.25 (lcd-nuclei README "Confluency")
        assert np.corrcoef(both["confluency"], both["confluency_true"])[0, 1] > 0.7
