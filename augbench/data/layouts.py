"""Datasets in their own published layouts: STL-10 (binary) and Tiny-ImageNet (folders).

STL-10, 96 px, under ``<data root>/stl10/stl10_binary/`` (or ``<data root>/stl10_binary/``), as
its tarball unpacks: ``{train,test,unlabeled}_X.bin`` (uint8 3x96x96 images, column-major),
``{train,test}_y.bin`` (labels 1..10) and ``class_names.txt``. Splits: train (5,000), test (8,000),
unlabeled (100,000, label -1) and train+unlabeled (what the data set ``stl10-unlabeled`` pretrains on).

Tiny-ImageNet, 64 px, under ``<data root>/tiny-imagenet-200/`` (or
``<data root>/tiny-imagenet/tiny-imagenet-200/``): ``wnids.txt``, ``train/<wnid>/images/*.JPEG``
and ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (file, wnid, box). Its ``test/``
has no labels, so split "test" is ``val/``. Classes are the wnids, sorted.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from augbench.data.base import Dataset, load_files, subset_indices
from augbench.data.errors import DataError
from augbench.data.imagefolder import IMAGE_EXTS
from augbench.data.memory import check_fits

STL_SIDE = 96
STL_BYTES = 3 * STL_SIDE * STL_SIDE
STL_PARTS = {"train": ("train",), "test": ("test",), "unlabeled": ("unlabeled",),
             "train+unlabeled": ("train", "unlabeled")}
_STL_CHUNK = 4096  # images transposed at a time (about 113 MB)


def _stl_folder(base: Path) -> Path:
    for cand in (base / "stl10" / "stl10_binary", base / "stl10_binary", base / "stl10", base):
        if (cand / "class_names.txt").is_file() or (cand / "train_X.bin").is_file():
            return cand
    raise DataError(f"stl10 not found: expected {base / 'stl10' / 'stl10_binary'}/{{train_X.bin,train_y.bin,"
                    f"test_X.bin,test_y.bin,unlabeled_X.bin,class_names.txt}} (the unpacked stl10_binary.tar.gz; "
                    f"set $AUGBENCH_DATA to the folder that holds stl10/)")


def load_stl10(base: Path, split: str, size: int | None = None, subset: int | None = None, seed: int = 0):
    """STL-10's `split` as a Dataset (`size` is unused: every image is 96 px). `subset`: the images
    `augbench.data.base.subset_indices` keeps (N per class of a labeled part, the same share of
    the unlabeled part), chosen from the labels alone, so only those images are read and counted
    against the memory."""
    folder = _stl_folder(base)
    names_file = folder / "class_names.txt"
    try:
        classes = [c.strip() for c in names_file.read_text().splitlines() if c.strip()]
    except OSError as e:
        raise DataError(f"{names_file}: cannot read the class names ({e})") from None
    if len(classes) != 10:
        raise DataError(f"{names_file}: {len(classes)} class names, stl10 has 10")
    parts = []  # (part, X file, images, labels)
    for part in STL_PARTS[split]:
        x = folder / f"{part}_X.bin"
        if not x.is_file():
            raise DataError(f"{x}: missing (stl10's {split} split needs {part}_X.bin)")
        nbytes = x.stat().st_size
        if nbytes % STL_BYTES:
            raise DataError(f"{x}: {nbytes} bytes is not a whole number of 3x96x96 images (truncated?)")
        n = nbytes // STL_BYTES
        y = np.full(n, -1, dtype=np.int64) if part == "unlabeled" else _stl_labels(folder, part, x, n, len(classes))
        parts.append((part, x, n, y))
    labels = np.concatenate([y for *_, y in parts])
    keep = None
    if subset is not None:
        # the unlabeled share follows the train split's images per class (500 in STL-10)
        train_per_class = None
        if "unlabeled" in STL_PARTS[split]:
            train_per_class = (len(parts[0][3]) if parts[0][0] == "train" else
                               _stl_count(folder / "train_y.bin", "the share of unlabeled images subset= keeps")) // 10
        keep = subset_indices(labels, classes, subset, seed, train_per_class=train_per_class,
                              where=f"{folder} ({split})")
    total = len(labels) if keep is None else len(keep)
    check_fits(f"dataset stl10 ({split}, {folder})", total * STL_BYTES,
               f"{total} images x 3 x {STL_SIDE} x {STL_SIDE} bytes")
    images = np.empty((total, 3, STL_SIDE, STL_SIDE), dtype=np.uint8)
    i = start = 0
    for part, x, n, _ in parts:
        rows = np.arange(n) if keep is None else keep[(keep >= start) & (keep < start + n)] - start
        start += n
        raw = np.memmap(x, dtype=np.uint8, mode="r", shape=(n, 3, STL_SIDE, STL_SIDE))
        for j in range(0, len(rows), _STL_CHUNK):  # column-major on disk: swap H and W, a chunk at a time
            r = rows[j:j + _STL_CHUNK]
            block = raw[r[0]:r[-1] + 1] if keep is None else raw[r]
            images[i + j:i + j + len(r)] = block.transpose(0, 1, 3, 2)
        del raw
        i += len(rows)
    if keep is not None:
        labels = labels[keep]
    return Dataset(torch.from_numpy(images), torch.from_numpy(labels), classes, "stl10", folder, split)


def _stl_count(y_file: Path, why: str) -> int:
    if not y_file.is_file():
        raise DataError(f"{y_file}: missing ({why} needs it)")
    return y_file.stat().st_size  # one uint8 label per image


def _stl_labels(folder: Path, part: str, x: Path, n: int, classes: int) -> np.ndarray:
    y_file = folder / f"{part}_y.bin"
    if not y_file.is_file():
        raise DataError(f"{y_file}: missing (the labels of {part}_X.bin)")
    y = np.fromfile(y_file, dtype=np.uint8).astype(np.int64)
    if len(y) != n:
        raise DataError(f"{y_file}: {len(y)} labels for {n} images in {x.name}")
    if len(y) and (y.min() < 1 or y.max() > classes):
        raise DataError(f"{y_file}: labels must be 1..{classes} (found {y.min()}..{y.max()})")
    return y - 1


# ---------------------------------------------------------------------------- Tiny-ImageNet
def _tiny_folder(base: Path) -> Path:
    for cand in (base / "tiny-imagenet-200", base / "tiny-imagenet" / "tiny-imagenet-200", base / "tiny-imagenet",
                 base):
        if (cand / "wnids.txt").is_file():
            return cand
    raise DataError(f"tiny-imagenet not found: expected {base / 'tiny-imagenet-200'}/{{wnids.txt,train/<wnid>/images/,"
                    f"val/images/,val/val_annotations.txt}} (the unpacked tiny-imagenet-200.zip; set $AUGBENCH_DATA "
                    f"to the folder that holds tiny-imagenet-200/)")


def _entry(path: Path, rel: str, label: int) -> tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        raise DataError(f"{path}: missing image") from None
    return rel, label, st.st_size, st.st_mtime_ns


def load_tiny_imagenet(base: Path, split: str, size: int | None = None):
    """Tiny-ImageNet's train split, or its val/ as "test", as a Dataset (decoded once, then cached)."""
    folder = _tiny_folder(base)
    wnids = [w.strip() for w in (folder / "wnids.txt").read_text().split() if w.strip()]
    classes = sorted(set(wnids))
    if not classes:
        raise DataError(f"{folder / 'wnids.txt'}: no class ids inside")
    index = {w: i for i, w in enumerate(classes)}
    files: list[tuple[str, int, int, int]] = []
    if split == "train":
        root = folder / "train"
        for label, wnid in enumerate(classes):
            d = root / wnid / "images"
            if not d.is_dir():
                raise DataError(f"{d}: no such folder (wnids.txt lists {wnid})")
            names = sorted(e.name for e in os.scandir(d)
                           if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTS)
            if not names:
                raise DataError(f"{d}: class folder has no images")
            files += [_entry(d / n, f"{wnid}/images/{n}", label) for n in names]
    else:
        root = folder / "val"
        ann = root / "val_annotations.txt"
        if not ann.is_file():
            raise DataError(f"{ann}: missing (it labels the images in {root / 'images'})")
        rows = []
        for lineno, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2 or cols[1] not in index:
                raise DataError(f"{ann}, line {lineno}: expected '<file>\\t<wnid>\\t...' with a wnid from "
                                f"wnids.txt (got {line.strip()[:80]!r})")
            rows.append((index[cols[1]], cols[0]))
        if not rows:
            raise DataError(f"{ann}: no images listed")
        files = [_entry(root / "images" / n, f"images/{n}", label) for label, n in sorted(rows)]
    return load_files("tiny-imagenet", root, split, base, classes, files, size)


LOADERS = {"stl10": load_stl10, "tiny-imagenet": load_tiny_imagenet}
SUBSET_WHILE_LOADING = {"stl10"}  # loaders that take subset= and seed= and read only the images kept
