"""The stage lines of ``lcd run`` / ``lcd demo``, rich-formatted.

The engine logs plain lines (``[run ] train: output model missing``); the CLI prints them through
:func:`print_stage`, which colours the bracketed tag. rich writes plain text when the output is not a
terminal (a log file, a pipe, a test's captured output), so the lines read the same there.
"""

from __future__ import annotations

#: tag at the start of an engine line -> rich style
TAG_STYLES = {
    "[run ]": "bold cyan",
    "[done]": "bold green",
    "[skip]": "dim",
    "[clean]": "yellow",
}


def print_stage(message: str, *, console=None) -> None:
    """Print one engine line on stdout with its tag styled (no markup is parsed in ``message``).

    Parameters
    ----------
    message
        A line from :func:`lcd_pipeline.engine.run_pipeline`'s ``log``.
    console
        A ``rich.console.Console`` to print on; default a new one on stdout.
    """
    from rich.console import Console
    from rich.text import Text

    text = Text(message)
    for tag, style in TAG_STYLES.items():
        if message.startswith(tag):
            text = Text.assemble((tag, style), message[len(tag) :])
            break
    else:
        if message.startswith("[") and "]" in message:  # a stage's own note, e.g. "[train] ..."
            end = message.index("]") + 1
            text = Text.assemble((message[:end], "magenta"), message[end:])
    (console or Console()).print(text, highlight=False, soft_wrap=True)
