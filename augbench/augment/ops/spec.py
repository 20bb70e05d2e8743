"""What an op is (`OpSpec`), the parameter checks op modules share, and the context a sampler or a
reference implementation gets (`OpContext`).

An op is data plus two functions, Kornia style (sampling separate from application):

- `params`: name -> (default, check). The check normalises a value (a scalar jitter strength to its
  range, an int size to (h, w)) or raises a `PolicyError` naming the op and the field.
- `sample(b, hw, p, gen, device, ctx) -> {name: tensor}`: every random number one view of a batch
  of `b` images of size `hw` needs, drawn from the `torch.Generator` `gen` on `device` (never the
  global RNG), per sample, with no host sync (no `.item()`, no Python branch on a tensor value).
  An op with a `p` returns its per-sample gate as `"applied"` (bool, (B,)). None: no draws.
- `apply(x, p, d, ctx) -> tensor`: the reference implementation: the float batch `x` (B, 3, h, w)
  with the draws `d`, batched, per sample, no host sync, not modifying `x` in place.

`p` is the op's normalised config (`normalise_params`), `d` what `sample` returned (or a replayed
copy of it). This module imports nothing but the standard library and augbench.errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from augbench.errors import UserError


class PolicyError(UserError):
    """A policy that names an unknown op or parameter, or a value out of range."""


Check = Callable[[str, Any], Any]  # (field path, value) -> normalised value, or raise PolicyError


def _num(path: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PolicyError(f"{path}: expected a number, got {v!r}")
    return float(v)


number = _num


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


def symmetric_range(lo: float, hi: float) -> Check:
    """Kornia's convention for degrees / shear: a scalar s >= 0 means [-s, s]; a pair is the range."""

    def check(path: str, v: Any) -> tuple[float, float]:
        if isinstance(v, (list, tuple)):
            return range_in(lo, hi)(path, v)
        s = _num(path, v)
        if s < 0:
            raise PolicyError(f"{path}: must be >= 0 (a scalar s means [-s, s]), got {s}")
        return range_in(lo, hi)(path, (-s, s))

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


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# when an op runs relative to the others (the fused plan's convention, which the reference path keeps)
RESAMPLE, ORDER, LAST = "resample", "order", "last"
STAGES = (RESAMPLE, ORDER, LAST)


@dataclass
class OpContext:
    """What a sampler or a reference implementation may need beyond its own op's config: the view's
    ops, the input and output sizes, and the engine's settings."""
    ops: list[tuple[str, dict[str, Any]]]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    mask_mode: str = "pixel"
    jitter_order: Any = "batch"
    order_gen: Any = None  # a CPU torch.Generator for per-call orders (colour jitter)


@dataclass(frozen=True)
class AutoOp:
    """One candidate of the RandAugment / TrivialAugment space (augbench.augment.ops.rand_augment),
    declared by the op module that implements it. Kornia's convention: a magnitude m in [0, 30]
    maps to `low + (high - low) * m / 30` (`reverse`: `high - (high - low) * m / 30`); `signed`
    (Kornia's symmetric ops: rotate, shear, translate) takes a random sign per sample, over the
    range (0, high). `params(value, hw, sampled) -> d` turns the (B,) values into the draws of
    `op` (its `apply` runs them; the caller sets the gate); `sampled`: the magnitude was drawn per
    sample (TrivialAugment), not fixed (RandAugment) -- Kornia quantizes the two differently. `whole`:
    the values are whole numbers (posterize's bits); a drawn magnitude on a whole range then gives
    each whole number of it equally often, as Kornia's generator draws them."""
    name: str
    op: str
    low: float
    high: float
    params: Callable | None = None  # None: the op has no magnitude (equalize)
    signed: bool = False
    reverse: bool = False
    whole: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the op's defaults
    doc: str = ""


@dataclass(frozen=True)
class OpSpec:
    """An augmentation op: its name, parameters (default, check), one-line doc and how it runs.
    See the module docstring for `sample` and `apply`. Optional:

    - `group`: the ablation group it belongs to (`Policy.without("erase")`); default its own name.
    - `stage`: "order" (in policy order; default), "resample" (before every other op: the crop,
      the resize and the flip, which the fused plan folds into one resampling) or "last" (after
      every other op, normalize included: the patch mask).
    - `output_size(p) -> (h, w)`: for an op that sets the output size (crop, resize).
    - `kornia(p) -> module` and `from_kornia(data, module) -> d`: the `kornia.augmentation` module
      that is this op (backend="kornia") and its params in this op's format (for replay and tests).
    - `albumentations(p) -> transform`: the albumentations transform that is this op, per image on
      uint8 HWC (backend="albumentations"; its draws follow the same distributions, not the pixels).
    - `auto`: its candidates for RandAugment / TrivialAugment (`AutoOp`); their ops' `apply`
      must honour `d["applied"]`, as every op with a `p` does.
    - `validate(p, where)`: a check across parameters, after each one's own (raise PolicyError).
    """
    name: str
    params: dict[str, tuple[Any, Check]]
    doc: str
    sample: Callable | None = None
    apply: Callable | None = None
    group: str | None = None
    stage: str = ORDER
    output_size: Callable | None = None
    kornia: Callable | None = None
    from_kornia: Callable | None = None
    albumentations: Callable | None = None
    auto: tuple[AutoOp, ...] = ()
    validate: Callable | None = None
    module: str = ""  # where it is defined (shown by `augbench ops`)

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: d for k, (d, _) in self.params.items()}
