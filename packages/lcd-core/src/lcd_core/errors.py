"""The one error hierarchy of the LCD packages.

Every error a user can fix is an :class:`InputError` (a ``ValueError``) whose message is one line
naming the file, column, row or key at fault; every CLI prints it and exits with code 2. Anything
else (a ``KeyError`` or ``TypeError`` from our own code) is a bug and keeps its traceback.
"""

from __future__ import annotations

MAX_MESSAGE = 500


class InputError(ValueError):
    """Bad input: a missing column, a NaN feature, a group without controls, an unreadable file ...

    The message is one line and names what is at fault; CLIs print it and exit with code 2.
    """


class FileFormatError(InputError):
    """A file exists but is not what its name says (corrupt, truncated, wrong format, empty)."""


class ImageReadError(FileFormatError):
    """An image file cannot be decoded, or its shape does not fit the field it belongs to."""


class CheckpointError(InputError):
    """A folder or file is not a usable LCD model checkpoint (``<path> is not an lcd checkpoint: ...``)."""


class ConfigError(InputError):
    """An invalid option or configuration value (the message names the key)."""


def one_line(message: object, *, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line of ``message`` (an exception or text), cut to ``limit`` characters.

    Library errors (pandas parsers, h5py, torch) often span many lines; a CLI prints one.

    Parameters
    ----------
    message
        An exception or a text.
    limit
        Longest line kept.
    """
    if isinstance(message, BaseException):
        text = str(message) or type(message).__name__
    else:
        text = str(message)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else text.strip()
    return first if len(first) <= limit else first[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``TypeName: first line`` of a third-party exception, for wrapping it in an :class:`InputError`.

    Parameters
    ----------
    exc
        Any exception.
    """
    return f"{type(exc).__name__}: {one_line(exc)}"
