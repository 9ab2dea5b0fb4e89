"""The CLI scaffold every ``lcd-<name>`` command is built on (needs typer: import only from CLI modules).

- :func:`make_app`: a Typer app with ``--version``, ``-v/--verbose``, ``-q/--quiet`` and shell
  completion, the same in every package;
- :func:`handles_bad_input`: an :class:`~lcd_core.InputError` (or a missing/unreadable path) becomes
  ``error: <one line>`` on stderr and exit code 2. Nothing else is caught: a bug in our code keeps
  its traceback instead of posing as bad input;
- :func:`split_list`: the one list syntax (repeat the option, or separate values by commas);
- :func:`optional_key`: ``none`` / empty means "no such column"; :func:`given_keys` passes such
  key options on;
- :data:`Out`: the ``--out/-o`` option for a command's output; :data:`Columns`, :data:`Key`,
  :data:`OptionalKey`, :data:`Control`, :data:`Features`, :data:`Layer`, :data:`UseRep`,
  :data:`Seed`: options that mean the same in every command.
"""

# no `from __future__ import annotations`: typer reads these annotations at run time

import functools
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from .errors import InputError, one_line
from .log import set_verbosity

F = TypeVar("F", bound=Callable[..., Any])

#: Errors that mean "fix your input": the library's InputError and OS errors about a named path.
BAD_INPUT: tuple[type[BaseException], ...] = (
    InputError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

Out = Annotated[Path, typer.Option("--out", "-o", help="Output file (format by suffix).")]
OptionalOut = Annotated[Path | None, typer.Option("--out", "-o", help="Output file (format by suffix).")]

# Options that mean the same in every command, declared once. Each defaults to None: the command passes
# it on only when given (lcd_core.given), so the default is the API's.
#: explicit columns (repeat the option or separate by commas: :func:`split_list`)
Columns = Annotated[list[str] | None, typer.Option(help="Columns (repeat the option or separate by commas).")]
#: a metadata column name
Key = Annotated[str | None, typer.Option(help="Column name (default: the API's).")]
#: a metadata column that may be absent (``none``: :func:`optional_key`, :func:`given_keys`)
OptionalKey = Annotated[
    str | None, typer.Option(help="Column name; 'none' when the data has no such column.")
]
#: the negative controls (:func:`lcd_core.control_mask`)
Control = Annotated[
    str | None,
    typer.Option(
        help="Negative controls: a pandas query on the metadata or a boolean column (default: DMSO)."
    ),
]
#: where features are read from (:func:`lcd_core.load_profiles`, :func:`lcd_core.get_rep`)
Features = Annotated[
    str | None,
    typer.Option(help="Tables only: regex selecting the feature columns (default: the contract's rule)."),
]
Layer = Annotated[str | None, typer.Option(help="Read features from this AnnData layer instead of X.")]
UseRep = Annotated[str | None, typer.Option(help="Read features from this AnnData obsm key instead of X.")]
Seed = Annotated[int | None, typer.Option(help="Random seed (default: the API's).")]


def fail(message: object) -> NoReturn:
    """Print ``error: <one line>`` on stderr and exit with code 2.

    Parameters
    ----------
    message
        An exception or a text; only its first line is printed.
    """
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code=2)


def handles_bad_input(fn: F) -> F:
    """Decorate a command: bad input (:data:`BAD_INPUT`) ends in one line and exit code 2.

    Parameters
    ----------
    fn
        The command function.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BAD_INPUT as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


def package_version(package: str) -> str:
    """The installed version of a distribution (``"unknown"`` when run from a bare source tree)."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def make_app(name: str, help: str, *, package: str) -> typer.Typer:
    """A Typer app with the options every LCD command shares.

    Parameters
    ----------
    name
        Command name as mounted under ``lcd`` (``metrics``) and shown in help.
    help
        One-paragraph description.
    package
        Distribution name for ``--version`` (``lcd-metrics``).
    """
    app = typer.Typer(
        name=name, help=help, no_args_is_help=True, add_completion=True, pretty_exceptions_show_locals=False
    )
    add_common_options(app, help, package=package)
    return app


def add_common_options(app: typer.Typer, help: str, *, package: str) -> None:
    """Give ``app`` the shared ``--version``, ``-v/--verbose`` and ``-q/--quiet`` (as its callback).

    For apps that cannot come from :func:`make_app` (``lcd`` itself, which mounts the others).

    Parameters
    ----------
    app
        The Typer app (its callback is replaced).
    help
        Description shown by ``--help``.
    package
        Distribution name for ``--version``.
    """

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"{package} {package_version(package)}")
            raise typer.Exit()

    @app.callback()
    def _options(
        show_version: Annotated[
            bool,
            typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True),
        ] = False,
        verbose: Annotated[
            int, typer.Option("--verbose", "-v", count=True, help="More messages (-vv: debug).")
        ] = 0,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no progress bars.")
        ] = False,
    ) -> None:
        set_verbosity(-1 if quiet else verbose)

    _options.__doc__ = help


def split_list(values: Sequence[str] | str | None) -> list[str] | None:
    """The one list syntax: ``--opt a --opt b`` and ``--opt a,b`` both give ``["a", "b"]``; none -> None.

    Parameters
    ----------
    values
        The option's values as typer gives them (a list for a repeatable option), or ``None``.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = [part.strip() for value in values for part in str(value).split(",")]
    out = [p for p in out if p]
    return out or None


def split_ints(values: Sequence[str] | str | None, *, option: str) -> list[int] | None:
    """:func:`split_list` of integers; a non-integer is a one-line error naming ``option``.

    Parameters
    ----------
    values
        The option's values, or ``None``.
    option
        The option's name (``--timepoints``), for the message.
    """
    items = split_list(values)
    if items is None:
        return None
    try:
        return [int(v) for v in items]
    except ValueError:
        fail(f"{option}: expected integers separated by commas, got {','.join(items)!r}")


def optional_key(key: str | None) -> str | None:
    """``none`` or an empty value means "this column does not exist" (single timepoint, no dose).

    Parameters
    ----------
    key
        The option's value, or ``None``.
    """
    if key is None or key.strip().lower() in ("", "none", "null"):
        return None
    return key


def given_keys(**keys: str | None) -> dict[str, str | None]:
    """The key options that were given, with ``none`` turned into ``None`` (the column does not exist).

    :func:`lcd_core.given` drops ``None``, which would let the API default (``"timepoint"``) stand for
    ``--timepoint-key none``; here a given ``none`` is passed on as ``None``.

    Parameters
    ----------
    **keys
        Option name to the value as typed (``None`` when the option was not given).
    """
    return {name: optional_key(value) for name, value in keys.items() if value is not None}


def main_for(app: typer.Typer) -> Callable[[], None]:
    """The ``main()`` of a package's script: run ``app`` (standalone mode: exit codes as Typer sets them)."""

    def main() -> None:
        app()

    return main


def echo_done(message: str) -> None:
    """A command's closing line on stderr (kept out of stdout so stdout can be piped)."""
    print(message, file=sys.stderr)
