"""Census per main Python function: the same bad profiles fed to every profile-consuming function.

The command-line census (``test_<package>.py``) goes through files; this matrix calls the functions a
notebook user calls, on an in-memory AnnData built from the census screen (real LINCS features), each
changed in one way:

- ``nan`` / ``inf``: one non-finite value (rows ``'5'`` / ``'7'``): an ``InputError`` naming the row;
- ``no_plate``: the ``plate`` column missing: an ``InputError`` naming it;
- ``no_rows``: no rows: an ``InputError`` saying so;
- ``no_controls``: DMSO renamed ``vehicle``: an ``InputError`` naming the control query (functions
  that use controls);
- ``unicode``: compound names outside ASCII: the function works and keeps them.

Whatever the outcome, the AnnData passed in is unchanged (a checksum of X and obs before and after):
functions with ``copy=True`` must not write into their input.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from census import Case, params, run_case

#: report.py: every case here belongs to the package of its function
CASES_BY_PACKAGE: dict[str, list[Case]] = {}

UNICODE = {"cmp0": "ß-Lapachon", "cmp1": "化合物-1", "cmp2": "Ωmega"}


def _adata(corpus, change: str):
    """The census screen as AnnData with one change (a fresh object per call)."""
    from corpus import _to_anndata, screen_frame

    frame = screen_frame(corpus)
    feats = [c for c in frame.columns if c.startswith(("Cells_", "Cytoplasm_", "Nuclei_"))]
    if change == "nan":
        frame.loc[5, feats[3]] = np.nan
    elif change == "inf":
        frame.loc[7, feats[0]] = np.inf
    elif change == "no_plate":
        frame = frame.drop(columns=["plate"])
    elif change == "no_rows":
        frame = frame.iloc[:0]
    elif change == "no_controls":
        frame["compound"] = frame["compound"].replace("DMSO", "vehicle")
    elif change == "unicode":
        frame["compound"] = frame["compound"].replace(UNICODE)
    adata = _to_anndata(frame.reset_index(drop=True))
    adata.uns["source"] = f"census screen ({change})"
    return adata


def _fingerprint(adata) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(adata.X).tobytes())
    h.update(pd.util.hash_pandas_object(adata.obs.astype(str), index=True).to_numpy().tobytes())
    h.update(str(sorted(adata.obsm)).encode() + str(sorted(adata.layers)).encode())
    return h.hexdigest()


def _moa_activity(adata) -> pd.DataFrame:
    """Every treated compound x condition active (the MoA functions' second input)."""
    obs = adata.obs
    treated = obs[obs["compound"] != "DMSO"]
    table = treated[["compound", "timepoint", "dose"]].drop_duplicates().reset_index(drop=True)
    return table.assign(active=True)


# ------------------------------------------------------------------------------ the functions
# name -> (package, call(adata), uses controls, check of a unicode result)


def _compounds_of(result, adata) -> set:
    if isinstance(result, pd.DataFrame):
        return set(result["compound"])
    if result is None:  # copy=False wrote into adata
        return set(adata.obs["compound"])
    return set(result.obs["compound"])


def _map_es(a):
    from lcd_metrics import map_es

    return map_es(a, n_draws=20, n_neg=8)


def _map_es_design(a):
    from lcd_metrics import map_es_design

    return map_es_design(a)


def _map(a):
    from lcd_metrics import mean_average_precision

    return mean_average_precision(
        a,
        ["compound", "dose", "timepoint"],
        pos_sameby=["compound", "dose", "timepoint"],
        neg_diffby=["compound"],
        null_size=20,
    )


def _mad(a):
    from lcd_norm import mad_robustize

    return mad_robustize(a, copy=True)


def _harmony(a):
    from lcd_norm import harmony

    return harmony(a, max_iter=2, copy=True)


def _fastmnn(a):
    from lcd_norm import fastmnn

    return fastmnn(a, k=5, n_components=8, copy=True)


def _mad_harmony_fov(a):
    from lcd_norm import mad_harmony_fov

    return mad_harmony_fov(a, max_iter=2, copy=True)


def _aggregate(a):
    from lcd_norm import aggregate

    return aggregate(a, by=["plate", "well"])


def _cross_validate(a):
    from lcd_moa import cross_validate

    return cross_validate(a, _moa_activity(a), n_folds=2, drop_small_classes=True)


def _fit_moa(a):
    from lcd_moa import fit_moa

    return fit_moa(a, _moa_activity(a))


FUNCTIONS = {
    "map_es": ("lcd-metrics", _map_es, True),
    "map_es_design": ("lcd-metrics", _map_es_design, True),
    "mean_average_precision": ("lcd-metrics", _map, False),
    "mad_robustize": ("lcd-norm", _mad, True),
    "harmony": ("lcd-norm", _harmony, False),
    "fastmnn": ("lcd-norm", _fastmnn, False),
    "mad_harmony_fov": ("lcd-norm", _mad_harmony_fov, True),
    "aggregate": ("lcd-norm", _aggregate, False),
    "cross_validate": ("lcd-moa", _cross_validate, True),
    "fit_moa": ("lcd-moa", _fit_moa, True),
}

#: functions whose result has no compound column to check for the unicode names
NO_COMPOUNDS = {"map_es_design", "cross_validate", "fit_moa"}
#: functions that do not read the plate column (MoA works per compound x condition)
NO_PLATE = {"harmony", "fastmnn", "mean_average_precision", "cross_validate", "fit_moa"}
#: functions that do not read the features (a design report)
NO_FEATURES = {"map_es_design"}
#: function x change pairs another branch fixes (strict xfail until it lands)
OWNERS: dict[tuple[str, str], str] = {}


def _case(fn: str, change: str, kind: str, names: tuple[str, ...]) -> Case:
    _, call, _ = FUNCTIONS[fn]

    def run(inputs, out):
        adata = _adata(inputs.corpus, change)
        before = _fingerprint(adata)
        try:
            return call(adata)
        finally:
            assert _fingerprint(adata) == before, f"{fn} changed the AnnData it was given"

    def check(out, result):
        names_seen = _compounds_of(result, None) if fn not in NO_COMPOUNDS else set(UNICODE.values())
        assert set(UNICODE.values()) <= names_seen, names_seen

    expect = "works" if change == "unicode" else "error"
    return Case(
        f"fn-{fn}-{change}",
        kind,
        run,
        expect=expect,
        names=names if expect == "error" else (),
        check=check if expect == "works" else None,
        owner=OWNERS.get((fn, change)),
    )


for _fn, (_package, _call, _controls) in FUNCTIONS.items():
    group = CASES_BY_PACKAGE.setdefault(_package, [])
    if _fn not in NO_FEATURES:
        group.append(_case(_fn, "nan", "nonfinite", ("'5'",)))
        group.append(_case(_fn, "inf", "nonfinite", ("'7'",)))
    if _fn not in NO_PLATE:
        group.append(_case(_fn, "no_plate", "missing-column", ("'plate'",)))
    group.append(_case(_fn, "no_rows", "header-only", ("no rows",)))
    if _controls:
        group.append(_case(_fn, "no_controls", "no-controls", ("DMSO",)))
    group.append(_case(_fn, "unicode", "unicode", ()))

ALL_CASES = [case for cases in CASES_BY_PACKAGE.values() for case in cases]


@pytest.mark.parametrize("case", params(ALL_CASES))
def test_function(case, corpus, tmp_path):
    run_case(case, None, corpus, tmp_path)
