"""``lcd demo --seed S`` for several seeds: does it complete, and what does it recover against the truth.

Usage: ``python benchmarks/demo_seeds.py --seeds 0 1 2 3 4 --out /tmp/demo-seeds`` (each demo in its own
folder; an existing folder resumes). Prints one markdown row per seed: wall time, stages completed,
recall of truly active conditions (all, highest dose), false calls on inert compounds, MoA accuracy of
the final method, nuclei count r (and CCC) against the simulator's counts over every counted field,
count- vs confluency-based inhibition r when confluency was measured. The numbers come from the run's
own files and the simulator's truth tables, through the same functions the report uses
(``lcd_pipeline.truth``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's concordance correlation coefficient."""
    mx, my = x.mean(), y.mean()
    return float(2 * np.mean((x - mx) * (y - my)) / (x.var() + y.var() + (mx - my) ** 2))


def summarize(root: Path) -> dict:
    """The seed's truth numbers from its results folder."""
    import anndata as ad
    from lcd_pipeline.truth import activity_vs_truth, moa_vs_truth, recovery_summary

    conditions = pd.read_parquet(root / "plate" / "truth" / "conditions.parquet")
    row: dict = {}
    joined = activity_vs_truth(pd.read_parquet(root / "activity.parquet"), conditions)
    rec = recovery_summary(joined).set_index("quantity")["fraction"]
    row["recall"] = rec["truly active conditions called active"]
    row["recall_top_dose"] = rec["truly active at the highest dose, called active"]
    row["inert_called"] = rec["inert compound conditions called active"]
    row["failed_rows"] = int((joined["status"] == "failed").sum())
    params = json.loads((root / "moa" / "params.json").read_text())
    pred = pd.read_parquet(root / "moa" / "predictions.parquet")
    method = params.get("final_method")
    moa = moa_vs_truth(pred, method) if method else pd.DataFrame()
    row["moa_method"] = method
    row["moa_accuracy"] = float(moa["correct"].mean()) if len(moa) else float("nan")
    nuc = ad.read_h5ad(root / "nuclei" / "counts.h5ad").obs
    keys = [c for c in ("plate", "well", "fov", "timepoint") if c in nuc]
    truth = pd.read_parquet(root / "plate" / "truth" / "fields.parquet")[[*keys, "nuclei_count"]]
    both = nuc[[*keys, "nuclei_count"]].merge(truth.rename(columns={"nuclei_count": "true"}), on=keys)
    x, y = both["nuclei_count"].to_numpy(float), both["true"].to_numpy(float)
    row["nuclei_fields"] = len(both)
    row["nuclei_r"] = float(np.corrcoef(x, y)[0, 1])
    row["nuclei_ccc"] = ccc(x, y)
    if "confluency" in nuc:
        fields = pd.read_parquet(root / "plate" / "truth" / "fields.parquet")[[*keys, "confluency"]]
        conf = nuc[[*keys, "confluency"]].merge(fields.rename(columns={"confluency": "true"}), on=keys)
        row["confluency_r"] = float(np.corrcoef(conf["confluency"], conf["true"])[0, 1])
        inh = pd.read_parquet(root / "inhibition.parquet")
        inh = inh[inh["status"] == "ok"]
        wide = inh.pivot_table(
            index=[c for c in ("plate", "well", "timepoint") if c in inh],
            columns="value",
            values="inhibition",
            observed=True,
        ).dropna()
        row["inhibition_r"] = float(np.corrcoef(wide["nuclei_count"], wide["confluency"])[0, 1])
    return row


def main() -> None:
    """Run the demos and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, default=Path("/tmp/demo-seeds"))
    args = p.parse_args()
    rows = []
    for seed in args.seeds:
        root = args.out / f"seed{seed}"
        t0 = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "lcd_pipeline", "demo", "--seed", str(seed), "--out", str(root)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        row = {"seed": seed, "exit": run.returncode, "wall_s": round(wall, 1)}
        if run.returncode == 0:
            stages = [json.loads(line)["stage"] for line in (root / "stages.jsonl").read_text().splitlines()]
            row["stages"] = len(set(stages))
            row["report"] = (root / "report.html").exists()
            row.update(summarize(root))
        else:
            row["error"] = run.stderr.strip().splitlines()[-1:] if run.stderr else ""
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
