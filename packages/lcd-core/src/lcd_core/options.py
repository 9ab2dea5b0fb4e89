"""Options given by people (CLI flags, YAML sections) checked against the function they feed.

Two rules of the house live here:

- *Defaults in one place*: CLI options default to ``None`` and only the options a user gave
  override the API default (:func:`given`), so no default is typed twice.
- *A typo is an error*: a config section is checked against the signature (or dataclass fields) of
  the function it feeds (:func:`check_options`): an unknown key or a value of the wrong type is one
  line naming ``section.key`` before any work runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError


def given(**options: Any) -> dict[str, Any]:
    """The options that were given (not ``None``), to pass on as keyword arguments."""
    return {k: v for k, v in options.items() if v is not None}


def accepted_options(target: Callable | type, *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Keyword options of a function or dataclass: ``{name: annotation}`` (``Any`` when unknown).

    Parameters
    ----------
    target
        A function or dataclass.
    exclude
        Parameter names left out (set by the caller).
    """
    skip = set(exclude)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # annotations naming optional modules (torch) cannot always be resolved
        hints = {}
    if dataclasses.is_dataclass(target):
        return {
            f.name: hints.get(f.name, Any)
            for f in dataclasses.fields(target)
            if f.init and f.name not in skip
        }
    params = inspect.signature(target).parameters
    out = {}
    for name, p in params.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            continue
        out[name] = hints.get(name, Any)
    return out


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def conforms(value: Any, annotation: Any) -> bool:
    """Whether a plain (YAML/JSON) ``value`` fits ``annotation``; lenient for types it does not know.

    Parameters
    ----------
    value
        A value read from YAML/JSON.
    annotation
        A type annotation (``int``, ``str | None``, ``list[str]``, ``Literal[...]`` ...).
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in (Path, os.PathLike) or origin is os.PathLike:
        return isinstance(value, str | os.PathLike)
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):  # fixed-length tuple
            return len(args) == len(value) and all(conforms(v, a) for v, a in zip(value, args, strict=True))
        return all(conforms(v, args[0]) for v in value)
    if origin in (dict, Mapping, typing.Mapping) or annotation in (dict,):
        return isinstance(value, Mapping)
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return True
        # a dataclass or other class built from a mapping (e.g. DiscoveryParams) accepts a dict
        return isinstance(value, Mapping) and dataclasses.is_dataclass(annotation)
    return True


def check_options(
    options: Mapping[str, Any],
    target: Callable | type,
    *,
    section: str,
    exclude: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a user's ``options`` against the keyword options of ``target``; return them as a dict.

    Parameters
    ----------
    options
        The section as given (``None`` counts as empty).
    target
        The function or dataclass the section feeds.
    section
        Named in messages: ``metrics.n_draws``.
    exclude
        Parameters the caller sets itself (data, paths, keys): a user may not give them here.
    extra
        Additional accepted keys with their annotations (options the caller consumes itself).

    Raises
    ------
    ConfigError
        ``section.key: unknown option`` (with the nearest known name) or ``expected int, got str '200'``.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{section}: expected a mapping of options, got {type(options).__name__}")
    accepted = accepted_options(target, exclude=exclude)
    accepted.update(extra or {})
    for key, value in options.items():
        if key not in accepted:
            near = difflib.get_close_matches(str(key), list(accepted), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{section}.{key}: unknown option{hint} (known: {', '.join(sorted(accepted))})")
        if not conforms(value, accepted[key]):
            raise ConfigError(
                f"{section}.{key}: expected {_type_name(accepted[key])}, got {type(value).__name__} {value!r}"
            )
    return dict(options)
