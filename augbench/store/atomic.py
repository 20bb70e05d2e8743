"""Atomic file writes: a temporary file in the same folder, fsync, then rename. Readers see the old
file or the new one, never half of one, even with many concurrent writers (each gets its own
temporary name)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | Path, write: Callable[[IO], None] | str | bytes, *, mode: int = 0o644) -> Path:
    """Write `path` atomically: `write` is the content, or a function that writes to the open file
    (text for a str, binary otherwise). `mode`: mkstemp makes 0600; results are shared files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = isinstance(write, str)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"newline": ""} if text else {})) as f:
            if callable(write):
                write(f)
            else:
                f.write(write)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
