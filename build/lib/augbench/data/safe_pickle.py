"""Read CIFAR's pickled batches without letting a pickle run arbitrary code.

``pickle.load`` on a file a user points us at could import and call anything. This Unpickler only
resolves the few globals a CIFAR batch needs (numpy array reconstruction and the bytes codec
used by protocol-2 pickles); containers, bytes, str and int need no globals at all.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from augbench.data.errors import DataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def load_batch(path: Path) -> dict:
    """One CIFAR batch as a dict with str keys (``data``, ``labels``/``fine_labels``, ...)."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: missing CIFAR batch file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataError(f"{path}: not a readable CIFAR batch ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR batch (expected a dict, got {type(obj).__name__})")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
