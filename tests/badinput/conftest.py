"""Fixtures of the bad-input census: one corpus of good and bad files per session.

The census modules (``census``, ``corpus``) are plain modules beside the tests; with pytest's
``--import-mode=importlib`` a test folder is not on ``sys.path``, so this conftest puts it there once.
"""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, shared_data):
    """The census corpus (``corpus.Corpus``): files built on first use from the shared data."""
    from corpus import Corpus

    return Corpus(tmp_path_factory.mktemp("corpus"), shared_data)
