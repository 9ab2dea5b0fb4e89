"""lcd-pipeline."""

__version__ = "0.3.0"
