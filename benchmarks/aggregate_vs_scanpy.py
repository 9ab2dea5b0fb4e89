"""lcd_norm.aggregate against scanpy.get.aggregate: same numbers, and which is faster (issue #14 item 5).

    .venv/bin/python benchmarks/aggregate_vs_scanpy.py [--tiles 200000] [--tiles-per-fov 16] [--repeats 3]

Tile embeddings (float32, 384 features) grouped by plate × well × fov × timepoint, median and mean.
lcd_norm.aggregate also keeps the obs columns constant within groups, ``n_members`` and the params in
``uns``; scanpy returns the group keys only. Both are timed end to end (what a user calls) and the
minimum over repeats is reported; runs alternate. The largest absolute difference is reported too.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from anndata import AnnData


def make_tiles(n_tiles: int, tiles_per_fov: int, d: int = 384, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    n_fov = max(1, n_tiles // tiles_per_fov)
    fov_id = np.repeat(np.arange(n_fov), tiles_per_fov)[:n_tiles]
    obs = pd.DataFrame(
        {
            "plate": [f"P{i // (384 * 4)}" for i in fov_id],
            "well": [f"W{(i // 4) % 384}" for i in fov_id],
            "fov": fov_id % 4,
            "timepoint": 0,
        }
    )
    obs["compound"] = np.where(obs["well"].str[1:].astype(int) < 38, "DMSO", "cpd")
    obs.index = obs.index.astype(str)
    return AnnData(X=rng.standard_normal((len(obs), d), dtype=np.float32), obs=obs)


def ours(adata, func):
    from lcd_norm import aggregate

    return aggregate(adata, "fov", func=func)


def scanpys(adata, func):
    import scanpy as sc

    keys = ["plate", "well", "fov", "timepoint"]
    obs = adata.obs.copy()
    for k in keys:  # scanpy groups by categorical columns (it converts, but say so)
        obs[k] = obs[k].astype("category")
    view = AnnData(X=adata.X, obs=obs)
    return sc.get.aggregate(view, keys, func)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=200_000)
    parser.add_argument("--tiles-per-fov", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    adata = make_tiles(args.tiles, args.tiles_per_fov)
    import lcd_norm  # noqa: F401
    import scanpy  # noqa: F401  (import time outside the timed block)

    rows = []
    for func in ("median", "mean"):
        best = {"lcd_norm": np.inf, "scanpy": np.inf}
        out = {}
        for _ in range(args.repeats):
            for name, f in (("lcd_norm", ours), ("scanpy", scanpys)):
                t = time.perf_counter()
                out[name] = f(adata, func)
                best[name] = min(best[name], time.perf_counter() - t)
        a, s = out["lcd_norm"], out["scanpy"]
        # align scanpy's groups (its obs index joins the keys) to ours by the key columns
        key = ["plate", "well", "fov", "timepoint"]
        sk = s.obs[key].astype(str).agg("|".join, axis=1)
        ak = a.obs[key].astype(str).agg("|".join, axis=1)
        order = pd.Index(sk).get_indexer(ak)
        assert (order >= 0).all() and len(order) == s.n_obs
        diff = float(np.abs(np.asarray(s.layers[func])[order] - a.X).max())
        rows.append(
            {
                "func": func,
                "groups": int(a.n_obs),
                "lcd_norm_s": round(best["lcd_norm"], 3),
                "scanpy_s": round(best["scanpy"], 3),
                "max_abs_diff": diff,
            }
        )
        print(rows[-1], flush=True)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "tiles": args.tiles,
        "features": 384,
        "rows": rows,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
