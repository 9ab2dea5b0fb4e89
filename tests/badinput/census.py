"""The bad-input census: what a case is, the classes of bad input, and how an outcome is judged.

Every case feeds one bad input (or fault) to one command or function and declares the outcome the
user must get:

- ``error``: a one-line error naming the file, column, row or option at fault (``names``), exit code 2
  for a CLI (an :class:`lcd_core.InputError` for a function); no traceback, nothing half-written;
- ``status``: the command succeeds and the output *records* what went wrong (a ``status``/``reason``
  column, a failures table ...), which the case's ``check`` asserts;
- ``works``: input that looks odd but is valid (unicode names ...) gives the right result, checked.

Whatever the outcome, the input files must be byte-identical afterwards (checksums). The report
script (``report.py``) counts the cases per package, class and outcome for the READMEs.
"""

from __future__ import annotations

import hashlib
import shlex
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: The classes of bad input of issue #19, in the order the README tables list them.
CLASSES: dict[str, str] = {
    "missing-path": "missing file or folder",
    "directory": "a folder where a file is expected (or the reverse)",
    "wrong-format": "wrong format (a CSV named .h5ad, an .xlsx output, an unknown suffix)",
    "empty": "empty file (0 bytes)",
    "header-only": "header-only table, AnnData without rows",
    "missing-column": "missing or misspelled column or key",
    "nonfinite": "NaN or inf values",
    "constant": "constant or all-zero features, identical profiles",
    "duplicates": "duplicate names, rows or images",
    "single-replica": "a single replica",
    "no-controls": "plates without controls",
    "unicode": "unicode names",
    "huge-values": "huge values (1e300)",
    "truncated": "truncated file (.h5ad, .parquet, .npz, TIFF, checkpoint)",
    "corrupted": "corrupted bytes (scrambled, damaged header)",
    "foreign-checkpoint": "foreign checkpoint (another program's weights or config)",
    "code-checkpoint": "code-carrying checkpoint (a pickle that would run code)",
    "config-type": "wrong config types, unknown config keys",
    "out-of-range": "out-of-range options",
    "join-mismatch": "values that do not match between two inputs ('24h' vs 24)",
    "row-order": "the same rows in another order (the result must not change)",
    "leftovers": "temporary files left by a killed writer",
}

OUTCOMES: dict[str, str] = {
    "error": "one-line error naming the file/column/row, exit code 2",
    "status": "recorded status/reason in the output (asserted)",
    "works": "valid input handled correctly (result checked)",
}


@dataclass(frozen=True)
class Case:
    """One census case.

    Attributes
    ----------
    id
        Short unique name (the pytest id).
    kind
        A key of :data:`CLASSES`.
    run
        CLI words after the program name (``"map-es {screen_csv} -o {out}/a.csv"``; ``{name}`` is a
        corpus file, ``{out}`` the case's output folder), or a function ``(inputs, out) -> result``
        for the Python API.
    expect
        A key of :data:`OUTCOMES`.
    names
        Texts the error line must contain (the file, column, row or option at fault).
    check
        For ``status``/``works``: ``check(out, result)`` asserting the recorded status or result.
    owner
        The helper branch that fixes this case (the case is ``xfail(strict=True)`` until it lands).
    prepare
        ``prepare(inputs, work) -> paths``: puts a previous output in ``{work}`` (a run folder to
        resume); the returned paths must be byte-identical after the case (never half-overwritten).
    """

    id: str
    kind: str
    run: str | Callable[..., Any]
    expect: str = "error"
    names: tuple[str, ...] = ()
    check: Callable[..., None] | None = None
    owner: str | None = None
    prepare: Callable[..., list[Path]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in CLASSES:
            raise ValueError(f"case {self.id}: unknown class {self.kind!r}")
        if self.expect not in OUTCOMES:
            raise ValueError(f"case {self.id}: unknown outcome {self.expect!r}")
        if self.expect == "error" and not self.names:
            raise ValueError(f"case {self.id}: an error case must say what the message names")
        if self.expect != "error" and self.check is None:
            raise ValueError(f"case {self.id}: a {self.expect} case needs a check")


def params(cases: Iterable[Case]) -> list:
    """``pytest.param`` per case (its id; ``xfail(strict=True)`` when another branch owns the fix)."""
    out, seen = [], set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"duplicate case id {case.id}")
        seen.add(case.id)
        marks = [pytest.mark.xfail(strict=True, reason=case.owner)] if case.owner else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# --------------------------------------------------------------------------------------- checksums


def digest(path: Path) -> str:
    """sha256 of a file, or of every file (name and bytes) below a folder; ``absent`` when missing."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            h.update(str(p.relative_to(path)).encode())
            if p.is_file():
                h.update(p.read_bytes())
        return h.hexdigest()
    return "absent"


class Inputs:
    """The corpus as a case sees it: ``inputs["screen_csv"]`` builds the file once and remembers the use."""

    def __init__(self, corpus: Any, out: Path):
        self.corpus = corpus
        self.out = out
        self.used: dict[str, Path] = {}

    def __getitem__(self, name: str) -> str:
        if name == "out":
            return str(self.out)
        if name == "work":
            return str(self.out.parent / "work")
        path = self.corpus.path(name)
        self.used[name] = path
        return str(path)

    def path(self, name: str) -> Path:
        return Path(self[name])


def words(template: str, inputs: Inputs) -> list[str]:
    """CLI words of a case: split first, then fill ``{name}`` (so paths with spaces stay one word)."""
    return [w.format_map(inputs) for w in shlex.split(template)]


# ----------------------------------------------------------------------------------- judging


def _traceback_of(result: Any) -> str:
    exc = result.exception
    if exc is None or isinstance(exc, SystemExit):
        return ""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _written(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


def judge_cli(case: Case, result: Any, out: Path) -> None:
    """Assert a CLI result has the case's outcome (see the module docstring)."""
    tb = _traceback_of(result)
    assert not tb, f"traceback instead of {case.expect}:\n{tb}"
    stderr = result.stderr if hasattr(result, "stderr") else result.output
    assert "Traceback" not in result.output, result.output
    if case.expect == "error":
        assert result.exit_code == 2, f"exit {result.exit_code}, expected 2:\n{result.output}"
        errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
        if errors:
            assert len(errors) == 1, f"several error lines:\n{stderr}"
            line = errors[0]
        else:  # click's own usage errors (an option of the wrong type) come as a short panel
            assert "Invalid value" in stderr or "Missing" in stderr or "No such option" in stderr, stderr
            line = " ".join(stderr.split())
        for name in case.names:
            assert name in line, f"the error does not name {name!r}: {line}"
        left = _written(out)
        assert not left, f"an error left output behind: {left}"
    else:
        assert result.exit_code == 0, f"exit {result.exit_code}, expected 0:\n{result.output}"
        assert case.check is not None
        case.check(out, result)


def judge_api(case: Case, call: Callable[[], Any], out: Path) -> None:
    """Run an API case and assert its outcome: an InputError naming ``names``, or a checked result."""
    from lcd_core import InputError

    if case.expect == "error":
        try:
            call()
        except InputError as exc:
            text = str(exc)
            assert "\n" not in text.strip(), f"error of several lines:\n{text}"
            for name in case.names:
                assert name in text, f"the error does not name {name!r}: {text}"
        except Exception as exc:  # anything else is a traceback a user would see
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            pytest.fail(f"{type(exc).__name__} instead of an InputError:\n{tb}", pytrace=False)
        else:
            pytest.fail("no error: the bad input was accepted", pytrace=False)
        left = _written(out)
        assert not left, f"an error left output behind: {left}"
    else:
        result = call()
        assert case.check is not None
        case.check(out, result)


def run_case(case: Case, app: Any, corpus: Any, tmp_path: Path) -> None:
    """Run one case (CLI in-process with typer's CliRunner, or the API) and check its inputs are unchanged.

    The corpus records each file's checksum when it builds it, so a change by this case (or by any
    earlier case of the session) is caught.
    """
    out = tmp_path / "out"
    out.mkdir()
    inputs = Inputs(corpus, out)
    kept: dict[Path, str] = {}
    if case.prepare is not None:
        work = tmp_path / "work"
        work.mkdir()
        kept = {p: digest(p) for p in case.prepare(inputs, work)}
    if isinstance(case.run, str):
        from typer.testing import CliRunner

        argv = words(case.run, inputs)
        result = CliRunner().invoke(app, argv, terminal_width=200)
        result.argv = argv  # checks may need the input a run was given
        judge_cli(case, result, out)
    else:
        judge_api(case, lambda: case.run(inputs, out), out)
    changed = [name for name, path in inputs.used.items() if digest(path) != corpus.digests[name]]
    assert not changed, f"inputs changed: {changed}"
    touched = [str(p) for p, d in kept.items() if digest(p) != d]
    assert not touched, f"a previous output changed: {touched}"


# ------------------------------------------------------------------------------ status checks


def read_any(path: Path):
    """A table written by a command (by suffix)."""
    import pandas as pd

    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt") else ",")


def status_table(
    path: Path,
    *,
    values: tuple[str, ...] = (),
    statuses: tuple[str, ...] = ("ok", "partial", "failed"),
):
    """Read a result table and assert the status contract; return it.

    Every row has a known ``status``; a row that is not ``ok`` says why in ``reason``; an ``ok`` row
    has finite ``values`` (no NaN passed on as a result).
    """
    import numpy as np

    table = read_any(path)
    assert {"status", "reason"} <= set(table.columns), list(table.columns)
    assert set(table["status"]) <= set(statuses), set(table["status"])
    not_ok = table[table["status"] != "ok"]
    reason = not_ok["reason"].fillna("").astype(str).str.strip()
    assert (reason != "").all(), not_ok
    ok = table[table["status"] == "ok"]
    for col in values:
        assert np.isfinite(ok[col].to_numpy(float)).all(), ok[[col, "status"]]
    return table
