"""One cross-validation fold assignment per compound, grouped by compound and stratified by MoA."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lcd_core import ConfigError, InputError

#: Folds of the compound-level split (each class needs at least this many compounds).
N_FOLDS = 5


def assign_folds(
    labels: pd.Series,
    *,
    n_folds: int = N_FOLDS,
    seed: int = 0,
    check_class_sizes: bool = True,
) -> pd.DataFrame:
    """Assign each compound to one of ``n_folds`` folds, stratified by its MoA.

    The unit is the compound (one row each), split with scikit-learn's ``StratifiedGroupKFold``
    grouped by compound, so all wells, doses and timepoints of a compound share one fold. The same
    table is reused for every condition and every method compared.

    Parameters
    ----------
    labels
        MoA per compound (index: compound name). Missing labels are an error: filter them first.
    n_folds
        Number of folds.
    seed
        Shuffling seed of the split.
    check_class_sizes
        Raise when a class has fewer compounds than folds (its compounds could not appear in every
        fold's training set *and* test set).

    Returns
    -------
    pandas.DataFrame
        Columns ``compound``, ``moa``, ``fold`` (0-based), sorted by compound.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if labels.isna().any():
        missing = list(labels.index[labels.isna()][:5])
        raise InputError(f"{int(labels.isna().sum())} compounds have no MoA label, e.g. {missing}")
    if labels.index.duplicated().any():
        raise InputError(
            f"duplicated compounds in labels: {list(labels.index[labels.index.duplicated()][:5])}"
        )
    check_n_folds(n_folds)
    labels = labels.astype(str).sort_index()
    counts = labels.value_counts()
    if check_class_sizes:
        small = counts[counts < n_folds]
        if len(small):
            detail = ", ".join(f"{k!r} ({v})" for k, v in small.items())
            raise InputError(
                f"MoA classes with fewer compounds than n_folds={n_folds}: {detail}; remove them, "
                "lower n_folds, or pass drop_small_classes=True"
            )
    if len(labels) < n_folds:
        raise InputError(f"{len(labels)} compounds cannot fill n_folds={n_folds} folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(labels), -1, dtype=int)
    groups = np.arange(len(labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" when the check is off
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels.to_numpy(), groups)):
            fold[test] = k
    return pd.DataFrame({"compound": labels.index.astype(str), "moa": labels.to_numpy(), "fold": fold})


def check_n_folds(n_folds: int) -> None:
    """One line when ``n_folds`` is not an integer of at least 2.

    Parameters
    ----------
    n_folds
        The option's value.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ConfigError(f"n_folds must be an integer >= 2, got {n_folds!r}")
