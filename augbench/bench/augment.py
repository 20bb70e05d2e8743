"""`augbench bench-aug`: augmentation throughput (views/s) of each backend on the same batches.

Backends: `fused` (its default path here: Triton on CUDA, numba on the CPU when installed),
`fused-torch` (the same engine forced to its batched-torch path), `kornia` (the reference every
ratio is taken against, measured in the same run), torchvision v2 (only if importable: one
parameter set per batch, and a per-sample loop), and `albumentations` (per image, in N worker
processes). Images are real CIFAR-10 training images ($AUGBENCH_DATA), resized to 256 px for the
224 px case; random uint8 if the data set is absent (recorded as `images` in the JSON).

Only the engine's core (torch) is required: a backend whose library is missing is skipped, and
each case's `skipped` says why. The JSON is rewritten (atomically) after every case, with
`complete: false` until the last one, so an interrupted run keeps the cases it finished.
"""
from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import time
from datetime import datetime, timezone
from pathlib import Path

CASES = {
    # name: (input px, output px, batch, policy builder)
    "32px_b512": (32, 32, 512, "simclr-noblur"),
    "32px_b256": (32, 32, 256, "simclr-noblur"),
    "224px_b256": (256, 224, 256, "simclr-blur23"),
}
BACKENDS = ("fused", "fused-torch", "kornia", "torchvision", "torchvision-loop", "albumentations")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES), help="which cases to time")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    p.add_argument("--iters", type=int, default=10, help="timed iterations per backend (after 2 warm-up)")
    p.add_argument("--device", default=None, help="cuda if available, else cpu")
    p.add_argument("--batch", type=int, default=None, help="override every case's batch size")
    p.add_argument("--workers", type=int, default=2, help="albumentations worker processes")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", default=None, help="JSON path (default results/bench/bench-aug-<device>-<time>.json)")


def case_policy(kind: str, out_px: int):
    from augbench.augment import Policy

    if kind == "simclr-blur23":  # SimCLR's ImageNet recipe: a 23-tap blur (10 % of 224 px), ImageNet stats
        return Policy.named("simclr").for_size(out_px, dataset="imagenet", name=kind)
    return Policy.named("simclr").without("blur").for_size(out_px, name=kind)


def load_images(n: int, px: int):
    import torch
    import torch.nn.functional as F

    try:
        from augbench.data import load_dataset

        x = load_dataset("cifar10", "train", subset=-(-n // 10)).images[:n]  # subset is per class
        source = "cifar10-train"
    except Exception as e:  # noqa: BLE001 -- any failure to load real data falls back, and says so
        print(f"bench-aug: real images unavailable ({type(e).__name__}: {e}); using random uint8")
        g = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 3, px, px), dtype=torch.uint8, generator=g), "random-uint8"
    if x.shape[0] < n:
        x = x.repeat((n + x.shape[0] - 1) // x.shape[0], 1, 1, 1)[:n]
    if x.shape[-1] != px:
        x = F.interpolate(x.float(), size=(px, px), mode="bilinear", align_corners=False).round().clamp(0, 255)
        x = x.to(torch.uint8)
        source += f"-resized{px}"
    return x, source


def _time_interleaved(fns: dict, iters: int, sync, label: str = "") -> dict:
    """Median seconds per call of each fn. Calls alternate between the fns, so a load spike on a
    shared machine hits every backend alike and the ratios stay meaningful. A line per iteration
    (a 224 px Kornia iteration takes seconds on a CPU)."""
    import statistics

    for fn in fns.values():  # warm-up: allocator, kernels, lazily built pipelines
        fn()
        fn()
    sync()
    times: dict = {k: [] for k in fns}
    for i in range(iters):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t0)
        if fns:
            print(f"    {label or ', '.join(fns)}: iteration {i + 1}/{iters}", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


# albumentations workers: each process builds the transform once
_ALBU = None


def _albu_init(ops, seed):
    global _ALBU
    from augbench.augment.backends.albu import AlbuTransform

    _ALBU = AlbuTransform(ops, seed=seed)


def _albu_chunk(imgs):
    import torch

    return torch.stack([_ALBU(im) for im in imgs])


def _tv_transforms(policy):
    from torchvision.transforms import v2

    t = []
    for op, p in policy.for_view(0):
        if op == "random_resized_crop":
            t.append(v2.RandomResizedCrop(p["size"], scale=p["scale"], ratio=p["ratio"], antialias=False))
        elif op == "horizontal_flip":
            t.append(v2.RandomHorizontalFlip(p["p"]))
        elif op == "color_jitter":
            t.append(v2.RandomApply([v2.ColorJitter(p["brightness"], p["contrast"], p["saturation"], p["hue"])],
                                    p=p["p"]))
        elif op == "grayscale":
            t.append(v2.RandomGrayscale(p["p"]))
        elif op == "gaussian_blur":
            t.append(v2.RandomApply([v2.GaussianBlur(p["kernel_size"], p["sigma"])], p=p["p"]))
        elif op == "normalize":
            t.append(v2.Normalize(p["mean"], p["std"]))
    import torch

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), *t])


def _unavailable(be: str) -> str | None:
    """Why backend `be` cannot run here (its library missing or broken), or None."""
    module = {"kornia": "kornia", "albumentations": "albumentations"}.get(be, "torchvision" if be.startswith(
        "torchvision") else None)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 -- ImportError, or a torchvision built for another torch
        return f"{module} not importable ({type(e).__name__}: {e})"
    return None


def run_case(name: str, device, iters: int, batch: int | None, backends, workers: int) -> dict:
    import torch

    from augbench.augment import Engine

    in_px, out_px, b, kind = CASES[name]
    b = batch or b
    policy = case_policy(kind, out_px)
    x_cpu, source = load_images(b, in_px)
    x = x_cpu.to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    res: dict = {"input_px": in_px, "output_px": out_px, "batch": b, "policy": policy.to_dict(),
                 "images": source, "views_per_s": {}, "skipped": {}}
    fns, engines = {}, {}
    for be in backends:
        why = _unavailable(be)
        if why:
            res["skipped"][be] = why
            continue
        try:
            if be in ("fused", "fused-torch", "kornia"):  # fused-torch: the fused engine forced to its torch path
                eng = engines[be] = Engine(policy, backend=be.split("-")[0], seed=0,
                                           impl="torch" if be == "fused-torch" else None)
                fns[be] = (lambda e: lambda: e(x, views=1))(eng)
            elif be.startswith("torchvision"):
                tf = _tv_transforms(policy)
                fns[be] = ((lambda t: lambda: t(x))(tf) if be == "torchvision"  # one parameter set per batch
                           else (lambda t: lambda: torch.stack([t(im) for im in x]))(tf))  # per sample
            else:  # albumentations: per image on CPU worker processes, timed on its own below
                fns[be] = None
        except ImportError as e:
            res["skipped"][be] = f"not importable ({e})"
    batched = {k: f for k, f in fns.items() if f is not None and k != "torchvision-loop"}
    for be, dt in _time_interleaved(batched, iters, sync).items():
        res["views_per_s"][be] = b / dt
    res["impl"] = {be: e.impl for be, e in engines.items()}  # fused: the path that ran (triton / torch)
    if fns.get("torchvision-loop"):
        res["views_per_s"]["torchvision-loop"] = b / _time_interleaved(
            {"l": fns["torchvision-loop"]}, max(1, iters // 4), sync, "torchvision-loop")["l"]
    if "albumentations" in fns:
        imgs = x_cpu.permute(0, 2, 3, 1).numpy()
        chunks = [imgs[i::workers] for i in range(workers)]
        with mp.get_context("spawn").Pool(workers, _albu_init, (policy.for_view(0), 0)) as pool:
            dt = _time_interleaved({"a": lambda: pool.map(_albu_chunk, chunks)}, max(1, iters // 4), lambda: None,
                                   "albumentations")
        res["views_per_s"]["albumentations"] = b / dt["a"]
    ref = res["views_per_s"].get("kornia")
    res["ratio_to_kornia"] = {k: v / ref for k, v in res["views_per_s"].items()} if ref else {}
    return res


def main(args: argparse.Namespace) -> int:
    import torch

    from augbench.store.atomic import atomic_write
    from augbench.env import environment, package_version, results_root
    from augbench.errors import UserError

    if args.iters < 1:
        raise UserError(f"--iters must be >= 1, got {args.iters}")
    if args.batch is not None and args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here")
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"env": environment(device), "torch_threads": torch.get_num_threads(), "iters": args.iters,
              "started_at": datetime.now(timezone.utc).isoformat(), "complete": False, "cases": {}}
    report["env"]["albumentations"] = package_version("albumentations")
    dev = "cpu" if device.type == "cpu" else device.type
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else results_root() / "bench" / f"bench-aug-{dev}-{stamp}.json"
    t_start = time.perf_counter()
    for i, name in enumerate(args.cases):
        in_px, out_px, b, _ = CASES[name]
        print(f"[{i + 1}/{len(args.cases)}] {name}: {in_px}->{out_px} px, batch {args.batch or b}, "
              f"{', '.join(args.backends)} ...", flush=True)
        t0 = time.perf_counter()
        r = run_case(name, device, args.iters, args.batch, args.backends, args.workers)
        r["seconds"] = time.perf_counter() - t0
        report["cases"][name] = r
        report["complete"] = i + 1 == len(args.cases)
        atomic_write(out, json.dumps(report, indent=2, default=str))  # kept if a later case is interrupted
        _print_case(name, r)
        left = len(args.cases) - i - 1
        eta = f", about {(time.perf_counter() - t_start) / (i + 1) * left:.0f} s to go" if left else ""
        print(f"  ({r['seconds']:.1f} s{eta}; {out})", flush=True)
    print(f"\nwrote {out}")
    return 0


def _print_case(name: str, r: dict) -> None:
    print(f"{name}: {r['input_px']}->{r['output_px']} px, batch {r['batch']}, {r['images']}")
    print(f"  {'backend':<18}{'views/s':>12}{'x kornia':>10}")
    for be, v in r["views_per_s"].items():
        print(f"  {be:<18}{v:>12.0f}{r['ratio_to_kornia'].get(be, float('nan')):>10.2f}")
    for be, why in r["skipped"].items():
        print(f"  {be:<18} skipped: {why}")
