"""The census corpus: good and bad input files, built once per session from the shared real data.

``Corpus.path(name)`` builds the file (and whatever it derives from) on first use, records its checksum
and returns its path; the census checks after each case that the file is unchanged. Builders are
registered with ``@builder(name)`` and return the path they wrote. File names are unique, so an error
message naming the file names the right one.

Bases (everything else is derived from them):

- ``screen``: a small live-cell design (2 replicas x 2 plates x 2 timepoints, 8 DMSO wells and 6
  compounds x 2 doses per plate, 2 fields per well: 320 rows) whose 24 features are real Cell Painting
  profiles of the LINCS A549 plate (DMSO rows for the controls, each compound's own rows for it);
- ``fields``: 3-plane 64 x 64 brightfield fields cut from the DSB 2018 images, with a manifest;
- ``ckpt``: a tiny random ViT checkpoint folder (lcd-embed layout).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from census import digest

BUILDERS: dict[str, Callable[[Corpus], Path]] = {}

LINCS = "profiles/lincs_a549_SQ00015054/SQ00015054_normalized_feature_select.csv.gz"
DSB = "images/dsb2018_brightfield"
N_FEATURES = 24
COMPOUNDS = 6
DOSES = (1.0, 10.0)
TIMEPOINTS = (24, 48)


def builder(name: str) -> Callable[[Callable[[Corpus], Path]], Callable[[Corpus], Path]]:
    """Register a builder of the corpus entry ``name``."""

    def register(fn: Callable[[Corpus], Path]) -> Callable[[Corpus], Path]:
        if name in BUILDERS:
            raise ValueError(f"corpus entry {name} registered twice")
        BUILDERS[name] = fn
        return fn

    return register


class Corpus:
    """Files built on first use in ``root`` from the shared data in ``shared``."""

    def __init__(self, root: Path, shared: Path):
        self.root = root
        self.shared = shared
        self.paths: dict[str, Path] = {}
        self.digests: dict[str, str] = {}
        self._cache: dict[str, object] = {}

    def path(self, name: str) -> Path:
        if name not in self.paths:
            if name not in BUILDERS:
                raise KeyError(f"no corpus entry {name!r}; known: {sorted(BUILDERS)}")
            path = BUILDERS[name](self)
            self.paths[name] = path
            self.digests[name] = digest(path)
        return self.paths[name]

    def __getitem__(self, name: str) -> str:
        return str(self.path(name))

    def cached(self, key: str, make: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def file(self, name: str) -> Path:
        """A fresh path in the corpus folder (``name`` must be new)."""
        path = self.root / name
        if path.exists():
            raise FileExistsError(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


# ------------------------------------------------------------------------------------- profiles


def screen_frame(c: Corpus) -> pd.DataFrame:
    """The base design with real LINCS feature values (see the module docstring); a fresh copy."""

    def make() -> pd.DataFrame:
        lincs = pd.read_csv(c.shared / LINCS)
        feats = [col for col in lincs.columns if not col.startswith("Metadata_")][:N_FEATURES]
        dmso = lincs[lincs["Metadata_pert_type"] == "control"][feats].to_numpy()
        treated = lincs[(lincs["Metadata_pert_type"] == "trt") & lincs["Metadata_moa"].notna()]
        counts = treated.groupby("Metadata_broad_sample").size()
        chosen = sorted(counts[counts >= 4].index)[:COMPOUNDS]
        moa = treated.drop_duplicates("Metadata_broad_sample").set_index("Metadata_broad_sample")[
            "Metadata_moa"
        ]
        rows, values = [], []
        k_ctrl = 0
        for t in TIMEPOINTS:
            for r in (1, 2):
                for p in (1, 2):
                    plate = f"R{r}-P{p}"
                    wells = [("DMSO", 0.0, None)] * 8 + [
                        (f"cmp{i}", dose, chosen[i]) for i in range(COMPOUNDS) for dose in DOSES
                    ]
                    for w, (compound, dose, sample) in enumerate(wells):
                        for fov in (1, 2):
                            if sample is None:
                                x = dmso[k_ctrl % len(dmso)]
                                k_ctrl += 1
                                m = None
                            else:
                                own = treated[treated["Metadata_broad_sample"] == sample][feats].to_numpy()
                                x = own[(w + fov + r + p + t) % len(own)] * (1.0 if dose > 1 else 0.5)
                                m = f"moa{int(compound[3:]) % 3}"
                            rows.append(
                                {
                                    "replica": f"R{r}",
                                    "plate": plate,
                                    "well": f"{'ABCDEFGHIJKLMNOP'[w // 24]}{w % 24 + 1:02d}",
                                    "fov": fov,
                                    "timepoint": t,
                                    "compound": compound,
                                    "dose": dose,
                                    "moa": m,
                                    "lincs_moa": None if sample is None else str(moa[sample]),
                                }
                            )
                            values.append(x)
        frame = pd.DataFrame(rows)
        return pd.concat([frame, pd.DataFrame(np.asarray(values, float), columns=feats)], axis=1)

    return c.cached("screen", make).copy()


def feature_names(frame: pd.DataFrame) -> list[str]:
    return [col for col in frame.columns if col.startswith(("Cells_", "Cytoplasm_", "Nuclei_"))]


def _csv(c: Corpus, name: str, frame: pd.DataFrame) -> Path:
    path = c.file(name)
    frame.to_csv(path, index=False)
    return path


def _to_anndata(frame: pd.DataFrame):
    import anndata as ad

    feats = feature_names(frame)
    obs = frame.drop(columns=feats)
    obs.index = obs.index.astype(str)
    return ad.AnnData(X=frame[feats].to_numpy(float), obs=obs, var=pd.DataFrame(index=feats))


def _h5ad(c: Corpus, name: str, frame: pd.DataFrame) -> Path:
    from lcd_core import write_h5ad

    path = c.file(name)
    write_h5ad(_to_anndata(frame), path)
    return path


def _derived_csv(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Register ``name`` (``x_csv`` -> file ``x.csv``): the screen changed by ``change``."""
    file = name[: -len("_csv")] + ".csv"
    BUILDERS[name] = lambda c: _csv(c, file, change(screen_frame(c)))


@builder("screen_csv")
def _screen_csv(c: Corpus) -> Path:
    return _csv(c, "screen.csv", screen_frame(c))


@builder("screen_parquet")
def _screen_parquet(c: Corpus) -> Path:
    """Written by lcd-core (as every pipeline output is)."""
    from lcd_core import write_table

    return write_table(screen_frame(c), c.file("screen.parquet"))


@builder("foreign_parquet")
def _foreign_parquet(c: Corpus) -> Path:
    """Written by plain pandas (no page checksums)."""
    path = c.file("foreign.parquet")
    screen_frame(c).to_parquet(path, index=False)
    return path


@builder("screen_h5ad")
def _screen_h5ad(c: Corpus) -> Path:
    return _h5ad(c, "screen.h5ad", screen_frame(c))


@builder("empty_csv")
def _empty_csv(c: Corpus) -> Path:
    path = c.file("empty.csv")
    path.write_bytes(b"")
    return path


@builder("empty_parquet")
def _empty_parquet(c: Corpus) -> Path:
    path = c.file("empty.parquet")
    path.write_bytes(b"")
    return path


@builder("empty_h5ad")
def _empty_h5ad(c: Corpus) -> Path:
    path = c.file("empty.h5ad")
    path.write_bytes(b"")
    return path


@builder("header_csv")
def _header_csv(c: Corpus) -> Path:
    return _csv(c, "header_only.csv", screen_frame(c).iloc[:0])


@builder("header_parquet")
def _header_parquet(c: Corpus) -> Path:
    path = c.file("header_only.parquet")
    screen_frame(c).iloc[:0].to_parquet(path, index=False)
    return path


@builder("header_h5ad")
def _header_h5ad(c: Corpus) -> Path:
    return _h5ad(c, "header_only.h5ad", screen_frame(c).iloc[:0])


@builder("csv_named_h5ad")
def _csv_named_h5ad(c: Corpus) -> Path:
    return _csv(c, "csv_text.h5ad", screen_frame(c))


@builder("csv_named_parquet")
def _csv_named_parquet(c: Corpus) -> Path:
    return _csv(c, "csv_text.parquet", screen_frame(c))


@builder("xlsx")
def _xlsx(c: Corpus) -> Path:
    path = c.file("screen.xlsx")
    path.write_bytes(b"PK\x03\x04" + bytes(60))
    return path


@builder("folder_csv")
def _folder_csv(c: Corpus) -> Path:
    path = c.file("a_folder.csv")
    path.mkdir()
    return path


@builder("folder_h5ad")
def _folder_h5ad(c: Corpus) -> Path:
    path = c.file("a_folder.h5ad")
    path.mkdir()
    return path


@builder("missing")
def _missing(c: Corpus) -> Path:
    return c.root / "no_such_file.csv"


@builder("missing_h5ad")
def _missing_h5ad(c: Corpus) -> Path:
    return c.root / "no_such_file.h5ad"


def _cut(c: Corpus, source: str, name: str, keep: float = 0.5) -> Path:
    data = c.path(source).read_bytes()
    path = c.file(name)
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _scramble(c: Corpus, source: str, name: str, n: int = 64, seed: int = 0) -> Path:
    """``source`` with ``n`` bytes in its middle half replaced by random bytes (the length is kept)."""
    data = bytearray(c.path(source).read_bytes())
    rng = np.random.default_rng(seed)
    lo, hi = len(data) // 4, 3 * len(data) // 4
    for i in rng.choice(np.arange(lo, hi), size=min(n, hi - lo), replace=False):
        data[int(i)] = (data[int(i)] + int(rng.integers(1, 256))) % 256
    path = c.file(name)
    path.write_bytes(bytes(data))
    return path


@builder("trunc_parquet")
def _trunc_parquet(c: Corpus) -> Path:
    return _cut(c, "screen_parquet", "truncated.parquet")


@builder("trunc_h5ad")
def _trunc_h5ad(c: Corpus) -> Path:
    return _cut(c, "screen_h5ad", "truncated.h5ad")


@builder("trunc_csv")
def _trunc_csv(c: Corpus) -> Path:
    return _cut(c, "screen_csv", "truncated.csv", keep=0.5)


@builder("scrambled_parquet")
def _scrambled_parquet(c: Corpus) -> Path:
    return _scramble(c, "screen_parquet", "scrambled.parquet")


@builder("scrambled_h5ad")
def _scrambled_h5ad(c: Corpus) -> Path:
    return _scramble(c, "screen_h5ad", "scrambled.h5ad")


def _flip(c: Corpus, source: str, name: str, offset: int) -> Path:
    """``source`` with 8 bytes from ``offset`` flipped: numbers change, the file still parses."""
    data = bytearray(c.path(source).read_bytes())
    for i in range(8):
        data[offset + 3 * i] ^= 0x21
    path = c.file(name)
    path.write_bytes(bytes(data))
    return path


@builder("flipped_parquet")
def _flipped_parquet(c: Corpus) -> Path:
    """Bytes flipped inside the data page of the first feature column (after its page header)."""
    import pyarrow.parquet as pq

    source = c.path("screen_parquet")
    names = pq.ParquetFile(source).schema_arrow.names
    col = pq.ParquetFile(source).metadata.row_group(0).column(names.index(feature_names(screen_frame(c))[0]))
    return _flip(c, "screen_parquet", "flipped.parquet", col.data_page_offset + 200)


@builder("flipped_h5ad")
def _flipped_h5ad(c: Corpus) -> Path:
    """Bytes flipped inside X."""
    import h5py

    with h5py.File(c.path("screen_h5ad")) as f:
        x = f["X"]
        offset = x.id.get_chunk_info(0).byte_offset if x.chunks else x.id.get_offset()
    return _flip(c, "screen_h5ad", "flipped.h5ad", offset + 400)


def _set(frame: pd.DataFrame, row: int, col: str | int, value) -> pd.DataFrame:
    feats = feature_names(frame)
    column = feats[col] if isinstance(col, int) else col
    frame.loc[row, column] = value
    return frame


_derived_csv("nan_csv", lambda f: _set(f, 5, 3, np.nan))
_derived_csv("inf_csv", lambda f: _set(f, 7, 2, np.inf))
_derived_csv("nan_inf_csv", lambda f: _set(_set(f, 5, 3, np.nan), 7, 2, np.inf))
_derived_csv(
    "huge_csv", lambda f: f.assign(**{c: np.where(f.index == 9, 1e300, f[c]) for c in feature_names(f)})
)
_derived_csv("constant_csv", lambda f: f.assign(**{feature_names(f)[0]: 0.25}))
_derived_csv("zero_csv", lambda f: f.assign(**{c: 0.0 for c in feature_names(f)}))
_derived_csv(
    "identical_csv",
    lambda f: f.assign(**{c: float(i + 1) for i, c in enumerate(feature_names(f))}),
)
_derived_csv("text_feature_csv", lambda f: f.astype({feature_names(f)[1]: object}).pipe(_set, 4, 1, "high"))
_derived_csv("single_replica_csv", lambda f: f.assign(replica="R1"))
_derived_csv(
    "no_controls_csv",
    lambda f: f[~((f["plate"] == "R2-P1") & (f["compound"] == "DMSO"))].reset_index(drop=True),
)
_derived_csv("no_dmso_csv", lambda f: f.assign(compound=f["compound"].replace("DMSO", "vehicle")))
_derived_csv("dup_rows_csv", lambda f: pd.concat([f, f.iloc[[10]]], ignore_index=True))
_derived_csv("missing_meta_csv", lambda f: f.assign(plate=np.where(f.index == 3, None, f["plate"])))
_derived_csv("empty_moa_csv", lambda f: f.assign(moa=None, lincs_moa=None))
_derived_csv("fewer_features_csv", lambda f: f.drop(columns=feature_names(f)[2:4]))
_derived_csv("one_compound_csv", lambda f: f[f["compound"].isin(["DMSO", "cmp0"])].reset_index(drop=True))


@builder("dup_columns_csv")
def _dup_columns_csv(c: Corpus) -> Path:
    """A header naming one feature twice (pandas would silently rename the second ``name.1``)."""
    frame = screen_frame(c)
    feats = feature_names(frame)
    text = frame.to_csv(index=False)
    header, body = text.split("\n", 1)
    header = header.replace(feats[1], feats[0], 1)
    path = c.file("dup_columns.csv")
    path.write_text(header + "\n" + body)
    return path


@builder("unicode_csv")
def _unicode_csv(c: Corpus) -> Path:
    """Unicode in the file name, the compound names and a plate name."""
    frame = screen_frame(c)
    names = {f"cmp{i}": n for i, n in enumerate(["ß-Lapachon", "化合物-1", "Ωmega", "café", "naïve", "µ-3"])}
    frame["compound"] = frame["compound"].replace(names)
    frame["plate"] = frame["plate"].str.replace("R1-P1", "Platte-Ä")
    return _csv(c, "profilés_µM.csv", frame)


@builder("unicode_h5ad")
def _unicode_h5ad(c: Corpus) -> Path:
    frame = pd.read_csv(c.path("unicode_csv"))
    return _h5ad(c, "profilés_µM.h5ad", frame)


# ------------------------------------------------------------------------------------ activity


def activity_frame(c: Corpus) -> pd.DataFrame:
    """An activity table in map_es' layout: every compound active at every condition."""
    frame = screen_frame(c)
    treated = frame[frame["compound"] != "DMSO"]
    table = treated[["compound", "timepoint", "dose"]].drop_duplicates().reset_index(drop=True)
    table["map_es"] = 1.5
    table["active"] = True
    table["status"] = "ok"
    table["reason"] = ""
    return table


@builder("activity_csv")
def _activity_csv(c: Corpus) -> Path:
    return _csv(c, "activity.csv", activity_frame(c))


@builder("activity_tp_text_csv")
def _activity_tp_text(c: Corpus) -> Path:
    table = activity_frame(c)
    table["timepoint"] = table["timepoint"].astype(str) + "h"
    return _csv(c, "activity_tp_text.csv", table)


@builder("activity_dose_off_csv")
def _activity_dose_off(c: Corpus) -> Path:
    table = activity_frame(c)
    table["dose"] = table["dose"] + 1e-7
    return _csv(c, "activity_dose_off.csv", table)


@builder("activity_nan_csv")
def _activity_nan(c: Corpus) -> Path:
    table = activity_frame(c)
    table["active"] = table["active"].astype(object)
    table.loc[2, "active"] = None
    return _csv(c, "activity_nan.csv", table)


@builder("activity_dup_csv")
def _activity_dup(c: Corpus) -> Path:
    table = activity_frame(c)
    table = pd.concat([table, table.iloc[[0]].assign(active=False)], ignore_index=True)
    return _csv(c, "activity_dup.csv", table)


# ---------------------------------------------------------------------------------------- json


def _text(c: Corpus, name: str, text: str) -> Path:
    path = c.file(name)
    path.write_text(text)
    return path


def _json(c: Corpus, name: str, obj: object) -> Path:
    return _text(c, name, json.dumps(obj))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -------------------------------------------------------------------------------------- counts


def counts_frame(c: Corpus) -> pd.DataFrame:
    """Per-field nuclei counts and confluency on the screen's design (the metadata of ``screen``)."""
    frame = screen_frame(c)
    meta = frame.drop(columns=feature_names(frame))
    rng = np.random.default_rng(1)
    base = np.where(meta["compound"] == "DMSO", 120, np.where(meta["dose"] > 1, 60, 110))
    meta["nuclei_count"] = rng.poisson(base)
    meta["confluency"] = np.clip(meta["nuclei_count"] / 150, 0, 1).round(4)
    return meta


@builder("counts_csv")
def _counts_csv(c: Corpus) -> Path:
    return _csv(c, "counts.csv", counts_frame(c))


def _derived_counts(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    file = name[: -len("_csv")] + ".csv"
    BUILDERS[name] = lambda c: _csv(c, file, change(counts_frame(c)))


_derived_counts(
    "counts_negative_csv", lambda f: f.assign(nuclei_count=np.where(f.index == 20, -3, f["nuclei_count"]))
)
_derived_counts(
    "counts_nan_csv", lambda f: f.assign(nuclei_count=np.where(f.index == 21, np.nan, f["nuclei_count"]))
)
_derived_counts(
    "counts_zero_controls_csv",
    lambda f: f.assign(
        nuclei_count=np.where((f["compound"] == "DMSO") & (f["plate"] == "R1-P2"), 0, f["nuclei_count"])
    ),
)
_derived_counts(
    "counts_no_controls_csv",
    lambda f: f[~((f["plate"] == "R2-P1") & (f["compound"] == "DMSO"))].reset_index(drop=True),
)
_derived_counts(
    "counts_text_csv",
    lambda f: f.astype({"nuclei_count": object}).assign(
        nuclei_count=lambda g: np.where(g.index == 4, "many", g["nuclei_count"])
    ),
)
_derived_counts(
    "counts_huge_csv", lambda f: f.assign(nuclei_count=np.where(f.index == 30, 1e300, f["nuclei_count"]))
)
_derived_counts("counts_constant_csv", lambda f: f.assign(nuclei_count=100))


# ------------------------------------------------------------------------------------- lcd-moa


@builder("moa_model")
def _moa_model(c: Corpus) -> Path:
    """A model folder written by ``lcd_moa.fit_moa`` on the screen (every compound active)."""
    from lcd_moa import fit_moa

    folder = c.file("moa_model")
    fit_moa(c.path("screen_csv"), c.path("activity_csv")).save(folder)
    return folder


def _model_variant(c: Corpus, name: str, change: Callable[[Path], None]) -> Path:
    import shutil

    folder = c.file(name)
    shutil.copytree(c.path("moa_model"), folder)
    change(folder)
    return folder


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


BUILDERS["moa_model_trunc_npz"] = lambda c: _model_variant(
    c, "moa_model_trunc_npz", lambda f: _truncate(f / "model.npz")
)
BUILDERS["moa_model_no_json"] = lambda c: _model_variant(
    c, "moa_model_no_json", lambda f: (f / "model.json").unlink()
)
BUILDERS["moa_model_bad_json"] = lambda c: _model_variant(
    c, "moa_model_bad_json", lambda f: (f / "model.json").write_text('{"format": "lcd-moa-model/2", ')
)
BUILDERS["moa_model_foreign"] = lambda c: _model_variant(
    c,
    "moa_model_foreign",
    lambda f: (f / "model.json").write_text(json.dumps({"format": "sklearn", "coef": [1]})),
)


def _drop_json_key(key: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        del meta[key]
        (folder / "model.json").write_text(json.dumps(meta))

    return change


def _json_set(key: str, value: object) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        meta = json.loads((folder / "model.json").read_text())
        meta[key] = value
        (folder / "model.json").write_text(json.dumps(meta))

    return change


BUILDERS["moa_model_no_features"] = lambda c: _model_variant(
    c, "moa_model_no_features", _drop_json_key("feature_names")
)
BUILDERS["moa_model_bad_spec"] = lambda c: _model_variant(
    c, "moa_model_bad_spec", _json_set("spec", {"compound_key": "compound", "colour": "blue"})
)


@builder("moa_model_pickle_npz")
def _moa_model_pickle_npz(c: Corpus) -> Path:
    """model.npz holding an object array (np.load would need allow_pickle=True: code could run)."""

    def change(folder: Path) -> None:
        arrays = dict(np.load(folder / "model.npz"))
        arrays["c0_mean"] = np.array([Marker()], dtype=object)
        with open(folder / "model.npz", "wb") as fh:
            np.savez(fh, **arrays)

    return _model_variant(c, "moa_model_pickle_npz", change)


class Marker:
    """A pickled object that would leave a file behind if it were ever unpickled (code execution)."""

    def __reduce__(self):
        return (_touch, ("/tmp/lcd-census-pickle-ran",))


def _touch(path: str) -> None:
    Path(path).write_text("a pickle was unpickled")


@builder("moa_cv")
def _moa_cv(c: Corpus) -> Path:
    """A cross-validation folder (predictions.parquet ...) written by ``lcd_moa.cross_validate``."""
    from lcd_moa import cross_validate

    folder = c.file("moa_cv")
    cross_validate(c.path("screen_csv"), c.path("activity_csv"), n_folds=2).write(folder, figures=False)
    return folder


@builder("predictions_parquet")
def _predictions(c: Corpus) -> Path:
    return c.path("moa_cv") / "predictions.parquet"


@builder("predictions_no_correct")
def _predictions_no_correct(c: Corpus) -> Path:
    table = pd.read_parquet(c.path("predictions_parquet"))
    path = c.file("predictions_no_correct.parquet")
    table.drop(columns=[col for col in table.columns if col in ("correct", "predicted")]).to_parquet(path)
    return path


# -------------------------------------------------------------------------------------- images

FIELD = 64
MANIFEST_META = {
    "plate": ["P1"] * 4 + ["P2"] * 4,
    "well": ["A01", "A01", "A02", "A02"] * 2,
    "fov": [1, 2] * 4,
    "timepoint": [24] * 8,
    "replica": ["R1"] * 4 + ["R2"] * 4,
    "compound": ["DMSO", "DMSO", "cmpA", "cmpA"] * 2,
    "dose": [0.0, 0.0, 10.0, 10.0] * 2,
    "moa": [None, None, "tubulin", "tubulin"] * 2,
}


def field_stack(c: Corpus, k: int) -> np.ndarray:
    """Field ``k``: three 64 x 64 planes cut from DSB brightfield image ``k % 8`` (uint16, shifted crops
    standing in for focal planes)."""
    import tifffile

    def images() -> list[np.ndarray]:
        return [tifffile.imread(p) for p in sorted((c.shared / DSB).glob("*_image.tif"))]

    img = c.cached("dsb", images)[k % 8]
    img = img if img.ndim == 2 else img[..., :3].mean(axis=-1)
    y, x = 100 + 70 * (k // 8), 100 + 70 * (k // 8)
    planes = [img[y + 2 * z : y + 2 * z + FIELD, x + 2 * z : x + 2 * z + FIELD] for z in range(3)]
    return (np.stack(planes).astype(np.float64) * 16).astype(np.uint16)


def _tif(path: Path, stack: np.ndarray) -> Path:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path


def _manifest(
    c: Corpus, name: str, change: Callable[[pd.DataFrame, Path], pd.DataFrame] | None = None
) -> Path:
    """A folder ``name`` holding 8 field TIFFs and ``manifest.csv`` (relative paths), then ``change``d."""
    folder = c.file(name)
    rows = pd.DataFrame(MANIFEST_META)
    rows["path"] = [f"fields/field{k}.tif" for k in range(len(rows))]
    for k in range(len(rows)):
        _tif(folder / "fields" / f"field{k}.tif", field_stack(c, k))
    if change is not None:
        rows = change(rows, folder)
    rows.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _manifest_variant(name: str, change: Callable[[pd.DataFrame, Path], pd.DataFrame]) -> None:
    BUILDERS[name] = lambda c: _manifest(c, name, change)


BUILDERS["manifest"] = lambda c: _manifest(c, "manifest")


def _replace_image(k: int, write: Callable[[Path], None]) -> Callable[[pd.DataFrame, Path], pd.DataFrame]:
    def change(rows: pd.DataFrame, folder: Path) -> pd.DataFrame:
        write(folder / rows.loc[k, "path"])
        return rows

    return change


def _truncate_file(path: Path) -> None:
    _truncate(path, 0.6)


def _damage_tiff_bits(path: Path) -> None:
    """BitsPerSample 16 -> 8 in the first page's IFD: the pixels decode as other numbers."""
    import struct

    import tifffile

    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["BitsPerSample"]
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, tag.offset + 8, 8)
    path.write_bytes(bytes(data))


def _damage_tiff_width(path: Path) -> None:
    """ImageWidth 64 -> 65: the series no longer matches its recorded shape."""
    import struct

    import tifffile

    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["ImageWidth"]
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, tag.offset + 8, 65)
    path.write_bytes(bytes(data))


def _nan_pixel(path: Path) -> None:
    stack = np.asarray(_read_tif(path), dtype=np.float32)
    stack[1, 10, 20] = np.nan
    _tif(path, stack)


def _huge_pixels(path: Path) -> None:
    stack = np.asarray(_read_tif(path), dtype=np.float64) * 1e300
    _tif(path, stack)


def _zero_field(path: Path) -> None:
    _tif(path, np.zeros((3, FIELD, FIELD), np.uint16))


def _two_planes(path: Path) -> None:
    _tif(path, np.asarray(_read_tif(path))[:2])


def _small_field(path: Path) -> None:
    _tif(path, np.asarray(_read_tif(path))[:, :20, :20])


def _read_tif(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


_manifest_variant(
    "manifest_missing_image", lambda r, f: r.assign(path=r["path"].where(r.index != 2, "fields/gone.tif"))
)
_manifest_variant("manifest_trunc_tiff", _replace_image(3, _truncate_file))
_manifest_variant("manifest_bits_tiff", _replace_image(3, _damage_tiff_bits))
_manifest_variant("manifest_width_tiff", _replace_image(3, _damage_tiff_width))
_manifest_variant("manifest_nan_pixel", _replace_image(1, _nan_pixel))
_manifest_variant("manifest_huge_pixels", _replace_image(1, _huge_pixels))
_manifest_variant("manifest_zero_field", _replace_image(1, _zero_field))
_manifest_variant("manifest_two_planes", _replace_image(5, _two_planes))
_manifest_variant("manifest_small_field", _replace_image(5, _small_field))
_manifest_variant(
    "manifest_dup_image", lambda r, f: r.assign(path=r["path"].where(r.index != 4, r.loc[0, "path"]))
)
_manifest_variant("manifest_dup_well", lambda r, f: r.assign(fov=r["fov"].where(r.index != 1, 1)))
_manifest_variant("manifest_empty_meta", lambda r, f: r.assign(moa=None))
_manifest_variant("manifest_no_path", lambda r, f: r.rename(columns={"path": "image"}))
_manifest_variant("manifest_header", lambda r, f: r.iloc[:0])
_manifest_variant("manifest_missing_meta", lambda r, f: r.assign(plate=r["plate"].where(r.index != 6, None)))


@builder("manifest_unicode")
def _manifest_unicode(c: Corpus) -> Path:
    def change(rows: pd.DataFrame, folder: Path) -> pd.DataFrame:
        for k in range(len(rows)):
            old = folder / rows.loc[k, "path"]
            new = old.with_name(f"Feld_{k}_µm·ß.tif")
            old.rename(new)
            rows.loc[k, "path"] = f"fields/{new.name}"
        rows["compound"] = rows["compound"].replace({"cmpA": "化合物-α"})
        return rows

    return _manifest(c, "manifest_unicode", change)


@builder("manifest_folder")
def _manifest_folder(c: Corpus) -> Path:
    return c.path("manifest").parent


# --------------------------------------------------------------------------------- checkpoints

TINY_VIT = {"depth": 1, "embed_dim": 32, "num_heads": 2, "patch_size": 8, "img_size": 32, "in_chans": 3}


def _save_vit(folder: Path, **changes) -> Path:
    import torch
    from lcd_embed import load_backbone, save_checkpoint

    torch.manual_seed(0)
    model, config = load_backbone("vit_tiny_patch16_224", device="cpu", **{**TINY_VIT, **changes})
    save_checkpoint(model, folder, config)
    return folder


@builder("ckpt")
def _ckpt(c: Corpus) -> Path:
    """A tiny random ViT checkpoint folder (depth 1, 32 dims, patch 8, 32 px tiles, 3 planes)."""
    return _save_vit(c.file("ckpt"))


@builder("ckpt_odd")
def _ckpt_odd(c: Corpus) -> Path:
    """A checkpoint whose tile size (36) is not a multiple of its patch (8)."""
    return _save_vit(c.file("ckpt_odd"), img_size=36)


def _ckpt_variant(name: str, change: Callable[[Path], None]) -> None:
    def build(c: Corpus) -> Path:
        import shutil

        folder = c.file(name)
        shutil.copytree(c.path("ckpt"), folder)
        change(folder)
        return folder

    BUILDERS[name] = build


_ckpt_variant("ckpt_no_config", lambda f: (f / "config.json").unlink())
_ckpt_variant("ckpt_trunc", lambda f: _truncate(f / "model.safetensors"))
_ckpt_variant("ckpt_bad_json", lambda f: (f / "config.json").write_text("{not json"))
_ckpt_variant(
    "ckpt_foreign",
    lambda f: (f / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 32})
    ),
)


def _wrong_dim(folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["embed_dim"] = 64
    (folder / "config.json").write_text(json.dumps(cfg))


_ckpt_variant("ckpt_wrong_dim", _wrong_dim)


def _wrong_type(folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["img_size"] = "32px"
    (folder / "config.json").write_text(json.dumps(cfg))


_ckpt_variant("ckpt_wrong_type", _wrong_type)


@builder("weights_pickle")
def _weights_pickle(c: Corpus) -> Path:
    """A .pth whose pickle would run code when loaded without weights_only."""
    import torch

    path = c.file("evil_weights.pth")
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": Marker()}, path)
    return path


@builder("weights_text")
def _weights_text(c: Corpus) -> Path:
    return _text(c, "not_weights.pth", "these are not weights\n")


@builder("weights_foreign")
def _weights_foreign(c: Corpus) -> Path:
    """A plain state dict of another network (a CNN's tensors)."""
    import torch

    path = c.file("resnet_like.pth")
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.weight": torch.zeros(2, 4)}, path)
    return path


# ----------------------------------------------------------------------------------------- ssl

SSL_TINY = {
    "model": "vit_tiny_patch16_224",
    "model_kwargs": {"depth": 1, "embed_dim": 32, "num_heads": 2, "patch_size": 8},
    "out_dim": 64,
    "hidden_dim": 32,
    "bottleneck_dim": 16,
    "global_crop_size": 32,
    "local_crop_size": 16,
    "n_local_crops": 2,
    "window_size": 64,
    "batch_size": 4,
    "epochs": 1,
    "steps_per_epoch": 2,
    "warmup_epochs": 0.5,
    "precision": "fp32",
    "device": "cpu",
    "num_workers": 0,
    "progress": False,
}

BUILDERS["ssl_tiny_json"] = lambda c: _json(c, "ssl_tiny.json", SSL_TINY)
BUILDERS["ssl_types_json"] = lambda c: _json(c, "ssl_types.json", {**SSL_TINY, "epochs": "1"})
BUILDERS["ssl_unknown_json"] = lambda c: _json(c, "ssl_unknown.json", {**SSL_TINY, "epochz": 1})
BUILDERS["ssl_model_kwargs_json"] = lambda c: _json(
    c, "ssl_model_kwargs.json", {**SSL_TINY, "model_kwargs": {**SSL_TINY["model_kwargs"], "depthh": 2}}
)
BUILDERS["ssl_list_json"] = lambda c: _json(c, "ssl_list.json", [1, 2])
BUILDERS["ssl_not_json"] = lambda c: _text(c, "ssl_not.json", "epochs: 1\n")
BUILDERS["ssl_nan_lr_json"] = lambda c: _json(c, "ssl_nan_lr.json", {**SSL_TINY, "lr": -1.0})


@builder("ssl_run")
def _ssl_run(c: Corpus) -> Path:
    """A finished tiny lcd-ssl run folder (checkpoint.pt, train_config.json, metrics.jsonl)."""
    from lcd_ssl import TrainConfig, train

    folder = c.file("ssl_run")
    train(str(c.path("manifest")), TrainConfig(**{**SSL_TINY, "seed": 0}), folder)
    return folder


def _run_variant(name: str, change: Callable[[Path], None]) -> None:
    def build(c: Corpus) -> Path:
        import shutil

        folder = c.file(name)
        shutil.copytree(c.path("ssl_run"), folder)
        change(folder / "checkpoint.pt")
        return folder

    BUILDERS[name] = build


def _plain_state_dict(path: Path) -> None:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    torch.save(state["student"], path)


def _code_state(path: Path) -> None:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state["hook"] = Marker()
    torch.save(state, path)


def _foreign_format(path: Path) -> None:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    state["format"] = "dinov2/train-state"
    torch.save(state, path)


_run_variant("ssl_run_plain", _plain_state_dict)
_run_variant("ssl_run_trunc", lambda p: _truncate(p, 0.5))
_run_variant("ssl_run_code", _code_state)
_run_variant("ssl_run_foreign", _foreign_format)
_run_variant("ssl_run_empty", lambda p: p.write_bytes(b""))


# ------------------------------------------------------------------------- nuclei evaluation


def _dsb_pairs(c: Corpus, n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, reference labels) crops of 128 x 128 from the first ``n`` DSB images."""
    import tifffile

    out = []
    for path in sorted((c.shared / DSB).glob("*_image.tif"))[:n]:
        img = tifffile.imread(path)
        img = img if img.ndim == 2 else img[..., :3].mean(axis=-1)
        lab = tifffile.imread(path.with_name(path.name.replace("_image.tif", "_nuclei_labels.tif")))
        # the 128 x 128 window (on a 128 grid) holding the most nuclei
        windows = [
            (y, x) for y in range(0, lab.shape[0] - 127, 128) for x in range(0, lab.shape[1] - 127, 128)
        ]
        y, x = max(windows, key=lambda w: np.unique(lab[w[0] : w[0] + 128, w[1] : w[1] + 128]).size)
        crop = (slice(y, y + 128), slice(x, x + 128))
        out.append((img[crop].astype(np.uint16), lab[crop].astype(np.uint32)))
    return out


def _eval_manifest(c: Corpus, name: str, gone: bool = False) -> Path:
    import tifffile

    folder = c.file(name)
    folder.mkdir()
    rows = []
    for k, (img, lab) in enumerate(_dsb_pairs(c)):
        tifffile.imwrite(folder / f"field{k}.tif", img)
        tifffile.imwrite(folder / f"field{k}_mask.tif", lab)
        mask = "gone_mask.tif" if gone and k == 1 else f"field{k}_mask.tif"
        rows.append({"plate": "P1", "well": f"A0{k + 1}", "path": f"field{k}.tif", "reference": mask})
    pd.DataFrame(rows).to_csv(folder / "eval_manifest.csv", index=False)
    return folder / "eval_manifest.csv"


BUILDERS["eval_manifest"] = lambda c: _eval_manifest(c, "eval")
BUILDERS["eval_manifest_gone"] = lambda c: _eval_manifest(c, "eval_gone", gone=True)


@builder("labels_dir")
def _labels_dir(c: Corpus) -> Path:
    """Predicted labels: the reference masks shifted by 2 pixels (real shapes, imperfect overlap)."""
    import tifffile

    folder = c.file("pred_labels")
    folder.mkdir()
    for k, (_, lab) in enumerate(_dsb_pairs(c)):
        tifffile.imwrite(folder / f"row{k}_labels.tif", np.roll(lab, 2, axis=(0, 1)))
    return folder


@builder("float_labels_dir")
def _float_labels_dir(c: Corpus) -> Path:
    import tifffile

    folder = c.file("float_labels")
    folder.mkdir()
    for k, (_, lab) in enumerate(_dsb_pairs(c)):
        tifffile.imwrite(folder / f"row{k}_labels.tif", lab.astype(np.float32) + 0.5)
    return folder
