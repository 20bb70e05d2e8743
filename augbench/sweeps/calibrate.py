"""How long a run takes on this machine's CPU, measured: a few real training steps of the run's
model (its backbone, method and heads at its image size and views), timed after a warm-up, scaled
to the run's images per epoch; evaluation counted as one more forward pass over train + test per
feature set. Cached per machine and model in <root>/cache/calibration.json: the plan of a sweep
that would train on the CPU asks this once per model shape."""
from __future__ import annotations

import json
import platform
import time
from typing import Any

from augbench.config import RunConfig
from augbench.store.rows import RunStore, atomic_write_json

STEPS, BATCH = 2, 32  # timed steps (after one warm-up) at this batch: a few seconds for a ResNet-18
SPLIT_SIZES = {"cifar10": (5000, 1000), "cifar100": (500, 100)}  # images per class: train, test
CLASSES = {"cifar10": 10, "cifar100": 100}
MODEL_FIELDS = ("method", "backbone", "width", "cifar_stem", "patch_size", "image_size", "views", "proj_depth",
                "proj_hidden", "proj_dim", "pred_hidden")


def _key(cfg: RunConfig, threads: int) -> str:
    d = cfg.to_dict()
    return json.dumps([platform.node(), threads] + [d.get(k) for k in MODEL_FIELDS])


def measure(cfg: RunConfig) -> dict[str, float]:
    """Seconds per image of one training step (forward + backward, all views) and of one forward."""
    import torch

    from augbench.methods import build_method
    from augbench.models import build_backbone

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(0)
    method = build_method(cfg, build_backbone(cfg))
    method.train()
    views = [torch.rand(BATCH, 3, cfg.image_size, cfg.image_size) for _ in range(cfg.views)]
    times = []
    for _ in range(STEPS + 1):
        t0 = time.perf_counter()
        loss, _ = method(views)
        loss.backward()
        times.append(time.perf_counter() - t0)
    method.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        method.backbone(views[0])
        fwd = time.perf_counter() - t0
    return {"train_s_per_image": sum(times[1:]) / STEPS / BATCH, "forward_s_per_image": fwd / BATCH}


def cpu_seconds_per_epoch(cfg: RunConfig, store: RunStore) -> float:
    """Train + amortised eval seconds per epoch of `cfg` on this CPU (measured once, cached)."""
    import torch

    path = store.cache / "calibration.json"
    try:
        cache: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    key = _key(cfg, cfg.num_threads or torch.get_num_threads())
    if key not in cache:
        print(f"calibrating: timing {STEPS} training steps of {cfg.method}/{cfg.backbone} on this CPU ...",
              flush=True)
        cache[key] = measure(cfg)
        try:
            atomic_write_json(path, cache)
        except OSError:
            pass  # a read-only results root: measured again next time
    m = cache[key]
    per_class_train, per_class_test = SPLIT_SIZES.get(cfg.dataset, SPLIT_SIZES["cifar10"])
    classes = CLASSES.get(cfg.dataset, 10)
    n_train = classes * (cfg.subset or per_class_train)
    n_test = classes * (cfg.eval_subset or per_class_test)
    steps = n_train // cfg.batch_size
    train_s = m["train_s_per_image"] * steps * cfg.batch_size
    eval_s = m["forward_s_per_image"] * (n_train + n_test) * 3  # random-init, backbone and projector features
    return train_s + eval_s / max(1, cfg.epochs)
