"""Lazy package exports: ``import lcd_x`` stays cheap, names load on first use (PEP 562)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

_SAME_NAME = "__lazy_same_name__"


class _ExportsWin(types.ModuleType):
    """A package exporting a name that is also one of its submodules (``lcd_core.progress``).

    Loading a submodule makes the import system bind it to the package attribute of the same name
    (``setattr(package, "progress", <module>)``), which would shadow the exported function for good,
    since ``__getattr__`` only runs for missing attributes. That binding becomes the function instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and name in self.__dict__.get(_SAME_NAME, ())
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package whose names live in submodules.

    Parameters
    ----------
    package
        The package's ``__name__``.
    exports
        ``{public name: submodule}`` (relative, without the dot), e.g. ``{"map_es": "map_es"}``.
    namespace
        The package's ``globals()``; a loaded name is cached there.

    Examples
    --------
    ::

        __getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
    """
    same_name = frozenset(name for name, module in exports.items() if name == module)
    if same_name:
        namespace[_SAME_NAME] = same_name
        module_object = sys.modules.get(package)
        if module_object is not None and type(module_object) is types.ModuleType:
            module_object.__class__ = _ExportsWin

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__, sorted(exports)
