"""Error type raised for bad input (one line, actionable)."""


class InputError(ValueError):
    """Bad input: a missing column, non-finite features, no control wells, ...

    The message is one line naming the file, column, group or rows at fault; CLIs print it and exit 2.
    """
