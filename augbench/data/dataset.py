"""``load_dataset``: CIFAR-10/100 (pickled or ImageFolder layout), STL-10 (binary), Tiny-ImageNet
and any ImageFolder, as uint8 tensors."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from augbench.data import cache
from augbench.data.cifar_pickle import LAYOUTS, find_pickled, load_pickled
from augbench.data.errors import DataError
from augbench.data.imagefolder import decode, image_size, scan
from augbench.data.memory import check_fits
from augbench.env import data_root

SPLITS = ("train", "test")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# Other layouts (augbench.data.layouts): STL-10's binary files (stl10/stl10_binary/*.bin, 96 px, with an
# unlabeled split), Tiny-ImageNet's folders (tiny-imagenet/tiny-imagenet-200/, 64 px; "test" is its val/)
LAYOUT_CLASSES = {"stl10": 10, "tiny-imagenet": 200}
EXTRA_SPLITS = {"stl10": ("unlabeled", "train+unlabeled")}  # unlabeled images have label -1
# Short names for image folders under the data root (train/<class>/*.jpg, test/<class>/*.jpg)
FOLDER_DATASETS = {"imagenette32": "imagenette32"}  # Imagenette squashed to 32 px (its PROVENANCE.md)
NAMES = (*NUM_CLASSES, *FOLDER_DATASETS, *LAYOUT_CLASSES)


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
                 download: bool = False, size: int | None = None) -> Dataset:
    """Load a whole split into memory. ``root`` is the data root holding ``<name>/`` (default
    ``$AUGBENCH_DATA``), or the dataset folder itself; ``subset=N`` keeps N images per class,
    chosen by a shuffle seeded with ``seed`` (and N x classes unlabeled images, where a split has
    them). ``size``: the side, in pixels, that an image folder of mixed sizes is resized to (default:
    its first image's size; one line says how many were resized); a folder whose images all share
    one size is kept as it is. STL-10 also has the splits "unlabeled" and "train+unlabeled"."""
    splits = (*SPLITS, *EXTRA_SPLITS.get(name, ()))
    if split not in splits:
        raise DataError(f"split must be one of {list(splits)} (got {split!r})")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"size must be a positive number of pixels (got {size!r})")
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
        ds = _load_imagefolder(name, _split_dir(path, split), split, base, size)
    elif name in LAYOUT_CLASSES:
        from augbench.data import layouts

        ds = layouts.LOADERS[name](base, split, size)
    elif isinstance(name, str) and name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not path.is_absolute() and not path.exists() and (base / path).exists():
            path = base / path
        ds = _load_imagefolder(name, _split_dir(path, split), split, base, size)
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


def load_files(name: str, split_dir: Path, split: str, base: Path, classes: list[str],
               files: list[tuple[str, int, int, int]], size: int | None = None) -> Dataset:
    """Decode `files` ((path relative to split_dir, label, bytes, mtime_ns) each), through the cache.

    A folder whose images share one size is cached under a key of its files alone; one of mixed
    sizes is resized (to `size`, else to the first image's) and cached under a key that adds the
    size, so each cache entry says what it holds and a different `size` never reads it."""
    path = cache.cache_path(base, name, split, cache.cache_key(split_dir, files))
    sized = cache.cache_path(base, name, split, cache.cache_key(split_dir, files, resize=size or "first"))
    for p in (path, sized):
        hit = cache.load(p)
        if hit is not None and len(hit["labels"]) == len(files) and list(hit["classes"]) == classes:
            return Dataset(hit["images"], hit["labels"], classes, name, split_dir, split, p, True)
    rels = [f[0] for f in files]
    w, h = image_size(split_dir / rels[0])  # the others are this size, or resized to `size`
    if size:
        w, h = max(w, size), max(h, size)
    n = len(rels) * 3 * w * h
    check_fits(f"dataset {name} ({split}, {split_dir})", 2 * n,
               f"{len(rels)} images x 3 x {h} x {w} bytes, twice while decoding")
    resized: list[str] = []
    images = torch.from_numpy(decode(split_dir, rels, resize=size or "first", resized=resized))
    if resized:
        import sys

        print(f"augbench: {len(resized)} of {len(rels)} images of {name} ({split_dir}) were not "
              f"{images.shape[3]}x{images.shape[2]} (e.g. {resized[0]}); resized them to it", file=sys.stderr, flush=True)
    else:
        sized = path  # one size throughout: the size did not matter
    labels = torch.tensor([f[1] for f in files], dtype=torch.int64)
    saved = cache.save(sized, {"images": images, "labels": labels, "classes": classes})
    return Dataset(images, labels, classes, name, split_dir, split, sized if saved else None, False)


def balanced_subset(ds: Dataset, per_class: int, seed: int = 0) -> Dataset:
    """The first ``per_class`` images of each class after a shuffle seeded with ``seed``, kept in
    their original order (so the same seed always gives the same images)."""
    labels = ds.labels.cpu().numpy()
    unlabeled = int((labels < 0).sum())  # label -1 (STL-10's unlabeled split): N x classes of them
    counts = np.bincount(labels[labels >= 0], minlength=ds.num_classes)
    if unlabeled < len(labels) and counts.min() < per_class:
        c = int(counts.argmin())
        raise DataError(f"subset={per_class} images per class, but class {ds.classes[c]!r} of "
                        f"{ds.root} has only {counts[c]}")
    if unlabeled and unlabeled < per_class * ds.num_classes:
        raise DataError(f"subset={per_class} keeps {per_class * ds.num_classes} unlabeled images "
                        f"({per_class} x {ds.num_classes} classes), but {ds.root} has only {unlabeled}")
    order = np.random.default_rng(seed).permutation(len(labels))
    groups = [order[labels[order] == c][:per_class] for c in range(ds.num_classes) if unlabeled < len(labels)]
    if unlabeled:
        groups.append(order[labels[order] < 0][:per_class * ds.num_classes])
    keep = np.concatenate(groups)
    idx = torch.from_numpy(np.sort(keep)).to(ds.images.device)
    return replace(ds, images=ds.images[idx], labels=ds.labels[idx])
