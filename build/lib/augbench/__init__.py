"""augbench: which augmentation matters, for which method, on which data."""
__version__ = "0.1.0"
