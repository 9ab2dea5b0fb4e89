"""Conventions every LCD package keeps (scanpy's tests/test_package_structure.py, for seven packages).

For each package's public API (its ``__all__``):

- at most 3 positional parameters; every other option is keyword-only;
- no parameter named by a synonym from the Names table (``lcd_core.FORBIDDEN_NAMES``);
- a function that writes into an AnnData (returns ``AnnData | None``, or has ``key_added``) has both
  ``key_added`` and ``copy``;
- a numpydoc ``Parameters`` section naming every parameter.

Across the repository:

- every CLI option's default is ``None``/``False`` or equals the API default of the same-named parameter;
- a package imports another LCD package only through names that package exports (``__all__``);
- a package imports only the stdlib, itself and what its pyproject declares.

``test_checks_catch_a_bad_signature`` shows each check failing on deliberately bad functions.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from lcd_core.names import FORBIDDEN_NAMES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for p in (ROOT / "packages").glob("lcd-*/pyproject.toml"))
MAX_POSITIONAL = 3


@dataclass(frozen=True)
class Package:
    dist: str  # lcd-metrics
    module: str  # lcd_metrics
    folder: Path

    @property
    def src(self) -> Path:
        return self.folder / "src" / self.module

    def pyproject(self) -> dict:
        return tomllib.loads((self.folder / "pyproject.toml").read_text())


ALL = [Package(p.name, p.name.replace("-", "_"), p) for p in PACKAGES]
LCD_MODULES = {p.module for p in ALL}


# ------------------------------------------------------------------------------------------- checkers


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _normalize(re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0])


def documented_parameters(doc: str | None) -> set[str]:
    """Names listed in a numpydoc ``Parameters`` section (``a, b : int`` lines count for both)."""
    if not doc:
        return set()
    lines = inspect.cleandoc(doc).splitlines()
    names: set[str] = set()
    inside = False
    for i, line in enumerate(lines):
        if line.strip() == "Parameters" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            inside = True
            continue
        if not inside:
            continue
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            break  # the next section starts
        if line and not line.startswith(" ") and set(line.strip()) != {"-"}:
            head = line.split(" : ")[0]
            for part in head.split(","):
                part = part.strip().lstrip("*")
                if part:
                    names.add(part)
    return names


def signature_problems(name: str, fn: Callable) -> list[str]:
    """Every convention ``fn`` breaks, as readable lines (empty when it keeps them all)."""
    problems = []
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return problems
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) > MAX_POSITIONAL:
        extra = ", ".join(p.name for p in positional[MAX_POSITIONAL:])
        problems.append(f"{name}: {len(positional)} positional parameters; make {extra} keyword-only")
    for p in params:
        if p.name in FORBIDDEN_NAMES:
            problems.append(f"{name}: parameter {p.name!r} is a synonym; use {FORBIDDEN_NAMES[p.name]}")
    names = {p.name for p in params}
    returns = str(sig.return_annotation)
    writes_adata = "key_added" in names or re.search(r"AnnData \| None", returns) is not None
    if writes_adata:
        for needed in ("key_added", "copy"):
            if needed not in names:
                problems.append(f"{name}: writes into an AnnData but has no {needed!r} parameter")
    wanted = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    missing_doc = sorted(wanted - documented_parameters(inspect.getdoc(fn)))
    if missing_doc:
        problems.append(f"{name}: parameters missing from the docstring's Parameters section: {missing_doc}")
    return problems


def public_functions(pkg: Package) -> Iterator[tuple[str, Callable]]:
    module = importlib.import_module(pkg.module)
    for name in sorted(getattr(module, "__all__", [])):
        obj = getattr(module, name)
        if inspect.isfunction(obj):
            yield f"{pkg.module}.{name}", obj


def _imports(path: Path) -> Iterator[tuple[int, str, str | None, list[str]]]:
    """(line, top-level module, full module, imported names) of every absolute import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0], alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0], node.module, [a.name for a in node.names]


def cross_package_problems(pkg: Package) -> list[str]:
    """Imports of another LCD package that go through a submodule or a name it does not export."""
    problems = []
    for path in sorted(pkg.src.rglob("*.py")):
        for line, top, full, names in _imports(path):
            if top not in LCD_MODULES or top == pkg.module:
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if full != top:
                problems.append(f"{where}: imports {full} (a submodule); import exported names from {top}")
                continue
            exported = set(getattr(importlib.import_module(top), "__all__", []))
            for n in names:
                if n not in exported:
                    problems.append(f"{where}: {top}.{n} is not in {top}.__all__")
    return problems


def undeclared_import_problems(pkg: Package) -> list[str]:
    """Third-party imports whose distribution is not a dependency (or extra) of the package."""
    project = pkg.pyproject()["project"]
    declared = {_requirement_name(r) for r in project.get("dependencies", [])}
    for reqs in project.get("optional-dependencies", {}).values():
        declared |= {_requirement_name(r) for r in reqs}
    dists = packages_distributions()
    problems = []
    for path in sorted(pkg.src.rglob("*.py")):
        for line, top, _full, _names in _imports(path):
            if top in sys.stdlib_module_names or top == pkg.module or top == "__future__":
                continue
            owners = {_normalize(d) for d in dists.get(top, [top])}
            if not owners & declared:
                problems.append(
                    f"{path.relative_to(ROOT)}:{line}: imports {top} (from {sorted(owners)}) but "
                    f"{pkg.dist}'s pyproject does not declare it"
                )
    return problems


def _api_defaults(pkg: Package) -> dict[str, list[object]]:
    defaults: dict[str, list[object]] = {}
    for _name, fn in public_functions(pkg):
        for p in inspect.signature(fn).parameters.values():
            if p.default is not inspect.Parameter.empty:
                defaults.setdefault(p.name, []).append(p.default)
    return defaults


def _same(cli_value: object, api_value: object) -> bool:
    if isinstance(api_value, tuple | list) and isinstance(cli_value, tuple | list):
        return [str(v) for v in api_value] == [str(v) for v in cli_value]
    if isinstance(api_value, Path) or isinstance(cli_value, Path):
        return str(api_value) == str(cli_value)
    return cli_value == api_value


def cli_default_problems(pkg: Package) -> list[str]:
    """CLI options whose default is neither None/False nor the API default of the same-named parameter."""
    import click
    import typer

    eps = [
        ep for ep in importlib.metadata.entry_points(group="lcd.cli") if ep.value.startswith(pkg.module + ".")
    ]
    if not eps:
        return []
    api = _api_defaults(pkg)
    problems = []

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for sub_name, sub in cmd.commands.items():
                walk(sub, f"{path} {sub_name}")
            return
        for param in cmd.params:
            if not isinstance(param, click.Option) or param.name in ("help",):
                continue
            default = param.default
            if default is None or default is False:
                continue
            if param.multiple and default in ((), []):
                continue
            if param.name not in api:
                continue  # an option of the command alone (output format, a path): no API twin
            if not any(_same(default, d) for d in api[param.name]):
                problems.append(
                    f"{path} --{param.name.replace('_', '-')}: default {default!r} differs from the API's "
                    f"{api[param.name]!r}; default it to None and let the API decide"
                )

    for ep in eps:
        app = ep.load()
        if app is None:
            continue
        walk(typer.main.get_command(app), f"lcd {ep.name}")
    return problems


# ------------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("pkg", ALL, ids=[p.dist for p in ALL])
def test_public_signatures(pkg):
    problems = [line for name, fn in public_functions(pkg) for line in signature_problems(name, fn)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("pkg", ALL, ids=[p.dist for p in ALL])
def test_cross_package_imports_use_exported_names(pkg):
    problems = cross_package_problems(pkg)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("pkg", ALL, ids=[p.dist for p in ALL])
def test_imports_are_declared(pkg):
    problems = undeclared_import_problems(pkg)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("pkg", ALL, ids=[p.dist for p in ALL])
def test_cli_defaults_are_the_api_defaults(pkg):
    problems = cli_default_problems(pkg)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("pkg", ALL, ids=[p.dist for p in ALL])
def test_every_package_depends_on_lcd_core(pkg):
    if pkg.dist == "lcd-core":
        return
    deps = [_requirement_name(r) for r in pkg.pyproject()["project"]["dependencies"]]
    assert "lcd-core" in deps
    assert (pkg.src / "__main__.py").is_file(), f"python -m {pkg.module} needs {pkg.module}/__main__.py"


def test_checks_catch_a_bad_signature():
    """Each check fails on a function built to break it (and passes on a good one)."""

    def bad(adata, keys, batch_key, progress_bar, theta=2.0):
        """Correct batches.

        Parameters
        ----------
        adata
            Profiles.
        """

    problems = signature_problems("bad", bad)
    assert any("5 positional parameters" in p for p in problems)
    assert any("'batch_key' is a synonym; use replica_key" in p for p in problems)
    assert any("'progress_bar' is a synonym; use progress" in p for p in problems)
    assert any("missing from the docstring" in p and "theta" in p for p in problems)

    def writes(adata, *, key_added: str = "X_new"):
        """Write into adata.

        Parameters
        ----------
        adata
            Profiles.
        key_added
            Where.
        """

    assert signature_problems("writes", writes) == [
        "writes: writes into an AnnData but has no 'copy' parameter"
    ]

    def good(adata, replica_key="replica", *, theta=2.0, key_added="X_h", copy=False):
        """Correct batches.

        Parameters
        ----------
        adata
            Profiles.
        replica_key, theta
            Column and strength.
        key_added
            Where.
        copy
            Return a copy.
        """

    assert signature_problems("good", good) == []
    assert _same(("plate", "timepoint"), ["plate", "timepoint"]) and not _same(200, 1000)
