"""Atomic files and folders, their modes, and cleaning up after killed writers."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest
from lcd_core import atomic_dir, atomic_write, remove_stale_temps


def test_atomic_dir_replaces_a_folder_and_sets_modes(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    old = os.umask(0o022)
    try:
        with atomic_dir(target) as tmp:
            tmp.mkdir()
            (tmp / "sub").mkdir()
            (tmp / "sub" / "w.bin").write_bytes(b"new")
    finally:
        os.umask(old)
    assert sorted(p.name for p in target.rglob("*")) == ["sub", "w.bin"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "sub" / "w.bin").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_dir_failure_leaves_the_previous_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    with pytest.raises(ValueError, match="stop"):
        with atomic_dir(target) as tmp:
            tmp.mkdir()
            (tmp / "half.txt").write_text("half")
            raise ValueError("stop")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_write_refuses_a_folder(tmp_path):
    with pytest.raises(RuntimeError, match="atomic_dir"):
        atomic_write(tmp_path / "x.zarr", lambda tmp: (tmp.unlink(), tmp.mkdir()))


def test_killed_writer_temporaries_are_removed_live_ones_kept(tmp_path):
    # A child process starts an atomic write and is killed with SIGKILL in the middle of it.
    script = textwrap.dedent(
        f"""
        import sys, time
        from lcd_core import atomic_dir, atomic_write
        def slow(tmp):
            tmp.write_text("partial")
            print("writing", flush=True)
            time.sleep(60)
        with atomic_dir({str(tmp_path / "folder")!r}) as d:
            d.mkdir(); (d / 'a').write_text('x')
            atomic_write({str(tmp_path / "file.csv")!r}, slow)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left and all(name.startswith(".") for name in left)  # temporaries only, no output
    assert not (tmp_path / "file.csv").exists() and not (tmp_path / "folder").exists()
    # a temporary of this (live) process must survive the cleanup
    with atomic_dir(tmp_path / "mine") as mine:
        mine.mkdir()
        removed = remove_stale_temps(tmp_path)
        assert mine.parent.exists()
    assert sorted(p.name for p in removed) == left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
