"""Loss terms and centers against straightforward re-implementations (numpy loops, float64)."""

import math

import numpy as np
import pytest
import torch
from lcd_ssl import MultiCropLoss, ReplicaCenters, barlow_term, dino_cross_entropy


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def reference_dino(student, teacher, centers_per_row, n_views, ts, tt):
    """DINO loss written out: every (teacher global view, student view) pair but the same view, per image."""
    b = teacher.shape[0] // 2
    s_views = [student[v * b : (v + 1) * b] / ts for v in range(n_views)]
    t_views = [
        _softmax((teacher[v * b : (v + 1) * b] - centers_per_row[v * b : (v + 1) * b]) / tt) for v in range(2)
    ]
    total, n_terms = 0.0, 0
    for iq, q in enumerate(t_views):
        for v, s in enumerate(s_views):
            if v == iq:
                continue
            per_image = [-(q[i] * _log_softmax(s[i])).sum() for i in range(b)]
            total += sum(per_image) / b
            n_terms += 1
    return total / n_terms


def reference_barlow(t_views, s_views, lambd):
    """Haslum-style Barlow: explicit D×D cross-correlation per pair, element loops for the sums."""
    terms = []
    for iq, t in enumerate(t_views):
        for v, s in enumerate(s_views):
            if v == iq:
                continue
            n, d = t.shape
            tn = (t - t.mean(0)) / np.sqrt(t.var(0) + 1e-5)
            sn = (s - s.mean(0)) / np.sqrt(s.var(0) + 1e-5)
            c = np.zeros((d, d))
            for i in range(d):
                for j in range(d):
                    c[i, j] = sum(tn[k, i] * sn[k, j] for k in range(n)) / n
            on = sum((c[i, i] - 1) ** 2 for i in range(d)) / d
            off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / (d * (d - 1))
            terms.append((1 - lambd) * on + lambd * off)
    return sum(terms) / len(terms)


@pytest.mark.parametrize("n_views", [2, 4, 8])
def test_dino_cross_entropy_matches_reference(n_views):
    rng = np.random.default_rng(n_views)
    b, d = 5, 16
    student = rng.normal(size=(n_views * b, d))
    teacher = rng.normal(size=(2 * b, d))
    q = torch.softmax(torch.tensor(teacher / 0.04), -1).reshape(2, b, d)
    logp = torch.log_softmax(torch.tensor(student / 0.1), -1).reshape(n_views, b, d)
    got = dino_cross_entropy(logp, q).item()
    want = reference_dino(student, teacher, np.zeros_like(teacher), n_views, 0.1, 0.04)
    assert got == pytest.approx(want, rel=1e-10)


def test_multicrop_loss_uses_per_row_replica_centers_then_updates_them():
    rng = np.random.default_rng(1)
    b, d, n_views, n_rep = 6, 12, 4, 3
    student = rng.normal(size=(n_views * b, d)).astype(np.float32)
    teacher = rng.normal(size=(2 * b, d)).astype(np.float32)
    replicas = rng.integers(0, 2, size=2 * b)  # replica 2 absent from the batch
    init = rng.normal(size=(n_rep, d)).astype(np.float32)
    loss = MultiCropLoss(d, n_replicas=n_rep, student_temp=0.1, center_momentum=0.9)
    loss.centers.centers.copy_(torch.tensor(init))
    out = loss(
        torch.tensor(student),
        torch.tensor(teacher),
        torch.tensor(replicas),
        teacher_temp=0.04,
        n_student_views=n_views,
    )
    want = reference_dino(
        student.astype(np.float64),
        teacher.astype(np.float64),
        init[replicas].astype(np.float64),
        n_views,
        0.1,
        0.04,
    )
    assert out["dino"].item() == pytest.approx(want, rel=1e-5)
    new = loss.centers.centers.numpy()
    for r in range(n_rep):
        rows = teacher[replicas == r]
        expected = init[r] if len(rows) == 0 else 0.9 * init[r] + 0.1 * rows.mean(0)
        np.testing.assert_allclose(new[r], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(new[2], init[2])  # absent replica keeps its center


def test_single_center_is_dino_center_update():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(10, 7)).astype(np.float32)
    c = ReplicaCenters(1, 7, momentum=0.9)
    c.update(torch.tensor(t), torch.zeros(10, dtype=torch.int64))
    c.update(torch.tensor(2 * t), torch.zeros(10, dtype=torch.int64))
    # DINO: center = 0.9 * center + 0.1 * batch mean, twice from zero
    expected = 0.9 * (0.1 * t.mean(0)) + 0.1 * (2 * t).mean(0)
    np.testing.assert_allclose(c.centers.numpy()[0], expected, rtol=1e-6)


@pytest.mark.parametrize("lambd", [0.0, 0.5, 0.9])
def test_barlow_term_matches_naive_loops(lambd):
    rng = np.random.default_rng(3)
    n, d, n_views = 7, 6, 3
    t = rng.normal(size=(2, n, d))
    s = rng.normal(size=(n_views, n, d)) + 0.8 * np.concatenate([t, t[:1]])  # correlated views
    got = barlow_term(torch.tensor(t), torch.tensor(s), lambd=lambd).item()
    want = reference_barlow(list(t), list(s), lambd)
    assert got == pytest.approx(want, rel=1e-5)


def test_barlow_gradient_matches_dense_autograd():
    """The Gram-matrix shortcut has the gradient of the explicit D×D formulation."""
    rng = np.random.default_rng(4)
    n, d = 9, 5
    t = torch.tensor(rng.normal(size=(2, n, d)))
    s1 = torch.tensor(rng.normal(size=(3, n, d)), requires_grad=True)
    s2 = s1.detach().clone().requires_grad_(True)
    barlow_term(t, s1, lambd=0.5).backward()

    def bn(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    terms = []
    for iq in range(2):
        for v in range(3):
            if v == iq:
                continue
            c = bn(t[iq]).T @ bn(s2[v]) / n
            eye = torch.eye(d, dtype=c.dtype)
            on = ((torch.diagonal(c) - 1) ** 2).mean()
            off = (c[eye == 0] ** 2).mean()
            terms.append(0.5 * on + 0.5 * off)
    torch.stack(terms).mean().backward()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-6, atol=1e-9)


def test_barlow_normalization_matches_dino_scale_at_start():
    """Weighted 1:1 after normalization: loss = dino + ln(D)/(1-λ) * barlow (documented)."""
    d = 64
    loss = MultiCropLoss(d, use_barlow=True, barlow_lambda=0.5)
    assert loss.barlow_scale == pytest.approx(math.log(d) / 0.5)
    rng = np.random.default_rng(5)
    b = 32
    s = torch.tensor(rng.normal(size=(4 * b, d)), dtype=torch.float32)
    t = torch.tensor(rng.normal(size=(2 * b, d)), dtype=torch.float32)
    out = loss(s, t, torch.zeros(2 * b, dtype=torch.int64), teacher_temp=0.04, n_student_views=4)
    assert out["loss"].item() == pytest.approx(
        out["dino"].item() + loss.barlow_scale * out["barlow"].item(), rel=1e-6
    )
    # uncorrelated outputs: the Barlow term is about its reference value 1 - λ (+ λ/N off-diagonal)
    assert out["barlow"].item() == pytest.approx(0.5 + 0.5 / b, rel=0.2)
