"""The shared start of every MoA run: profiles and activity read, options resolved, layout built.

Profiles come in through :func:`lcd_core.load_profiles` (AnnData, ``.h5ad``/``.zarr``, or a
pycytominer-layout DataFrame/csv/tsv/parquet with the data contract's feature rule), so everything after
this point works on one AnnData.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd
from lcd_core import load_profiles

from lcd_moa.activity import Activity, load_activity
from lcd_moa.design import Design, build_design
from lcd_moa.spec import MoASpec, ProbeSpec, resolve

Profiles = ad.AnnData | pd.DataFrame | str | os.PathLike
SpecLike = MoASpec | Mapping[str, Any] | None
ProbeLike = ProbeSpec | Mapping[str, Any] | None

_ANNDATA_SUFFIXES = (".h5ad", ".zarr")


def is_table(data: Profiles) -> bool:
    """Whether ``data`` is a table (DataFrame or a csv/tsv/parquet path) rather than an AnnData.

    Parameters
    ----------
    data
        Profiles as given.
    """
    if isinstance(data, pd.DataFrame):
        return True
    if isinstance(data, str | os.PathLike):
        return Path(data).suffix.lower() not in _ANNDATA_SUFFIXES
    return False


def read_profiles(data: Profiles, spec: MoASpec) -> ad.AnnData:
    """Profiles as AnnData (:func:`lcd_core.load_profiles` with the spec's feature options).

    Parameters
    ----------
    data
        Profiles as given.
    spec
        ``features`` (tables), ``layer`` / ``use_rep`` (AnnData).
    """
    return load_profiles(data, features=spec.features, layer=spec.layer, use_rep=spec.use_rep)


def load_design(
    data: Profiles, activity: Activity, spec: SpecLike, probe: ProbeLike
) -> tuple[Design, MoASpec, ProbeSpec]:
    """Resolve the options, read profiles and activity and lay them out (shared start of cv and fit).

    Parameters
    ----------
    data
        Profiles.
    activity
        Activity table or file, or ``None``.
    spec
        Data spec (an instance, a mapping of fields, or ``None`` for the defaults).
    probe
        Probe spec (the same forms).

    Returns
    -------
    tuple
        The design and the resolved specs.
    """
    spec = resolve(spec, MoASpec)
    probe = resolve(probe, ProbeSpec)  # checked before the data are read: a typo costs no work
    design = build_design(read_profiles(data, spec), load_activity(activity), spec)
    return design, spec, probe
