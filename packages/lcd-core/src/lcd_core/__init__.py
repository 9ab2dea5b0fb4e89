"""lcd-core: the LCD data contract in code (docs/data-model.md).

One reader and writer per file kind, atomic outputs with the user's umask, the feature-column rule,
profile loading and the feature accessor, control selection, key checks, the error hierarchy, one
progress bar, option checking and the CLI scaffold (``lcd_core.cli``, needs typer). numpy, pandas and
anndata only; names load on first use.
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "InputError": "errors",
    "FileFormatError": "errors",
    "ImageReadError": "errors",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "one_line": "errors",
    "describe_exception": "errors",
    # atomic outputs
    "atomic_write": "atomic",
    "atomic_dir": "atomic",
    "write_text": "atomic",
    "write_bytes": "atomic",
    "apply_umask": "atomic",
    "remove_stale_temps": "atomic",
    # tables and small files
    "TABLE_SUFFIXES": "tables",
    "table_format": "tables",
    "check_input_file": "tables",
    "check_output_path": "tables",
    "read_table": "tables",
    "write_table": "tables",
    "read_json": "tables",
    "write_json": "tables",
    "read_npz": "tables",
    "write_npz": "tables",
    # AnnData files and provenance
    "read_h5ad": "h5ad",
    "write_h5ad": "h5ad",
    "storable_frame": "h5ad",
    "to_jsonable": "h5ad",
    "record_params": "h5ad",
    # profiles
    "FEATURE_PREFIXES": "features",
    "feature_columns": "features",
    "load_profiles": "profiles",
    "table_to_anndata": "profiles",
    "get_rep": "profiles",
    "rep_name": "profiles",
    "source_of": "profiles",
    "check_finite": "profiles",
    # metadata
    "control_mask": "controls",
    "groups_without_controls": "controls",
    "as_list": "keys",
    "check_keys": "keys",
    "describe_group": "keys",
    "group_codes": "keys",
    "DEFAULT_CONTROL": "names",
    "MEASUREMENT_KEYS": "names",
    "CONDITION_KEYS": "names",
    "REP_KEYS": "names",
    "FORBIDDEN_NAMES": "names",
    # running
    "progress": "progress",
    "track": "progress",
    "blas_threads": "threads",
    "threads_for": "threads",
    "given": "options",
    "check_options": "options",
    "conforms": "options",
    "accepted_options": "options",
    "set_verbosity": "log",
    "show_progress": "log",
    "get_logger": "log",
    "lazy_exports": "lazy",
    "run_cli": "entry",
    "load_app": "entry",
    # CLI scaffold (needs typer; loaded only when one of these names is used). Exported here so that
    # packages import them as `from lcd_core import make_app` (tests/test_package_structure.py allows
    # cross-package imports of exported names only, never of submodules such as lcd_core.cli).
    "make_app": "cli",
    "add_common_options": "cli",
    "handles_bad_input": "cli",
    "fail": "cli",
    "split_list": "cli",
    "split_ints": "cli",
    "optional_key": "cli",
    "given_keys": "cli",
    "Out": "cli",
    "Columns": "cli",
    "Key": "cli",
    "OptionalKey": "cli",
    "Control": "cli",
    "Features": "cli",
    "Layer": "cli",
    "UseRep": "cli",
    "Seed": "cli",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
