"""Per-profile average precision and per-group mAP with permutation p-values (copairs-compatible).

A copairs user switches by changing the import::

    # from copairs.map import average_precision, mean_average_precision
    from lcd_metrics import average_precision, mean_average_precision

    ap = average_precision(meta, feats, pos_sameby, pos_diffby, neg_sameby, neg_diffby)
    m = mean_average_precision(ap, sameby, null_size=10000, threshold=0.05, seed=0)

or computes both in one call from an AnnData / table / file:
``mean_average_precision(adata, pos_sameby=[...], neg_diffby=[...], ...)``.

References: mAP for image-based profiling and its permutation p-value, Kalinin et al. (2025) Nat Commun
16:1049 and copairs (https://github.com/cytomining/copairs); expected AP under random ranking for the
normalized AP, as in copairs' ``normalize_ap``; Benjamini & Hochberg (1995) for q-values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lcd_core import InputError, as_list, check_finite, check_keys, control_mask
from lcd_core import progress as bar
from scipy.special import digamma

from . import kernels
from ._profiles import check_nonzero, profiles
from .pairs import encode, parse_rules, rank_profiles

AP_COLUMNS = ("average_precision", "normalized_average_precision", "n_pos_pairs", "n_total_pairs")


def expected_random_ap(n_pos: np.ndarray, n_total: np.ndarray) -> np.ndarray:
    """Expected AP of a random ranking with `n_pos` positives among `n_total` (exact finite formula).

    ``E[AP] = (1/L) [ (M-1)/(L-1) (L - H_L) + H_L ]`` with ``H_L`` the L-th harmonic number.
    """
    m = np.asarray(n_pos, dtype=np.float64)
    total = np.asarray(n_total, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = digamma(total + 1) + np.euler_gamma
        mu = ((m - 1) / (total - 1) * (total - h) + h) / total
    mu = np.where(total == 1, (m == 1).astype(float), mu)
    mu = np.where(m == 0, 0.0, mu)
    return np.where(m == total, 1.0, mu)


def normalized_ap(ap: np.ndarray, n_pos: np.ndarray, n_total: np.ndarray) -> np.ndarray:
    """(AP - E[AP]) / (1 - E[AP]) clipped to [-1, 1], as copairs' ``normalize_ap``."""
    mu = expected_random_ap(n_pos, n_total)
    return np.clip((np.asarray(ap) - mu) / np.maximum(1 - mu, 1e-10), -1.0, 1.0)


def average_precision(
    meta: Any,
    feats: Any = None,
    *,
    pos_sameby: str | Sequence[str] | None = None,
    pos_diffby: str | Sequence[str] | None = (),
    neg_sameby: str | Sequence[str] | None = (),
    neg_diffby: str | Sequence[str] | None = (),
    batch_size: int | None = None,
    distance: str = "cosine",
    progress: bool = False,
    multilabel_col: str | None = None,
    multilabel_sep: str | None = "|",
    control: str | None = None,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
) -> pd.DataFrame:
    """Average precision of every profile against its positive and negative partners.

    Parameters
    ----------
    meta
        copairs style: a metadata DataFrame with `feats` given. Otherwise the profiles themselves: an
        AnnData, a pycytominer-layout DataFrame or a path (.h5ad, .csv(.gz), .parquet).
    feats
        Feature matrix (rows = rows of `meta`), only in the copairs call style.
    pos_sameby, pos_diffby, neg_sameby, neg_diffby
        Pair rules (see :mod:`lcd_metrics.pairs`): positives share every `pos_sameby` value and differ in
        every `pos_diffby` value; negatives likewise with `neg_*`.
    batch_size
        Accepted for copairs compatibility; memory is bounded by internal blocks instead.
    distance
        Only ``"cosine"`` (copairs' default) is supported.
    progress
        Show a rich progress bar (needs the `cli` extra).
    multilabel_col
        Column holding a list of labels per profile (copairs' multilabel mAP); it must be in
        `pos_sameby` (positives share the query's label) and may be in `neg_diffby` (negatives share no
        label) or `neg_sameby`. The result then has one row per profile × label with positives, the
        label in `multilabel_col`.
    multilabel_sep
        Split string cells of `multilabel_col` on this separator (default ``"|"``, as in LINCS/Broad
        MoA strings such as ``"EGFR inhibitor|HER2 inhibitor"``); ``None``: a string is one label.
        Cells holding lists are used as they are.
    control
        Retrieve against controls (copairs' ``assign_reference_index`` recipe in one argument): a
        pandas query or boolean column marking control rows; controls then have no positives (they are
        not queries) and a negative pair must join a control and a non-control.
    features, layer, use_rep
        Where features are read from (:func:`lcd_core.load_profiles`, :func:`lcd_core.get_rep`).

    Returns
    -------
    pandas.DataFrame
        The metadata of the kept rows (index unchanged) plus ``average_precision`` (NaN without
        positive partners), ``normalized_average_precision``, ``n_pos_pairs`` and ``n_total_pairs``.
    """
    if distance != "cosine":
        raise InputError(f"distance={distance!r} is not supported; lcd-metrics ranks by cosine similarity")
    obs, X, source, where = profiles(meta, feats, features=features, layer=layer, use_rep=use_rep)
    if control is not None:
        obs, pos_sameby, neg_diffby = _with_reference(obs, source, control, pos_sameby, neg_diffby)
    neg_mode = None
    if multilabel_col is not None:
        check_keys(obs, [multilabel_col], source=source, allow_missing=True)
        pos_sameby, pos_diffby, neg_sameby, neg_diffby = (
            as_list(v) for v in (pos_sameby, pos_diffby, neg_sameby, neg_diffby)
        )
        if multilabel_col not in pos_sameby or multilabel_col in pos_diffby:
            raise InputError(
                f"multilabel_col {multilabel_col!r} must be one of pos_sameby (positives share a label)"
            )
        neg_mode = (
            "diff" if multilabel_col in neg_diffby else ("same" if multilabel_col in neg_sameby else None)
        )
        pos_sameby, neg_sameby, neg_diffby = (
            [c for c in v if c != multilabel_col] for v in (pos_sameby, neg_sameby, neg_diffby)
        )
    rules, keep = parse_rules(
        obs,
        pos_sameby,
        pos_diffby,
        neg_sameby,
        neg_diffby,
        source,
        multilabel=multilabel_col is not None,
    )
    if not keep.all():
        obs, X = obs.loc[keep], X[keep]
    check_keys(obs, rules.columns, source=source)
    # only the rows that take part are checked: a NaN in a row the rule filters dropped does not matter
    check_finite(X, obs.index, where)
    check_nonzero(X, obs.index, where)
    xn = kernels.l2_normalize(X)
    codes = encode(obs, rules.columns)
    labels, label_names = None, None
    if multilabel_col is not None:
        membership, label_names = _label_membership(obs, source, multilabel_col, multilabel_sep)
        labels = (membership, None, neg_mode)
    with bar(len(xn), "average precision", enabled=progress) as advance:
        q_rows, q_labels, ap, n_pos, n_total = rank_profiles(xn, codes, rules, labels=labels, advance=advance)
    if not (n_pos > 0).any():
        raise InputError(f"{source}: no positive pairs: no two profiles satisfy pos_sameby/pos_diffby")
    if not (n_total > n_pos).any():
        raise InputError(f"{source}: no negative pairs: no two profiles satisfy neg_sameby/neg_diffby")
    if labels is None:
        out = obs.drop(columns=[_REF], errors="ignore")
    else:  # one row per (profile, label) with positives, like copairs.map.multilabel
        keep_q = n_pos > 0
        q_rows, q_labels, ap, n_pos, n_total = (a[keep_q] for a in (q_rows, q_labels, ap, n_pos, n_total))
        out = obs.iloc[q_rows].drop(columns=[_REF, multilabel_col], errors="ignore")
        out[multilabel_col] = label_names[q_labels]
    out["n_pos_pairs"] = n_pos
    out["n_total_pairs"] = n_total
    out["average_precision"] = ap
    out["normalized_average_precision"] = np.where(n_pos > 0, normalized_ap(ap, n_pos, n_total), np.nan)
    return out


_REF = "__lcd_reference_index"


def _cell_labels(value, sep: str | None) -> list | None:
    """Labels of one multilabel cell: a list/array as is, a string split on `sep`, None when missing."""
    if isinstance(value, str):
        return [x for x in value.split(sep) if x] if sep else [value]
    if value is None or isinstance(value, float):  # NaN from a CSV
        return None
    return list(value)


def _label_membership(
    obs: pd.DataFrame, source: str, col: str, sep: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows × labels) membership of a column holding label lists.

    A plain string is one label, or several joined by `sep`.
    """
    cells = [_cell_labels(v, sep) for v in obs[col]]
    bad = np.array([c is None or len(c) == 0 for c in cells])
    if bad.any():
        first = ", ".join(repr(str(i)) for i in obs.index[bad][:3])
        raise InputError(
            f"{source}: multilabel column {col!r} has {int(bad.sum())} empty or missing cells "
            f"(first rows: {first})"
        )
    flat = [str(x) for c in cells for x in c]
    names, codes = np.unique(np.array(flat, dtype=object), return_inverse=True)
    rows = np.repeat(np.arange(len(cells)), [len(c) for c in cells])
    membership = np.zeros((len(cells), len(names)), dtype=bool)
    membership[rows, codes] = True
    return membership, names


def _with_reference(
    obs: pd.DataFrame, source: str, control: str, pos_sameby, neg_diffby
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Add a column that is -1 for non-controls and unique per control, to pos_sameby and neg_diffby."""
    is_ctrl = control_mask(obs, control, source=source)
    ref = np.full(len(obs), -1, dtype=np.int64)
    ref[is_ctrl] = np.flatnonzero(is_ctrl)
    return obs.assign(**{_REF: ref}), [*as_list(pos_sameby), _REF], [*as_list(neg_diffby), _REF]


def null_distributions(configs: np.ndarray, null_size: int, seed: int) -> np.ndarray:
    """One permutation null (``null_size`` random APs) per ``(n_pos, n_total)`` configuration.

    Each configuration has its own generator seeded by ``(seed, n_pos, n_total)``, so a null does not
    depend on which other configurations exist, on their order or on the thread count.
    """
    out = np.empty((len(configs), null_size))
    for i, (k, total) in enumerate(configs):
        rng = np.random.default_rng([seed, int(k), int(total)])
        out[i] = kernels.null_ap(int(k), int(total), null_size, rng)
    return out


def _map_from_ap(
    ap_scores: pd.DataFrame, sameby: Sequence[str], null_size: int, threshold: float, seed: int
) -> pd.DataFrame:
    check_keys(
        ap_scores,
        [*sameby, "average_precision", "n_pos_pairs", "n_total_pairs"],
        source="ap_scores",
        allow_missing=True,
    )
    valid = ap_scores["average_precision"].notna().to_numpy() & (ap_scores["n_pos_pairs"].to_numpy() > 0)
    scores = ap_scores.loc[valid]
    if scores.empty:
        raise InputError("ap_scores: no profile has an average precision (no positive pairs)")
    confs = scores[["n_pos_pairs", "n_total_pairs"]].to_numpy(dtype=np.int64)
    uconf, inv = np.unique(confs, axis=0, return_inverse=True)
    nulls = null_distributions(uconf, null_size, seed)
    norm = scores["normalized_average_precision"] if "normalized_average_precision" in scores else None
    group_ids, keys = pd.factorize(
        pd.MultiIndex.from_frame(scores[list(sameby)]) if len(sameby) > 1 else scores[sameby[0]], sort=True
    )
    n_groups = len(keys)
    ap = scores["average_precision"].to_numpy(dtype=np.float64)
    count = np.bincount(group_ids, minlength=n_groups)
    mean_ap = np.bincount(group_ids, weights=ap, minlength=n_groups) / count
    # mAP null of a group = mean over its profiles of their configuration's null (copairs' definition)
    null_sum = np.zeros((n_groups, null_size))
    _add_rows(null_sum, group_ids, nulls, inv.ravel())
    null_mean = null_sum / count[:, None]
    p = ((null_mean > mean_ap[:, None]).sum(axis=1) + 1) / (null_size + 1)
    if len(sameby) > 1:
        out = pd.DataFrame(list(keys), columns=list(sameby))
    else:
        out = pd.DataFrame({sameby[0]: keys})
    out["mean_average_precision"] = mean_ap
    if norm is not None:
        out["mean_normalized_average_precision"] = (
            np.bincount(group_ids, weights=norm.to_numpy(np.float64), minlength=n_groups) / count
        )
    out["n_profiles"] = count
    out["p_value"] = p
    out["corrected_p_value"] = kernels.bh_qvalues(p)
    out["below_p"] = out["p_value"] < threshold
    out["below_corrected_p"] = out["corrected_p_value"] < threshold
    return out


def _add_rows(target: np.ndarray, group_ids: np.ndarray, nulls: np.ndarray, conf_ix: np.ndarray) -> None:
    """Sum null rows per group without a (profiles x null_size) temporary: count (group, config) first."""
    pairs, counts = np.unique(np.stack([group_ids, conf_ix], axis=1), axis=0, return_counts=True)
    for (g, c), k in zip(pairs, counts, strict=True):
        target[g] += k * nulls[c]


def mean_average_precision(
    data: Any,
    sameby: str | Sequence[str] | None = None,
    *,
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
    progress: bool = False,
    max_workers: int | None = None,
    cache_dir: Any = None,
    pos_sameby: str | Sequence[str] | None = None,
    pos_diffby: str | Sequence[str] | None = (),
    neg_sameby: str | Sequence[str] | None = (),
    neg_diffby: str | Sequence[str] | None = (),
    multilabel_col: str | None = None,
    multilabel_sep: str | None = "|",
    control: str | None = None,
    features: Sequence[str] | str | None = None,
    layer: str | None = None,
    use_rep: str | None = None,
    return_ap: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Mean average precision per group with a permutation p-value and BH q-value.

    Parameters
    ----------
    data
        Either an AP table from :func:`average_precision` (copairs call style, then `pos_sameby` is
        left out), or profiles (AnnData, DataFrame in pycytominer layout, or a path) together with the
        pair rules, in which case AP is computed first.
    sameby
        Columns defining the groups whose APs are averaged; default: `pos_sameby`.
    null_size
        Random rankings per ``(n_pos_pairs, n_total_pairs)`` configuration in the permutation null.
    threshold
        Significance level for ``below_p`` and ``below_corrected_p``.
    seed
        Seed of the null; results are identical for the same seed whatever ran before (no disk cache).
    progress
        Show a progress bar while AP is computed (profiles input only).
    max_workers, cache_dir
        Accepted for copairs compatibility; they have no effect.
    pos_sameby, pos_diffby, neg_sameby, neg_diffby, multilabel_col, multilabel_sep, control, features, layer, use_rep
        As in :func:`average_precision`.
    return_ap
        Also return the per-profile AP table: ``(map_table, ap_table)``.

    Returns
    -------
    pandas.DataFrame or tuple of pandas.DataFrame
        One row per group: the `sameby` columns, ``mean_average_precision``,
        ``mean_normalized_average_precision``, ``n_profiles``, ``p_value`` (fraction of null mAPs
        strictly above the observed one, with +1 smoothing), ``corrected_p_value`` (BH q-value),
        ``below_p``, ``below_corrected_p``; with ``return_ap`` also the AP table.

    Notes
    -----
    The null of a group's mAP is, as in copairs, the mean over the group's profiles of the null AP
    vector of each profile's configuration (profiles sharing a configuration share one null vector).
    """
    if null_size < 1:
        raise InputError(f"null_size must be >= 1, got {null_size}")
    if (
        pos_sameby is None
        and isinstance(data, pd.DataFrame)
        and {"average_precision", "n_pos_pairs", "n_total_pairs"} <= set(data.columns)
    ):
        ap_table = data
        if sameby is None:
            raise InputError("sameby is required when passing an AP table")
    else:
        if pos_sameby is None and not pos_diffby:
            raise InputError(
                "pass pos_sameby (and the other pair rules), or an AP table from average_precision()"
            )
        ap_table = average_precision(
            data,
            pos_sameby=pos_sameby,
            pos_diffby=pos_diffby,
            neg_sameby=neg_sameby,
            neg_diffby=neg_diffby,
            progress=progress,
            multilabel_col=multilabel_col,
            multilabel_sep=multilabel_sep,
            control=control,
            features=features,
            layer=layer,
            use_rep=use_rep,
        )
        if sameby is None:
            sameby = [
                c
                for c in parse_rules(ap_table, pos_sameby, pos_diffby, neg_sameby, neg_diffby, "ap")[
                    0
                ].pos_sameby
            ]
            if not sameby:
                raise InputError("sameby is required when pos_sameby is empty")
    sameby = [sameby] if isinstance(sameby, str) else list(sameby)
    result = _map_from_ap(ap_table, sameby, null_size, threshold, seed)
    return (result, ap_table) if return_ap else result
