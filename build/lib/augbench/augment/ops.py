"""The augmentation ops a policy may name, with Kornia/torchvision parameter names, defaults
and the checks that make a bad value fail with a message naming the op and the field.

This module only describes ops (data). Sampling and application live in the backends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from augbench.errors import UserError


class PolicyError(UserError):
    """A policy that names an unknown op or parameter, or a value out of range."""


Check = Callable[[str, Any], Any]  # (field path, value) -> normalised value, or raise PolicyError


def _num(path: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PolicyError(f"{path}: expected a number, got {v!r}")
    return float(v)


def prob(path: str, v: Any) -> float:
    v = _num(path, v)
    if not 0.0 <= v <= 1.0:
        raise PolicyError(f"{path}: probability must be in [0, 1], got {v}")
    return v


def range_in(lo: float, hi: float, *, open_lo: bool = False) -> Check:
    """A [min, max] pair inside [lo, hi]; min <= max."""

    def check(path: str, v: Any) -> tuple[float, float]:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise PolicyError(f"{path}: expected [min, max], got {v!r}")
        a, b = _num(path, v[0]), _num(path, v[1])
        if a > b:
            raise PolicyError(f"{path}: min {a} > max {b}")
        if a < lo or b > hi or (open_lo and a <= lo):
            raise PolicyError(f"{path}: values must lie in {'(' if open_lo else '['}{lo}, {hi}], got [{a}, {b}]")
        return (a, b)

    return check


def jitter_factor(max_delta: float | None = None, centre: float = 1.0) -> Check:
    """torchvision's convention: a scalar s means [centre - s, centre + s] (clipped at 0 for
    multiplicative factors); a pair is taken as the range itself."""

    def check(path: str, v: Any) -> tuple[float, float]:
        if isinstance(v, (list, tuple)):
            a, b = range_in(-1e9, 1e9)(path, v)
        else:
            s = _num(path, v)
            if s < 0:
                raise PolicyError(f"{path}: must be >= 0, got {s}")
            a, b = centre - s, centre + s
            if centre == 1.0:
                a = max(a, 0.0)
        if centre == 1.0 and a < 0:
            raise PolicyError(f"{path}: factor range must be >= 0, got [{a}, {b}]")
        if max_delta is not None and (a < centre - max_delta or b > centre + max_delta):
            raise PolicyError(f"{path}: range must lie in [{centre - max_delta}, {centre + max_delta}], got [{a}, {b}]")
        return (a, b)

    return check


def pos_int(lo: int = 1, odd: bool = False) -> Check:
    def check(path: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise PolicyError(f"{path}: expected an integer, got {v!r}")
        if v < lo:
            raise PolicyError(f"{path}: must be >= {lo}, got {v}")
        if odd and v % 2 == 0:
            raise PolicyError(f"{path}: must be odd, got {v}")
        return v

    return check


def size(path: str, v: Any) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise PolicyError(f"{path}: expected an int or [height, width], got {v!r}")
    return (pos_int(1)(path, v[0]), pos_int(1)(path, v[1]))


def triple(lo: float, open_lo: bool = False) -> Check:
    def check(path: str, v: Any) -> tuple[float, float, float]:
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            raise PolicyError(f"{path}: expected three numbers (one per channel), got {v!r}")
        out = tuple(_num(path, x) for x in v)
        if any(x < lo or (open_lo and x == lo) for x in out):
            raise PolicyError(f"{path}: values must be {'>' if open_lo else '>='} {lo}, got {list(out)}")
        return out

    return check


def unit(path: str, v: Any) -> float:
    v = _num(path, v)
    if not 0.0 <= v <= 1.0:
        raise PolicyError(f"{path}: must be in [0, 1], got {v}")
    return v


def mask_ratio(path: str, v: Any) -> float:
    v = _num(path, v)
    if not 0.0 <= v < 1.0:
        raise PolicyError(f"{path}: must be in [0, 1), got {v}")
    return v


def choice(*options: str) -> Check:
    def check(path: str, v: Any) -> str:
        if v not in options:
            raise PolicyError(f"{path}: must be one of {list(options)}, got {v!r}")
        return v

    return check


@dataclass(frozen=True)
class OpSpec:
    name: str
    params: dict[str, tuple[Any, Check]]  # param -> (default, check)
    doc: str


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

OPS: dict[str, OpSpec] = {
    s.name: s
    for s in [
        OpSpec("random_resized_crop", {
            "size": (32, size),
            "scale": ((0.08, 1.0), range_in(0.0, 1.0, open_lo=True)),
            "ratio": ((3 / 4, 4 / 3), range_in(0.0, 1e6, open_lo=True)),
            "p": (1.0, prob),
        }, "crop a random area (fraction `scale` of the image, aspect `ratio`) and resize to `size`"),
        OpSpec("resize", {"size": (32, size)},
               "deterministic resize to `size` (used in place of a crop, e.g. `no_crop`)"),
        OpSpec("horizontal_flip", {"p": (0.5, prob)}, "mirror left-right with probability p"),
        OpSpec("color_jitter", {
            "brightness": (0.4, jitter_factor()),
            "contrast": (0.4, jitter_factor()),
            "saturation": (0.4, jitter_factor()),
            "hue": (0.1, jitter_factor(max_delta=0.5, centre=0.0)),
            "p": (0.8, prob),
        }, "torchvision ColorJitter (brightness, contrast, saturation, hue in a random order) with probability p"),
        OpSpec("grayscale", {"p": (0.2, prob)}, "convert to 3-channel grayscale with probability p"),
        OpSpec("gaussian_blur", {
            "kernel_size": (3, pos_int(3, odd=True)),
            "sigma": ((0.1, 2.0), range_in(0.0, 1e3, open_lo=True)),
            "p": (0.5, prob),
        }, "Gaussian blur with a per-sample sigma drawn from `sigma`, with probability p"),
        OpSpec("solarize", {"threshold": (0.5, unit), "p": (0.2, prob)},
               "invert pixels above `threshold` with probability p"),
        OpSpec("patch_mask", {
            "ratio": (0.5, mask_ratio),
            "patch_size": (4, pos_int(1)),
            "p": (1.0, prob),
            "fill": (0.0, _num),
        }, "mask a fraction `ratio` of `patch_size` patches: a pixel mask (value `fill` after normalisation) "
           "for ConvNets, or the kept token indices for ViTs"),
        OpSpec("normalize", {"mean": (CIFAR10_MEAN, triple(-1e9)), "std": (CIFAR10_STD, triple(0.0, open_lo=True))},
               "subtract mean, divide by std per channel"),
    ]
}

# Ops grouped under the names the ablations use: `no_color` removes jitter and grayscale together.
GROUPS: dict[str, tuple[str, ...]] = {
    "crop": ("random_resized_crop",),
    "flip": ("horizontal_flip",),
    "jitter": ("color_jitter",),
    "gray": ("grayscale",),
    "color": ("color_jitter", "grayscale"),
    "blur": ("gaussian_blur",),
    "solarize": ("solarize",),
    "mask": ("patch_mask",),
}


def normalise_params(op: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    """Fill defaults and check every parameter of one op; `where` prefixes error messages."""
    if op not in OPS:
        raise PolicyError(f"{where}: unknown op {op!r}; known ops: {sorted(OPS)}")
    spec = OPS[op]
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise PolicyError(f"{where}: unknown parameter(s) {unknown} of {op}; known: {sorted(spec.params)}")
    out: dict[str, Any] = {}
    for name, (default, check) in spec.params.items():
        v = params.get(name, default)
        out[name] = check(f"{where}.{name}", v)
    return out
