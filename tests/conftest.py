"""Shared fixtures. Stdlib + pytest only: this file is loaded by every package's isolated test run."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the repository (`../shared/data`); fails loudly when missing."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(
            f"real test data not found at {SHARED_DATA}: clone the repository next to the shared/ folder "
            "(../shared/data) to run these tests",
            pytrace=False,
        )
    return SHARED_DATA
