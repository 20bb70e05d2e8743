"""``load_dataset``: CIFAR-10/100 (pickled or ImageFolder layout) and any ImageFolder, as uint8 tensors."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from augbench.data import cache
from augbench.data.cifar_pickle import LAYOUTS, find_pickled, load_pickled
from augbench.data.errors import DataError
from augbench.data.imagefolder import decode, scan
from augbench.env import data_root

SPLITS = ("train", "test")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# Short names for image folders under the data root (train/<class>/*.jpg, test/<class>/*.jpg)
FOLDER_DATASETS = {"imagenette32": "imagenette32"}  # Imagenette squashed to 32 px (its PROVENANCE.md)
NAMES = (*NUM_CLASSES, *FOLDER_DATASETS)


@dataclass
class Dataset:
    images: torch.Tensor  # uint8 (N, 3, H, W), CPU unless moved with to_device
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    name: str
    root: Path  # the folder the images were read from
    split: str = "train"
    cache_path: Path | None = None  # decoded-image cache used (ImageFolder layouts only)
    cache_hit: bool = False  # True when images came from the cache, not from decoding

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def to_device(ds: Dataset, device) -> Dataset:
    return replace(ds, images=ds.images.to(device), labels=ds.labels.to(device))


def load_dataset(name: str, split: str = "train", root=None, subset: int | None = None, seed: int = 0,
                 download: bool = False) -> Dataset:
    """Load a whole split into memory. ``root`` is the data root holding ``<name>/`` (default
    ``$AUGBENCH_DATA``), or the dataset folder itself; ``subset=N`` keeps N images per class,
    chosen by a shuffle seeded with ``seed``."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {list(SPLITS)} (got {split!r})")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise DataError(f"subset must be a positive number of images per class (got {subset!r})")
    base = Path(root).expanduser() if root is not None else data_root()
    if name in LAYOUTS:
        ds = _load_cifar(name, split, base, download)
    elif name in FOLDER_DATASETS:
        path = base / FOLDER_DATASETS[name]
        if not path.is_dir():
            raise DataError(f"{name} not found: expected {path}/{{train,test}}/<class>/*.jpg "
                            f"(set $AUGBENCH_DATA to the folder that holds {FOLDER_DATASETS[name]}/)")
        ds = _load_imagefolder(name, _split_dir(path, split), split, base)
    elif isinstance(name, str) and name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not path.is_absolute() and not path.exists() and (base / path).exists():
            path = base / path
        ds = _load_imagefolder(name, _split_dir(path, split), split, base)
    else:
        raise DataError(f"unknown dataset {name!r}: use one of {list(NAMES)} or 'imagefolder:<path>'")
    return balanced_subset(ds, subset, seed) if subset is not None else ds


def _split_dir(path: Path, split: str) -> Path:
    if (path / split).is_dir():
        return path / split
    if not path.is_dir():
        raise DataError(f"{path}: no such dataset folder (expected {path}/{split}/<class>/<image>)")
    has_splits = any((path / s).is_dir() for s in SPLITS)
    if split == "train" and not has_splits:
        return path  # <path>/<class>/<image> with no split folders: all of it is training data
    raise DataError(f"{path / split}: no such folder (expected {path}/{split}/<class>/<image>)")


def _load_cifar(name: str, split: str, base: Path, download: bool) -> Dataset:
    folder = base / name
    candidates = [folder, base]
    pickled = find_pickled(name, candidates)
    if pickled is None and not (folder / split).is_dir() and not (base / split).is_dir() and download:
        _download(name, folder)
        pickled = find_pickled(name, candidates)
    if pickled is not None:
        images, labels, classes = load_pickled(name, pickled, split)
        return Dataset(torch.from_numpy(images), torch.from_numpy(labels), classes, name, pickled, split)
    for cand in candidates:
        if (cand / split).is_dir():
            ds = _load_imagefolder(name, cand / split, split, base)
            if ds.num_classes != NUM_CLASSES[name]:
                raise DataError(f"{cand / split}: {ds.num_classes} class folders, {name} has {NUM_CLASSES[name]}")
            return ds
    raise DataError(
        f"{name} not found under {folder}: put the pickled batches in {folder / LAYOUTS[name][0]}/ "
        f"(as torchvision downloads them) or images in {folder}/{{train,test}}/<class>/*.jpg; "
        f"set $AUGBENCH_DATA or pass root=...; online, load_dataset({name!r}, download=True) fetches it "
        f"(needs torchvision)")


def _download(name: str, folder: Path) -> None:
    try:
        from torchvision import datasets
    except ImportError:
        raise DataError(f"download=True needs torchvision; or put {name} under {folder} by hand") from None
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder.mkdir(parents=True, exist_ok=True)
    cls(str(folder), train=True, download=True)


def _load_imagefolder(name: str, split_dir: Path, split: str, base: Path) -> Dataset:
    classes, files = scan(split_dir)
    path = cache.cache_path(base, name, split, cache.cache_key(split_dir, files))
    hit = cache.load(path)
    if hit is not None and len(hit["labels"]) == len(files) and list(hit["classes"]) == classes:
        return Dataset(hit["images"], hit["labels"], classes, name, split_dir, split, path, True)
    images = torch.from_numpy(decode(split_dir, [f[0] for f in files]))
    labels = torch.tensor([f[1] for f in files], dtype=torch.int64)
    saved = cache.save(path, {"images": images, "labels": labels, "classes": classes})
    return Dataset(images, labels, classes, name, split_dir, split, path if saved else None, False)


def balanced_subset(ds: Dataset, per_class: int, seed: int = 0) -> Dataset:
    """The first ``per_class`` images of each class after a shuffle seeded with ``seed``, kept in
    their original order (so the same seed always gives the same images)."""
    labels = ds.labels.cpu().numpy()
    counts = np.bincount(labels, minlength=ds.num_classes)
    if counts.min() < per_class:
        c = int(counts.argmin())
        raise DataError(f"subset={per_class} images per class, but class {ds.classes[c]!r} of "
                        f"{ds.root} has only {counts[c]}")
    order = np.random.default_rng(seed).permutation(len(labels))
    keep = np.concatenate([order[labels[order] == c][:per_class] for c in range(ds.num_classes)])
    idx = torch.from_numpy(np.sort(keep)).to(ds.images.device)
    return replace(ds, images=ds.images[idx], labels=ds.labels[idx])
