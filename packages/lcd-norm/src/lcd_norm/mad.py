"""MAD robustization per measurement (plate × timepoint) against its negative-control rows."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from lcd_core import (
    DEFAULT_CONTROL,
    MEASUREMENT_KEYS,
    InputError,
    as_list,
    check_keys,
    control_mask,
    describe_group,
    get_rep,
    group_codes,
    record_params,
    rep_name,
    source_of,
)

from lcd_norm._mad_kernels import robust_location_scale, robustize_by_group

ZeroMadPolicy = Literal["drop", "keep", "error"]


@dataclass
class MadResult:
    """Robustized matrix and which features had a zero MAD in some group.

    ``values`` holds all features, float32 for float32 input, else float64.
    """

    values: np.ndarray
    zero_mad: np.ndarray
    n_groups: int
    n_controls: dict[str, int]


def mad_matrix(
    X: np.ndarray,
    obs: pd.DataFrame,
    measurement_keys: Sequence[str],
    control: str,
    *,
    eps: float = 1e-18,
    raw_mad: bool = False,
    source: str = "obs",
) -> MadResult:
    """Robustize ``X`` group by group against each group's control rows (shared by every MAD entry point)."""
    keys = check_keys(obs, measurement_keys, source=source)
    ctrl = control_mask(obs, control, source=source)
    codes, levels = group_codes(obs, keys)
    n_groups, n_features = len(levels), X.shape[1]
    medians, scales = np.empty((n_groups, n_features)), np.empty((n_groups, n_features))
    n_controls = {}
    ctrl_rows = np.flatnonzero(ctrl)
    ctrl_order = ctrl_rows[np.argsort(codes[ctrl_rows], kind="stable")]
    bounds = np.searchsorted(codes[ctrl_order], np.arange(n_groups + 1))
    for g in range(n_groups):
        rows = ctrl_order[bounds[g] : bounds[g + 1]]
        name = describe_group(keys, levels.iloc[g].tolist()) if keys else "all rows"
        if len(rows) == 0:
            raise InputError(
                f"{source}: group {name} has no control rows (control {control!r}); cannot robustize it"
            )
        medians[g], scales[g] = robust_location_scale(X[rows], raw_mad=raw_mad)
        n_controls[name] = len(rows)
    zero_mad = (scales == 0).any(axis=0)
    out = robustize_by_group(X, codes, medians, scales, eps)
    return MadResult(out, zero_mad, len(levels), n_controls)


def _apply_zero_mad_policy(result: MadResult, var_names: Sequence[str], policy: ZeroMadPolicy) -> list[str]:
    """Names of zero-MAD features; warn (drop/keep) or raise (error)."""
    names = [str(var_names[i]) for i in np.flatnonzero(result.zero_mad)]
    if not names:
        return names
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    if policy == "error":
        raise InputError(
            f"{len(names)} features have zero MAD among the controls of at least one group: {shown}"
        )
    action = "dropped" if policy == "drop" else "kept (divided by eps only)"
    warnings.warn(
        f"{len(names)} features have zero MAD among the controls of at least one group and were {action}: {shown}",
        UserWarning,
        stacklevel=3,
    )
    return names


def feature_names(adata: AnnData, n_features: int, use_rep: str | None) -> list[str]:
    """Names of the columns of the matrix read: ``var_names``, or ``<use_rep>_<i>`` for an obsm entry."""
    if use_rep is None:
        return [str(v) for v in adata.var_names]
    return [f"{use_rep}_{i}" for i in range(n_features)]


def robustized_kept_features(
    X: np.ndarray,
    obs: pd.DataFrame,
    measurement_keys: Sequence[str],
    control: str,
    names: Sequence[str],
    *,
    eps: float = 1e-18,
    raw_mad: bool = False,
    source: str = "obs",
) -> tuple[np.ndarray, list[str]]:
    """Robustized matrix without its zero-MAD features (warned by name), and those names.

    The MAD step of MAD + Harmony/FOV, which goes on to Harmony.
    """
    result = mad_matrix(X, obs, measurement_keys, control, eps=eps, raw_mad=raw_mad, source=source)
    _check_something_left(result, source)
    dropped = _apply_zero_mad_policy(result, names, "drop")
    return result.values[:, ~result.zero_mad], dropped


def _check_something_left(result: MadResult, source: str) -> None:
    """Refuse a result where dropping zero-MAD features leaves no feature (it was an n × 0 matrix)."""
    if result.zero_mad.size and result.zero_mad.all():
        raise InputError(
            f"{source}: every feature ({result.zero_mad.size}) has zero MAD among the controls of at least one "
            "measurement group, so none is left after dropping them (constant or all-zero controls?); "
            "check the features, or pass zero_mad='keep'"
        )


def mad_robustize(
    adata: AnnData,
    measurement_keys: str | Sequence[str] = MEASUREMENT_KEYS,
    control: str = DEFAULT_CONTROL,
    *,
    eps: float = 1e-18,
    raw_mad: bool = False,
    zero_mad: ZeroMadPolicy = "drop",
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str = "X_mad",
    copy: bool = False,
) -> AnnData | None:
    """Robust z-score of every profile against the negative controls of its measurement group.

    For each measurement (``measurement_keys``: a plate imaged at one timepoint),
    ``x' = (x - median_ctrl) / (1.4826 · MAD_ctrl + eps)``, with median and MAD per feature over the
    group's control rows, applied to all rows of the group. Equal to pycytominer's
    ``normalize(method="mad_robustize", samples=<control query>)`` run on each group alone (same
    1.4826 scale and default ``eps = 1e-18``).

    Parameters
    ----------
    adata
        Profiles; features from ``X``, ``layers[layer]`` or ``obsm[use_rep]``.
    measurement_keys
        Columns of one measurement; every group needs at least one control row (else
        :class:`~lcd_core.InputError` naming it).
    control
        Query string on ``obs`` (default ``"compound == 'DMSO'"``) or a boolean ``obs`` column.
    eps
        Added to the scale (pycytominer's ``mad_robustize_epsilon``).
    raw_mad
        Use the unscaled MAD (Arevalo et al. 2024) instead of 1.4826·MAD.
    zero_mad
        Features whose control MAD is 0 in some group: ``"drop"`` them from the result (default;
        warned), ``"keep"`` them (values become (x − median)/eps, as pycytominer does), or ``"error"``.
    layer, use_rep
        Read features from ``layers[layer]`` or ``obsm[use_rep]`` instead of ``X``.
    key_added
        ``obsm`` key receiving the robustized matrix (rows × kept features). ``uns[key_added]`` holds
        ``params``, ``features`` (the kept feature names, the matrix's columns), ``dropped_features``,
        ``zero_mad_features`` (dropped or kept) and ``n_groups``.
    copy
        Return a new AnnData instead of modifying ``adata``.

    Returns
    -------
    anndata.AnnData or None
        The modified copy when ``copy=True``, else None. ``X``, ``var`` and the layers are never
        changed: dropping zero-MAD features only narrows ``obsm[key_added]``.
    """
    if zero_mad not in ("drop", "keep", "error"):
        raise InputError(f"zero_mad must be 'drop', 'keep' or 'error', not {zero_mad!r}")
    if eps < 0:
        raise InputError(f"eps must be >= 0, not {eps}")
    source = source_of(adata)
    X = get_rep(adata, layer=layer, use_rep=use_rep, dtype=None)
    keys = as_list(measurement_keys)
    result = mad_matrix(X, adata.obs, keys, control, eps=eps, raw_mad=raw_mad, source=source)
    names = feature_names(adata, X.shape[1], use_rep)
    if zero_mad == "drop":
        _check_something_left(result, source)
    zero_names = _apply_zero_mad_policy(result, names, zero_mad)
    keep = ~result.zero_mad if zero_mad == "drop" else np.ones(len(names), dtype=bool)
    adata = adata.copy() if copy else adata
    adata.obsm[key_added] = result.values[:, keep]
    params = {
        "method": "mad_robustize",
        "measurement_keys": keys,
        "control": control,
        "eps": eps,
        "raw_mad": raw_mad,
        "zero_mad": zero_mad,
        "features": rep_name(layer=layer, use_rep=use_rep),
    }
    record_params(
        adata,
        key_added,
        params,
        features=[n for n, k in zip(names, keep, strict=True) if k],
        dropped_features=[n for n, k in zip(names, keep, strict=True) if not k],
        zero_mad_features=zero_names,
        n_groups=result.n_groups,
    )
    return adata if copy else None
