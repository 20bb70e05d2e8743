"""A Policy is data: an ordered list of ops with parameters, plus optional per-view overrides
(BYOL's asymmetric blur/solarize). Named policies, YAML I/O, validation, and the generators
that derive ablations from a base (leave-one-out, only-these, pairwise grid, strength sweeps).
"""
from __future__ import annotations

import copy
import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from augbench.augment.ops import GROUPS, OPS, PolicyError, normalise_params
from augbench.augment.ops import rand_augment as _ra
from augbench.augment.ops.spec import CIFAR10_MEAN, size as check_size
from augbench.augment.sizing import blur_kernel_size, resolve_stats
from augbench.errors import read_yaml

__all__ = ["Policy", "PolicyError", "NAMED", "leave_one_out", "only", "pairwise", "strength_sweep",
           "rand_augment", "trivial_augment"]

# `Policy.transform` returns an augbench.augment.transform.ViewTransform. That module imports the
# engine, which imports this one, so it is not imported here: it sets this when it loads (always
# before a Policy exists: importing this module runs augbench/augment/__init__.py, which loads it).
_view_transform: Any = None


def _plain(v: Any) -> Any:
    """Tuples -> lists so that to_dict() round-trips through YAML/JSON unchanged."""
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class Policy:
    name: str
    ops: tuple[tuple[str, dict[str, Any]], ...]  # ((op, params), ...) in application order
    views: tuple[dict[str, dict[str, Any]], ...] = field(default_factory=tuple)  # per-view param overrides

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "policy") -> "Policy":
        if not isinstance(d, dict):
            raise PolicyError(f"{source}: expected a mapping with 'name' and 'ops', got {type(d).__name__}")
        unknown = sorted(set(d) - {"name", "ops", "views"})
        if unknown:
            raise PolicyError(f"{source}: unknown key(s) {unknown}; a policy has 'name', 'ops' and optional 'views'")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise PolicyError(f"{source}.name: a policy needs a non-empty name")
        raw_ops = d.get("ops")
        if not isinstance(raw_ops, list) or not raw_ops:
            raise PolicyError(f"{source}.ops: expected a non-empty list of ops")
        ops: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for i, item in enumerate(raw_ops):
            where = f"{source}.ops[{i}]"
            if not isinstance(item, dict) or "op" not in item:
                raise PolicyError(f"{where}: expected a mapping with an 'op' key, got {item!r}")
            params = {k: v for k, v in item.items() if k != "op"}
            op = item["op"]
            if isinstance(op, str) and op in OPS:
                where = f"{where}.{op}"  # name the op, not just its index
            if op in seen:
                raise PolicyError(f"{where}: op {op!r} appears twice")
            seen.add(op)
            ops.append((op, normalise_params(op, params, where)))
        if "random_resized_crop" in seen and "resize" in seen:
            raise PolicyError(f"{source}.ops: use either random_resized_crop or resize, not both")
        names = [o for o, _ in ops]
        if "normalize" in names and names.index("normalize") != len(names) - 1 and names[-1] != "patch_mask":
            raise PolicyError(f"{source}.ops: normalize must come last (or just before patch_mask)")
        raw_views = d.get("views") or []
        if not isinstance(raw_views, list):
            raise PolicyError(f"{source}.views: expected a list of per-view overrides")
        views = []
        for vi, ov in enumerate(raw_views):
            where = f"{source}.views[{vi}]"
            if not isinstance(ov, dict):
                raise PolicyError(f"{where}: expected a mapping op -> {{param: value}}")
            clean: dict[str, dict[str, Any]] = {}
            for op, params in ov.items():
                if op not in seen:
                    raise PolicyError(f"{where}.{op}: overrides an op the policy does not have (ops: {names})")
                if not isinstance(params, dict):
                    raise PolicyError(f"{where}.{op}: expected {{param: value}}")
                base = dict(ops[names.index(op)][1])
                merged = normalise_params(op, {**base, **params}, f"{where}.{op}")
                clean[op] = {k: merged[k] for k in params}
            views.append(clean)
        return cls(name=name, ops=tuple(ops), views=tuple(views))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Policy":
        data = read_yaml(path, "policy file", PolicyError)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def named(cls, name: str, size: int | Sequence[int] | None = None, dataset: Any = None) -> "Policy":
        """A registered policy by name, or a YAML file path; with `size` / `dataset`, adapted by
        `for_size` (the registry's policies are written for 32 px CIFAR-10)."""
        if name in NAMED:
            pol = cls.from_dict(copy.deepcopy(NAMED[name]), source=f"policy {name!r}")
        elif name.endswith((".yaml", ".yml")):
            pol = cls.from_yaml(name)
        else:
            raise PolicyError(f"unknown policy {name!r}; named policies: {sorted(NAMED)} (or a path to a .yaml file)")
        return pol if size is None and dataset is None else pol.for_size(size, dataset)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "ops": [{"op": op, **_plain(p)} for op, p in self.ops]}
        if self.views:
            d["views"] = [_plain(v) for v in self.views]
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # ------------------------------------------------------------------ queries
    @property
    def op_names(self) -> list[str]:
        return [op for op, _ in self.ops]

    def has(self, op: str) -> bool:
        return op in self.op_names

    def params(self, op: str) -> dict[str, Any]:
        for o, p in self.ops:
            if o == op:
                return dict(p)
        raise KeyError(op)

    def for_view(self, i: int) -> list[tuple[str, dict[str, Any]]]:
        """The ops of view i with that view's overrides applied (overrides cycle if fewer than views)."""
        ov = self.views[i % len(self.views)] if self.views else {}
        return [(op, {**p, **ov.get(op, {})}) for op, p in self.ops]

    @property
    def output_size(self) -> tuple[int, int] | None:
        for op, p in self.ops:
            if OPS[op].output_size is not None:
                return tuple(OPS[op].output_size(p))
        return None

    def transform(self, views: int = 2, seed: int = 0, backend: str = "fused", **engine_kwargs: Any):
        """This policy per image, for a Dataset / DataLoader (see `ViewTransform`)."""
        return _view_transform(self, views=views, seed=seed, backend=backend, **engine_kwargs)

    # ------------------------------------------------------------------ derivation
    def _warn_size_only(self, op: str, size: Any) -> None:
        """with_params(size=...) keeps the blur kernel and the stats: say so where they no longer fit."""
        new = check_size(f"{self.name}.{op}.size", size)
        kept = []
        if self.has("gaussian_blur") and self.params("gaussian_blur")["kernel_size"] != blur_kernel_size(min(new)):
            kept.append(f"gaussian_blur.kernel_size={self.params('gaussian_blur')['kernel_size']}")
        if self.has("normalize") and tuple(self.params("normalize")["mean"]) == CIFAR10_MEAN and min(new) > 64:
            kept.append("normalize's CIFAR-10 mean/std")
        if kept:
            warnings.warn(f"policy {self.name!r}: with_params({op}, size={list(new)}) changes the output size only and "
                          f"keeps {' and '.join(kept)}; policy.for_size({min(new)}, dataset=...) adapts them",
                          UserWarning, stacklevel=3)

    def for_size(self, size: int | Sequence[int] | None, dataset: Any = None, name: str | None = None) -> "Policy":
        """The same policy for another image size and data set, as SimCLR / lightly adapt theirs:
        the crop (or resize) outputs `size`, the blur kernel is ~10 % of the shorter side (odd),
        and normalize uses `dataset`'s statistics: a name ("cifar10", "cifar100", "imagenet") or a
        (mean, std) pair (`channel_stats(images)`). `size=None` keeps the size; `dataset=None`
        keeps the mean/std. Per-view overrides of what this sets are dropped."""
        hw = check_size("for_size.size", size) if size is not None else None
        stats = resolve_stats(dataset)
        set_: dict[str, dict[str, Any]] = {}
        for op, p in self.ops:
            if op in ("random_resized_crop", "resize") and hw is not None:
                set_[op] = {"size": hw}
            elif op == "gaussian_blur" and hw is not None:
                set_[op] = {"kernel_size": blur_kernel_size(min(hw))}
            elif op == "normalize" and stats is not None:
                set_[op] = {"mean": stats[0], "std": stats[1]}
        ops = [(o, {**p, **set_.get(o, {})}) for o, p in self.ops]
        views = [{o: {k: v for k, v in p.items() if k not in set_.get(o, {})} for o, p in v.items()}
                 for v in self.views]
        tag = ("" if hw is None else f"@{hw[0]}px" if hw[0] == hw[1] else f"@{hw[0]}x{hw[1]}px") + (
            f"-{dataset}" if isinstance(dataset, str) else "-stats" if dataset is not None else "")
        return self.with_ops(name or f"{self.name}{tag}", ops, [{o: p for o, p in v.items() if p} for v in views])

    def with_ops(self, name: str, ops: Iterable[tuple[str, dict[str, Any]]],
                 views: Sequence[dict[str, dict[str, Any]]] | None = None) -> "Policy":
        ops = list(ops)
        kept = {o for o, _ in ops}
        vs = self.views if views is None else views
        vs = [{o: p for o, p in v.items() if o in kept} for v in vs]
        if all(not v for v in vs):
            vs = []
        return Policy.from_dict({"name": name, "ops": [{"op": o, **_plain(p)} for o, p in ops], "views": _plain(vs)},
                                source=f"policy {name!r}")

    def without(self, *groups: str, name: str | None = None) -> "Policy":
        """Drop the ops of these groups (see ops.GROUPS). Dropping the crop keeps a plain resize
        to the same size, so the output shape does not change."""
        drop = _ops_of(groups)
        ops = []
        for op, p in self.ops:
            if op in drop:
                if op == "random_resized_crop":
                    ops.append(("resize", {"size": p["size"]}))
                continue
            ops.append((op, p))
        return self.with_ops(name or f"{self.name}-no_{'_'.join(groups)}", ops)

    def only(self, *groups: str, name: str | None = None) -> "Policy":
        """Keep only the ops of these groups (normalize and the output size are always kept)."""
        keep = _ops_of(groups) | {"normalize"}
        ops = []
        for op, p in self.ops:
            if op in keep:
                ops.append((op, p))
            elif op == "random_resized_crop":
                ops.append(("resize", {"size": p["size"]}))
            elif op == "resize":
                ops.append((op, p))
        return self.with_ops(name or f"{self.name}-only_{'_'.join(groups)}", ops)

    def with_params(self, op: str, name: str | None = None, **params: Any) -> "Policy":
        """Set parameters of one op (adding the op before normalize if the policy lacks it).
        A new `size` changes the size only (warned): `for_size` adapts the blur and the stats too."""
        if op in ("random_resized_crop", "resize") and "size" in params and self.has(op):
            self._warn_size_only(op, params["size"])
        ops = [(o, dict(p)) for o, p in self.ops]
        names = [o for o, _ in ops]
        if op in names:
            ops[names.index(op)][1].update(params)
        else:
            at = names.index("normalize") + (1 if op == "patch_mask" else 0) if "normalize" in names else len(ops)
            ops.insert(at, (op, normalise_params(op, params, f"{self.name}.{op}")))
        # an override in `views` wins over the base value: drop the ones this call sets
        views = [{o: {k: v for k, v in p.items() if not (o == op and k in params)} for o, p in v.items()}
                 for v in self.views]
        views = [{o: p for o, p in v.items() if p} for v in views]
        kv = ",".join(f"{k}={_plain(v)}" for k, v in params.items())
        return self.with_ops(name or f"{self.name}@{op}.{kv}", ops, views)


def _ops_of(groups: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for g in groups:
        if g in GROUPS:
            out.update(GROUPS[g])
        elif g in OPS:
            out.add(g)
        else:
            raise PolicyError(f"unknown augmentation group {g!r}; groups: {sorted(GROUPS)}, ops: {sorted(OPS)}")
    return out


# ---------------------------------------------------------------------- generators
DEFAULT_GROUPS = ("crop", "flip", "color", "jitter", "gray", "blur", "solarize")


def present_groups(base: Policy, groups: Iterable[str] = DEFAULT_GROUPS) -> list[str]:
    return [g for g in groups if any(base.has(o) for o in GROUPS[g])]


def _derived_name(base: Policy, suffix: str) -> str:
    # ablations of the shared `full` base keep the short registry names (no_crop, crop_only, ...)
    return suffix if base.name == "full" else f"{base.name}-{suffix}"


def leave_one_out(base: Policy, groups: Iterable[str] | None = None) -> list[Policy]:
    """The base, then the base without each group in turn."""
    groups = present_groups(base, groups or DEFAULT_GROUPS)
    return [base] + [base.without(g, name=_derived_name(base, f"no_{g}")) for g in groups]


def only(base: Policy, groups: Iterable[str]) -> Policy:
    groups = list(groups)
    return base.only(*groups, name=_derived_name(base, "_".join(groups) + "_only"))


def pairwise(base: Policy, groups: Iterable[str] = ("crop", "color", "blur", "flip")) -> list[Policy]:
    """SimCLR Fig. 5: every single group and every pair, each applied alone."""
    groups = present_groups(base, groups)
    out = [base.only(g, name=_derived_name(base, f"pair_{g}")) for g in groups]
    for a, b in itertools.combinations(groups, 2):
        out.append(base.only(a, b, name=_derived_name(base, f"pair_{a}+{b}")))
    return out


def strength_sweep(base: Policy, knob: str, values: Iterable[float]) -> list[Policy]:
    """One policy per value of a strength knob:
    - ``crop_scale``: the minimum of random_resized_crop's `scale`;
    - ``color``: SimCLR's colour strength s (jitter 0.8s, 0.8s, 0.8s, 0.2s);
    - ``mask_ratio``: patch_mask `ratio` (0 removes the mask);
    - ``<op>.<param>``: any scalar parameter."""
    out = []
    for v in values:
        v = float(v)
        tag = f"{knob}={v:g}"
        name = _derived_name(base, tag)
        if knob == "crop_scale":
            if not base.has("random_resized_crop"):
                raise PolicyError(f"strength sweep crop_scale: base policy {base.name!r} has no random_resized_crop")
            hi = base.params("random_resized_crop")["scale"][1]
            out.append(base.with_params("random_resized_crop", name=name, scale=(v, max(v, hi))))
        elif knob == "color":
            out.append(base.with_params("color_jitter", name=name, brightness=0.8 * v, contrast=0.8 * v,
                                        saturation=0.8 * v, hue=min(0.2 * v, 0.5)))
        elif knob == "mask_ratio":
            if v == 0.0:
                p = base.without("mask", name=name) if base.has("patch_mask") else base.with_ops(name, base.ops)
                out.append(p)
            else:
                out.append(base.with_params("patch_mask", name=name, ratio=v))
        elif "." in knob:
            op, param = knob.split(".", 1)
            out.append(base.with_params(op, name=name, **{param: v}))
        else:
            raise PolicyError(f"unknown strength knob {knob!r}; use crop_scale, color, mask_ratio or <op>.<param>")
    return out


def rand_augment(base: Policy, n: int = 2, m: float = 9, ops: Sequence[Any] | None = None,
                 name: str | None = None) -> Policy:
    """The base plus RandAugment (before normalize): per sample, `n` distinct candidates of `ops`
    (default: Kornia's RandAugment candidates augbench has, with Kornia's ranges) in a random
    order at the fixed magnitude `m` in [0, 30] (see augbench.augment.ops.rand_augment)."""
    params: dict[str, Any] = {"n": n, "magnitude": m}
    if ops is not None:
        params["ops"] = list(ops)
    return base.with_params("rand_augment", name=name or _derived_name(base, f"ra_n{n}_m{float(m):g}"), **params)


def trivial_augment(base: Policy, ops: Sequence[Any] | None = None, name: str | None = None) -> Policy:
    """The base plus TrivialAugment (before normalize): per sample one candidate of `ops`
    (default: Kornia's TrivialAugment candidates augbench has, with Kornia's ranges) at a
    magnitude drawn uniformly from [0, 30]. Unlike Kornia, which picks one op for the whole
    batch, each sample picks its own (see augbench.augment.ops.rand_augment)."""
    return base.with_params("rand_augment", name=name or _derived_name(base, "trivial_augment"), n=1,
                            magnitude=[0.0, _ra.MAX_MAGNITUDE],
                            ops=[list(o) if isinstance(o, tuple) else o for o in (ops or _ra.TRIVIAL_AUGMENT_OPS)])


# ---------------------------------------------------------------------- the registry
def _op(op: str, **p: Any) -> dict[str, Any]:
    return {"op": op, **p}


_CROP = _op("random_resized_crop", size=32, scale=[0.08, 1.0], ratio=[0.75, 4 / 3])
_FLIP = _op("horizontal_flip", p=0.5)
_JITTER = _op("color_jitter", brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8)
_GRAY = _op("grayscale", p=0.2)
_NORM = _op("normalize")
# 32 px: a 3-tap kernel is ~10 % of the side, as SimCLR's 23 taps are of 224 px.
_BLUR = dict(kernel_size=3, sigma=[0.1, 2.0])

# `full` is the shared base every ablation derives from: BYOL's ops with the two views' blur and
# solarize probabilities averaged into one symmetric policy, so one policy serves every method.
_FULL = {"name": "full", "ops": [_CROP, _FLIP, _JITTER, _GRAY, _op("gaussian_blur", p=0.5, **_BLUR),
                                  _op("solarize", threshold=0.5, p=0.1), _NORM]}

_BASE = Policy.from_dict(_FULL, source="policy 'full'")


def _registry() -> dict[str, dict[str, Any]]:
    reg: dict[str, dict[str, Any]] = {"full": _FULL}
    # the methods' own published recipes, adapted to 32 px
    reg["simclr"] = {"name": "simclr", "ops": [_CROP, _FLIP, _JITTER, _GRAY, _op("gaussian_blur", p=0.5, **_BLUR), _NORM]}
    byol_views = [{"gaussian_blur": {"p": 1.0}, "solarize": {"p": 0.0}},
                  {"gaussian_blur": {"p": 0.1}, "solarize": {"p": 0.2}}]
    for n in ("byol", "vicreg"):
        reg[n] = {"name": n, "ops": [_CROP, _FLIP, _JITTER, _GRAY, _op("gaussian_blur", p=1.0, **_BLUR),
                                     _op("solarize", threshold=0.5, p=0.0), _NORM], "views": byol_views}
    for p in leave_one_out(_BASE)[1:]:
        reg[p.name] = p.to_dict()
    for groups in (("crop",), ("crop", "flip"), ("crop", "color"), ("crop", "blur")):
        p = only(_BASE, groups)
        reg[p.name] = p.to_dict()
    crop_only = reg.pop("crop_only")
    reg["crop_only"] = {**crop_only, "name": "crop_only"}
    # the rest of SimCLR Fig. 5's diagonal: one group alone, after the resize that replaces the crop
    for g in ("color", "blur", "flip"):
        reg[f"{g}_only"] = only(_BASE, (g,)).to_dict()
    mask = _BASE.without("crop", name="mask_instead_of_crop").with_params(
        "patch_mask", name="mask_instead_of_crop", ratio=0.5, patch_size=4)
    reg["mask_instead_of_crop"] = mask.to_dict()
    # weak augmentation (the momentum-encoder claim): crop with a large minimum scale + flip
    reg["weak"] = {"name": "weak", "ops": [_op("random_resized_crop", size=32, scale=[0.5, 1.0], ratio=[0.75, 4 / 3]),
                                           _FLIP, _NORM]}
    reg["none"] = {"name": "none", "ops": [_op("resize", size=32), _NORM]}
    return reg


NAMED: dict[str, dict[str, Any]] = _registry()
