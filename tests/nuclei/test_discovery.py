"""Discovery kernels vs naive computations and constructed cases."""

import numpy as np
from lcd_nuclei.discovery import background_from_seed, head_weights, kmeans, nucleus_patches
from scipy.stats import entropy


def test_head_weights_from_entropy():
    rng = np.random.default_rng(0)
    att = rng.dirichlet(np.full(16, 0.3), size=(2, 3))  # (B=2, heads=3, N=16)
    w = head_weights(att)
    sparsity = 1 - np.array([[entropy(att[b, h]) for h in range(3)] for b in range(2)]) / np.log(16)
    np.testing.assert_allclose(w, sparsity / sparsity.sum(1, keepdims=True))
    uniform = np.full((1, 2, 9), 1 / 9)
    np.testing.assert_allclose(head_weights(uniform), [[0.5, 0.5]])


def naive_background(att, keys, tau):
    b, h, n, _ = keys.shape
    w = head_weights(att)
    out = np.zeros((b, n), bool)
    for i in range(b):
        seed = np.argmin((w[i][:, None] * att[i]).sum(0))
        feats = np.concatenate(
            [w[i, j] * keys[i, j] / np.linalg.norm(keys[i, j], axis=1, keepdims=True) for j in range(h)],
            axis=1,
        )
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        full = feats @ feats.T  # the N x N matrix the kernel avoids
        out[i] = full[seed] > tau
    return out


def test_background_matches_full_similarity_matrix_row():
    rng = np.random.default_rng(1)
    att = rng.dirichlet(np.ones(25), size=(3, 2))
    keys = rng.normal(size=(3, 2, 25, 4))
    bg, feats, _ = background_from_seed(att, keys, tau=0.3)
    np.testing.assert_array_equal(bg, naive_background(att, keys, 0.3))
    np.testing.assert_allclose(np.linalg.norm(feats, axis=-1), 1, rtol=1e-6)


def test_constructed_objects_are_foreground():
    rng = np.random.default_rng(2)
    n = 16
    is_object = np.zeros(n, bool)
    is_object[[5, 6, 9, 10]] = True
    keys = np.where(is_object[:, None], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]) + rng.normal(0, 0.05, (n, 3))
    att = np.where(is_object, 0.2, 0.01) + rng.uniform(0, 0.001, n)
    bg, _, _ = background_from_seed(att[None, None] / att.sum(), keys[None, None], tau=0.3)
    np.testing.assert_array_equal(~bg[0], is_object)


def test_kmeans_and_dark_cluster():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 0.1, (30, 4)), rng.normal(3, 0.1, (20, 4))])
    labels = kmeans(x, 2, seed=0)
    assert len(set(labels[:30])) == 1 and len(set(labels[30:])) == 1 and labels[0] != labels[-1]
    darkness = np.r_[np.zeros(30), np.full(20, 50.0)]
    np.testing.assert_array_equal(nucleus_patches(x, darkness), np.r_[np.zeros(30, bool), np.ones(20, bool)])
    assert nucleus_patches(np.zeros((0, 4)), np.zeros(0)).size == 0
