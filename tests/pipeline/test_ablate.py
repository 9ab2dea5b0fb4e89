"""lcd ablate on a reduced simulated plate: every variant trained with one budget, compared, report in Chromium.

Kept short for CI (4 training steps, 40 mAP-ES draws): this checks the wiring, not the science; the
measured comparison on the full demo plate is in the package README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
from lcd_pipeline.ablate import ALL
from lcd_pipeline.cli import app
from lcd_pipeline.compare_report import SECTIONS
from typer.testing import CliRunner

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate") / "abl"
    res = CliRunner().invoke(
        app,
        ["ablate", "-o", str(out), "--reduced", "--steps-per-epoch", "4", "--n-draws", "40", "--seed", "1"],
    )
    assert res.exit_code == 0, res.output
    return out


def test_every_variant_trained_with_the_same_budget(ablation):
    meta = json.loads((ablation / "ablate.json").read_text())
    assert meta["variants"] == list(ALL) and set(meta["seconds"]) >= set(ALL)
    configs = {}
    for label in ALL:
        if label == "random-init":
            continue
        cfg = json.loads((ablation / "runs" / label / "ssl_run" / "train_config.json").read_text())["config"]
        configs[label] = cfg
        assert cfg["steps_per_epoch"] == 4 and cfg["seed"] == 1 and cfg["batch_size"] == 16
    assert configs["dino-no-blur"]["blur"] is False and configs["dino"]["blur"] is None
    assert configs["pa+dino+barlow+xb"]["variant"] == "pa+dino+barlow+xb"
    init = json.loads((ablation / "runs" / "random-init" / "model" / "config.json").read_text())
    assert init["lcd_ssl"]["which"] == "init" and init["lcd_ssl"]["step"] == 0


def test_comparison_has_every_model_and_the_paper_tables(ablation):
    comp = ablation / "comparison"
    t1 = pd.read_parquet(comp / "table1.parquet")
    assert set(t1["model"]) == set(ALL)
    assert (t1["status"] != "failed").all(), t1[["model", "normalization", "reason"]]
    n = len(ALL)
    assert len(pd.read_parquet(comp / "wilcoxon_models.parquet")) == n * (n - 1) // 2
    sens = pd.read_parquet(comp / "sensitivity.parquet")
    assert "cell count" in set(sens["model"])  # the baseline per condition, from the simulator's counts
    assert len(pd.read_parquet(comp / "moa_metrics.parquet"))
    # Fig 2C panels: result folders carry a manifest, so each panel has field images above the intervals
    panels = sorted((comp / "figures").glob("fig2c_*.png"))
    assert 1 <= len(panels) <= 3
    act = pd.read_parquet(comp / "activity.parquet")
    assert {"null_ci_low", "null_ci_high", "active_ci"} <= set(act.columns)


def test_ablation_report_in_headless_chromium(ablation, tmp_path):
    if CHROMIUM is None:
        message = "Debian `chromium` not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but no chromium/chromium-browser on PATH: {message}", pytrace=False)
        pytest.skip(message)
    report = ablation / "comparison" / "report.html"
    doc = report.read_text()
    assert "section failed" not in doc, re.findall(r"section failed[^<]*", doc)
    probe = (
        "<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
        "const pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify({"
        "n:imgs.length,ok:imgs.filter(i=>i.complete&&i.naturalWidth>0).length,"
        "sections:[...document.querySelectorAll('section')].map(s=>s.id)});document.body.appendChild(pre);});</script>"
    )
    page = tmp_path / "report_probe.html"
    page.write_text(doc.replace("</body>", probe + "</body>"))
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
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
    assert found["n"] >= 10 and found["ok"] == found["n"], found
    assert found["sections"] == list(SECTIONS)
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
