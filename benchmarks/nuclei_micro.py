r"""Micro-benchmarks of lcd-nuclei's kernels with pytest-benchmark (not part of the test run).

    heavy uv run pytest benchmarks/nuclei_micro.py --benchmark-only -q          # a quick look
    exclusive uv run pytest benchmarks/nuclei_micro.py --benchmark-only \\
        --benchmark-json /tmp/nuclei_micro.json                                  # numbers to keep

Each benchmark times one kernel on inputs of the sizes it meets: a demo field (3 planes of 96²),
a DSB image (1024²), the foreground patch keys of one field for k-means. The end-to-end timings are
``lcd demo``'s stage times and the README's "Quality" runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from lcd_nuclei import (
    DiscoveryParams,
    bilateral_solve,
    classical_field,
    classical_nuclei,
    estimate_noise,
    tie_phase,
)
from lcd_nuclei.discovery import kmeans

pytest.importorskip("pytest_benchmark")


def blobs(shape, n, diameter, seed=0):
    """Dark discs of ``diameter`` on a noisy lamp: a stand-in field with ``n`` nuclei."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = 1000.0 + 50 * xx / shape[1] + rng.normal(0, 10, shape)
    for cy, cx in rng.uniform(diameter, np.array(shape) - diameter, (n, 2)):
        image -= 80 * (((yy - cy) ** 2 + (xx - cx) ** 2) < (diameter / 2) ** 2)
    return image


@pytest.fixture(scope="module")
def demo_field():
    """3 planes of 96² (the demo preset's field), nuclei ~7 px."""
    base = blobs((96, 96), 20, 7.2)
    rng = np.random.default_rng(1)
    return np.stack([base + rng.normal(0, 5, base.shape) for _ in range(3)])


@pytest.fixture(scope="module")
def dsb_size():
    return blobs((1024, 1024), 100, 16)


def test_tie_phase_demo_field(benchmark, demo_field):
    benchmark(tie_phase, demo_field, np.array([-1.0, 0.0, 1.0]), highpass=4 * 7.2)


def test_classical_field_demo_tie(benchmark, demo_field):
    """The demo's whole per-field nuclei step: TIE channel, its noise, the counter."""
    params = DiscoveryParams(channel="tie", polarity="auto", diameter=7.2)
    benchmark(classical_field, demo_field, params=params)


def test_classical_nuclei_1024(benchmark, dsb_size):
    benchmark(classical_nuclei, dsb_size, diameter=16, polarity="dark")


def test_estimate_noise_1024(benchmark, dsb_size):
    benchmark(estimate_noise, dsb_size)


def test_bilateral_solve_1024(benchmark, dsb_size):
    grey = 255 * (dsb_size - dsb_size.min()) / np.ptp(dsb_size)
    target = (grey < np.percentile(grey, 20)).astype(np.float64)
    benchmark(bilateral_solve, grey, target, 0.999)


def test_kmeans_foreground_keys(benchmark):
    """Four-means on 8000 patch keys of 64 dims (the foreground of a 1024² field at patch 8)."""
    x = np.random.default_rng(0).normal(size=(8000, 64))
    benchmark(kmeans, x, 4, seed=0)
