"""The version of ann2snn (one place; ``ann2snn.__version__`` re-exports it)."""

__version__ = "0.1.0"
