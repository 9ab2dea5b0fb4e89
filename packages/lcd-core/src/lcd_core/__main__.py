"""``python -m lcd_core``: the LCD packages and optional parts this environment has.

lcd-core has no commands of its own; this answers the first install question ("what did pip give
me?"): each LCD package's version, each optional dependency (and what needs it), and which torch
build is installed (CPU or CUDA) without importing it.
"""

from __future__ import annotations

import sys
from importlib import metadata

PACKAGES = (
    "lcd-core",
    "lcd-metrics",
    "lcd-norm",
    "lcd-moa",
    "lcd-embed",
    "lcd-ssl",
    "lcd-nuclei",
    "lcd-pipeline",
)
OPTIONAL = {
    "typer": "every lcd command (lcd_core.cli)",
    "rich": "progress bars",
    "pyarrow": "parquet files",
    "threadpoolctl": "thread policy (lcd_core.blas_threads)",
    "matplotlib": "figures",
    "scanpy": "the report's PCA/UMAP view (lcd-pipeline)",
    "torch": "lcd-embed, lcd-ssl, lcd-nuclei",
    "torchvision": "timm (lcd-embed, lcd-ssl)",
}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _torch_build(version: str) -> str:
    """'CPU build' / 'CUDA build' from the version's local tag or the nvidia libraries pip installed."""
    if "+cpu" in version:
        return "CPU build"
    if "+cu" in version:
        return "CUDA build"
    requires = metadata.requires("torch") or []
    return "CUDA build" if any(r.startswith(("nvidia-", "cuda-")) for r in requires) else "CPU build"


def report() -> list[str]:
    """The lines ``python -m lcd_core`` prints."""
    lines = ["LCD packages:"]
    for dist in PACKAGES:
        lines.append(f"  {dist:<14} {_version(dist) or '-'}")
    lines.append("optional parts:")
    for dist, what in OPTIONAL.items():
        found = _version(dist)
        shown = found or "not installed"
        if dist == "torch" and found:
            shown = f"{found} ({_torch_build(found)})"
        lines.append(f"  {dist:<14} {shown:<28} {what}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print :func:`report` (``--version``: only lcd-core's version).

    Parameters
    ----------
    argv
        Command-line arguments (default ``sys.argv[1:]``).
    """
    args = sys.argv[1:] if argv is None else argv
    if "--version" in args:
        print(f"lcd-core {_version('lcd-core')}")
        return 0
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0].strip("`"))
        return 0
    print("\n".join(report()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
