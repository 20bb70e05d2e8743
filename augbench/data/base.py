"""What every loader shares (augbench.data.dataset for CIFAR and image folders, augbench.data.layouts
for STL-10 and Tiny-ImageNet): the ``Dataset`` a split loads into, ``load_files`` (a list of image
files decoded once, through the cache) and ``subset_indices`` (the images ``subset=`` keeps)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from augbench.data import cache
from augbench.data.errors import DataError
from augbench.data.imagefolder import decode, image_size
from augbench.data.memory import check_fits


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
    # what a method pretrains on when it is more than `images` (stl10-unlabeled's train split: the labeled images,
    # which `images` views, then the unlabeled ones); None: `images`
    pretrain_images: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def pretraining(self) -> torch.Tensor:
        """The images a method pretrains on: `pretrain_images` where set, else `images`."""
        return self.images if self.pretrain_images is None else self.pretrain_images

    @property
    def num_classes(self) -> int:
        return len(self.classes)


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
    # to the first image's size: a folder of one size comes out as it is, whatever `size`
    array = decode(split_dir, rels, resize="first", resized=resized)
    if resized and size and array.shape[2:] != (size, size):  # mixed sizes: every image to size x size
        array, resized = None, []
        array = decode(split_dir, rels, resize=size, resized=resized)
    images = torch.from_numpy(array)
    if resized:
        import sys

        print(f"augbench: {len(resized)} of {len(rels)} images of {name} ({split_dir}) were not "
              f"{images.shape[3]}x{images.shape[2]} (e.g. {resized[0]}); resized them to it", file=sys.stderr, flush=True)
    else:
        sized = path  # one size throughout: the size did not matter
    labels = torch.tensor([f[1] for f in files], dtype=torch.int64)
    saved = cache.save(sized, {"images": images, "labels": labels, "classes": classes})
    return Dataset(images, labels, classes, name, split_dir, split, sized if saved else None, False)


def subset_indices(labels, classes: list[str], per_class: int, seed: int = 0, *,
                   train_per_class: int | None = None, where: str = "") -> np.ndarray:
    """The sorted indices that ``subset=per_class`` keeps of a split with ``labels`` (-1: unlabeled).

    Labeled images: the first ``per_class`` of each class after a shuffle seeded with ``seed``.
    Unlabeled images: the same share as of the train split, ``per_class / train_per_class`` of them
    (rounded down; ``train_per_class`` defaults to the labeled images here per class), the first that
    many after their own shuffle seeded with ``seed``; in STL-10 (500 train images per class, 100,000
    unlabeled) that is 200 x ``per_class``, and ``subset=500`` keeps everything. The two are drawn
    apart, so the labeled images kept are the same with or without unlabeled ones beside them."""
    labels = np.asarray(labels)
    labeled, unlabeled = np.flatnonzero(labels >= 0), np.flatnonzero(labels < 0)
    keep = []
    if len(labeled):
        counts = np.bincount(labels[labeled], minlength=len(classes))
        if counts.min() < per_class:
            c = int(counts.argmin())
            raise DataError(f"subset={per_class} images per class, but class {classes[c]!r} of {where} has only "
                            f"{counts[c]}")
        order = labeled[np.random.default_rng(seed).permutation(len(labeled))]
        keep += [order[labels[order] == c][:per_class] for c in range(len(classes))]
    if len(unlabeled):
        if train_per_class is None:
            if not len(labeled):
                raise DataError(f"{where}: subset= of unlabeled images alone needs the train split's images per "
                                f"class (train_per_class), whose share it keeps")
            train_per_class = len(labeled) // len(classes)
        if per_class > train_per_class:
            raise DataError(f"subset={per_class} images per class, but the train split of {where} has only "
                            f"{train_per_class} per class (subset= keeps that share of the unlabeled images)")
        k = len(unlabeled) * per_class // train_per_class
        keep.append(unlabeled[np.random.default_rng(seed).permutation(len(unlabeled))[:k]])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
