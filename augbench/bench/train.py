"""`augbench bench-train`: seconds per epoch of each method's training step, with and without
augmentation, eager and compiled, and the seconds of a run's evaluation, all in one run.

With augmentation: the method's own policy through the engine. Without: every view is the same
uint8 -> normalised float conversion (no engine, nothing random), so with/without is the cost of
augmentation in the step. Each case trains `--epochs` epochs (the first one warms up and compiles)
and reports the LAST epoch. Compiled cases run on CUDA only. The JSON (results/bench/) is rewritten
after every case, so an interrupted run keeps what it measured.
CUDA defaults are the real setting (ResNet-18, all of CIFAR-10, batch 512); CPU defaults are small.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

METHODS = ("simclr", "byol", "vicreg", "barlow", "simsiam")
POLICY = {"simclr": "simclr", "byol": "byol", "vicreg": "vicreg", "barlow": "byol", "simsiam": "simclr"}
CPU_SKIP = ("torch.compile is measured on CUDA only: CPU runs stay eager (bitwise deterministic, and "
            "compiling costs more than it saves there)")
# CPU modes: "nchw" is the eager step as it was before channels_last on the CPU (the baseline of the
# ratios), "eager" the fp32 step in channels_last, "bf16" that step under bf16 autocast (`amp_cpu`)
EAGER_MODES = ("eager", "nchw", "bf16")
CPU_MODES = ["nchw", "eager", "bf16"]
SETTING_FIELDS = ("backbone", "width", "cifar_stem", "image_size", "subset", "batch_size", "recipe", "dataset",
                  "eval_subset", "linear_epochs", "knn_k", "patch_size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--modes", nargs="+", default=None,
                   help="eager, nchw (eager without channels_last: the CPU step before it), bf16 (eager "
                        "under bf16 autocast on the CPU: amp_cpu) and/or torch.compile settings (auto = what "
                        "runs use on CUDA; default, reduce-overhead, ...); default: eager auto on CUDA, nchw "
                        "eager bf16 on the CPU")
    p.add_argument("--sweep", default=None, help="take the setting (backbone, width, stem, data, batch, recipe, "
                   "...) and the methods from this sweep file's base and method axis, e.g. crop_matters_cpu")
    p.add_argument("--epochs", type=int, default=2, help="epochs per case; the last one is timed (default 2)")
    p.add_argument("--subset", type=int, default=None, help="training images per class (default: all on CUDA, 10 on CPU)")
    p.add_argument("--width", type=int, default=None, help="ResNet width (default 64 on CUDA, 8 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="default 512 on CUDA, 50 on CPU")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--linear-epochs", type=int, default=None, help="probe epochs in the evaluation (default 100 on CUDA, 2 on CPU)")
    p.add_argument("--eval-subset", type=int, default=None, help="test images per class (default: all on CUDA, 10 on CPU)")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip the evaluation timing")
    p.add_argument("--device", default=None, help="cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", default=None, help="JSON path (default results/bench/bench-train-<device>-<time>.json)")


class PlainViews:
    """A stand-in engine with no augmentation: each view is the normalised image itself."""

    mask_mode = "pixel"

    def __init__(self, norm, size):
        self.norm, self.size = norm, size

    def __call__(self, x, views: int = 2):
        from augbench.eval.features import prepare

        v = prepare(x, self.norm, self.size)
        return [v] + [v.clone() for _ in range(views - 1)]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _settings(args, cuda: bool) -> dict[str, Any]:
    def pick(value, on_cuda, on_cpu):
        return value if value is not None else (on_cuda if cuda else on_cpu)

    return {"backbone": args.backbone, "width": pick(args.width, 64, 8), "subset": pick(args.subset, None, 10),
            "batch_size": pick(args.batch_size, 512, 50), "epochs": args.epochs,
            "linear_epochs": pick(args.linear_epochs, 100, 2), "eval_subset": pick(args.eval_subset, None, 10)}


def _from_sweep(name: str, settings: dict[str, Any], args) -> tuple[dict[str, Any], list[str]]:
    """The setting of a sweep file's base (flags given explicitly still win) and its methods."""
    from augbench.sweeps.schema import load_sweep

    sw = load_sweep(name)
    given = {"width": args.width, "subset": args.subset, "batch_size": args.batch_size,
             "linear_epochs": args.linear_epochs, "eval_subset": args.eval_subset}
    out = {**settings, **{k: sw.base[k] for k in SETTING_FIELDS if k in sw.base},
           **{k: v for k, v in given.items() if v is not None}}
    methods = [m for m in sw.axes.get("method", [sw.base.get("method", "simclr")]) if m in METHODS]
    if args.methods != list(METHODS):  # --methods given
        methods = args.methods
    return out, methods


def run_case(method: str, aug: bool, mode: str, settings: dict, data, device, *, evaluate: bool) -> dict[str, Any]:
    from augbench.augment import Engine
    from augbench.config import RunConfig
    from augbench.eval.evaluate import evaluate_encoder
    from augbench.eval.features import normalization
    from augbench.methods import build_method
    from augbench.models import build_backbone
    from augbench.train.loop import pretrain, seed_everything

    train, test = data
    cfg = RunConfig(method=method, policy=POLICY[method], device=str(device), progress=False, ckpt_every=0,
                    compile="off" if mode in EAGER_MODES else mode,
                    channels_last=False if mode == "nchw" else None, amp_cpu=mode == "bf16", **settings)
    policy = cfg.policy_obj()
    norm, size = normalization(policy), policy.output_size or (cfg.image_size, cfg.image_size)
    seed_everything(cfg.seed)
    model = build_method(cfg, build_backbone(cfg)).to(device)
    engine = Engine(policy, backend=cfg.backend, seed=cfg.seed, device=device) if aug else PlainViews(norm, size)
    flop = step_flop(cfg, model, train.pretraining, norm, size, device)
    t0 = time.perf_counter()
    res = pretrain(cfg, model, train.pretraining, engine, device=device)  # stl10-unlabeled: + unlabeled
    last = res.history[-1]
    steps = res.steps // cfg.epochs
    out = {"method": method, "aug": aug, "mode": mode, "compile_mode": res.compile_mode,
           "epoch_s": last["epoch_s"], "first_epoch_s": res.history[0]["epoch_s"], "aug_s": last["aug_s"],
           "model_s": last["model_s"], "img_s": last["img_s"], "steps_per_epoch": steps,
           "wall_s": time.perf_counter() - t0, "loss": last["loss"], "gflop_per_step": flop / 1e9,
           "gflops": flop * steps / last["epoch_s"] / 1e9}
    if mode not in EAGER_MODES and res.compile_mode is None:
        out["note"] = "compilation failed; the case ran eagerly"
    if evaluate:
        t0 = time.perf_counter()
        m = evaluate_encoder(cfg, model, train, test, device, norm=norm, size=size)
        if device.type == "cuda":
            import torch

            torch.cuda.synchronize(device)
        out["eval_s"], out["eval_metrics"] = time.perf_counter() - t0, m
    return out


def step_flop(cfg, method, images, norm, size, device) -> float:
    """FLOPs of one training step's forward and backward (torch.utils.flop_counter: matmuls and
    convolutions), on a batch of plain views; the weights are restored afterwards."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    from augbench.eval.features import prepare

    m = copy.deepcopy(method).to(device).train()
    x = prepare(images[:cfg.batch_size].to(device), norm, size)
    with FlopCounterMode(display=False) as counter:
        loss, _ = m([x] + [x.clone() for _ in range(cfg.views - 1)])
        loss.backward()
    return float(counter.get_total_flops())


def sgemm_peak_gflops(device, dtype=None) -> float:
    """The best matmul rate here (4096^2, best of 5; fp32 unless `dtype`): the attainable peak the
    step is held against (a bf16 step against the bf16 one)."""
    import torch

    a = torch.randn(4096, 4096, device=device, dtype=dtype)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a @ a
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 2 * 4096**3 / (time.perf_counter() - t0) / 1e9)
    return best


def ratios(cases: list[dict]) -> dict[str, float]:
    """with-aug / without-aug per (method, mode), and eager / compiled per (method, aug)."""
    t = {(c["method"], c["aug"], c["mode"]): c["epoch_s"] for c in cases if "epoch_s" in c}
    r: dict[str, float] = {}
    for (m, aug, mode), s in t.items():
        if aug and (m, False, mode) in t:
            r[f"{m}/{mode}: with_aug / without_aug"] = s / t[(m, False, mode)]
        if mode not in EAGER_MODES and (m, aug, "eager") in t:
            r[f"{m}/{'aug' if aug else 'noaug'}: eager / {mode}"] = t[(m, aug, "eager")] / s
        if mode in ("eager", "bf16") and (m, aug, "nchw") in t:  # images/s over the step before channels_last
            r[f"{m}/{'aug' if aug else 'noaug'}: images/s {mode} / nchw"] = t[(m, aug, "nchw")] / s
    return r


def main(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from augbench.data import load_dataset
    from augbench.env import device_name, results_root
    from augbench.store.atomic import atomic_write

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    modes = args.modes or (["eager", "auto"] if cuda else CPU_MODES)
    settings = _settings(args, cuda)
    if args.sweep:
        settings, methods = _from_sweep(args.sweep, settings, args)
        args.methods = methods
    dataset = settings.pop("dataset", "cifar10")
    data = (load_dataset(dataset, split="train", subset=settings.pop("subset"), seed=0),
            load_dataset(dataset, split="test", subset=settings.pop("eval_subset"), seed=0))
    settings.update(subset=None, eval_subset=None)  # the data sets above are already the subsets
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    out = Path(args.out) if args.out else results_root() / "bench" / f"bench-train-{device.type}-{stamp}.json"
    report: dict[str, Any] = {"benchmark": "bench-train", "device": device_name(device), "device_type": device.type,
                              "torch": torch.__version__, "started_at": stamp, "finished": False,
                              "settings": {**settings, "train_images": len(data[0].pretraining),
                                           "test_images": len(data[1].images)},
                              "cases": [], "ratios": {}}
    # the most telling cases first (an interrupted run keeps them): per method, eager then compiled
    cases = [(m, mode, aug) for m in args.methods for mode in modes for aug in (True, False)]
    with tqdm(total=len(cases), desc="bench-train", unit="case", disable=not args.progress, dynamic_ncols=True) as bar:
        for method, mode, aug in cases:
            bar.set_postfix_str(f"{method} {mode} {'aug' if aug else 'noaug'}")
            if mode not in EAGER_MODES and not cuda:
                res: dict[str, Any] = {"method": method, "aug": aug, "mode": mode, "skipped": CPU_SKIP}
            else:
                try:
                    res = run_case(method, aug, mode, settings, data, device,
                                   evaluate=args.eval and aug and mode == modes[-1])
                except Exception as e:  # noqa: BLE001 -- one failing case must not lose the others
                    res = {"method": method, "aug": aug, "mode": mode, "error": f"{type(e).__name__}: {e}"}
            report["cases"].append(res)
            report["ratios"] = ratios(report["cases"])
            atomic_write(out, json.dumps(report, indent=2, default=str))
            bar.update(1)
    report["peak_gflops_sgemm"] = sgemm_peak_gflops(device)
    if any(c["mode"] == "bf16" and "gflops" in c for c in report["cases"]):
        report["peak_gflops_bf16_gemm"] = sgemm_peak_gflops(device, torch.bfloat16)
    for c in report["cases"]:
        if "gflops" in c:
            bf16 = c["mode"] == "bf16" and not cuda
            c["peak"] = "bf16 gemm" if bf16 else "fp32 sgemm"
            c["share_of_peak"] = c["gflops"] / report["peak_gflops_bf16_gemm" if bf16 else "peak_gflops_sgemm"]
    report["finished"] = True
    atomic_write(out, json.dumps(report, indent=2, default=str))
    print(f"bench-train on {report['device']} ({settings['backbone']} width {settings['width']}, "
          f"{report['settings']['train_images']} images, batch {settings['batch_size']}): {out}")
    for c in report["cases"]:
        what = f"{c['method']:8s} {c['mode']:16s} {'aug' if c['aug'] else 'noaug':6s}"
        if "epoch_s" in c:
            ev = f"  eval {c['eval_s']:.2f} s" if "eval_s" in c else ""
            print(f"  {what} epoch {c['epoch_s']:.3f} s  ({c['img_s']:.0f} img/s, {c['gflops']:.0f} GFLOP/s = "
                  f"{100 * c['share_of_peak']:.0f} % of the {c['peak']} peak, first epoch {c['first_epoch_s']:.2f} s){ev}")
        else:
            print(f"  {what} {'skipped (see below)' if 'skipped' in c else 'error: ' + c['error']}")
    print(f"  peak: fp32 matmul {report['peak_gflops_sgemm']:.0f} GFLOP/s here (4096^2, best of 5)"
          + (f", bf16 matmul {report['peak_gflops_bf16_gemm']:.0f}" if "peak_gflops_bf16_gemm" in report else ""))
    reasons = sorted({c["skipped"] for c in report["cases"] if "skipped" in c})
    for why in reasons:
        print(f"  skipped: {why}")
    for k, v in report["ratios"].items():
        print(f"  {k} = {v:.2f}x")
    return 0 if not any("error" in c for c in report["cases"]) else 1
