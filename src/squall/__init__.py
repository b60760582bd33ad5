"""squall: graph neural network weather models in a reproducible pipeline."""

__version__ = "0.1.0"
