"""CIFAR-10/100 in the pickled layout torchvision downloads (``cifar-10-batches-py/``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from augbench.data.errors import DataError
from augbench.data.safe_pickle import load_batch

# name -> (folder, train batch files, test batch files, meta file, label key, class-name key)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}


def find_pickled(name: str, candidates: list[Path]) -> Path | None:
    folder = LAYOUTS[name][0]
    for c in candidates:
        if (c / folder).is_dir():
            return c / folder
    return None


def load_pickled(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N,3,32,32), labels int64 (N,), class names) from the pickled batches."""
    _, train_files, test_files, meta_file, label_key, names_key = LAYOUTS[name]
    images, labels = [], []
    for fname in train_files if split == "train" else test_files:
        path = folder / fname
        batch = load_batch(path)
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path}: CIFAR batch lacks 'data' or '{label_key}'")
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
        lab = np.asarray(batch[label_key], dtype=np.int64)
        if lab.shape != (len(data),):
            raise DataError(f"{path}: {len(lab)} labels for {len(data)} images")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    meta = load_batch(folder / meta_file)
    if names_key not in meta:
        raise DataError(f"{folder / meta_file}: lacks '{names_key}'")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    labels_all = np.concatenate(labels)
    if labels_all.size and (labels_all.min() < 0 or labels_all.max() >= len(classes)):
        raise DataError(f"{folder}: labels outside [0, {len(classes)}) for {len(classes)} classes")
    return np.concatenate(images), labels_all, classes
