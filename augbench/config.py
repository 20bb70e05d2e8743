"""One run's configuration: a flat, validated dataclass whose hash is the run id.

Flat on purpose: sweep axes override fields by name (``method``, ``policy``, ``seed``, ...).
The policy is stored as its full spec (not just a name), so two policies that differ in one
parameter get different run ids.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from augbench import recipes
from augbench.errors import UserError, read_yaml
from augbench.recipes import GENERIC

METHODS = ("simclr", "byol", "vicreg", "barlow", "simsiam")
BACKBONES = ("resnet18", "resnet50", "vit_nano", "vit_micro", "vit_tiny", "vit_small")
OPTIMIZERS = ("sgd", "lars", "adamw")
BACKENDS = ("fused", "kornia")
HEAD_NORMS = ("bn", "none")  # augbench.models.heads.NORMS / OUT_NORMS (kept here: config imports no torch)
HEAD_OUT_NORMS = ("none", "bn", "bn_noaffine")


class _FromRecipe:
    """Default of the fields a recipe sets: filled in __post_init__ from the run's recipe."""

    def __repr__(self) -> str:
        return "<from the recipe>"


FROM_RECIPE: Any = _FromRecipe()

# Fields that change how a run executes but not what it computes; left out of the run id.
EXECUTION_FIELDS = frozenset({"ckpt_every", "progress", "num_threads", "device", "compile", "tensorboard",
                              "channels_last", "online_knn_every", "online_knn_per_class"})
# Hashed fields added after rows were committed: at this value they are left out of to_dict (so of the
# run id and of the row), so the run ids and cells of earlier rows stay what they were.
LATE_DEFAULTS: dict[str, Any] = {"pred_lr_mult": 1.0, "amp_cpu": False}
# torch.compile of the training step: auto = on for CUDA (CUDA graphs), off on the CPU; or a torch.compile mode
COMPILE_SETTINGS = ("auto", "on", "off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class ConfigError(UserError):
    """A bad configuration value; the message names the field."""


@dataclass
class RunConfig:
    # what is trained
    method: str = "simclr"
    policy: Any = "simclr"  # a registered name, or a full policy dict (see augbench.augment.policy)
    backbone: str = "resnet18"
    cifar_stem: bool = True
    width: int = 64  # ResNet base width (64 = standard); ViT embed dim comes from the backbone name
    patch_size: int = 4  # ViT patch size (4 for 32 px)
    dataset: str = "cifar10"
    subset: int | None = None  # images per class for quick runs (class-balanced); None = all
    image_size: int = 32
    recipe: str = recipes.DEFAULT  # where the fields marked R come from (see augbench/recipes.yaml, `augbench recipes`)
    # heads (R)
    proj_depth: int = FROM_RECIPE  # 0 = no projector, 1..3 linear/MLP layers
    proj_hidden: int = FROM_RECIPE
    proj_dim: int = FROM_RECIPE
    proj_norm: str = FROM_RECIPE  # between the projector's layers: "bn" (BatchNorm) or "none"
    proj_out_norm: str | None = FROM_RECIPE  # on its output: "none", "bn", "bn_noaffine"; None = the method's
    pred_hidden: int = FROM_RECIPE  # BYOL/SimSiam predictor
    pred_lr_mult: float = FROM_RECIPE  # the predictor's lr over the rest's (DirectPred: a faster predictor)
    momentum: bool | None = None  # EMA target encoder; None = the method's default (BYOL on)
    tau_base: float = FROM_RECIPE  # EMA coefficient at step 0, cosine to 1 (R)
    # loss knobs (R)
    temperature: float = FROM_RECIPE  # SimCLR NT-Xent
    vicreg_weights: tuple[float, float, float] = FROM_RECIPE  # invariance, variance, covariance
    barlow_lambda: float = FROM_RECIPE
    barlow_scale: float = FROM_RECIPE  # Barlow Twins loss multiplier (solo-learn's scale_loss)
    # optimisation (R, except epochs and batch_size)
    epochs: int = 100
    batch_size: int = 512
    optimizer: str = FROM_RECIPE
    lr: float = FROM_RECIPE  # lr_scaling linear: base lr at batch 256, scaled by global batch / 256
    lr_scaling: str = FROM_RECIPE  # "linear" or "none"
    weight_decay: float = FROM_RECIPE
    exclude_bias_norm: bool = FROM_RECIPE  # no weight decay (nor LARS trust ratio) on biases and norms
    lars_eta: float = FROM_RECIPE  # LARS trust coefficient
    lars_clip: bool = FROM_RECIPE  # LARS: clip the trust ratio at the lr (solo-learn's clip_lr)
    warmup_epochs: int = FROM_RECIPE
    views: int = 2
    backend: str = "fused"
    amp: bool = True  # bf16 autocast + channels_last on CUDA; ignored on CPU
    amp_cpu: bool = False  # bf16 autocast of the CPU training step (pays with AVX512-BF16/AMX); eval stays fp32
    compile: str = "auto"  # see COMPILE_SETTINGS (true/false also accepted); execution only, not hashed
    channels_last: bool | None = None  # NHWC activations; None = auto: on CUDA with amp, on the CPU for ResNets
    seed: int = 0
    # evaluation
    knn_k: int = 200
    knn_t: float = 0.1
    linear_epochs: int = 100
    linear_lr: float = 0.1
    finetune_epochs: int = 0  # 0 = skip fine-tuning
    finetune_lr: float = 0.01
    eval_subset: int | None = None  # test images per class for evaluation; None = all
    # execution (not hashed)
    ckpt_every: int = 1  # epochs between checkpoints (0 = only at the end / on request)
    progress: bool = True
    num_threads: int | None = None
    device: str = "auto"
    tensorboard: bool = False  # also write the per-epoch log as TensorBoard scalars (needs the extra)
    online_knn_every: int = 0  # epochs between kNN checks during training, logged as knn_online (0 = off)
    online_knn_per_class: int = 100  # online kNN: train images (bank) and test images (queries) per class

    # ---------------------------------------------------------------- construction
    def __post_init__(self) -> None:
        """Fill the fields left to the recipe. Precedence: built-in GENERIC < the recipe's value for
        this method < a value given here (config file, sweep base/axes, flags all arrive as given
        values). Which fields were given is kept, so that replace() re-applies the recipe of a new
        method or recipe to the others."""
        self._given = frozenset(n for n in RECIPE_FIELDS if getattr(self, n) is not FROM_RECIPE)
        filled = {**GENERIC, **recipes.values_for(self.recipe, self.method, self.epochs)}
        for name in RECIPE_FIELDS - self._given:
            setattr(self, name, filled[name])
        if isinstance(self.vicreg_weights, list):
            self.vicreg_weights = tuple(self.vicreg_weights)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping of run settings, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known keys: {sorted(known)}")
        cfg = cls(**d)
        cfg.validate(source=source)
        return cfg

    @classmethod
    def from_concrete(cls, d: dict[str, Any], *, source: str = "config") -> "RunConfig":
        """A config written by to_dict (a row's, a job's): a late field it lacks was at its default
        (LATE_DEFAULTS), not "from the recipe", which may have changed since."""
        return cls.from_dict({**LATE_DEFAULTS, **d} if isinstance(d, dict) else d, source=source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        data = read_yaml(path, "config file", ConfigError)
        return cls.from_dict(data or {}, source=str(path))

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with `changes`; fields this config took from its recipe are taken again from the
        (possibly new) method's or recipe's, those given explicitly are kept."""
        d = {k: v for k, v in self.to_dict(expand_policy=False).items()
             if k not in RECIPE_FIELDS or k in self._given}
        # to_dict drops a late field at its default; given, it stays given
        d.update({k: getattr(self, k) for k in LATE_DEFAULTS if k in self._given})
        return RunConfig.from_dict({**d, **changes})

    @property
    def given(self) -> frozenset[str]:
        """The recipe-settable fields given explicitly (not filled from the recipe)."""
        return self._given

    # ---------------------------------------------------------------- validation
    def validate(self, *, source: str = "config") -> None:
        def bad(name: str, msg: str) -> ConfigError:
            return ConfigError(f"{source}: field '{name}' {msg} (got {getattr(self, name)!r})")

        def check_int(name: str, lo: int, hi: int | None = None, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad(name, "must be an integer")
            if v < lo or (hi is not None and v > hi):
                raise bad(name, f"must be in [{lo}, {hi if hi is not None else 'inf'}]")

        def check_float(name: str, lo: float, hi: float | None = None, open_lo: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise bad(name, "must be a number")
            if v < lo or (open_lo and v == lo) or (hi is not None and v > hi):
                raise bad(name, f"must be in {'(' if open_lo else '['}{lo}, {hi if hi is not None else 'inf'}]")

        def check_choice(name: str, choices: tuple[str, ...]) -> None:
            if getattr(self, name) not in choices:
                raise bad(name, f"must be one of {list(choices)}")

        def check_bool(name: str, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if not (isinstance(v, bool) or (allow_none and v is None)):
                raise bad(name, "must be true or false")

        check_choice("method", METHODS)
        recipes.check(self.recipe, self.method, ConfigError, f"{source}: field 'recipe'")
        check_choice("lr_scaling", ("linear", "none"))
        check_choice("backbone", BACKBONES)
        check_choice("optimizer", OPTIMIZERS)
        check_choice("backend", BACKENDS)
        check_choice("proj_norm", HEAD_NORMS)
        if self.proj_out_norm is not None:
            check_choice("proj_out_norm", HEAD_OUT_NORMS)
        from augbench.data.dataset import NAMES as DATASETS

        if not isinstance(self.dataset, str) or not (
            self.dataset in DATASETS or self.dataset.startswith("imagefolder:")
        ):
            raise bad("dataset", f"must be one of {list(DATASETS)} or 'imagefolder:<path>'")
        for name in ("cifar_stem", "amp", "amp_cpu", "progress", "tensorboard", "exclude_bias_norm", "lars_clip"):
            check_bool(name)
        if not (isinstance(self.compile, bool) or self.compile in COMPILE_SETTINGS):
            raise bad("compile", f"must be true, false or one of {list(COMPILE_SETTINGS)}")
        check_bool("momentum", allow_none=True)
        check_bool("channels_last", allow_none=True)
        check_int("width", 1)
        check_int("patch_size", 1)
        check_int("subset", 1, allow_none=True)
        check_int("eval_subset", 1, allow_none=True)
        check_int("image_size", 8)
        check_int("proj_depth", 0, 3)
        check_int("proj_hidden", 1)
        check_int("proj_dim", 1)
        check_int("pred_hidden", 1)
        check_float("tau_base", 0.0, 1.0)
        check_float("pred_lr_mult", 0.0, None, open_lo=True)
        if self.pred_lr_mult != 1 and self.method not in ("byol", "simsiam"):
            raise bad("pred_lr_mult", f"applies to a method with a predictor (byol, simsiam), not {self.method}")
        check_float("temperature", 0.0, None, open_lo=True)
        check_float("barlow_lambda", 0.0)
        check_float("barlow_scale", 0.0, None, open_lo=True)
        check_float("lars_eta", 0.0, None, open_lo=True)
        if not (isinstance(self.vicreg_weights, tuple) and len(self.vicreg_weights) == 3
                and all(isinstance(w, (int, float)) and w >= 0 for w in self.vicreg_weights)):
            raise bad("vicreg_weights", "must be three non-negative numbers")
        check_int("epochs", 1)
        check_int("batch_size", 2)
        check_float("lr", 0.0, None, open_lo=True)
        check_float("weight_decay", 0.0)
        check_int("warmup_epochs", 0)
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise bad("warmup_epochs", f"must be below epochs ({self.epochs})")
        check_int("views", 2, 8)
        check_int("seed", 0)
        check_int("knn_k", 1)
        check_float("knn_t", 0.0, None, open_lo=True)
        check_int("linear_epochs", 0)
        check_float("linear_lr", 0.0, None, open_lo=True)
        check_int("finetune_epochs", 0)
        check_float("finetune_lr", 0.0, None, open_lo=True)
        check_int("ckpt_every", 0)
        check_int("online_knn_every", 0)
        check_int("online_knn_per_class", 1)
        check_int("num_threads", 1, allow_none=True)
        if not isinstance(self.device, str):
            raise bad("device", "must be a string such as 'auto', 'cpu' or 'cuda'")
        if self.method in ("byol", "simsiam") and self.proj_depth == 0:
            raise bad("proj_depth", f"must be >= 1 for {self.method} (its predictor needs a projector)")
        # The policy must resolve; this raises a PolicyError naming the op/field.
        self.policy_spec()


    # ---------------------------------------------------------------- views
    def policy_spec(self) -> dict[str, Any]:
        """The full policy as a dict (named policies expanded), validated."""
        from augbench.augment.policy import Policy

        return self.policy_obj().to_dict() if not isinstance(self.policy, Policy) else self.policy.to_dict()

    def policy_obj(self):
        from augbench.augment.policy import Policy

        if isinstance(self.policy, Policy):
            return self.policy
        if isinstance(self.policy, str):
            # a named policy (written for 32 px CIFAR-10) outputs `image_size` and normalizes with its
            # data set's own statistics where they are known (Policy.for_size); it keeps its name,
            # which the analysis reads arms from
            return self.adapt_policy(Policy.named(self.policy))
        if isinstance(self.policy, dict):  # a mapping is the user's (or a row's): taken as it is
            return Policy.from_dict(self.policy)
        raise ConfigError(f"field 'policy' must be a policy name or mapping (got {type(self.policy).__name__})")

    def adapt_policy(self, pol):
        """A policy written for 32 px CIFAR-10 (the registry's, or one a sweep generator derived from
        them) adapted to this run's image_size and data set, keeping its name."""
        from augbench.augment.sizing import DATASET_STATS

        stats = self.dataset if self.dataset in DATASET_STATS and self.dataset != "cifar10" else None
        size = self.image_size if isinstance(self.image_size, int) and self.image_size != 32 else None
        if (stats and pol.has("normalize")) or (size and pol.output_size is not None):
            pol = pol.for_size(size, stats, name=pol.name)
        return pol

    @property
    def policy_name(self) -> str:
        return self.policy_obj().name

    @property
    def uses_momentum(self) -> bool:
        return self.method == "byol" if self.momentum is None else bool(self.momentum)

    def to_dict(self, *, expand_policy: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["vicreg_weights"] = list(self.vicreg_weights)
        for k, v in LATE_DEFAULTS.items():
            if d[k] == v:
                del d[k]
        d["policy"] = self.policy_spec() if expand_policy else (
            self.policy.to_dict() if hasattr(self.policy, "to_dict") else self.policy)
        return d

    def hashed_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}

    @property
    def run_id(self) -> str:
        """Hash of everything that determines the result, the full policy spec included."""
        blob = json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


RECIPE_FIELDS = frozenset(f.name for f in fields(RunConfig) if f.default is FROM_RECIPE)
assert RECIPE_FIELDS == set(GENERIC), "every recipe field needs a GENERIC value"


# ---------------------------------------------------------------------------- help text of the fields
# `augbench train --help`: what a RunConfig field is when its comment above is missing or does not say
# (the comment, where there is one, comes first)
FIELD_HELP = {
    "method": "the self-supervised method",
    "backbone": "the encoder",
    "cifar_stem": "ResNet: one 3x3 stride-1 conv in place of the 7x7 conv + max-pool (for 32 px images)",
    "dataset": "training and evaluation data, under $AUGBENCH_DATA; `augbench data get NAME` fetches "
               "cifar10, cifar100, stl10",
    "image_size": "side of the views, in pixels",
    "proj_depth": "projector depth",
    "proj_hidden": "projector hidden width",
    "proj_dim": "projector output width",
    "proj_norm": "projector norm",
    "proj_out_norm": "projector output norm",
    "pred_hidden": "predictor hidden width",
    "pred_lr_mult": "the predictor's lr as a multiple of the lr (1 = the same)",
    "temperature": "softmax temperature",
    "vicreg_weights": "VICReg loss weights",
    "barlow_lambda": "Barlow Twins weight of the off-diagonal (redundancy) term",
    "epochs": "pretraining epochs",
    "batch_size": "images per step, per process",
    "optimizer": "the pretraining optimizer",
    "lr": "pretraining learning rate",
    "lr_scaling": "how the lr follows the batch size",
    "weight_decay": "weight decay of the pretraining optimizer",
    "warmup_epochs": "epochs of linear lr warm-up",
    "views": "augmented views per image",
    "backend": "the augmentation engine's backend",
    "compile": "torch.compile of the training step",
    "seed": "seed of the weights, the data order and the augmentations",
    "knn_k": "kNN evaluation: neighbours",
    "knn_t": "kNN evaluation: temperature",
    "linear_epochs": "linear probe: epochs",
    "linear_lr": "linear probe: learning rate",
    "finetune_epochs": "fine-tuning: epochs",
    "finetune_lr": "fine-tuning: learning rate",
    "progress": "show progress bars",
    "device": "auto (CUDA when there is one, else the CPU), cpu or cuda[:N]",
    "num_threads": "CPU threads for torch; none = torch's own choice",
}


def config_comments() -> dict[str, str]:
    """field -> the comment on its line in the source of RunConfig (read with
    tokenize; empty when the source is not available)."""
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        src = textwrap.dedent(inspect.getsource(RunConfig))
        tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (OSError, TypeError, tokenize.TokenError, SyntaxError):
        return {}
    lines: dict[int, list[tokenize.TokenInfo]] = {}
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for t in tokens:
        if t.type not in skip:
            lines.setdefault(t.start[0], []).append(t)
    body = min((ts[0].start[1] for ts in lines.values() if ts[0].start[1] > 0), default=4)
    comments = {}
    for n in sorted(lines):
        ts = lines[n]
        if ts[0].start[0] != n or ts[0].start[1] != body:
            continue  # a continuation line, or deeper inside a method
        if ts[0].type == tokenize.NAME and ts[0].string in ("def", "class") or ts[0].string == "@":
            break  # the fields come before the methods
        if ts[0].type == tokenize.NAME and len(ts) > 2 and ts[1].string == ":" and ts[-1].type == tokenize.COMMENT:
            comments[ts[0].string] = ts[-1].string.lstrip("#").strip()
    return comments


def field_help(name: str, default, comments: dict[str, str], choices: dict[str, list[str]]) -> str:
    """One RunConfig field's help: what it is, its choices, its default."""
    text = "; ".join(x for x in (FIELD_HELP.get(name), comments.get(name)) if x) or name.replace("_", " ")
    if name in choices:
        text += f" (one of: {', '.join(choices[name])})"
    shown = "from the recipe" if default is FROM_RECIPE else default
    text += f" [default: {shown}]" if shown is not dataclasses.MISSING else ""
    return text.replace("%", "%%")


def field_choices() -> dict[str, list[str]]:
    """The values a RunConfig field takes, where it is one of a list."""
    from augbench.data.dataset import NAMES

    out = {"method": METHODS, "backbone": BACKBONES, "optimizer": OPTIMIZERS, "backend": BACKENDS,
           "recipe": recipes.names(), "dataset": (*NAMES, "imagefolder:<path>"), "compile": COMPILE_SETTINGS,
           "lr_scaling": ("linear", "none"), "proj_norm": HEAD_NORMS, "proj_out_norm": HEAD_OUT_NORMS}
    return {k: list(v) for k, v in out.items() if v}
