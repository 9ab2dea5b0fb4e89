"""Stage lines of lcd run/demo through rich, and training progress on by default (issue #14 item 6)."""

from __future__ import annotations

import io

import pytest
from lcd_pipeline.console import print_stage
from rich.console import Console


def _render(message: str, *, terminal: bool) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, color_system="standard" if terminal else None)
    print_stage(message, console=console)
    return buf.getvalue()


@pytest.mark.parametrize(
    "line",
    ["[run ] train: output model missing", "[done] 12 stages", "[skip] embed", "[train] 30 steps", "plain"],
)
def test_lines_read_the_same_without_a_terminal(line):
    assert _render(line, terminal=False) == line + "\n"


def test_tags_are_styled_on_a_terminal_and_markup_is_not_parsed():
    out = _render("[run ] train: [bold]x[/bold]", terminal=True)
    assert "\x1b[" in out  # an ANSI style around the tag
    assert "[bold]x[/bold]" in out  # the message itself is text, not rich markup
    assert out.index("\x1b[") < out.index("[run ]")


def test_the_demo_trains_with_a_progress_bar_unless_quiet():
    from lcd_pipeline.config import QUICK_SSL

    # the demo's preset must not switch the bar off: training is the stage that takes minutes
    assert "progress" not in QUICK_SSL
