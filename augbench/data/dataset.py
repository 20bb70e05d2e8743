"""``load_dataset``: CIFAR-10/100 (pickled or ImageFolder layout), STL-10 (binary; ``stl10-unlabeled``
pretrains on its unlabeled split too), Tiny-ImageNet and any ImageFolder, as uint8 tensors."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from augbench.data.base import Dataset, load_files, subset_indices
from augbench.data.cifar_pickle import LAYOUTS, find_pickled, load_pickled
from augbench.data.errors import DataError
from augbench.data.imagefolder import scan
from augbench.env import data_root

SPLITS = ("train", "test")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# Other layouts (augbench.data.layouts): STL-10's binary files (stl10/stl10_binary/*.bin, 96 px, with an
# unlabeled split), Tiny-ImageNet's folders (tiny-imagenet/tiny-imagenet-200/, 64 px; "test" is its val/)
LAYOUT_CLASSES = {"stl10": 10, "tiny-imagenet": 200}
EXTRA_SPLITS = {"stl10": ("unlabeled", "train+unlabeled")}  # unlabeled images have label -1
# Data sets that pretrain on more than their labeled train split: name -> (the data set read, the split pretrained
# on). Their "train" split holds the labeled train images in `images` (the kNN bank, the linear probe's training set)
# and the pretraining split in `pretrain_images`; every other split is the data set read's.
PRETRAIN_ON = {"stl10-unlabeled": ("stl10", "train+unlabeled")}
# Short names for image folders under the data root (train/<class>/*.jpg, test/<class>/*.jpg)
FOLDER_DATASETS = {"imagenette32": "imagenette32"}  # Imagenette squashed to 32 px (its PROVENANCE.md)
NAMES = (*NUM_CLASSES, *FOLDER_DATASETS, *LAYOUT_CLASSES, *PRETRAIN_ON)


def to_device(ds: Dataset, device) -> Dataset:
    if ds.pretrain_images is not None:  # `images` are its first rows: one copy on the device, viewed twice
        pre = ds.pretrain_images.to(device)
        return replace(ds, images=pre[:len(ds.images)], labels=ds.labels.to(device), pretrain_images=pre)
    return replace(ds, images=ds.images.to(device), labels=ds.labels.to(device))


def load_dataset(name: str, split: str = "train", root=None, subset: int | None = None, seed: int = 0,
                 download: bool = False, size: int | None = None) -> Dataset:
    """Load a whole split into memory. ``root`` is the data root holding ``<name>/`` (default
    ``$AUGBENCH_DATA``), or the dataset folder itself; ``subset=N`` keeps N images per class,
    chosen by a shuffle seeded with ``seed``, and of a split's unlabeled images the same share as of
    the train split's labeled ones (``subset_indices``). ``size``: the side, in pixels, that an image
    folder of mixed sizes is resized to (default: its first image's size; one line says how many were
    resized); a folder whose images all share one size is kept as it is. STL-10 also has the splits
    "unlabeled" and "train+unlabeled"; ``stl10-unlabeled`` is STL-10 whose "train" split pretrains on
    train+unlabeled (``Dataset.pretraining``) and evaluates on the labeled train images (``images``)."""
    splits = (*SPLITS, *EXTRA_SPLITS.get(PRETRAIN_ON.get(name, (name,))[0], ()))
    if split not in splits:
        raise DataError(f"split must be one of {list(splits)} (got {split!r})")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"size must be a positive number of pixels (got {size!r})")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
        raise DataError(f"subset must be a positive number of images per class (got {subset!r})")
    base = Path(root).expanduser() if root is not None else data_root()
    if name in PRETRAIN_ON:
        return _load_pretrain_on(name, split, base, subset, seed, download, size)
    if name in LAYOUTS:
        ds = _load_cifar(name, split, base, download)
    elif name in FOLDER_DATASETS:
        path = base / FOLDER_DATASETS[name]
        if not path.is_dir():
            raise DataError(f"{name} not found: expected {path}/{{train,test}}/<class>/*.jpg "
                            f"(set $AUGBENCH_DATA to the folder that holds {FOLDER_DATASETS[name]}/)")
        ds = _load_imagefolder(name, _split_dir(path, split), split, base, size)
    elif name in LAYOUT_CLASSES:
        from augbench.data import layouts

        if name in layouts.SUBSET_WHILE_LOADING:  # reads only the images the subset keeps
            return layouts.LOADERS[name](base, split, size, subset=subset, seed=seed)
        ds = layouts.LOADERS[name](base, split, size)
    elif isinstance(name, str) and name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not path.is_absolute() and not path.exists() and (base / path).exists():
            path = base / path
        ds = _load_imagefolder(name, _split_dir(path, split), split, base, size)
    else:
        raise DataError(f"unknown dataset {name!r}: use one of {list(NAMES)} or 'imagefolder:<path>'")
    return balanced_subset(ds, subset, seed) if subset is not None else ds


def _load_pretrain_on(name: str, split: str, base: Path, subset: int | None, seed: int, download: bool,
                      size: int | None) -> Dataset:
    source, pretrain_split = PRETRAIN_ON[name]
    if split != "train":
        return replace(load_dataset(source, split, base, subset, seed, download, size), name=name)
    pre = load_dataset(source, pretrain_split, base, subset, seed, download, size)
    n = int((pre.labels >= 0).sum())
    if not bool((pre.labels[:n] >= 0).all()):
        raise DataError(f"{name}: the labeled images of {source}'s {pretrain_split} split do not come first")
    return replace(pre, images=pre.images[:n], labels=pre.labels[:n], name=name, split="train",
                   pretrain_images=pre.images)


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
    from augbench.data.download import how_to_get

    raise DataError(
        f"{name} not found under {folder}. {how_to_get(name, base)} (in Python: "
        f"load_dataset({name!r}, download=True)). Or put the pickled batches in {folder / LAYOUTS[name][0]}/ "
        f"or images in {folder}/{{train,test}}/<class>/*.jpg, or set $AUGBENCH_DATA (or pass root=...) "
        f"to the folder that holds {name}/")


def _download(name: str, folder: Path) -> None:
    from augbench.data.download import get  # the standard library's urllib; no torchvision

    get(name, folder.parent)


def _load_imagefolder(name: str, split_dir: Path, split: str, base: Path, size: int | None = None) -> Dataset:
    classes, files = scan(split_dir)
    return load_files(name, split_dir, split, base, classes, files, size)


def balanced_subset(ds: Dataset, per_class: int, seed: int = 0, train_per_class: int | None = None) -> Dataset:
    """``ds`` with the images ``subset_indices`` keeps (N per class after a shuffle seeded with ``seed``; of
    unlabeled images, the same share as of the train split), in their original order (so the same seed
    always gives the same images)."""
    if ds.pretrain_images is not None:
        raise DataError(f"{ds.name}: pass subset= to load_dataset (its pretraining images are subset with it)")
    keep = subset_indices(ds.labels.cpu().numpy(), ds.classes, per_class, seed, train_per_class=train_per_class,
                          where=str(ds.root))
    idx = torch.from_numpy(keep).to(ds.images.device)
    return replace(ds, images=ds.images[idx], labels=ds.labels[idx])
