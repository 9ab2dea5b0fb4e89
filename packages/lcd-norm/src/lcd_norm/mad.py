"""MAD robustization per measurement (plate × timepoint) against its negative-control rows."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from lcd_norm._data import (
    DEFAULT_CONTROL,
    InputError,
    check_keys,
    control_mask,
    describe_group,
    feature_source,
    get_features,
    group_codes,
    jsonable,
)
from lcd_norm._mad_kernels import robust_location_scale, robustize_by_group

ZeroMadPolicy = Literal["drop", "keep", "error"]


@dataclass
class MadResult:
    """Robustized matrix (all features; float32 for float32 input, else float64) and which features had
    a zero MAD in some group."""

    values: np.ndarray
    zero_mad: np.ndarray
    n_groups: int
    n_controls: dict[str, int]


def mad_matrix(
    X: np.ndarray,
    obs: pd.DataFrame,
    by: Sequence[str],
    control: str,
    *,
    eps: float = 1e-18,
    raw_mad: bool = False,
) -> MadResult:
    """Robustize ``X`` group by group against each group's control rows (shared by every MAD entry point)."""
    keys = check_keys(obs, by)
    ctrl = control_mask(obs, control)
    if not ctrl.any():
        raise InputError(f"control {control!r} selects no rows; check the control query or column")
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
            raise InputError(f"group {name} has no control rows (control {control!r}); cannot robustize it")
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


def robustized_kept_features(
    X: np.ndarray,
    obs: pd.DataFrame,
    by: Sequence[str],
    control: str,
    feature_names: Sequence[str],
    *,
    eps: float = 1e-18,
    raw_mad: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Robustized matrix without its zero-MAD features (warned by name), and those names.

    The MAD step of the pipelines that go on to another method (MAD + Harmony/FOV, compare).
    """
    result = mad_matrix(X, obs, by, control, eps=eps, raw_mad=raw_mad)
    dropped = _apply_zero_mad_policy(result, feature_names, "drop")
    return result.values[:, ~result.zero_mad], dropped


def mad_robustize(
    adata: AnnData,
    by: str | Sequence[str] = ("plate", "timepoint"),
    control: str = DEFAULT_CONTROL,
    *,
    eps: float = 1e-18,
    raw_mad: bool = False,
    zero_mad: ZeroMadPolicy = "drop",
    layer: str | None = None,
    key_added: str = "mad",
    copy: bool = False,
) -> AnnData | None:
    """Robust z-score of every profile against the negative controls of its measurement group.

    For each group of ``by`` (a *measurement*: plate imaged at one timepoint),
    ``x' = (x - median_ctrl) / (1.4826 · MAD_ctrl + eps)``, with median and MAD per feature over the
    group's control rows, applied to all rows of the group. Equal to pycytominer's
    ``normalize(method="mad_robustize", samples=<control query>)`` run on each group alone (same
    1.4826 scale and default ``eps = 1e-18``).

    Parameters
    ----------
    adata
        Profiles; features from ``X`` or ``layers[layer]``.
    by
        Group columns; every group needs at least one control row (else :class:`InputError` naming it).
    control
        Query string on ``obs`` (default ``"compound == 'DMSO'"``) or a boolean ``obs`` column.
    eps
        Added to the scale (pycytominer's ``mad_robustize_epsilon``).
    raw_mad
        Use the unscaled MAD (Arevalo et al. 2024) instead of 1.4826·MAD.
    zero_mad
        Features whose control MAD is 0 in some group: ``"drop"`` them from the AnnData (default;
        warned and listed in ``uns[key_added]["zero_mad_features"]``), ``"keep"`` them (values become
        (x − median)/eps, as pycytominer does), or ``"error"``.
    layer
        Read features from this layer instead of ``X``.
    key_added
        Layer receiving the robustized matrix; provenance in ``uns[key_added]``.
    copy
        Return a new AnnData instead of modifying ``adata``.

    Returns
    -------
    The modified copy when ``copy=True``, else None. Dropping zero-MAD features subsets ``var`` of the
    AnnData (``X`` and every layer), like ``scanpy.pp.filter_genes``.
    """
    if zero_mad not in ("drop", "keep", "error"):
        raise InputError(f"zero_mad must be 'drop', 'keep' or 'error', not {zero_mad!r}")
    if eps < 0:
        raise InputError(f"eps must be >= 0, not {eps}")
    X = get_features(adata, layer=layer)
    result = mad_matrix(X, adata.obs, by, control, eps=eps, raw_mad=raw_mad)
    zero_names = _apply_zero_mad_policy(result, adata.var_names, zero_mad)
    adata = adata.copy() if copy else adata
    adata.layers[key_added] = result.values
    if zero_names and zero_mad == "drop":
        adata._inplace_subset_var(~result.zero_mad)
    adata.uns[key_added] = {
        "params": jsonable(
            {
                "method": "mad_robustize",
                "by": list(check_keys(adata.obs, by)),
                "control": control,
                "eps": eps,
                "raw_mad": raw_mad,
                "zero_mad": zero_mad,
                "features": feature_source(layer, None),
            }
        ),
        "n_groups": result.n_groups,
        "zero_mad_features": zero_names,
    }
    return adata if copy else None
