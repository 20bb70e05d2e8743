"""`augbench preview`: a PNG grid of real images (first column) and their augmented views,
un-normalised for display; masked patches show as the fill value after un-normalising."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="simclr", help="a named policy or a .yaml file")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=int, default=8, help="number of images (rows)")
    p.add_argument("--views", type=int, default=4, help="views per image (columns after the original)")
    p.add_argument("--backend", default="fused", choices=["fused", "kornia", "albumentations"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="cifar10", help="data set name for augbench.data.load_dataset")
    p.add_argument("--scale", type=int, default=4, help="pixel upscaling of each tile (nearest)")


def unnormalise(v, policy):
    import torch

    for op, p in policy.ops:
        if op == "normalize":
            mean = torch.tensor(p["mean"]).view(1, 3, 1, 1)
            std = torch.tensor(p["std"]).view(1, 3, 1, 1)
            v = v * std + mean
    return v.clamp(0, 1)


def grid(images, views, policy, scale: int, pad: int = 2):
    """(n, 3, H, W) uint8 originals + list of (n, 3, h, w) views -> HWC uint8 numpy grid."""
    import torch
    import torch.nn.functional as F

    h = max([images.shape[-2]] + [v.shape[-2] for v in views]) * scale
    w = max([images.shape[-1]] + [v.shape[-1] for v in views]) * scale
    cols = [images.float() / 255] + [unnormalise(v.float().cpu(), policy) for v in views]
    n = images.shape[0]
    canvas = torch.ones(3, n * (h + pad) + pad, len(cols) * (w + pad) + pad)
    for c, col in enumerate(cols):
        tiles = F.interpolate(col, size=(h, w), mode="nearest")
        for r in range(n):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[:, y:y + h, x:x + w] = tiles[r]
    return (canvas * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def main(args: argparse.Namespace) -> int:
    from PIL import Image

    from augbench.augment import Engine, Policy
    from augbench.data import load_dataset
    from augbench.errors import UserError

    for name in ("n", "views", "scale"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: expected a .png file name")
    policy = Policy.named(args.policy)
    engine = Engine(policy, backend=args.backend, seed=args.seed)  # checks the policy before loading data
    ds = load_dataset(args.dataset, "train", subset=-(-args.n // 10), seed=args.seed)  # per class
    images = ds.images[:: max(1, len(ds.images) // args.n)][: args.n]  # spread over the classes
    views = engine(images, views=args.views)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(images, views, policy, args.scale)).save(out)
    print(f"wrote {out} ({len(images)} images x {args.views} views, policy {policy.name}, backend {args.backend})")
    return 0
