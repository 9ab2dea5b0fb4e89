"""lcd-nuclei."""

__version__ = "0.1.0"
