"""lcd-moa speed vs a plain scikit-learn loop doing the same cross-validation, side by side.

Anchor: for every fold × condition, ``make_pipeline(StandardScaler(), LogisticRegression())`` fitted on
the same training wells (active training compounds + control wells) and ``predict_proba`` on the test
compounds' wells, then pandas ``groupby().mean()`` per compound and an equal-weight mean over
conditions (the textbook way to write this with scikit-learn). Both use the same fold table; the script
checks that both reach the same per-compound predictions before reporting times.

The anchor runs twice: with the machine's default BLAS threads and limited to one thread (what
lcd-moa does internally), to show where the difference comes from.

Usage: ``.venv/bin/python benchmarks/moa_benchmark.py [--large]`` (the README table: without ``--large``)
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from lcd_core import table_to_anndata
from lcd_moa import cross_validate
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "profiles" / "cell_injury"


def synthetic(
    n_moa=10,
    n_per_moa=12,
    timepoints=(24, 48),
    doses=(0.3, 1.0, 3.0, 10.0),
    n_wells=4,
    n_ctrl=64,
    n_features=384,
    seed=0,
):
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_moa, n_features))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    rows, X = [], []
    for m in range(n_moa):
        for i in range(n_per_moa):
            for t in timepoints:
                for d in doses:
                    for _ in range(n_wells):
                        rows.append((f"c{m}_{i}", f"M{m}", t, d))
                        X.append(
                            2.5 * np.log1p(d) / np.log1p(max(doses)) * dirs[m] + rng.normal(size=n_features)
                        )
    for t in timepoints:
        for _ in range(n_ctrl):
            rows.append(("DMSO", None, t, np.nan))
            X.append(rng.normal(size=n_features))
    obs = pd.DataFrame(rows, columns=["compound", "moa", "timepoint", "dose"])
    table = pd.concat(
        [obs, pd.DataFrame(np.asarray(X), columns=[f"Cells_{j}" for j in range(n_features)])], axis=1
    )
    return table, dict(
        compound_key="compound",
        moa_key="moa",
        condition_keys=["timepoint", "dose"],
        control="compound == 'DMSO'",
    )


def cell_injury():
    files = ("fs_plate_holdout", "fs_well_holdout", "fs_treatment_holdout")
    table = pd.concat([pd.read_csv(DATA / f"{f}.csv.gz") for f in files], ignore_index=True)
    table = table[table["Compound Name"].notna() | (table["Control Type"] == "Negative")].reset_index(
        drop=True
    )
    return table, dict(
        compound_key="Compound Name",
        moa_key="injury_type",
        condition_keys=["Experimental Condition [Treatment time (h)]", "Compound Concentration (microMolar)"],
        control="`Control Type` == 'Negative'",
        drop_small_classes=True,
    )


def sklearn_anchor(table, keys, folds):
    """The same cross-validation written directly with scikit-learn and pandas."""
    adata = table_to_anndata(table)
    obs, X = adata.obs, np.asarray(adata.X)
    ck, t_key, d_key = keys["compound_key"], *keys["condition_keys"]
    ctrl = obs.eval(keys["control"]).to_numpy()
    fold_of = folds.set_index("compound")["fold"]
    label = folds.set_index("compound")["moa"]
    classes = sorted(label.unique())
    treated = obs[~ctrl & obs[ck].isin(fold_of.index)]
    out = []
    for f in sorted(folds["fold"].unique()):
        for (t, _dose), cond in treated.groupby([t_key, d_key]):
            train = cond[fold_of[cond[ck]].to_numpy() != f]
            test = cond[fold_of[cond[ck]].to_numpy() == f]
            if train.empty or test.empty:
                continue
            c_rows = obs.index[ctrl & (obs[t_key] == t).to_numpy()]
            idx = np.r_[obs.index.get_indexer(train.index), obs.index.get_indexer(c_rows)]
            y = np.r_[label[train[ck]].to_numpy(), np.repeat("DMSO", len(c_rows))]
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X[idx], y)
            proba = pd.DataFrame(
                model.predict_proba(X[obs.index.get_indexer(test.index)]), columns=model.classes_
            )
            proba[ck] = test[ck].to_numpy()
            out.append(proba.groupby(ck).mean())
    per_cond = pd.concat(out).fillna(0.0)
    mean = per_cond.groupby(level=0).mean()[classes]
    return mean.idxmax(axis=1)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", action="store_true", help="12 compounds per MoA instead of 6")
    args = parser.parse_args()
    cases = {"cell_injury (3,198 wells × 352 features)": cell_injury()}
    syn = synthetic() if args.large else synthetic(n_per_moa=6)
    cases[f"synthetic ({len(syn[0]):,} wells × 384 features)"] = syn
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {platform.processor() or platform.machine()}"
    )
    print(
        "| data | lcd-moa cross_validate (s) | sklearn loop, default threads (s) | sklearn loop, 1 thread (s) | speed-up vs default | vs 1 thread | same predictions |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (table, keys) in cases.items():
        # every compound active wherever it has wells: the anchor applies no activity filter either
        spec = {k: v for k, v in keys.items() if k != "drop_small_classes"}  # MoASpec fields
        drop = keys.get("drop_small_classes", False)
        result, t_ours = timed(lambda: cross_validate(table, None, spec, seed=0, drop_small_classes=drop))  # noqa: B023
        folds = result.folds[result.folds["compound"].isin(result.condition_probs["compound"])]
        final = result.predictions[result.predictions["method"] == result.final_method].set_index("compound")[
            "predicted"
        ]
        anchor, t_default = timed(lambda: sklearn_anchor(table, keys, folds))  # noqa: B023
        with threadpool_limits(limits=1):
            _, t_single = timed(lambda: sklearn_anchor(table, keys, folds))  # noqa: B023
        agree = float((anchor.reindex(final.index) == final).mean())
        print(
            f"| {name} | {t_ours:.1f} | {t_default:.1f} | {t_single:.1f} | {t_default / t_ours:.1f}× | "
            f"{t_single / t_ours:.2f}× | {agree:.1%} |"
        )


if __name__ == "__main__":
    main()
