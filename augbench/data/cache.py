"""Decoded-image cache: one torch file per (source folder, file list, sizes, mtimes; the size that
images of mixed sizes were resized to).

Any change to the files (added, removed, rewritten) changes the key, so a stale cache is never
read. Writes go to a temporary file then rename, so concurrent jobs decoding the same data
never see half a file (the last writer wins; both wrote the same bytes).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch

from augbench.store.atomic import atomic_write

CACHE_VERSION = 1  # bump when the decode changes


def cache_dir(data_root: Path) -> Path:
    """$AUGBENCH_CACHE, else <data root>/.augbench_cache when writable, else ~/.cache/augbench."""
    env = os.environ.get("AUGBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    preferred = data_root / ".augbench_cache"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    return Path.home() / ".cache" / "augbench"


def cache_key(source: Path, files: list, resize: int | str | None = None) -> str:
    """`resize`: the size mixed-size images were resized to (an int, or "first"); None for images
    decoded as they are (the key of a same-size folder, unchanged by it)."""
    parts = [CACHE_VERSION, str(source.resolve()), files] + ([{"resize": resize}] if resize is not None else [])
    blob = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_path(data_root: Path, name: str, split: str, key: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[-60:]
    return cache_dir(data_root) / f"{slug}-{split}-{key}.pt"


def load(path: Path) -> dict | None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign file: decode again and overwrite it
        return None
    if not isinstance(obj, dict) or not {"images", "labels", "classes"} <= set(obj):
        return None
    return obj


def save(path: Path, obj: dict) -> bool:
    """Write atomically; False (and no cache) when the folder is not writable."""
    try:
        atomic_write(path, lambda f: torch.save(obj, f))  # 0644: a shared cache is read by other users
        return True
    except OSError:
        return False
