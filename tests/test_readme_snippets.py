"""Every code block of every README runs as written, or says in the README why it does not.

The rules and the runner are in ``tests/readme_snippets.py`` (stdlib only, so ``.ci/run`` uses the
same runner in fresh plain-pip venvs). Here: the markers of every README are checked, the runner is
checked on READMEs written by the test (a failing block must fail it), then every README's runnable
blocks run in the project's environment.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "readme_snippets", Path(__file__).with_name("readme_snippets.py")
)
snippets = importlib.util.module_from_spec(_spec)
sys.modules["readme_snippets"] = snippets
_spec.loader.exec_module(snippets)

IDS = [str(p.relative_to(snippets.ROOT)) for p in snippets.READMES]


def test_every_package_has_a_readme():
    packages = sorted(p.parent.name for p in (snippets.ROOT / "packages").glob("lcd-*/pyproject.toml"))
    assert packages and [p.parent.name for p in snippets.READMES[1:]] == packages


@pytest.mark.parametrize("readme", snippets.READMES, ids=IDS)
def test_every_block_is_marked(readme):
    assert not snippets.problems(readme), "\n".join(snippets.problems(readme))


@pytest.mark.parametrize("readme", snippets.READMES[1:], ids=IDS[1:])
def test_every_package_readme_has_a_runnable_quick_start(readme):
    runnable = [b for b in snippets.blocks(readme) if b.kind == "runnable" and b.is_code]
    assert runnable, f"{readme}: no <!-- runnable --> block: its quick start is never tried"


def _readme(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text(text)
    return path


def test_markers_are_enforced(tmp_path):
    readme = _readme(
        tmp_path,
        "```python\nx = 1\n```\n\n<!-- not-runnable -->\n```bash\nls\n```\n\n```\npip install lcd-x\n```\n"
        "\n```\na diagram, not code\n```\n\n<!-- runnable -->\n```yaml\na: 1\n```\n",
    )
    found = snippets.problems(readme)
    assert len(found) == 4, found
    assert "python block needs" in found[0]
    assert "needs a reason" in found[1]
    assert "unlabelled" in found[2]
    assert "must be labelled" in found[3]


def test_runner_continues_python_across_shell_blocks_and_fails_on_errors(tmp_path):
    readme = _readme(
        tmp_path,
        "<!-- file: cfg.txt -->\n```text\nhello\n```\n\n"
        "<!-- runnable -->\n```python\nx = open('cfg.txt').read().strip()\nopen('a.txt', 'w').write(x)\n```\n\n"
        "<!-- runnable -->\n```bash\nuv run cat a.txt > b.txt\ntest -d ../shared/data\n```\n\n"
        "<!-- not-runnable: never run -->\n```python\nraise SystemExit(3)\n```\n\n"
        "<!-- runnable -->\n```python\nassert x == open('b.txt').read() == 'hello'\n```\n",
    )
    assert snippets.run_readme(readme, tmp_path / "ok", log=lambda m: None) == 3
    failing = _readme(
        tmp_path,
        "<!-- runnable -->\n```python\nx = 1\n```\n\n<!-- runnable -->\n```python\nassert x == 2, 'wrong'\n```\n",
    )
    with pytest.raises(snippets.SnippetError, match=r"README.md:7 \(python\) failed:(.|\n)*wrong"):
        snippets.run_readme(failing, tmp_path / "bad", log=lambda m: None)
    shell = _readme(tmp_path, "<!-- runnable -->\n```bash\nfalse\necho never\n```\n")
    with pytest.raises(snippets.SnippetError, match="exit code 1"):
        snippets.run_readme(shell, tmp_path / "sh", log=lambda m: None)


@pytest.mark.slow
@pytest.mark.parametrize("readme", snippets.READMES, ids=IDS)
def test_runnable_blocks_run(readme, tmp_path):
    if not (snippets.SHARED / "data").is_dir():
        pytest.fail(
            f"the shared data folder {snippets.SHARED / 'data'} is missing (it lies beside the repository)"
        )
    if not any(b.kind == "runnable" for b in snippets.blocks(readme)):
        pytest.skip(f"{readme.name} has no runnable block")
    snippets.run_readme(readme, tmp_path)
