"""The vocabulary of the LCD packages: default metadata columns and the one name of each concept.

docs/data-model.md ("Names") is the table for people; this module is the same table for code, read
by ``tests/test_package_structure.py`` to refuse a synonym in any public signature.
"""

from __future__ import annotations

#: The control selector every function and CLI defaults to (a pandas query on obs).
DEFAULT_CONTROL = "compound == 'DMSO'"

#: Default obs column names of the data contract.
REPLICA = "replica"
PLATE = "plate"
WELL = "well"
FOV = "fov"
TIMEPOINT = "timepoint"
TIMEPOINT_H = "timepoint_h"
DOSE = "dose"
COMPOUND = "compound"
MOA = "moa"
NUCLEI_COUNT = "nuclei_count"

#: A measurement: one plate imaged at one timepoint (MAD reference, mAP-ES negatives).
MEASUREMENT_KEYS = (PLATE, TIMEPOINT)
#: A condition: one timepoint x dose (mAP-ES rows, MoA probes).
CONDITION_KEYS = (TIMEPOINT, DOSE)

#: obsm key of each representation (one key per concept across packages).
REP_KEYS = {
    "none": None,
    "mad": "X_mad",
    "harmony": "X_harmony",
    "fastmnn": "X_mnn",
    "mad_harmony_fov": "X_mad_harmony_fov",
}

#: Parameter names that must not appear in a public signature, with the name to use instead.
FORBIDDEN_NAMES: dict[str, str] = {
    "batch_key": "replica_key",
    "replicate_key": "replica_key",
    "batch": "replica_key",
    "control_by": "measurement_keys",
    "group_keys": "measurement_keys (plate x timepoint) or condition_keys (timepoint x dose)",
    "progress_bar": "progress",
    "show_progress": "progress",
    "verbose_progress": "progress",
    "output": "out",
    "output_path": "out",
    "out_path": "out",
    "outdir": "out",
    "control_query": "control",
    "negcon": "control",
    "count_col": "count_key",
    "inplace": "copy",
    "time_key": "timepoint_key",
    "compound_col": "compound_key",
    "moa_col": "moa_key",
}
