"""ImageFolder layout (``<split>/<class>/<image>``): scan, and decode in parallel to uint8 arrays."""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from augbench.data.errors import DataError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
_PARALLEL_MIN = 2000  # below this, a process pool costs more than it saves
_CHUNK_MIN = 64  # images per task handed to a worker, at least


def scan(split_dir: Path) -> tuple[list[str], list[tuple[str, int, int, int]]]:
    """Class names (sorted folder names) and (relative path, label, size, mtime_ns) per image,
    in class order then file-name order, so labels and order never depend on the file system."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: no such folder (expected <class>/<image> folders inside)")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir}: no class folders inside (expected {split_dir}/<class>/<image>)")
    files = []
    for label, cls in enumerate(classes):
        entries = sorted(
            (e for e in os.scandir(split_dir / cls)
             if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTS),
            key=lambda e: e.name)
        if not entries:
            raise DataError(f"{split_dir / cls}: class folder has no images ({', '.join(sorted(IMAGE_EXTS))})")
        for e in entries:
            st = e.stat()
            files.append((f"{cls}/{e.name}", label, st.st_size, st.st_mtime_ns))
    return classes, files


def _decode_chunk(args: tuple) -> tuple[np.ndarray | None, str | None, list[str]]:
    """Decode a chunk to (n, H, W, 3) uint8; on failure (None, message naming the file, []).
    With a target (w, h), an image of another size is resized to it (bilinear, antialiased) and
    named in the third element; without one, every image must have the first one's size."""
    from PIL import Image

    root, rels = args[0], args[1]
    target = args[2] if len(args) > 2 else None
    out = None
    resized: list[str] = []
    for i, rel in enumerate(rels):
        path = os.path.join(root, rel)
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if target is not None and im.size != tuple(target):
                    im = im.resize(tuple(target), Image.BILINEAR)
                    resized.append(rel)
                arr = np.asarray(im)
        except Exception as e:  # PIL raises many types for a bad file
            return None, f"{path}: cannot read image ({type(e).__name__}: {e})", []
        if out is None:
            out = np.empty((len(rels), *arr.shape), dtype=np.uint8)
        elif arr.shape != out.shape[1:]:
            return None, (f"{path}: image is {arr.shape[1]}x{arr.shape[0]} but others are "
                          f"{out.shape[2]}x{out.shape[1]}; all images must have one size"), []
        out[i] = arr
    return out, None, resized


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header (nothing is decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # PIL raises many types for a bad file
        raise DataError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def decode(split_dir: Path, rels: list[str], resize: int | tuple[int, int] | str | None = None,
           resized: list[str] | None = None) -> np.ndarray:
    """All images as uint8 (N, 3, H, W); a pool of processes for large folders.

    ``resize``: None = every image must have one size (else a DataError names the file); an int S
    or (w, h) = images of any other size are resized to S x S (or w x h); "first" = to the first
    image's size. The relative paths of the images resized are appended to ``resized``."""
    target = None
    if resize == "first":
        target = image_size(split_dir / rels[0]) if rels else None
    elif isinstance(resize, int):
        target = (resize, resize)
    elif resize is not None:
        target = (int(resize[0]), int(resize[1]))
    workers = _workers()
    if len(rels) < _PARALLEL_MIN or workers == 1:
        chunks = [(str(split_dir), rels, target)]
        results = [_decode_chunk(chunks[0])]
    else:
        size = max(_CHUNK_MIN, len(rels) // (workers * 8))
        chunks = [(str(split_dir), rels[i:i + size], target) for i in range(0, len(rels), size)]
        # fork: workers run only PIL/numpy (no torch, no CUDA), and skip re-importing the caller.
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_decode_chunk, chunks))
    for _, err, _ in results:
        if err:
            raise DataError(err)
    first = results[0][0].shape[1:]
    for (arr, _, _), (_, chunk, _) in zip(results, chunks):
        if arr.shape[1:] != first:
            raise DataError(f"{split_dir / chunk[0]}: image is {arr.shape[2]}x{arr.shape[1]} but "
                            f"others are {first[1]}x{first[0]}; all images must have one size")
    if resized is not None:
        for _, _, names in results:
            resized.extend(names)
    # one (N, 3, H, W) array filled chunk by chunk: at most the chunks and the result in memory
    h, w, c = first
    out = np.empty((sum(len(r) for r, _, _ in results), c, h, w), dtype=np.uint8)
    i = 0
    for k in range(len(results)):
        arr = results[k][0]
        out[i:i + len(arr)] = arr.transpose(0, 3, 1, 2)
        i += len(arr)
        results[k] = (None, None, [])  # free the chunk
    return out
