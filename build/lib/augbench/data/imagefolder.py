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


def _decode_chunk(args: tuple[str, list[str]]) -> tuple[np.ndarray | None, str | None]:
    """Decode a chunk to (n, H, W, 3) uint8; on failure (None, message naming the file)."""
    from PIL import Image

    root, rels = args
    out = None
    for i, rel in enumerate(rels):
        path = os.path.join(root, rel)
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except Exception as e:  # PIL raises many types for a bad file
            return None, f"{path}: cannot read image ({type(e).__name__}: {e})"
        if out is None:
            out = np.empty((len(rels), *arr.shape), dtype=np.uint8)
        elif arr.shape != out.shape[1:]:
            return None, (f"{path}: image is {arr.shape[1]}x{arr.shape[0]} but others are "
                          f"{out.shape[2]}x{out.shape[1]}; all images must have one size")
        out[i] = arr
    return out, None


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def decode(split_dir: Path, rels: list[str]) -> np.ndarray:
    """All images as uint8 (N, 3, H, W); a pool of processes for large folders."""
    workers = _workers()
    if len(rels) < _PARALLEL_MIN or workers == 1:
        chunks = [(str(split_dir), rels)]
        results = [_decode_chunk(chunks[0])]
    else:
        size = max(_CHUNK_MIN, len(rels) // (workers * 8))
        chunks = [(str(split_dir), rels[i:i + size]) for i in range(0, len(rels), size)]
        # fork: workers run only PIL/numpy (no torch, no CUDA), and skip re-importing the caller.
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            results = list(pool.map(_decode_chunk, chunks))
    for _, err in results:
        if err:
            raise DataError(err)
    shapes = {r.shape[1:] for r, _ in results}
    if len(shapes) > 1:
        first = results[0][0].shape[1:]
        for (arr, _), (_, chunk) in zip(results, chunks):
            if arr.shape[1:] != first:
                raise DataError(f"{split_dir / chunk[0]}: image is {arr.shape[2]}x{arr.shape[1]} but "
                                f"others are {first[1]}x{first[0]}; all images must have one size")
    return np.ascontiguousarray(np.concatenate([r for r, _ in results]).transpose(0, 3, 1, 2))
