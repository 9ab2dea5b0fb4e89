"""Atomic outputs: write to a temporary sibling, fsync, give it the user's umask, rename.

A reader (or a run killed half-way) never sees half a file: the result is either the previous file or
the new one. Temporary names carry the writer's process id (``.<name>.tmp-<pid>-<random>``) so that
:func:`remove_stale_temps` can delete what a killed run left behind without touching the temporary
files of a run still writing.

``tempfile`` creates files ``0600`` and folders ``0700``; a renamed temporary keeps that mode, so
colleagues on a shared filesystem could not read the results. Every output here gets the mode a
plain ``open()`` / ``mkdir`` would give under the current umask (``0644`` / ``0755`` under ``022``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_TEMP_RE = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-")
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _temp_suffix(path: Path) -> str:
    """The suffix a temporary sibling keeps, so writers that infer format or compression still do."""
    suffixes = path.suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() in _COMPRESSION:
        return "".join(suffixes[-2:])
    return path.suffix


def _fsync_path(path: Path) -> None:
    """Flush a file, or every file below a folder and the folders themselves (best effort on folders)."""
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            for name in files:
                _fsync_file(Path(root) / name)
            _fsync_dir(Path(root))
    elif path.exists():
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # EINVAL on filesystems without directory fsync
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def apply_umask(path: str | os.PathLike) -> None:
    """Give ``path`` (and everything below a folder) the modes ``open()``/``mkdir`` give under the umask.

    Parameters
    ----------
    path
        A file or folder.
    """
    path = Path(path)
    mask = current_umask()
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            os.chmod(root, dir_mode)
            for name in dirs:
                os.chmod(Path(root) / name, dir_mode)
            for name in files:
                os.chmod(Path(root) / name, file_mode)
    elif path.exists():
        os.chmod(path, file_mode)


def _temp_prefix(path: Path, kind: str = "tmp") -> str:
    return f".{path.name}.{kind}-{os.getpid()}-"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Create ``path`` atomically: ``write(tmp)`` writes a temporary sibling, which is then renamed.

    Parameters
    ----------
    path
        The output file. Its folder is created when missing.
    write
        Called with the temporary path (same folder, same final suffix, so ``to_csv`` still infers
        ``.gz`` compression and ``np.savez`` does not append ``.npz``).

    Returns
    -------
    pathlib.Path
        ``path``. On any failure the temporary file is removed and the previous ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=_temp_suffix(path))
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if tmp.is_dir():
            raise RuntimeError(f"atomic_write: the writer made a folder at {tmp}; use atomic_dir")
        _fsync_path(tmp)
        apply_umask(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (UTF-8).

    Parameters
    ----------
    path
        Output file.
    text
        Its content.
    """
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write a binary file atomically.

    Parameters
    ----------
    path
        Output file.
    data
        Its content.
    """
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder (or a file) atomically: yield a temporary path that replaces ``path`` on success.

    The yielded path does not exist yet; create a folder there (``mkdir``) or write a file to it. When
    the block ends without error, the previous ``path`` (file or folder) is moved aside, the new one
    renamed into place, and the old one deleted; on error the temporary is deleted and ``path`` is
    untouched. A folder cannot replace a non-empty folder in one rename, so there is a moment where
    ``path`` is absent, never one where it is half-written.

    Parameters
    ----------
    path
        The output folder (or file) to create or replace.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path)))
    inner = holder / path.name
    try:
        yield inner
        if not inner.exists():
            raise RuntimeError(f"atomic_dir: nothing was written to {inner}")
        _fsync_path(inner)
        apply_umask(inner)
        old = None
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path, "old")))
            os.replace(path, old / path.name)
        os.replace(inner, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(
    folder: str | os.PathLike, *, recursive: bool = False, name: str | None = None
) -> list[Path]:
    """Delete temporaries left by killed writers (their process is gone); return what was removed.

    Only names of the form ``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*`` whose ``pid`` is not a
    running process are touched, so concurrent writers keep their temporaries. (On a filesystem shared
    between hosts a pid can be alive elsewhere; callers that share a folder across hosts hold a lock.)

    Parameters
    ----------
    folder
        The folder holding outputs.
    recursive
        Also look in sub-folders.
    name
        Only the temporaries of this output name (``emb.h5ad``: ``.emb.h5ad.tmp-*``), for a writer that
        shares its folder with other outputs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    entries = folder.rglob(".*") if recursive else folder.glob(".*")
    for entry in list(entries):
        m = _TEMP_RE.match(entry.name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        if name is not None and not entry.name.startswith((f".{name}.tmp-", f".{name}.old-")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
