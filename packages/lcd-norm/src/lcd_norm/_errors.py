"""The error type and defaults every module shares (no heavy imports: the CLI loads this first)."""

DEFAULT_CONTROL = "compound == 'DMSO'"


class InputError(ValueError):
    """Bad input (missing column, NaN feature, group without controls...). The message is one line."""
