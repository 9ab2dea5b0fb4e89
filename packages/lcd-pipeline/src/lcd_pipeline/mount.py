"""Mount the Typer apps that packages register in the ``lcd.cli`` entry-point group, lazily.

Each LCD package registers ``<name> = "lcd_<name>.cli:app"``. Importing those modules pulls in pandas
and anndata (about 2 s), so ``lcd --help`` must not: the listing is built from package metadata only,
and a package's app is imported the first time one of its commands (or its ``--help``) runs. An app
that cannot be imported is marked in ``lcd --help`` when its module is missing, and any import error
becomes a one-line message (exit 1) when the command is used; it never breaks the other commands.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import typer
from typer.core import TyperCommand

GROUP = "lcd.cli"


class Unavailable(RuntimeError):
    """A mounted package's app cannot be loaded (the message says why and what to do)."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of the ``lcd.cli`` group, with what can be said about it without importing it."""

    name: str
    entry_point: EntryPoint
    summary: str
    problem: str  # empty when the module looks importable

    @property
    def module(self) -> str:
        """The dotted module of the entry point."""
        return self.entry_point.value.split(":")[0]


def _module_problem(module: str) -> str:
    """Why ``module`` cannot be imported, judged from the file system only ('' when it looks fine)."""
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        return f"{top}: {exc}"
    if spec is None:
        return f"package {top} is not installed"
    if not rest:
        return ""
    locations = list(spec.submodule_search_locations or [])
    relative = Path(*rest.split("."))
    for loc in locations:
        base = Path(loc) / relative
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ""
    if not locations:  # not a plain folder (zip, namespace): cannot tell without importing
        return ""
    return f"module {module} not found"


def discover() -> dict[str, Plugin]:
    """The plugins of the ``lcd.cli`` group by name (first registration wins), without importing them."""
    plugins: dict[str, Plugin] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in plugins:
            continue
        summary = ""
        dist = getattr(ep, "dist", None)
        if dist is not None:
            summary = (dist.metadata.get("Summary") or "").strip()
        plugins[ep.name] = Plugin(ep.name, ep, summary, _module_problem(ep.value.split(":")[0]))
    return plugins


class MountedApp(TyperCommand):
    """Stands for a package's Typer app in ``lcd``: static help text, the real app loaded on use."""

    def __init__(self, plugin: Plugin) -> None:
        help_text = plugin.summary or f"Commands of the {plugin.name} package."
        if plugin.problem:
            help_text = f"UNAVAILABLE ({plugin.problem}). {help_text}"
        super().__init__(plugin.name, help=help_text, add_help_option=False)
        self.plugin = plugin
        self.rich_help_panel = "Packages"
        self._loaded = None

    def load(self):
        """The package's app as a (Typer's) click command; raises :class:`Unavailable` when it cannot."""
        if self._loaded is None:
            name = self.plugin.name
            try:
                app = self.plugin.entry_point.load()
            except Exception as exc:  # any import failure of one package must not break `lcd`
                raise Unavailable(
                    f"`lcd {name}` is unavailable: importing {self.plugin.entry_point.value} failed "
                    f"({type(exc).__name__}: {exc}); reinstall the package that provides it"
                ) from exc
            if app is None:  # the package's CLI extra is missing (its cli module sets app = None)
                raise Unavailable(
                    f"`lcd {name}` is unavailable: {self.plugin.module} has no Typer app (is its [cli] extra installed?)"
                )
            command = typer.main.get_command(app) if isinstance(app, typer.Typer) else app
            if not hasattr(command, "make_context"):
                raise Unavailable(
                    f"`lcd {name}` is unavailable: {self.plugin.entry_point.value} is not a Typer app"
                )
            command.name = name
            self._loaded = command
        return self._loaded

    def make_context(self, info_name, args, parent=None, **extra):
        """Load the real app and let it parse the arguments."""
        try:
            command = self.load()
        except Unavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        return command.make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):  # pragma: no cover - ctx.command is the loaded app
        """Run the loaded app."""
        return self.load().invoke(ctx)
