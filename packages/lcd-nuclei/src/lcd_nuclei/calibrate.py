"""Stain-calibrated choice: pick a counter's free settings by agreement with a few stained fields.

Label-free discovery leaves choices the images alone do not settle (which cluster, polarity, scale,
threshold, solver sigma). A screen often has a handful of fields with a nuclear stain (the paper
validated against Hoechst). Given every candidate setting's counts on the fields, these kernels
choose the setting that agrees best with the stain on the stained fields only, measure how well
the choice transfers to the other fields (a learning curve over the number of stained fields), and
store the choice beside a checkpoint so label-free runs can apply it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lcd_core import InputError

__all__ = [
    "CALIBRATION_FILE",
    "calibration_curve",
    "choose_candidate",
    "leave_one_out_choice",
    "read_calibration",
    "write_calibration",
]

#: Name of the file :func:`write_calibration` writes into a checkpoint folder.
CALIBRATION_FILE = "nuclei_calibration.json"
CRITERIA = ("mae", "ccc")


def _check(pred_counts, ref_counts) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_counts, dtype=np.float64)
    ref = np.asarray(ref_counts, dtype=np.float64)
    if pred.ndim != 2 or ref.ndim != 1 or pred.shape[1] != ref.size:
        raise InputError(
            f"pred_counts must be (candidates, fields) and ref_counts (fields,), got {pred.shape} and {ref.shape}"
        )
    if not (np.isfinite(pred).all() and np.isfinite(ref).all()):
        raise InputError("counts contain NaN or inf")
    return pred, ref


def _ccc(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Lin's CCC of each row of ``pred`` (C, n) with ``ref`` (n,), 1/n moments; -inf when undefined."""
    dp = pred - pred.mean(axis=1, keepdims=True)
    dr = ref - ref.mean()
    sxy = (dp * dr).mean(axis=1)
    denominator = (dp * dp).mean(axis=1) + (dr * dr).mean() + (pred.mean(axis=1) - ref.mean()) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 2 * sxy / denominator
    return np.where(denominator > 0, out, -np.inf)


def choose_candidate(pred_counts, ref_counts, fields=None, *, criterion: str = "mae") -> int:
    """Index of the candidate whose counts agree best with the reference on the calibration fields.

    Parameters
    ----------
    pred_counts
        ``(C, F)`` counts of C candidate settings on F fields.
    ref_counts
        ``(F,)`` reference (stain) counts.
    fields
        Indices of the stained (calibration) fields; ``None`` = all.
    criterion
        ``"mae"``: smallest mean absolute count error (works from one field; favours settings that
        get the level right, which r ignores); ``"ccc"``: largest Lin's concordance (needs at least
        two fields).

    Returns
    -------
    int
        The chosen row; ties go to the lowest index, so put the default setting first.
    """
    pred, ref = _check(pred_counts, ref_counts)
    if criterion not in CRITERIA:
        raise InputError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    idx = np.arange(ref.size) if fields is None else np.asarray(fields, dtype=np.int64).ravel()
    if idx.size == 0:
        raise InputError("no calibration field given")
    if criterion == "ccc" and idx.size < 2:
        raise InputError("criterion 'ccc' needs at least 2 calibration fields; use 'mae' with one")
    p, r = pred[:, idx], ref[idx]
    if criterion == "mae":
        return int(np.argmin(np.abs(p - r).mean(axis=1)))
    return int(np.argmax(_ccc(p, r)))


def leave_one_out_choice(pred_counts, ref_counts, *, criterion: str = "mae") -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-field-out: each field is counted with the candidate chosen on all the other fields.

    Parameters
    ----------
    pred_counts
        ``(C, F)`` counts of C candidate settings on F fields (F >= 2; >= 3 for ``"ccc"``).
    ref_counts
        ``(F,)`` reference counts.
    criterion
        See :func:`choose_candidate`.

    Returns
    -------
    chosen, counts
        ``(F,)`` int index of the candidate used for each field and ``(F,)`` its count there; the
        agreement of ``counts`` with ``ref_counts`` never used the field's own reference.
    """
    pred, ref = _check(pred_counts, ref_counts)
    n = ref.size
    if n < 2:
        raise InputError(f"leave-one-out needs at least 2 fields, got {n}")
    chosen = np.array(
        [choose_candidate(pred, ref, np.delete(np.arange(n), i), criterion=criterion) for i in range(n)]
    )
    return chosen, pred[chosen, np.arange(n)]


def calibration_curve(
    pred_counts,
    ref_counts,
    sizes,
    *,
    n_repeats: int = 50,
    criterion: str = "mae",
    seed: int = 0,
):
    """Learning curve of the stain-calibrated choice: agreement on unstained fields vs stained fields.

    For each number m of stained fields in ``sizes`` and each repeat, m fields are drawn without
    replacement (numpy ``default_rng(seed)``), a candidate is chosen on them
    (:func:`choose_candidate`) and its counts on the remaining fields are compared with their
    reference.

    Parameters
    ----------
    pred_counts
        ``(C, F)`` counts of C candidate settings on F fields.
    ref_counts
        ``(F,)`` reference counts.
    sizes
        Numbers of stained fields to try (each in ``1 .. F - 3``, so that r on the held-out
        fields is defined).
    n_repeats
        Random draws per size.
    criterion
        See :func:`choose_candidate`.
    seed
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame
        One row per size and repeat: ``n_stained``, ``repeat``, ``chosen``, ``pearson_r`` and
        ``mae`` on the held-out fields (``pearson_r`` NaN when the chosen candidate's held-out
        counts are constant; never silently 0).
    """
    import pandas as pd

    pred, ref = _check(pred_counts, ref_counts)
    n = ref.size
    rng = np.random.default_rng(seed)
    rows = []
    for m in (int(s) for s in sizes):
        if not 1 <= m <= n - 3:
            raise InputError(f"each size must be between 1 and {n - 3} (fields - 3), got {m}")
        for repeat in range(int(n_repeats)):
            stained = rng.choice(n, size=m, replace=False)
            held = np.setdiff1d(np.arange(n), stained)
            k = choose_candidate(pred, ref, stained, criterion="mae" if m < 2 else criterion)
            p, r = pred[k, held], ref[held]
            r_value = float(np.corrcoef(p, r)[0, 1]) if p.std() > 0 and r.std() > 0 else float("nan")
            rows.append(
                {
                    "n_stained": m,
                    "repeat": repeat,
                    "chosen": k,
                    "pearson_r": r_value,
                    "mae": float(np.abs(p - r).mean()),
                }
            )
    return pd.DataFrame(rows)


def write_calibration(folder, params: dict, *, evidence: dict | None = None) -> Path:
    """Store a stain-calibrated choice in a checkpoint folder (``nuclei_calibration.json``, atomic).

    Parameters
    ----------
    folder
        The checkpoint folder (must exist).
    params
        The chosen settings (JSON-able: the keyword arguments of the counter they apply to).
    evidence
        What the choice was made from: stained fields, criterion, agreement reached.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from lcd_core import write_json

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: checkpoint folder not found")
    if not isinstance(params, dict) or not params:
        raise InputError("params must be a non-empty dict of the chosen settings")
    return write_json({"params": params, "evidence": evidence or {}}, folder / CALIBRATION_FILE)


def read_calibration(folder) -> dict | None:
    """The calibration stored by :func:`write_calibration`, or ``None`` when the folder has none.

    Parameters
    ----------
    folder
        The checkpoint folder.

    Returns
    -------
    dict or None
        ``{"params": ..., "evidence": ...}``.
    """
    from lcd_core import read_json

    path = Path(folder) / CALIBRATION_FILE
    if not path.exists():
        return None
    doc = read_json(path, what="nuclei calibration")
    if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict):
        raise InputError(f"{path}: not a nuclei calibration (no 'params' object)")
    return doc
