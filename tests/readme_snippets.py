"""Run the code blocks of a README as written, so the docs cannot drift (stdlib only).

Every fenced ``python``/``bash``/``sh`` block of a README, and every unlabelled block that holds shell
commands, is preceded by a marker line (blank lines may sit between):

- ``<!-- runnable -->``: run, in order, against the shared data;
- ``<!-- runnable: gpu -->``: run only where torch sees a GPU (skipped, and said so, elsewhere);
- ``<!-- not-runnable: <reason> -->``: not run (a user's own screen, GPU hours, an install into the
  current environment ...), with the reason written in the README itself;
- ``<!-- file: NAME -->`` (before a block of any language, e.g. ``yaml``): the block is written to
  ``NAME`` in the working folder at that point, for the blocks after it (a config file).

The blocks of one README run in one fresh folder ``work/`` beside a link ``shared`` to the real data
(so the READMEs' ``../shared/data`` paths work as they do from the repository root). Python blocks
share one interpreter session across the whole README (a later block continues an earlier one, even
with shell blocks in between); shell blocks run with ``bash -euo pipefail``, with the interpreter's
``bin`` folder first on ``PATH`` (the package's commands). ``uv run`` at the start of a command is
dropped: the blocks already run inside the environment under test.

Used by ``tests/test_readme_snippets.py`` (the project's environment) and by ``.ci/run``, which runs
the quick starts of lcd-metrics and lcd-ssl in fresh venvs made with plain pip from built wheels::

    venv/bin/python tests/readme_snippets.py packages/lcd-metrics/README.md
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
READMES = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]
CODE_LANGS = ("python", "bash", "sh")
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
MARK = re.compile(r"^<!--\s*(runnable|not-runnable|file)(?::\s*(.*?))?\s*-->\s*$")
# an unlabelled block whose first command starts like this is shell code and must be marked too
COMMAND = re.compile(r"^\s*(\$ )?(pip|uv|lcd|lcd-\w+|python3?|torchrun|cd|export|mkdir|git)(\s|$)")
TIMEOUT = 900


class SnippetError(AssertionError):
    """A block failed (message: README, line, and the end of its output)."""


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its code and its marker (``kind``, ``arg``)."""

    readme: Path
    line: int  # 1-based line of the opening fence
    lang: str  # "" when unlabelled
    code: str
    kind: str | None  # runnable / not-runnable / file / None (unmarked)
    arg: str  # the reason, "gpu", or the file name

    @property
    def where(self) -> str:
        """``README.md:41`` (relative to the repository when inside it)."""
        try:
            name = self.readme.relative_to(ROOT)
        except ValueError:
            name = self.readme
        return f"{name}:{self.line}"

    @property
    def is_code(self) -> bool:
        """Whether the block is code the marker rule applies to (python/bash, or unlabelled commands)."""
        if self.lang in CODE_LANGS:
            return True
        if self.lang:
            return False
        first = next(
            (ln for ln in self.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
        )
        return bool(COMMAND.match(first))


def blocks(readme: Path) -> list[Block]:
    """Every fenced block of ``readme`` with the marker line above it (if any)."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = MARK.match(lines[k].strip()) if k >= 0 else None
        kind, arg = (mark.group(1), (mark.group(2) or "").strip()) if mark else (None, "")
        out.append(Block(readme, i + 1, m.group(1), "\n".join(lines[i + 1 : j]), kind, arg))
        i = j + 1
    return out


def problems(readme: Path) -> list[str]:
    """What is wrong with the markers of ``readme`` (empty when every code block is marked)."""
    found = []
    for b in blocks(readme):
        if b.kind == "file":
            if not b.arg or "/" in b.arg or b.arg.startswith("."):
                found.append(f"{b.where}: <!-- file: NAME --> needs a plain file name")
            continue
        if b.kind == "runnable" and b.lang not in CODE_LANGS:
            found.append(f"{b.where}: a runnable block must be labelled ```python or ```bash")
            continue
        if not b.is_code:
            continue
        if b.kind is None:
            label = b.lang or "unlabelled (shell commands: label it ```bash)"
            found.append(f"{b.where}: {label} block needs <!-- runnable --> or <!-- not-runnable: why -->")
        elif b.kind == "not-runnable" and not b.arg:
            found.append(f"{b.where}: <!-- not-runnable --> needs a reason")
        elif b.kind == "runnable" and b.arg not in ("", "gpu"):
            found.append(f"{b.where}: <!-- runnable: {b.arg} --> is not known (runnable, or runnable: gpu)")
    return found


def strip_uv_run(code: str) -> str:
    """Drop ``uv run [--flags]`` at the start of each command line."""
    return "\n".join(re.sub(r"^(\s*)uv run (--\S+ )*", r"\1", line) for line in code.splitlines())


_DRIVER = r"""
import os, sys, traceback
status = os.fdopen(int(sys.argv[1]), "w", buffering=1)
ns = {"__name__": "__main__"}
while True:
    header = sys.stdin.readline()
    if not header:
        break
    label, size = header.rstrip("\n").rsplit(" ", 1)
    code = sys.stdin.read(int(size))
    ok = True
    try:
        exec(compile(code, label, "exec"), ns)
    except BaseException:
        traceback.print_exc()
        ok = False
    sys.stdout.flush()
    sys.stderr.flush()
    status.write("ok\n" if ok else "fail\n")
"""


class PythonSession:
    """One interpreter for all python blocks of a README (later blocks continue earlier ones)."""

    def __init__(self, python: str, work: Path, env: dict):
        self.log = open(work.parent / "python.log", "w+", encoding="utf-8")  # closed in close()
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [python, "-u", "-c", _DRIVER, str(write_fd)],
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self.status = os.fdopen(read_fd, "r", encoding="utf-8")

    def run(self, block: Block, timeout: float = TIMEOUT) -> None:
        """Execute one block; raise :class:`SnippetError` with its output when it fails."""
        start = self.log.tell()
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{block.where} {len(block.code)}\n{block.code}")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.status], [], [], timeout)
        line = self.status.readline() if ready else ""
        if line.strip() != "ok":
            self.log.flush()
            self.log.seek(start)
            output = self.log.read()
            self.log.seek(0, os.SEEK_END)
            why = "timed out" if not ready else "failed" if line else "the interpreter died"
            raise SnippetError(f"{block.where} (python) {why}:\n{output[-4000:]}")

    def close(self) -> None:
        """End the interpreter."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.status.close()
        self.log.close()


def _has_gpu(python: str, env: dict) -> bool:
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([python, "-c", probe], env=env, capture_output=True).returncode == 0


def run_readme(
    readme: Path, folder: Path, *, python: str = sys.executable, log=print, timeout: float = TIMEOUT
) -> int:
    """Run the runnable blocks of ``readme`` in ``folder/work`` (``folder/shared`` links the data).

    Returns the number of blocks run; raises :class:`SnippetError` at the first failing block.
    """
    if not (SHARED / "data").is_dir():
        raise SnippetError(
            f"the shared data folder {SHARED / 'data'} is missing (it lies beside the repository)"
        )
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    if not (folder / "shared").exists():
        (folder / "shared").symlink_to(SHARED)
    bindir = str(Path(python).parent)
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    env.pop("VIRTUAL_ENV", None)
    session: PythonSession | None = None
    gpu: bool | None = None
    n = 0
    try:
        for b in blocks(readme):
            if b.kind == "file":
                (work / b.arg).write_text(b.code + "\n", encoding="utf-8")
                continue
            if b.kind != "runnable" or not b.is_code:
                continue
            if b.arg == "gpu":
                gpu = _has_gpu(python, env) if gpu is None else gpu
                if not gpu:
                    log(f"{b.where}: skipped (needs a GPU)")
                    continue
            t0 = time.perf_counter()
            if b.lang == "python":
                session = session or PythonSession(python, work, env)
                session.run(b, timeout)
            else:
                res = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", strip_uv_run(b.code)],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                if res.returncode != 0:
                    raise SnippetError(
                        f"{b.where} (bash) failed with exit code {res.returncode}:\n"
                        f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
                    )
            n += 1
            log(f"{b.where}: ok ({time.perf_counter() - t0:.1f} s)")
    finally:
        if session is not None:
            session.close()
    return n


def main(argv: list[str] | None = None) -> int:
    """``python tests/readme_snippets.py README.md...``: check the markers, then run each README."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readmes", nargs="*", type=Path, help="READMEs (default: every README)")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    parser.add_argument("--check", action="store_true", help="only check the markers")
    args = parser.parse_args(argv)
    readmes = [p.resolve() for p in args.readmes] or READMES
    bad = [p for r in readmes for p in problems(r)]
    if bad:
        print("\n".join(bad), file=sys.stderr)
        return 1
    if args.check:
        return 0
    for readme in readmes:
        folder = (
            Path(tempfile.mkdtemp(prefix="readme-")) if args.keep is None else args.keep / readme.parent.name
        )
        try:
            n = run_readme(readme, folder)
        except SnippetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
        print(f"{readme}: {n} block(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
