"""The engine's errors, in a module of their own so that the backends can raise them without
importing the engine (which imports the backends)."""
from __future__ import annotations

from augbench.errors import UserError


class AugmentInputError(UserError):
    """A batch the engine cannot augment (dtype, shape, range) or a bad engine argument."""


class BackendUnavailable(AugmentInputError, ImportError):
    """A backend whose library is not installed (the core install has neither Kornia nor albumentations)."""
