"""mlpbench: how the shared training step is run, checked and measured."""
__version__ = "0.1.0"
