"""p-values of group mAPs: exact where the null can be enumerated, permutation otherwise; hierarchical FDR.

The null of one profile with ``k`` positives among ``total`` candidates is the AP of a random ranking
(copairs; Kalinin et al. 2025). Profiles of a group that share a ``(k, total)`` configuration share one
null draw (copairs' definition, conservative), distinct configurations are independent; the group's
null mAP is the profiles' mean.

- **exact** (``p_method = "exact"``): when every configuration of the group has at most ``null_size``
  rankings (``C(total, k) <= null_size``, copairs issue #105) the null of each configuration is
  enumerated and the group's null distribution is their exact convolution (while it has at most
  ``null_size`` distinct values); ``p = P(null >= mAP)``.
- **permutation** (``p_method = "permutation"``): ``null_size`` random rankings per configuration,
  seeded by ``(seed, k, total)``; ``p = (1 + #{null >= mAP}) / (null_size + 1)``.

"null >= mAP" counts a null value within :data:`TIE_TOL` below the observed mAP as a tie: a null
ranking identical to the observed one is at least as extreme (copairs 0.5.5 counted ``null > mAP``,
which gives p = 1/(null_size + 1) to a perfect retrieval whose null has many perfect rankings; see
copairs issue #49).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from lcd_core import InputError

from . import kernels

#: Null values this close below an observed mAP count as ties (summation-order rounding of a mean
#: of APs is ~1e-15; distinct AP values of small configurations are > 1e-6 apart).
TIE_TOL = 1e-10


def null_distributions(configs: np.ndarray, null_size: int, seed: int) -> np.ndarray:
    """One permutation null (``null_size`` random APs) per ``(n_pos, n_total)`` configuration.

    Each configuration has its own generator seeded by ``(seed, n_pos, n_total)``, so a null does not
    depend on which other configurations exist, on their order or on the thread count.

    Parameters
    ----------
    configs
        ``(n, 2)`` rows of ``(n_pos, n_total)``.
    null_size
        Random rankings per configuration.
    seed
        Seed.
    """
    out = np.empty((len(configs), null_size))
    for i, (k, total) in enumerate(configs):
        rng = np.random.default_rng([seed, int(k), int(total)])
        out[i] = kernels.null_ap(int(k), int(total), null_size, rng)
    return out


def enumerated_ap(k: int, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct AP values of all ``C(total, k)`` rankings and the probability of each (sorted values).

    Parameters
    ----------
    k, total
        Positives and candidates.
    """
    if k == total:
        return np.ones(1), np.ones(1)
    ranks = np.array(list(itertools.combinations(range(1, total + 1), k)), dtype=np.float64)
    aps = (np.arange(1, k + 1) / ranks).mean(axis=1)
    return _atoms(aps, np.full(aps.size, 1.0 / aps.size))


def _atoms(values: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge equal values (to 1e-12) of a discrete distribution; sorted values and their probabilities."""
    key = np.round(values, 12)
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq, np.bincount(inv.ravel(), weights=probs, minlength=uniq.size)


def exact_group_null(
    configs: np.ndarray, counts: np.ndarray, cache: dict, cap: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact null of a group's mAP: the weighted sum of independent per-configuration APs, or None.

    None when a configuration has more than ``cap`` rankings or the convolution more than ``cap``
    distinct values.

    Parameters
    ----------
    configs
        ``(m, 2)`` distinct configurations of the group.
    counts
        Profiles of the group with each configuration.
    cache
        Enumerated configurations, reused across groups.
    cap
        Largest number of rankings / distinct values handled exactly (``null_size``).
    """
    n = counts.sum()
    values, probs = np.zeros(1), np.ones(1)
    for (k, total), c in zip(configs, counts, strict=True):
        k, total = int(k), int(total)
        if math.comb(total, k) > cap:
            return None
        if (k, total) not in cache:
            cache[(k, total)] = enumerated_ap(k, total)
        v, p = cache[(k, total)]
        if values.size * v.size > cap:
            return None
        values, probs = _atoms((values[:, None] + (c / n) * v[None, :]).ravel(), (probs[:, None] * p).ravel())
    return values, probs


def group_pvalues(
    mean_ap: np.ndarray,
    group_ids: np.ndarray,
    conf_ix: np.ndarray,
    configs: np.ndarray,
    null_size: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """p-value and method (``exact``/``permutation``) of each group's mAP.

    Parameters
    ----------
    mean_ap
        ``(n_groups,)`` observed mAPs.
    group_ids, conf_ix
        Per profile: its group and its configuration (row of ``configs``).
    configs
        ``(n_conf, 2)`` distinct ``(n_pos, n_total)``.
    null_size, seed
        Size and seed of the permutation null.
    """
    n_groups = mean_ap.size
    pairs, counts = np.unique(np.stack([group_ids, conf_ix], axis=1), axis=0, return_counts=True)
    starts = np.searchsorted(pairs[:, 0], np.arange(n_groups + 1))
    p = np.full(n_groups, np.nan)
    method = np.full(n_groups, "permutation", dtype=object)
    # groups with the same (configuration, count) list have the same null: it is built and sorted
    # once per such signature and every group's p-value is a binary search (a loop over 22k groups
    # with a 1000-draw comparison each was 0.35 s at 100k wells; the counts are the same integers)
    sig_of = _signatures(pairs, counts, starts)
    first = np.unique(sig_of, return_index=True)[1]
    cache: dict = {}
    random_sigs = []
    for si, g in enumerate(first):
        sl = slice(starts[g], starts[g + 1])
        members = np.flatnonzero(sig_of == si)
        exact = exact_group_null(configs[pairs[sl, 1]], counts[sl], cache, null_size)
        if exact is None:
            random_sigs.append((g, members))
            continue
        values, probs = exact
        # P(null >= mAP - tol): values are sorted, so the tail is a slice (summed as before: same bits)
        hit = np.searchsorted(values, mean_ap[members] - TIE_TOL, side="left")
        for h in np.unique(hit):
            p[members[hit == h]] = min(1.0, float(probs[h:].sum()))
        method[members] = "exact"
    if random_sigs:
        used = np.unique(np.concatenate([pairs[starts[g] : starts[g + 1], 1] for g, _ in random_sigs]))
        nulls = np.zeros((configs.shape[0], null_size))
        nulls[used] = null_distributions(configs[used], null_size, seed)
        for g, members in random_sigs:
            sl = slice(starts[g], starts[g + 1])
            # the group's null: its profiles' configuration nulls averaged (no profiles x null temporary)
            null = np.sort((counts[sl, None] * nulls[pairs[sl, 1]]).sum(axis=0) / counts[sl].sum())
            below = np.searchsorted(null, mean_ap[members] - TIE_TOL, side="left")
            p[members] = (1 + (null_size - below)) / (null_size + 1)
    return p, method


def _signatures(pairs: np.ndarray, counts: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per group, an integer naming its list of ``(configuration, count)`` (equal lists, equal ids)."""
    n_groups = starts.size - 1
    width = int(np.diff(starts).max(initial=0))
    table = np.full((n_groups, 2 * width), -1, dtype=np.int64)
    within = np.arange(pairs.shape[0]) - np.repeat(starts[:-1], np.diff(starts))
    table[pairs[:, 0], 2 * within] = pairs[:, 1]
    table[pairs[:, 0], 2 * within + 1] = counts
    return np.unique(table, axis=0, return_inverse=True)[1].ravel()


def hierarchical_fdr(
    table: pd.DataFrame, hierarchical_by: Sequence[str], sameby: Sequence[str], threshold: float
) -> pd.DataFrame:
    """Two-stage FDR over groups of tests (copairs' ``hierarchical_by``, e.g. doses of a compound).

    Stage 1: the smallest p-value of each ``hierarchical_by`` group, BH-adjusted across groups
    (``stage1_p_value``, ``stage1_corrected_p_value``, ``stage1_significant`` = adjusted < threshold).
    Stage 2: within each group that passed, BH over its tests (a single test keeps its p-value);
    ``corrected_p_value`` is 1 in groups that did not pass. Rows without a p-value are left out and
    keep NaN.

    Parameters
    ----------
    table
        mAP table with ``p_value`` and the ``sameby`` columns.
    hierarchical_by
        Columns of the families: a proper subset of ``sameby``.
    sameby
        The table's group columns.
    threshold
        Level of stage 1.
    """
    fam = list(hierarchical_by)
    if not set(fam) < set(sameby):
        raise InputError(
            f"hierarchical_by {fam} must be a proper subset of sameby {list(sameby)} "
            "(e.g. sameby=[compound, dose], hierarchical_by=[compound])"
        )
    out = table.copy()
    ok = out["p_value"].notna().to_numpy()
    out["stage1_p_value"] = np.nan
    out["stage1_corrected_p_value"] = np.nan
    out["stage1_significant"] = False
    out["corrected_p_value"] = np.nan
    if not ok.any():
        return out
    scored = out.loc[ok]
    fam_ids, _ = pd.factorize(
        pd.MultiIndex.from_frame(scored[fam]) if len(fam) > 1 else scored[fam[0]], sort=True
    )
    stage1 = pd.Series(scored["p_value"].to_numpy()).groupby(fam_ids).min()
    q1 = pd.Series(kernels.bh_qvalues(stage1.to_numpy()), index=stage1.index)
    passed = q1 < threshold
    corrected = np.ones(len(scored))
    pv = scored["p_value"].to_numpy()
    for f in np.flatnonzero(passed.to_numpy()):
        members = np.flatnonzero(fam_ids == stage1.index[f])
        corrected[members] = pv[members] if members.size == 1 else kernels.bh_qvalues(pv[members])
    out.loc[ok, "stage1_p_value"] = stage1.to_numpy()[fam_ids]
    out.loc[ok, "stage1_corrected_p_value"] = q1.to_numpy()[fam_ids]
    out.loc[ok, "stage1_significant"] = passed.to_numpy()[fam_ids]
    out.loc[ok, "corrected_p_value"] = corrected
    return out
