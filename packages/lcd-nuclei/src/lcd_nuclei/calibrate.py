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
    "calibrate_counter",
    "calibration_curve",
    "candidate_grid",
    "choose_candidate",
    "leave_one_out_choice",
    "read_calibration",
    "write_calibration",
]

#: Name of the file :func:`write_calibration` writes into a checkpoint folder.
CALIBRATION_FILE = "nuclei_calibration.json"
CRITERIA = ("mae", "ccc")
#: Floors tried by :func:`candidate_grid`, in noise SDs (6 first: the label-free default).
FLOORS = (6.0, 3.0, 10.0, 20.0)


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


def candidate_grid(params=None, *, n_planes: int = 1) -> list[dict]:
    """The settings :func:`calibrate_counter` chooses among: the classical counter's free choices.

    Channel (``tie``, ``defocus``, ``grey`` when the fields have 2 or more planes, else ``grey``) x
    polarity (``auto``, ``dark``, ``bright``) x diameter (1, 0.75, 1.5 x ``params.diameter``) x floor
    (:data:`FLOORS` noise SDs) x threshold method (``otsu``, ``mad``). ``params``' own values come
    first in each list, so on a tie the calibration keeps them.

    Parameters
    ----------
    params
        :class:`lcd_nuclei.DiscoveryParams` the candidates start from (default: the defaults).
    n_planes
        Planes the channel is made from.

    Returns
    -------
    list of dict
        Each a dict of :class:`lcd_nuclei.DiscoveryParams` fields (``channel``, ``polarity``,
        ``diameter``, ``floor``, ``threshold_method``).
    """
    import itertools

    from .field import DiscoveryParams

    params = params or DiscoveryParams()

    def first(own, values):
        return [own, *[v for v in values if v != own]]

    d = float(params.diameter)
    lists = {
        "channel": first(params.channel, ("tie", "defocus", "grey") if n_planes >= 2 else ("grey",)),
        "polarity": first(params.polarity, ("auto", "dark", "bright")),
        "diameter": first(d, (d, 0.75 * d, 1.5 * d)),
        "floor": first(float(params.floor), FLOORS),
        "threshold_method": first(params.threshold_method, ("otsu", "mad")),
    }
    if n_planes < 2:
        lists["channel"] = ["grey"]
    return [dict(zip(lists, values, strict=True)) for values in itertools.product(*lists.values())]


def calibrate_counter(
    images,
    stains,
    *,
    params=None,
    candidates: list[dict] | None = None,
    cell_masks=None,
    criterion: str | None = None,
    progress: bool = False,
) -> dict:
    """Choose the classical counter's settings by agreement with a nuclear stain on a few fields.

    Each stained field's reference count is :func:`lcd_nuclei.nuclei_from_stain` with one threshold
    for all of them (:func:`lcd_nuclei.stain_threshold`, so an empty field stays empty). Every
    candidate setting counts every field (as :func:`lcd_nuclei.classical_field` does, inside the
    cell area when ``cell_masks`` are given; each channel is computed once per field) and
    :func:`choose_candidate` picks one.

    Parameters
    ----------
    images
        Sequence of ``(P, H, W)`` or ``(H, W)`` raw fields (the label-free channel's planes).
    stains
        Sequence of ``(H, W)`` nuclear-stain images of the same fields.
    params
        :class:`lcd_nuclei.DiscoveryParams` the candidates change (default: the defaults;
        ``nuclei_step`` is set to ``"classical"``).
    candidates
        Settings to choose among (dicts of ``DiscoveryParams`` fields); default
        :func:`candidate_grid`.
    cell_masks
        Optional sequence of ``(H, W)`` bool cell areas (the ViT's ``cell_mask``); objects whose
        centre lies outside are not counted, as ``count_nuclei`` does with a model.
    criterion
        ``"ccc"`` or ``"mae"`` (:func:`choose_candidate`); default ``"ccc"``, ``"mae"`` with one field.
    progress
        Show a progress bar over the fields.

    Returns
    -------
    dict
        ``params`` (the chosen candidate's settings, for :func:`write_calibration`) and
        ``evidence``: fields, criterion, the stain threshold, reference and chosen counts, their
        agreement on the calibration fields (in-sample) and, from 3 fields, the leave-one-field-out
        agreement (each field counted with the setting chosen on the others: an honest estimate).
    """
    from dataclasses import replace

    import lcd_core

    from .channels import channel_noise, nucleus_channel
    from .classical import classical_nuclei
    from .evaluate import count_agreement
    from .field import DiscoveryParams, keep_inside
    from .stain import nuclei_from_stain, stain_threshold

    images, stains = list(images), [np.asarray(s, dtype=np.float64) for s in stains]
    if not images or len(images) != len(stains):
        raise InputError(f"need one stain image per field, got {len(images)} fields and {len(stains)} stains")
    if cell_masks is not None:
        cell_masks = [np.asarray(m, dtype=bool) for m in cell_masks]
        if len(cell_masks) != len(images):
            raise InputError(f"{len(cell_masks)} cell masks for {len(images)} fields")
    params = replace(params or DiscoveryParams(), nuclei_step="classical")
    n_planes = min(np.asarray(img).shape[0] if np.ndim(img) == 3 else 1 for img in images)
    if params.channel_planes is not None:
        n_planes = len(params.channel_planes)
    candidates = candidates or candidate_grid(params, n_planes=n_planes)
    criterion = criterion or ("ccc" if len(images) >= 2 else "mae")
    threshold = stain_threshold(stains)
    ref = np.array([nuclei_from_stain(s, threshold=threshold).max() for s in stains], dtype=np.float64)
    settings = [replace(params, **c) for c in candidates]  # invalid candidates fail here, before any work
    pred = np.zeros((len(settings), len(images)))
    with lcd_core.progress(len(images), "calibrating", enabled=progress, unit="fields") as advance:
        for j, image in enumerate(images):
            if np.shape(image)[-2:] != stains[j].shape:
                raise InputError(
                    f"field {j}: image {np.shape(image)} and stain {stains[j].shape} differ in size"
                )
            image = np.asarray(image, dtype=np.float64)
            channels = {}  # (channel, options) -> (channel, its noise): computed once per field
            for i, setting in enumerate(settings):
                options = setting.channel_options()
                key = (setting.channel, repr(options), setting.floor_unit)
                if key not in channels:
                    noise = None
                    if setting.floor_unit == "noise":
                        noise = channel_noise(image, setting.channel, seed=setting.seed, **options)
                    channels[key] = (nucleus_channel(image, setting.channel, **options), noise)
                channel, noise = channels[key]
                labels = classical_nuclei(channel, noise=noise, **setting.classical_options())["labels"]
                if cell_masks is not None:
                    labels, _ = keep_inside(labels, cell_masks[j])
                pred[i, j] = labels.max()
            advance()
    chosen = choose_candidate(pred, ref, criterion=criterion)
    evidence = {
        "n_fields": len(images),
        "criterion": criterion,
        "n_candidates": len(settings),
        "reference": "nuclei_from_stain with one stain_threshold for all fields",
        "stain_threshold": threshold,
        "reference_counts": ref.astype(int).tolist(),
        "chosen_counts": pred[chosen].astype(int).tolist(),
        "in_sample": _agreement(pred[chosen], ref, count_agreement),
    }
    if len(images) >= 3:
        _, held = leave_one_out_choice(pred, ref, criterion=criterion)
        evidence["leave_one_out"] = _agreement(held, ref, count_agreement)
    return {"params": dict(candidates[chosen]), "evidence": evidence}


def _agreement(pred: np.ndarray, ref: np.ndarray, count_agreement) -> dict:
    """Count agreement, or the MAE alone when r is undefined (constant counts: never a made-up r)."""
    mae = float(np.abs(pred - ref).mean())
    if len(ref) >= 2 and pred.std() > 0 and ref.std() > 0:
        return {**count_agreement(pred, ref), "mae": mae}
    return {"n": len(ref), "mae": mae, "bias": float((pred - ref).mean())}
