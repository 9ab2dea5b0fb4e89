"""What ``lcd compare`` compares: labelled result folders or embedding/profile files, loaded as profiles.

Each input is ``LABEL=PATH`` (or a bare path, labelled by its name). A path is

- a results folder of ``lcd run``/``lcd demo`` (``profiles_fov.h5ad``, else the tile store ``embeddings.parquet``
  aggregated to fields of view; its ``manifest.parquet`` and ``cell_count.parquet`` are used for the
  image panels and the cell-count baseline);
- an ``.h5ad`` of tile, FOV or well profiles (tiles are aggregated to FOVs by their median);
- a table (csv/tsv/parquet, pycytominer layout: feature columns by lcd-core's rule), e.g. a
  CellProfiler per-image or per-well table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lcd_core import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".gz", ".parquet", ".pq")


@dataclass
class ModelInput:
    """One labelled input of a comparison.

    Attributes
    ----------
    label
        The model's name in every table and figure (``dino``, ``cellprofiler`` ...).
    path
        Where it was read from.
    profiles
        AnnData of FOV- or well-level profiles (features in ``X``).
    level
        ``"fov"`` or ``"well"``.
    results
        The results folder when the input is one (manifest, counts), else ``None``.
    """

    label: str
    path: Path
    profiles: object
    level: str
    results: Path | None = None


def parse_spec(spec: str) -> tuple[str, Path]:
    """``LABEL=PATH`` → (label, path); a bare path is labelled by its file or folder name.

    Parameters
    ----------
    spec
        The command-line argument.

    Returns
    -------
    tuple
        Label and path.
    """
    label, sep, path = spec.partition("=")
    if not sep:
        p = Path(spec)
        name = p.name
        for suffix in (".gz", ".h5ad", ".csv", ".tsv", ".parquet", ".pq", ".txt"):
            name = name.removesuffix(suffix)
        return name or str(p), p
    if not label or not path:
        raise InputError(f"{spec!r}: expected LABEL=PATH (e.g. dino=runs/dino)")
    return label, Path(path)


def load_input(
    label: str,
    path: str | os.PathLike,
    *,
    fov_key: str = "fov",
    features: list[str] | str | None = None,
) -> ModelInput:
    """Read one input as FOV- (when it has ``fov_key``) or well-level profiles.

    Parameters
    ----------
    label
        The model's name.
    path
        Results folder, ``.h5ad`` or table.
    fov_key
        The field-of-view column (tiles are aggregated by plate, well, fov, timepoint).
    features
        Feature columns or regex of a table input (default: lcd-core's feature rule).

    Returns
    -------
    ModelInput
        The profiles and where they came from.
    """
    from lcd_core import is_tile_store, load_profiles, read_h5ad
    from lcd_norm import aggregate, aggregate_tiles

    path = Path(path)
    results = None
    if is_tile_store(path):  # lcd-embed's tile store (the embed stage's embeddings.parquet/): streamed
        adata = aggregate_tiles(path, by="fov", fov_key=fov_key)
    elif path.is_dir():
        results = path
        if (path / "profiles_fov.h5ad").is_file():
            adata = read_h5ad(path / "profiles_fov.h5ad", what=f"{label} profiles")
        elif is_tile_store(path / "embeddings.parquet"):
            adata = aggregate_tiles(path / "embeddings.parquet", by="fov", fov_key=fov_key)
        elif (path / "embeddings.h5ad").is_file():  # results of lcd-pipeline < 0.3
            adata = read_h5ad(path / "embeddings.h5ad", what=f"{label} tile embeddings")
        else:
            raise InputError(
                f"{path}: a results folder needs profiles_fov.h5ad or embeddings.parquet (run `lcd run` "
                f"at least to the embed stage) for input {label!r}"
            )
    elif not path.exists():
        raise InputError(f"{path}: input {label!r} not found")
    elif path.suffix.lower() == ".h5ad":
        adata = read_h5ad(path, what=f"{label} profiles")
    else:
        adata = load_profiles(path, features=features)
    level = adata.uns.get("lcd", {}).get("level") if hasattr(adata, "uns") else None
    if level == "tile" or (level is None and "tile" in adata.obs.columns):
        adata = aggregate(adata, by="fov", fov_key=fov_key)
        level = "fov"
    if level not in ("fov", "well"):
        level = "fov" if fov_key in adata.obs.columns else "well"
    if adata.n_obs == 0:
        raise InputError(f"{path}: input {label!r} holds no profiles")
    return ModelInput(label=label, path=path, profiles=adata, level=level, results=results)
