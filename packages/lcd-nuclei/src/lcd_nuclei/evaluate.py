"""Agreement of predicted nuclei with a reference: masks, counts, instances (pure numpy/scipy kernels)."""

from __future__ import annotations

import numpy as np
from lcd_core import InputError

__all__ = [
    "count_agreement",
    "evaluate_fields",
    "foreground_iou",
    "instance_f1",
    "reference_from_stain",
]


def foreground_iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """IoU of the foregrounds (``> 0``) of two masks or label images; NaN when both are empty.

    Parameters
    ----------
    pred, ref
        Predicted and reference masks or label images of the same shape.
    """
    pred, ref = np.asarray(pred) > 0, np.asarray(ref) > 0
    if pred.shape != ref.shape:
        raise InputError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    union = np.logical_or(pred, ref).sum()
    return float(np.logical_and(pred, ref).sum() / union) if union else float("nan")


def count_agreement(pred_counts, ref_counts, *, confidence: float = 0.95) -> dict[str, float]:
    """Agreement of per-image counts with reference counts.

    Returns ``n``, Pearson ``r`` with its ``confidence`` interval from Fisher's z transform
    (``scipy.stats.pearsonr(...).confidence_interval``: ``atanh(r) +- z_(1+c)/2 / sqrt(n - 3)``;
    ``[-1, 1]`` for n <= 3, ``[r, r]`` when ``|r| = 1``; NaN when r is undefined because the counts
    of one side are constant), the least-squares ``slope`` and
    ``intercept`` of predicted on reference counts, the mean ``bias`` (predicted - reference) and
    Lin's concordance correlation coefficient ``ccc`` (Lin 1989:
    ``2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)`` with 1/n moments).

    Parameters
    ----------
    pred_counts, ref_counts
        Predicted and reference counts, one per image.
    confidence
        Level of the interval of ``r``.
    """
    from scipy.stats import pearsonr

    x = np.asarray(ref_counts, dtype=np.float64)
    y = np.asarray(pred_counts, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"counts must be two 1-D arrays of equal length, got {y.shape} and {x.shape}")
    n = x.size
    if n < 2:
        raise InputError(f"need at least 2 images to compare counts, got {n}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("counts contain NaN or inf")
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = (dx * dx).mean(), (dy * dy).mean(), (dx * dy).mean()
    r = lo = hi = float("nan")
    if sxx > 0 and syy > 0:  # scipy warns and returns NaN on constant input: decided here instead
        result = pearsonr(y, x)
        r = float(result.statistic)
        lo, hi = (float(v) for v in result.confidence_interval(confidence_level=confidence))
    slope = sxy / sxx if sxx > 0 else float("nan")
    denominator = sxx + syy + (x.mean() - y.mean()) ** 2
    return {
        "n": int(n),
        "pearson_r": float(r),
        "r_ci_low": lo,
        "r_ci_high": hi,
        "slope": float(slope),
        "intercept": float(y.mean() - slope * x.mean()),
        "bias": float((y - x).mean()),
        "ccc": float(2 * sxy / denominator) if denominator > 0 else float("nan"),
    }


def instance_f1(pred_labels: np.ndarray, ref_labels: np.ndarray, *, iou_threshold: float = 0.5) -> dict:
    """F1 of instance matching: a predicted and a reference nucleus match when their IoU >= threshold.

    Matches are one-to-one (maximum-IoU assignment among pairs above the threshold; for a threshold
    > 0.5 pairs are unique anyway). Returns ``tp``, ``n_pred``, ``n_ref``, ``precision``, ``recall``,
    ``f1`` (1.0 when both are empty).

    Parameters
    ----------
    pred_labels, ref_labels
        Predicted and reference (H, W) label images.
    iou_threshold
        Smallest IoU of a match.
    """
    from scipy.optimize import linear_sum_assignment

    pred, ref = np.asarray(pred_labels), np.asarray(ref_labels)
    if pred.shape != ref.shape:
        raise InputError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    pred, ref = _consecutive(pred), _consecutive(ref)
    n_pred, n_ref = int(pred.max()), int(ref.max())
    tp = 0
    if n_pred and n_ref:
        joint = np.bincount(pred.ravel() * (n_ref + 1) + ref.ravel(), minlength=(n_pred + 1) * (n_ref + 1))
        inter = joint.reshape(n_pred + 1, n_ref + 1)[1:, 1:].astype(np.float64)
        area_p = np.bincount(pred.ravel(), minlength=n_pred + 1)[1:, None]
        area_r = np.bincount(ref.ravel(), minlength=n_ref + 1)[None, 1:]
        iou = inter / (area_p + area_r - inter)
        eligible = np.where(iou >= iou_threshold, iou, 0.0)
        rows, cols = linear_sum_assignment(eligible, maximize=True)
        tp = int((eligible[rows, cols] > 0).sum())
    precision = tp / n_pred if n_pred else float(n_ref == 0)
    recall = tp / n_ref if n_ref else float(n_pred == 0)
    f1 = 2 * tp / (n_pred + n_ref) if n_pred + n_ref else 1.0
    return {"tp": tp, "n_pred": n_pred, "n_ref": n_ref, "precision": precision, "recall": recall, "f1": f1}


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Relabel positive ids to 1..k (0 stays background)."""
    if labels.size and labels.min() < 0:
        raise InputError("label images must be non-negative (0 = background)")
    ids = np.unique(labels[labels > 0])
    return np.where(labels > 0, np.searchsorted(ids, labels) + 1, 0)


def reference_from_stain(stain: np.ndarray, *, min_area: int = 20, min_distance: int = 5) -> np.ndarray:
    """Reference nuclei from a nuclear-stain image (Hoechst / DAPI): Otsu threshold, then watershed (0.2.0).

    Kept for comparison; :func:`evaluate_fields` uses :func:`lcd_nuclei.nuclei_from_stain` since
    0.3.0 (this one counts debris: 75 objects where 38 nuclei were counted by eye on 6 ISL DAPI
    fields, 26 of them on a field without nuclei). The stain is smoothed with a Gaussian (sigma 1 px) before Otsu's threshold; instances come from
    :func:`lcd_nuclei.instances.segment_instances`.

    Parameters
    ----------
    stain
        (H, W) nuclear-stain image.
    min_area, min_distance
        Instance splitting (see :func:`lcd_nuclei.segment_instances`).
    """
    from skimage.filters import gaussian, threshold_otsu

    from .instances import segment_instances

    stain = np.asarray(stain, dtype=np.float64)
    if stain.ndim != 2:
        raise InputError(f"stain image must be 2-D (H, W), got shape {stain.shape}")
    smooth = gaussian(stain, sigma=1.0, preserve_range=True)
    if np.ptp(smooth) == 0:
        return np.zeros(stain.shape, dtype=np.int32)
    return segment_instances(smooth > threshold_otsu(smooth), min_area=min_area, min_distance=min_distance)


def evaluate_fields(pred_labels, references, *, reference: str = "masks", iou_threshold: float = 0.5):
    """Compare predicted label images with references, field by field, then over all fields.

    Parameters
    ----------
    pred_labels
        Sequence of (H, W) predicted label images.
    references
        Sequence of (H, W) instance label images (``reference="masks"``) or nuclear-stain images
        (``reference="stain"``, turned into labels by :func:`lcd_nuclei.nuclei_from_stain` with one
        :func:`lcd_nuclei.stain_threshold` over all the stain images, so a field without nuclei
        stays empty; 0.2.0 used :func:`reference_from_stain`, Otsu per field, which split the haze
        of an empty DAPI field into 26 objects).
    reference
        ``"masks"`` or ``"stain"``.
    iou_threshold
        Smallest IoU of an instance match (:func:`instance_f1`).

    Returns
    -------
    per_field, summary
        ``per_field``: DataFrame with ``pred_count``, ``ref_count``, ``foreground_iou``, ``f1``;
        ``summary``: ``median_iou``, ``mean_f1``, :func:`count_agreement` of the counts and, for
        stain references, the ``stain_threshold`` used.
    """
    import pandas as pd

    from .stain import nuclei_from_stain, stain_threshold

    if reference not in ("masks", "stain"):
        raise InputError(f"reference must be 'masks' or 'stain', got {reference!r}")
    if len(pred_labels) != len(references):
        raise InputError(f"{len(pred_labels)} predictions but {len(references)} references")
    threshold = None
    if reference == "stain" and len(references):
        threshold = stain_threshold([np.asarray(r, dtype=np.float64) for r in references])
    rows = []
    for i, (pred, ref) in enumerate(zip(pred_labels, references, strict=True)):
        ref = nuclei_from_stain(ref, threshold=threshold) if reference == "stain" else np.asarray(ref)
        if np.shape(pred) != ref.shape:
            raise InputError(
                f"field {i}: prediction shape {np.shape(pred)} differs from reference {ref.shape}"
            )
        match = instance_f1(pred, ref, iou_threshold=iou_threshold)
        rows.append(
            {
                "pred_count": match["n_pred"],
                "ref_count": match["n_ref"],
                "foreground_iou": foreground_iou(pred, ref),
                "f1": match["f1"],
            }
        )
    per_field = pd.DataFrame(rows)
    summary = {
        "n_fields": len(per_field),
        "median_iou": float(np.nanmedian(per_field["foreground_iou"])) if len(per_field) else float("nan"),
        "mean_f1": float(per_field["f1"].mean()) if len(per_field) else float("nan"),
    }
    if threshold is not None:
        summary["stain_threshold"] = threshold
    if len(per_field) >= 2:
        summary.update(count_agreement(per_field["pred_count"], per_field["ref_count"]))
    return per_field, summary
