"""Error types: one-line messages that name the offending file, row or column."""


class InputError(ValueError):
    """Bad user input (manifest, image, table, checkpoint); the CLI turns it into exit code 2."""


class ImageReadError(InputError):
    """An image file exists but cannot be decoded, or its shape does not fit the field it belongs to."""
