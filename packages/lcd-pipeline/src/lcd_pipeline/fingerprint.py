"""Stage fingerprints: what a stage's outputs were made from, as one hash and as readable parts.

A stage's fingerprint covers the config values it reads, the fingerprints of the stages whose outputs
it reads, the versions of the packages that compute it, and the size and modification time of the
external files it reads (a manifest, an Opera export, a checkpoint, embeddings). A stage is skipped
only when its outputs exist and its recorded fingerprint equals the current one; since fingerprints
chain, a changed stage re-runs with everything downstream.

External files are identified by (path, size, mtime) rather than content: hashing a screen's images
would read terabytes. Rewriting a file in place with the same size and timestamp goes unnoticed
(``touch`` it, or delete the stage's outputs, to force a re-run).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution (``"missing"`` when not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def file_stats(paths: Iterable[str | os.PathLike]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` of every file under the given files/folders (sorted; missing: size -1)."""
    rows = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    st = (Path(root) / name).stat()
                    rows.append([str(Path(root) / name), st.st_size, st.st_mtime_ns])
        elif p.exists():
            st = p.stat()
            rows.append([str(p), st.st_size, st.st_mtime_ns])
        else:
            rows.append([str(p), -1, 0])
    return rows


def digest(parts: Mapping[str, Any]) -> str:
    """A short sha256 of the parts, serialized as sorted JSON."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    """The value of ``a.b.c`` in a nested mapping (``None`` when absent)."""
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` lines for every leaf that differs between two nested mappings."""
    lines = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines.extend(changed_keys(a, b, prefix=f"{name}."))
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            lines.append(f"{name}: {a!r} -> {b!r}")
    return lines
