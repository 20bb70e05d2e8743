"""Datasets as whole uint8 tensors: ``load_dataset(name, split, root, subset, seed)``."""
from augbench.data.dataset import Dataset, balanced_subset, load_dataset, to_device
from augbench.data.errors import DataError

__all__ = ["Dataset", "DataError", "balanced_subset", "load_dataset", "to_device"]
