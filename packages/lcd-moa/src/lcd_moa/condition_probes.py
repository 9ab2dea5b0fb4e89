"""Fit one probe per condition on chosen compounds, and score other compounds with them.

Shared by cross-validation (:mod:`lcd_moa.cv`), the inner cross-validation of accuracy weights
(:mod:`lcd_moa.condition_weights`) and holdout fitting/prediction (:mod:`lcd_moa.holdout`), so the
training set of every probe is built in one place: wells of the *given* training compounds that are
active at the condition, plus the condition's control wells as the control class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lcd_moa import probe as _probe
from lcd_moa.class_probs import group_mean, map_to_classes
from lcd_moa.design import Design
from lcd_moa.spec import ProbeSpec


def fit_condition_probes(
    design: Design, train: Iterable[str], labels: pd.Series, probe: ProbeSpec
) -> tuple[dict[int, _probe.LinearProbe], list[dict]]:
    """Fit a probe at every usable condition on the active wells of ``train`` plus control wells.

    Parameters
    ----------
    design
        The layout.
    train
        Training compounds.
    labels
        MoA per compound.
    probe
        ``C`` and ``max_iter`` of the fits.

    Returns
    -------
    tuple
        The probes by condition index and one record per condition (``condition``, ``status``,
        ``reason``, ``n_train_compounds``, ``n_train_wells``, ``n_control_wells``).
    """
    train = sorted(set(train))
    records = []
    probes: dict[int, _probe.LinearProbe] = {}
    for c in design.ok_conditions():
        comps = [k for k in train if (k, c) in design.active]
        rec = {
            "condition": c,
            "n_train_compounds": len(comps),
            "n_control_wells": len(design.control_rows[c]),
        }
        if not comps:
            records.append(
                {
                    **rec,
                    "n_train_wells": 0,
                    "status": "skipped",
                    "reason": "no active training compound at this condition",
                }
            )
            continue
        rows = [design.wells[(k, c)] for k in comps]
        y = np.concatenate([np.repeat(labels[k], len(r)) for k, r in zip(comps, rows, strict=True)])
        ctrl = design.control_rows[c]
        X = design.X[np.concatenate([*rows, ctrl])]
        y = np.concatenate([y, np.repeat(design.control_label, len(ctrl))])
        probes[c] = _probe.fit_probe(X, y, C=probe.C, max_iter=probe.max_iter)
        records.append({**rec, "n_train_wells": int(len(y) - len(ctrl)), "status": "ok", "reason": ""})
    return probes, records


def score_compounds(
    design: Design,
    probes: dict[int, _probe.LinearProbe],
    compounds: Iterable[str],
    global_classes: Sequence[str],
    score: str,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per compound × condition probabilities: the mean of the compound's well probabilities.

    Parameters
    ----------
    design
        The layout.
    probes
        Probe per condition index.
    compounds
        The compounds to score.
    global_classes
        The class list the probabilities are placed on.
    score
        ``"active"``: score a compound only at conditions where it is active; ``"all"``: wherever
        it has wells.

    Returns
    -------
    tuple
        A table (``compound``, ``condition``, ``n_wells``) and the matching ``(rows, n_global_classes)``
        probabilities on ``global_classes``.
    """
    compounds = sorted(set(compounds))
    frames, blocks = [], []
    for c, probe in sorted(probes.items()):
        chosen = [
            k for k in compounds if (k, c) in design.wells and (score == "all" or (k, c) in design.active)
        ]
        if not chosen:
            continue
        rows = [design.wells[(k, c)] for k in chosen]
        group = np.repeat(np.arange(len(chosen)), [len(r) for r in rows])
        proba = probe.predict_proba(design.X[np.concatenate(rows)])
        mean = group_mean(map_to_classes(proba, probe.classes, global_classes), group, len(chosen))
        frames.append(pd.DataFrame({"compound": chosen, "condition": c, "n_wells": [len(r) for r in rows]}))
        blocks.append(mean)
    if not frames:
        return pd.DataFrame({"compound": [], "condition": [], "n_wells": []}), np.zeros(
            (0, len(global_classes))
        )
    return pd.concat(frames, ignore_index=True), np.vstack(blocks)
