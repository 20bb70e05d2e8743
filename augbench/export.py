"""`augbench export RUN_ID`: a finished run's pretrained backbone to take away, and ``load_backbone``.

Writes two files (default ``<results>/exports/<run_id>.pt`` and ``.json``):

- the weights: the backbone's state_dict as a plain dict of tensors (``torch.save``; load it with
  ``torch.load(path, weights_only=True)``), taken from the run's final checkpoint
  (``<results>/checkpoints/<run_id>/last.pt``, the ``backbone.*`` entries of the method);
- a card (JSON): the architecture, the key format, the input the backbone expects (size, mean/std),
  the run's config, metrics, commit and data, and warnings where it differs from torchvision.

``--format torchvision`` (the default for ResNets) names the keys as torchvision's ResNet does
(``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``layerN.0.downsample.0/1``; there is no ``fc``); the
CIFAR stem (a 3x3 stride-1 ``conv1``, no max-pool) and widths other than 64 keep the names but not
torchvision's shapes, and the card says so. ``--format augbench`` keeps augbench's names (ViTs
always). ``augbench.load_backbone(path)`` rebuilds the backbone from the card and loads the weights.

Runs keep their final checkpoint (saved at the last epoch whatever ``ckpt_every`` is, and never
deleted), so any finished run can be exported later; a run whose checkpoint is gone must be trained
again first, and export says how.
"""
from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from augbench.errors import UserError

CARD_VERSION = 1
FORMATS = ("torchvision", "augbench")
RESNETS = ("resnet18", "resnet50")


class ExportError(UserError):
    """A run that cannot be exported; the message says why and what to do."""


# ---------------------------------------------------------------------------- key names
def to_torchvision_keys(state: dict[str, Any]) -> dict[str, Any]:
    """augbench ResNet keys -> torchvision's: stem.0 -> conv1, stem.1 -> bn1, .shortcut. -> .downsample."""
    out = {}
    for k, v in state.items():
        if k.startswith("stem.0."):
            k = "conv1." + k[len("stem.0."):]
        elif k.startswith("stem.1."):
            k = "bn1." + k[len("stem.1."):]
        else:
            k = k.replace(".shortcut.", ".downsample.")
        out[k] = v
    return out


def from_torchvision_keys(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of to_torchvision_keys (a torchvision ``fc.*`` is dropped: augbench has no classifier)."""
    out = {}
    for k, v in state.items():
        if k.startswith("fc."):
            continue
        if k.startswith("conv1."):
            k = "stem.0." + k[len("conv1."):]
        elif k.startswith("bn1."):
            k = "stem.1." + k[len("bn1."):]
        else:
            k = k.replace(".downsample.", ".shortcut.")
        out[k] = v
    return out


# ---------------------------------------------------------------------------- building
def _architecture(config: dict[str, Any]) -> dict[str, Any]:
    name = config.get("backbone")
    if name in RESNETS:
        return {"backbone": name, "width": int(config["width"]), "cifar_stem": bool(config["cifar_stem"])}
    from augbench.models.vit import VIT_SIZES

    if name in VIT_SIZES:
        return {"backbone": name, "image_size": int(config["image_size"]), "patch_size": int(config["patch_size"])}
    raise ExportError(f"backbone {name!r}: export knows {list(RESNETS)} and {sorted(VIT_SIZES)}")


def build_from_architecture(arch: dict[str, Any]):
    """The (randomly initialised) backbone an export card's ``architecture`` describes."""
    from augbench.models import resnet18, resnet50, vit

    name = arch["backbone"]
    if name == "resnet18":
        return resnet18(width=arch["width"], cifar_stem=arch["cifar_stem"])
    if name == "resnet50":
        return resnet50(width=arch["width"], cifar_stem=arch["cifar_stem"])
    return vit(name, image_size=arch["image_size"], patch_size=arch["patch_size"])


def _torchvision_note(arch: dict[str, Any], feat_dim: int) -> str:
    return (f"no fc: torchvision's {arch['backbone']} has a classifier, these weights do not; load them with "
            f"strict=False or after model.fc = torch.nn.Identity() (the features are the pooled layer4 "
            f"output, {feat_dim} values)")


def _torchvision_warnings(arch: dict[str, Any]) -> list[str]:
    """Where the architecture differs from torchvision's (none: torchvision's model loads the weights)."""
    name, width = arch["backbone"], arch["width"]
    out = []
    if arch["cifar_stem"]:
        out.append(f"CIFAR stem: conv1 is a 3x3 stride-1 conv and there is no max-pool (torchvision: 7x7 "
                   f"stride 2, then a 3x3 max-pool), so conv1.weight is [{width}, 3, 3, 3], not [64, 3, 7, 7]; in "
                   f"torchvision set model.conv1 = torch.nn.Conv2d(3, {width}, 3, 1, 1, bias=False) and "
                   f"model.maxpool = torch.nn.Identity() before loading")
    if width != 64:
        out.append(f"width {width}: every layer has {width}/64 of torchvision's {name} channels, so the keys "
                   f"match but no torchvision {name} has these shapes (load_backbone rebuilds it)")
    return out


def pretraining_split(dataset: str | None) -> str:
    """The split a run pretrained on: "train", or "train+unlabeled" for stl10-unlabeled."""
    from augbench.data.dataset import PRETRAIN_ON

    return PRETRAIN_ON.get(dataset, (dataset, "train"))[1]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- export
def _find_row(store, run_id: str) -> dict[str, Any]:
    row = store.read_row(run_id)
    if row is None and len(run_id) >= 4 and store.runs.is_dir():
        matches = sorted(p.stem for p in store.runs.glob(f"{run_id}*.json"))
        if len(matches) > 1:
            raise ExportError(f"run id {run_id!r} is ambiguous under {store.runs}: {', '.join(matches[:5])}")
        if matches:
            row = store.read_row(matches[0])
    if row is None:
        raise ExportError(f"no run {run_id} under {store.runs} (`augbench sweep status` or the row files "
                          f"there list the runs; --results ROOT names another results root)")
    return row


def _retrain_hint(store, row: dict[str, Any]) -> str:
    rid = row["run_id"]
    where = (" (this row was imported: checkpoints stay on the machine that trained the run)"
             if row.get("imported") else "")
    row_path = store.row_path(rid)
    return (f"the run must be trained again to export it{where}: write its config to a file, "
            f"`python -c \"import json, sys, yaml; print(yaml.safe_dump(json.load(open(sys.argv[1]))['config']))\" "
            f"{row_path} > {rid}.yaml`, then `augbench train --config {rid}.yaml --force --results {store.root}` "
            f"(on the CPU it retrains the same weights bitwise; `augbench rows verify {rid}` checks that "
            f"first, writing nothing)")


def export_run(run_id: str, results: str | Path | None = None, out: str | Path | None = None,
               fmt: str | None = None, ckpt_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Export the backbone of finished run `run_id` (or a unique prefix of it): (weights, card) paths.
    `fmt`: "torchvision" (ResNets' default) or "augbench" (ViTs' only)."""
    import torch

    from augbench.store.rows import DONE, RunStore, atomic_write_json
    from augbench.train import checkpoint

    store = RunStore.at(results)
    row = _find_row(store, run_id)
    rid = row["run_id"]
    if row["status"] != DONE:
        raise ExportError(f"run {rid} is {row['status']}, not done ({store.row_path(rid)}); only a finished "
                          f"run's backbone can be exported")
    config = row.get("config")
    if not isinstance(config, dict):
        raise ExportError(f"{store.row_path(rid)}: the row has no 'config'; cannot rebuild its backbone")
    arch = _architecture(config)
    is_resnet = arch["backbone"] in RESNETS
    if fmt is None:
        fmt = "torchvision" if is_resnet else "augbench"
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {list(FORMATS)} (got {fmt!r})")
    if fmt == "torchvision" and not is_resnet:
        raise ExportError(f"--format torchvision maps ResNet keys only; {arch['backbone']} is exported with "
                          f"--format augbench")

    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else store.ckpt_dir(rid)
    path = checkpoint.checkpoint_path(ckpt_dir)
    if not path.is_file():
        raise ExportError(f"run {rid}: its final checkpoint {path} is missing, so there are no weights to "
                          f"export; {_retrain_hint(store, row)}")
    state = checkpoint.load(ckpt_dir)  # weights_only; a corrupt file is a CorruptFile naming it
    epochs = config.get("epochs")
    if state.get("run_id") != rid or (int(state["epoch"]), int(state["step_in_epoch"])) != (epochs, 0):
        raise ExportError(f"run {rid}: {path} is not this run's final checkpoint (run {state.get('run_id')}, "
                          f"epoch {state['epoch']} step {state['step_in_epoch']} of {epochs} epochs); "
                          f"{_retrain_hint(store, row)}")
    model = state["model"]
    backbone_state = {k[len("backbone."):]: v for k, v in model.items() if k.startswith("backbone.")}
    if not backbone_state:
        raise ExportError(f"{path}: no backbone.* weights in the checkpoint's model")
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
        backbone = build_from_architecture(arch)
        try:
            backbone.load_state_dict(backbone_state)
        except RuntimeError as e:
            raise ExportError(f"{path}: the weights do not fit the {arch['backbone']} of the row's config "
                              f"({str(e).splitlines()[0][:300]})") from None
        card_checks, input_spec = _verify_and_input(config, model, row, path)

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in backbone.state_dict().items()}
    if fmt == "torchvision":
        tensors = to_torchvision_keys(tensors)
    warnings = _torchvision_warnings(arch) if fmt == "torchvision" else []

    weights = Path(out) if out is not None else store.root / "exports" / f"{rid}.pt"
    if weights.suffix == ".json":
        raise ExportError(f"--out {weights}: name the weights file (.pt); the card goes beside it as .json")
    card_path = weights.with_suffix(".json")
    from augbench.store.atomic import atomic_write

    atomic_write(weights, lambda f: torch.save(tensors, f))
    env = row.get("env") or {}
    card = {
        "augbench_export": CARD_VERSION,
        "run_id": rid,
        "weights": weights.name,
        "weights_file_sha256": _sha256_file(weights),
        "format": fmt,
        "keys": ("torchvision ResNet names: conv1, bn1, layer1.0.conv1, ..., layerN.0.downsample.0/1 "
                 "(augbench's stem.0, stem.1 and shortcut); " + _torchvision_note(arch, backbone.feat_dim)
                 if fmt == "torchvision" else "augbench's module names (augbench.models)"),
        "architecture": {**arch, "feat_dim": backbone.feat_dim},
        "input": input_spec,
        "warnings": warnings,
        "config": config,
        "metrics": row.get("metrics", {}),
        "commit": env.get("git_commit"),
        "data": {"dataset": config.get("dataset"), "split": pretraining_split(config.get("dataset")), "subset_per_class": config.get("subset"),
                 "subset_seed": 0, "images_seen_in_pretraining": (row.get("timings") or {}).get("images")},
        "checkpoint": {"path": str(path.resolve()), "epoch": int(state["epoch"]), **card_checks},
        "env": {k: env.get(k) for k in ("torch", "device", "device_name") if k in env},
        "finished_at": row.get("finished_at"),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(card_path, card)
    return weights, card_path


def _verify_and_input(config: dict[str, Any], model: dict[str, Any], row: dict[str, Any],
                      path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the checkpoint holds the weights the row reports (weights_sha256 over the method's
    parameters), and the input the backbone was trained on: view size, mean/std."""
    from augbench.config import RunConfig

    d = dict(config)
    if isinstance(d.get("vicreg_weights"), list):
        d["vicreg_weights"] = tuple(d["vicreg_weights"])
    try:
        cfg = RunConfig.from_concrete(d, source="the row's config")
    except UserError:  # a row from another augbench version: export what the row says, unverified
        size = int(config.get("image_size", 32))
        return {"verified": False}, {"size": [size, size], "normalize": None, "scale": "RGB / 255"}
    from augbench.eval.features import normalization

    policy = cfg.policy_obj()
    norm = normalization(policy)
    size = list(policy.output_size or (cfg.image_size, cfg.image_size))
    input_spec = {"size": size, "scale": "RGB / 255, resized to size (bilinear, antialiased), then normalized",
                  "normalize": None if norm is None else {"mean": list(norm[0]), "std": list(norm[1])}}
    want = row.get("weights_sha256")
    if not want:
        return {"verified": False}, input_spec
    from augbench.methods import build_method
    from augbench.models import build_backbone
    from augbench.train.loop import weights_sha256

    method = build_method(cfg, build_backbone(cfg))
    method.load_state_dict(model)
    got = weights_sha256(method)
    if got != want:
        raise ExportError(f"{path}: its weights (sha256 {got[:12]}) are not the ones the row reports "
                          f"({want[:12]}); the checkpoint was overwritten since the row was written")
    return {"verified": True, "weights_sha256": want}, input_spec


# ---------------------------------------------------------------------------- loading
def load_backbone(path: str | Path, map_location: Any = "cpu"):
    """The backbone exported to `path` (the .pt weights or its .json card), rebuilt from the card and
    loaded (``torch.load(weights_only=True)``), in eval mode. ``backbone(x)`` gives the features of
    images prepared as the card's ``input`` says."""
    import torch

    path = Path(path)
    weights = path.with_suffix(".pt") if path.suffix == ".json" else path
    card_path = weights.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise UserError(f"{card_path}: no export card beside {weights} (augbench export writes both)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{card_path}: not a valid export card ({e})") from None
    if not isinstance(card, dict) or card.get("augbench_export") != CARD_VERSION or "architecture" not in card:
        raise UserError(f"{card_path}: not an augbench export card (version {CARD_VERSION})")
    try:
        state = torch.load(weights, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{weights}: no such weights file (its card is {card_path})") from None
    except Exception as e:  # truncated zip, bad pickle, unsafe type
        raise UserError(f"{weights}: cannot load the weights ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict):
        raise UserError(f"{weights}: expected a dict of tensors")
    if card.get("format") == "torchvision":
        state = from_torchvision_keys(state)
    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
        backbone = build_from_architecture(card["architecture"])
    try:
        backbone.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{weights}: the weights do not fit the card's architecture "
                        f"({str(e).splitlines()[0][:300]})") from None
    if isinstance(map_location, (str, torch.device)):
        backbone = backbone.to(map_location)
    return backbone.eval()


# ---------------------------------------------------------------------------- CLI
def add_arguments(p) -> None:
    p.add_argument("run_id", metavar="RUN_ID", help="a finished run (its id, or a unique prefix)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default=None,
                   help="key names: torchvision's ResNet names (default for ResNets) or augbench's (ViTs)")
    p.add_argument("--results", metavar="ROOT", help="results root (default: $AUGBENCH_RESULTS or ./results)")
    p.add_argument("--out", metavar="PATH", help="the weights file (default ROOT/exports/<run_id>.pt); "
                   "the card goes beside it (.json)")
    p.add_argument("--ckpt-dir", metavar="DIR", help="the run's checkpoint folder, if it was trained with "
                   "--ckpt-dir (default ROOT/checkpoints/<run_id>)")


def main(args) -> int:
    weights, card = export_run(args.run_id, args.results, args.out, args.fmt, args.ckpt_dir)
    info = json.loads(card.read_text())
    for w in info["warnings"]:
        print(f"augbench export: warning: {w}", file=sys.stderr)
    arch = info["architecture"]
    print(f"{info['run_id']}: {arch['backbone']} ({info['format']} keys, {arch['feat_dim']}-d features) -> "
          f"{weights}\n  card: {card}\n  load: augbench.load_backbone({str(weights)!r})")
    return 0
