"""The op registry: `OPS` (name -> `OpSpec`), the ablation `GROUPS`, `register_op` for a user's own
op, and the lookups policies and backends share (`normalise_params`, `output_hw`).

The built-in ops register themselves from `augbench.augment.ops` (one module each). A user op
registers from any file; once registered it is usable by name in a policy dict or YAML file, on
`Engine(..., backend="fused")` (through the reference path, see `augbench.augment.reference`) and
in sweeps. A process that must know a user op before it reads a policy (a sweep worker, the CLI)
imports the modules listed in $AUGBENCH_OPS (module names or .py paths, separated by commas) the
first time it meets an op name it does not know.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
from dataclasses import replace as _replace
from pathlib import Path
from typing import Any

from augbench.augment.ops.spec import STAGES, OpSpec, PolicyError

OPS: dict[str, OpSpec] = {}
BUILTIN: set[str] = set()  # ops of augbench itself: never replaced (committed results depend on them)

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

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PLUGINS_ENV = "AUGBENCH_OPS"
_loaded_plugins: set[str] = set()


def register_op(spec: OpSpec | None = None, /, *, replace: bool = False, builtin: bool = False,
                **fields: Any) -> OpSpec:
    """Add an op to the registry: an `OpSpec`, or its fields as keywords
    (`register_op(name="invert", params={"p": (0.5, prob)}, sample=..., apply=..., doc="...")`).
    Every default must pass its own check; `apply` is required. `replace=True` lets a user op be
    registered again (a reloaded module); a built-in op is never replaced. Returns the spec."""
    if spec is None:
        fields.setdefault("doc", "")
        try:
            spec = OpSpec(**fields)
        except TypeError as e:
            raise PolicyError(f"register_op: {e}") from None
    elif fields:
        spec = _replace(spec, **fields)
    if not isinstance(spec, OpSpec):
        raise PolicyError(f"register_op: expected an OpSpec or its fields, got {type(spec).__name__}")
    name = spec.name
    if not isinstance(name, str) or not _NAME.match(name):
        raise PolicyError(f"register_op: op name must be lower_snake_case (a-z, 0-9, _), got {name!r}")
    if name in BUILTIN or (name in OPS and not replace):
        raise PolicyError(f"register_op: op {name!r} is already registered"
                          + (" (a built-in op)" if name in BUILTIN else "; pass replace=True to redefine it"))
    if not isinstance(spec.params, dict) or not all(
            isinstance(v, tuple) and len(v) == 2 and callable(v[1]) for v in spec.params.values()):
        raise PolicyError(f"register_op({name!r}): params must map each name to (default, check)")
    if not callable(spec.apply):
        raise PolicyError(f"register_op({name!r}): `apply(x, p, d, ctx)` is required (the op's reference)")
    if spec.sample is not None and not callable(spec.sample):
        raise PolicyError(f"register_op({name!r}): `sample` must be callable or None")
    for hook in ("kornia", "from_kornia", "albumentations", "output_size", "validate"):
        if getattr(spec, hook) is not None and not callable(getattr(spec, hook)):
            raise PolicyError(f"register_op({name!r}): `{hook}` must be callable or None")
    if spec.stage not in STAGES:
        raise PolicyError(f"register_op({name!r}): stage must be one of {list(STAGES)}, got {spec.stage!r}")
    for k, (default, check) in spec.params.items():  # a bad default fails here, not in a policy
        check(f"{name}.{k} (default)", default)
    if spec.group is not None and (not isinstance(spec.group, str) or not _NAME.match(spec.group)):
        raise PolicyError(f"register_op({name!r}): group must be lower_snake_case, got {spec.group!r}")
    OPS[name] = spec
    if builtin:
        BUILTIN.add(name)
    if spec.group is not None and name not in GROUPS.get(spec.group, ()):
        GROUPS[spec.group] = (*GROUPS.get(spec.group, ()), name)
    return spec


def unregister_op(name: str) -> None:
    """Remove a user op (tests; a built-in op cannot be removed)."""
    if name in BUILTIN:
        raise PolicyError(f"unregister_op: {name!r} is a built-in op")
    spec = OPS.pop(name, None)
    if spec is not None and spec.group is not None:
        rest = tuple(o for o in GROUPS.get(spec.group, ()) if o != name)
        if rest:
            GROUPS[spec.group] = rest
        else:
            GROUPS.pop(spec.group, None)


def load_plugins() -> list[str]:
    """Import the user op modules named in $AUGBENCH_OPS (module names or .py paths, comma
    separated), once each; returns those imported now."""
    done = []
    for item in (s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",")):
        if not item or item in _loaded_plugins:
            continue
        _loaded_plugins.add(item)
        try:
            if item.endswith(".py"):
                path = Path(item).expanduser().resolve()
                mod_name = f"augbench_user_ops.{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                importlib.import_module(item)
        except (ImportError, OSError) as e:
            _loaded_plugins.discard(item)
            raise PolicyError(f"${PLUGINS_ENV}: cannot import user ops from {item!r}: {e}") from None
        done.append(item)
    return done


def get_op(op: Any, where: str = "policy") -> OpSpec:
    """The spec of `op`, loading $AUGBENCH_OPS once if it is not registered yet."""
    if isinstance(op, str) and op not in OPS:
        load_plugins()
    if not isinstance(op, str) or op not in OPS:
        raise PolicyError(f"{where}: unknown op {op!r}; known ops: {sorted(OPS)}")
    return OPS[op]


def normalise_params(op: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    """Fill defaults and check every parameter of one op; `where` prefixes error messages."""
    spec = get_op(op, where)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise PolicyError(f"{where}: unknown parameter(s) {unknown} of {op}; known: {sorted(spec.params)}")
    out: dict[str, Any] = {}
    for name, (default, check) in spec.params.items():
        v = params.get(name, default)
        out[name] = check(f"{where}.{name}", v)
    if spec.validate is not None:
        spec.validate(out, where)
    return out


def output_hw(ops, hw: tuple[int, int]) -> tuple[int, int]:
    """The size a view's ops output for input size `hw`: the first op that sets it, else `hw`."""
    for op, p in ops:
        spec = OPS.get(op)
        if spec is not None and spec.output_size is not None:
            return tuple(spec.output_size(p))
    return hw


def stage_of(op: str) -> str:
    return OPS[op].stage


def auto_space() -> dict[str, Any]:
    """Every RandAugment / TrivialAugment candidate the registered ops declare: name -> AutoOp."""
    return {a.name: a for spec in OPS.values() for a in spec.auto}
