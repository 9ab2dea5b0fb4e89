r"""Micro-benchmarks of lcd-metrics' kernels with pytest-benchmark (not part of the test run).

    heavy uv run pytest benchmarks/metrics_micro.py --benchmark-only -q          # a quick look
    exclusive uv run pytest benchmarks/metrics_micro.py --benchmark-only \\
        --benchmark-json /tmp/metrics_micro.json                                  # numbers to keep

Each benchmark times one kernel on fixed-size inputs, the sizes of one map_es group or one AP block;
the end-to-end comparison with copairs is ``benchmarks/metrics_vs_copairs.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lcd_metrics import kernels
from lcd_metrics._draws import sample_k
from lcd_metrics.pvalues import group_pvalues, null_distributions

pytest.importorskip("pytest_benchmark")


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def test_ap_block_counting(benchmark, rng):
    """AP of 256 queries with 3 positives among 3 + 3000 candidates (an all-DMSO block)."""
    pos, neg = rng.normal(size=(256, 3)), rng.normal(size=(256, 3000))
    benchmark(kernels.ap_from_similarities, pos, neg)


def test_ap_draws(benchmark, rng):
    """AP of 1000 map_es draws: 3 positives, 31 negatives."""
    pos, neg = rng.normal(size=(1000, 3)), rng.normal(size=(1000, 31))
    benchmark(kernels.ap_from_similarities, pos, neg)


def test_all_tied_screen(benchmark, rng):
    pos, neg = rng.normal(size=(1000, 3)), rng.normal(size=(1000, 31))
    benchmark(kernels.all_tied, pos, neg)


def test_sample_negatives_keys(benchmark, rng):
    """31 of 38 controls for 1000 draws (random keys + argpartition)."""
    n = np.full(1000, 38)
    benchmark(sample_k, np.random.default_rng(1), n, 31)


def test_sample_positives_floyd(benchmark, rng):
    """3 of 1200 null controls for 1024 draws (Floyd's algorithm)."""
    n = np.full(1024, 1200)
    benchmark(sample_k, np.random.default_rng(1), n, 3)


def test_l2_normalize(benchmark, rng):
    x = rng.normal(size=(10_000, 384))
    benchmark(kernels.l2_normalize, x)


def test_null_distributions(benchmark):
    configs = np.array([[3, 3003], [3, 304], [5, 29]])
    benchmark(null_distributions, configs, 1000, 0)


def test_group_pvalues_exact_and_permutation(benchmark, rng):
    """2000 groups of 4 profiles: half with small (exact) configurations, half with large ones."""
    groups = np.repeat(np.arange(2000), 4)
    confs = np.array([[3, 8], [3, 3003]])
    conf_ix = (groups >= 1000).astype(int)
    mean_ap = rng.uniform(size=2000)
    benchmark(group_pvalues, mean_ap, groups, conf_ix, confs, 1000, 0)


def test_bh_qvalues(benchmark, rng):
    p = rng.uniform(size=10_000)
    benchmark(kernels.bh_qvalues, p)


def test_map_es_small_screen(benchmark):
    """map_es end to end on 6 compounds × 2 doses, 3 replicas × 2 plates, 200 draws."""
    import lcd_metrics as lm

    rng = np.random.default_rng(0)
    rows = []
    for r in range(3):
        for p in range(2):
            rows += [("DMSO", 0.0, "24h", f"R{r}", f"R{r}P{p}")] * 34
            rows += [(f"c{c}", d, "24h", f"R{r}", f"R{r}P{p}") for c in range(6) for d in (1.0, 10.0)]
    obs = pd.DataFrame(rows, columns=["compound", "dose", "timepoint", "replica", "plate"])
    df = pd.concat([obs, pd.DataFrame(rng.normal(size=(len(obs), 64))).add_prefix("f")], axis=1)
    benchmark(lm.map_es, df, features="^f", n_draws=200)
