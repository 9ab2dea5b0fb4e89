"""Fast bilateral solver vs a dense, direct re-implementation written from the paper's equations."""

import numpy as np
import pytest
from lcd_nuclei.bilateral import BilateralGrid, bilateral_solve


def dense_solution(guide, target, conf, sigma_spatial, sigma_luma, lam, center_weight, iterations=10):
    """Naive oracle: dense splat matrix and grid affinity, bistochastization, np.linalg.solve."""
    h, w = guide.shape
    yy, xx = np.mgrid[:h, :w]
    coords = np.stack(
        [
            (yy / sigma_spatial).astype(int),
            (xx / sigma_spatial).astype(int),
            (guide / sigma_luma).astype(int),
        ],
        axis=-1,
    ).reshape(-1, 3)
    vertices = sorted({tuple(c) for c in coords})
    index = {v: i for i, v in enumerate(vertices)}
    n_v = len(vertices)
    splat = np.zeros((n_v, h * w))
    for p, c in enumerate(coords):
        splat[index[tuple(c)], p] = 1.0
    blur = np.eye(n_v) * center_weight
    for i, a in enumerate(vertices):
        for j, b in enumerate(vertices):
            if np.abs(np.subtract(a, b)).sum() == 1:
                blur[i, j] = 1.0
    mass = splat.sum(1)
    n = np.ones(n_v)
    for _ in range(iterations):
        n = np.sqrt(n * mass / (blur @ n))
    m = n * (blur @ n)
    a = lam * (np.diag(m) - np.diag(n) @ blur @ np.diag(n)) + np.diag(splat @ conf.ravel())
    y = np.linalg.solve(a, splat @ (conf.ravel() * target.ravel()))
    return (splat.T @ y).reshape(h, w)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_dense_direct_solve(seed):
    rng = np.random.default_rng(seed)
    guide = np.clip(rng.normal(120, 60, (12, 14)), 0, 255)
    guide[3:8, 4:9] += 60  # an edge the solution should respect
    target = (rng.random((12, 14)) > 0.5).astype(float)
    conf = rng.uniform(0.2, 1.0, (12, 14))
    params = dict(sigma_spatial=3, sigma_luma=40, lam=4.0)
    ours = bilateral_solve(guide, target, conf, **params, cg_tol=1e-14, cg_maxiter=2000)
    oracle = dense_solution(guide, target, conf.ravel(), center_weight=10.0, **params)
    np.testing.assert_allclose(ours, oracle, atol=1e-8)


def test_center_weight_six_matches_dense():
    rng = np.random.default_rng(3)
    guide = rng.uniform(0, 255, (9, 10))
    target = rng.random((9, 10))
    ours = bilateral_solve(
        guide,
        target,
        0.9,
        sigma_spatial=2,
        sigma_luma=64,
        lam=2.0,
        center_weight=6,
        cg_tol=1e-14,
        cg_maxiter=2000,
    )
    oracle = dense_solution(guide, target, np.full(90, 0.9), 2, 64, 2.0, 6.0)
    np.testing.assert_allclose(ours, oracle, atol=1e-8)


def test_constant_target_is_fixed_point():
    guide = np.random.default_rng(0).uniform(0, 255, (20, 20))
    out = bilateral_solve(guide, np.full((20, 20), 0.7), sigma_spatial=4, sigma_luma=16)
    np.testing.assert_allclose(out, 0.7, atol=1e-9)


def test_zero_smoothness_returns_vertex_mean_of_target():
    # lam = 0: each vertex takes the confidence-weighted mean of its pixels (closed form)
    guide = np.zeros((4, 4))
    target = np.arange(16, dtype=float).reshape(4, 4)
    out = bilateral_solve(guide, target, 1.0, sigma_spatial=2, sigma_luma=8, lam=0.0)
    expected = target.reshape(2, 2, 2, 2).mean((1, 3)).repeat(2, 0).repeat(2, 1)
    np.testing.assert_allclose(out, expected)


def test_grid_splat_slice_adjoint():
    rng = np.random.default_rng(5)
    grid = BilateralGrid.from_guide(rng.uniform(0, 255, (15, 11)), sigma_spatial=3, sigma_luma=30)
    x, y = rng.random(165), rng.random(grid.n_vertices)
    assert np.isclose(grid.splat(x) @ y, x @ grid.slice(y))


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        bilateral_solve(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        bilateral_solve(np.zeros((4, 4)), np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        bilateral_solve(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))


def test_the_pcg_runs_on_one_blas_thread(monkeypatch):
    """Thread policy (issue #18 item 5): the PCG's small vector products run on one BLAS thread
    (benchmarks/threads.py: 1.5x faster than two under load); the caller's limits come back after."""
    import lcd_nuclei.bilateral as bl
    from threadpoolctl import threadpool_info

    seen = []
    real = bl._pcg

    def spy(*args, **kwargs):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return real(*args, **kwargs)

    monkeypatch.setattr(bl, "_pcg", spy)
    rng = np.random.default_rng(0)
    guide = rng.random((64, 64)) * 255
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    bilateral_solve(guide, rng.random((64, 64)), np.ones((64, 64)))
    assert seen and set(seen) == {1}
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
