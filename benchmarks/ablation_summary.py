"""Summarize `lcd ablate` runs over seeds into the README's tables (markdown on stdout).

Usage: uv run python benchmarks/ablation_summary.py ABLATION_DIR [ABLATION_DIR ...]
(each ABLATION_DIR is one `lcd ablate -o DIR --seed S` output).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def md(df: pd.DataFrame, index: bool = False) -> str:
    """A markdown table (pandas' to_markdown needs tabulate, not installed)."""
    frame = df.reset_index() if index else df

    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def load(root: Path) -> dict:
    comp = root / "comparison"
    meta = json.loads((root / "ablate.json").read_text())
    return {
        "seed": meta["seed"],
        "seconds": meta["seconds"],
        "table1": pd.read_parquet(comp / "table1.parquet"),
        "norm": pd.read_parquet(comp / "norm_compare.parquet"),
        "sens": pd.read_parquet(comp / "sensitivity.parquet"),
        "curves": pd.read_parquet(comp / "sensitivity_curves.parquet"),
        "moa": pd.read_parquet(comp / "moa_metrics.parquet"),
        "wil": pd.read_parquet(comp / "wilcoxon_models.parquet"),
        "mcn": pd.read_parquet(comp / "mcnemar.parquet"),
    }


def per_seed_rows(run: dict) -> pd.DataFrame:
    t1 = run["table1"]
    best = t1[t1["best"]].set_index("model")
    none = t1[t1["normalization"] == "none"].set_index("model")["mean_ap"]
    sil = run["norm"].pivot_table(index="model", columns="method", values="batch_silhouette")
    sens = run["sens"]
    overall = sens[sens["scope"] == "condition"].groupby("model")[["n_active", "n_compounds"]].sum()
    frac = overall["n_active"] / overall["n_compounds"]
    moa = run["moa"]
    final = moa[moa["kind"] == "incremental"].sort_values("step").groupby("model").tail(1).set_index("model")
    rows = []
    for model in best.index:
        rows.append(
            {
                "seed": run["seed"],
                "model": model,
                "best_norm": best.loc[model, "normalization"],
                "map_best": best.loc[model, "mean_ap"],
                "map_none": none.get(model),
                "replica_sil_none": sil.loc[model, "none"] if "none" in sil else None,
                "replica_sil_best": sil.loc[model, best.loc[model, "normalization"]],
                "frac_active": frac.get(model),
                "moa_f1": final["f1_weighted"].get(model),
                "moa_acc": final["accuracy"].get(model),
                "moa_n": final["n_compounds"].get(model),
            }
        )
    return pd.DataFrame(rows)


def main(paths: list[str]) -> None:
    runs = [load(Path(p)) for p in paths]
    table = pd.concat([per_seed_rows(r) for r in runs], ignore_index=True)
    order = list(dict.fromkeys(table["model"]))
    agg = (
        table.groupby("model", sort=False)
        .agg(
            map_best=("map_best", "mean"),
            map_best_sd=("map_best", "std"),
            map_none=("map_none", "mean"),
            replica_sil_none=("replica_sil_none", "mean"),
            replica_sil_best=("replica_sil_best", "mean"),
            frac_active=("frac_active", "mean"),
            frac_active_sd=("frac_active", "std"),
            moa_f1=("moa_f1", "mean"),
            moa_acc=("moa_acc", "mean"),
        )
        .reindex(order)
    )
    cc = pd.concat([r["sens"] for r in runs])
    cc = cc[(cc["model"] == "cell count") & (cc["scope"] == "condition")]
    print("### Per seed\n")
    print(md(table))
    print("\n### Mean over seeds\n")
    print(md(agg, index=True))
    print(
        f"\ncell count (true counts) fraction active: {cc['n_active'].sum() / cc['n_compounds'].sum():.3f}\n"
    )
    print("### Wilcoxon (SM3), every pair: mean AP a − b, median paired difference, Holm p, per seed\n")
    wide = []
    for r in runs:
        w = r["wil"].assign(
            cell=lambda t: [
                f"{ma - mb:+.3f} / {md:+.3f} / {ph:.2g}{' *' if sig else ''}"
                for ma, mb, md, ph, sig in zip(
                    t["mean_a"],
                    t["mean_b"],
                    t["median_difference"],
                    t["p_holm"],
                    t["significant"],
                    strict=True,
                )
            ]
        )
        wide.append(w.set_index(["a", "b"])["cell"].rename(f"seed {r['seed']}"))
    print(md(pd.concat(wide, axis=1), index=True))
    print("\n(* Holm-adjusted p < 0.05)\n")
    print("### Wilcoxon (SM3) per seed: pairs with Holm p < 0.05\n")
    for r in runs:
        w = r["wil"]
        sig = w[w["significant"]]
        print(f"seed {r['seed']}: {len(sig)} of {len(w)} pairs significant")
        print(
            md(
                w[
                    [
                        "a",
                        "b",
                        "n_pairs",
                        "mean_a",
                        "mean_b",
                        "median_difference",
                        "p_value",
                        "p_holm",
                        "better",
                    ]
                ]
            )
        )
        print()
    print("### McNemar (all doses) per seed\n")
    for r in runs:
        m = r["mcn"]
        cols = [
            c
            for c in (
                "model_a",
                "model_b",
                "n_compounds",
                "accuracy_a",
                "accuracy_b",
                "only_a",
                "only_b",
                "p_value",
                "p_value_chi2",
            )
            if c in m
        ]
        print(f"seed {r['seed']}")
        print(md(m[cols]))
        print()
    print("### Wall time (s)\n")
    print(md(pd.DataFrame({f"seed {r['seed']}": r["seconds"] for r in runs}), index=True))


if __name__ == "__main__":
    main(sys.argv[1:])
