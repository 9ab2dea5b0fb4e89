"""Run map_es, MoA cross-validation, SSL training and nuclei counting once; write their numbers.

Used by test_faults.py in fresh processes with OMP_NUM_THREADS=1 and =2 (threads are fixed when the
libraries load, so each count needs its own process). Usage: thread_probe.py INPUTS_JSON OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    import numpy as np
    import torch

    inputs = json.loads(sys.argv[1])
    out = Path(sys.argv[2])
    out.mkdir(parents=True)

    from lcd_metrics import map_es

    map_es(inputs["screen"], n_draws=200, n_neg=8).to_parquet(out / "map_es.parquet")

    from lcd_moa import cross_validate

    result = cross_validate(inputs["screen"], inputs["activity"], n_folds=2)
    result.predictions.to_parquet(out / "moa_predictions.parquet")

    from lcd_nuclei import count_nuclei

    counts = count_nuclei(inputs["manifest"], inputs["ckpt"], device="cpu", progress=False)
    counts.obs[["manifest_row", "nuclei_count", "confluency", "mean_nucleus_area"]].to_parquet(
        out / "nuclei.parquet"
    )

    from lcd_ssl import TrainConfig, train

    options = json.loads(Path(inputs["ssl_config"]).read_text())
    # threads pinned: torch's CPU layer-norm gradient sums depend on the thread count (lcd_ssl.TrainConfig)
    config = TrainConfig(**{**options, "steps_per_epoch": 3, "seed": 0, "threads": 2})
    run = train(inputs["manifest"], config, out / "ssl")
    state = torch.load(Path(run) / "checkpoint.pt", map_location="cpu", weights_only=True)
    np.savez(out / "ssl.npz", **{k: v.numpy() for k, v in state["student"].items()})

    (out / "threads.json").write_text(
        json.dumps({"torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")})
    )  # after train: torch's count is the environment's again


if __name__ == "__main__":
    main()
