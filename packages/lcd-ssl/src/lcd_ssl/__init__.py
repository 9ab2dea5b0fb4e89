"""lcd-ssl."""

__version__ = "0.1.0"
