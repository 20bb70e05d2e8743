"""`augbench preview`: one labelled PNG of real images and their augmented views under one or more
policies side by side. Each policy's block has its name above it, columns "original", "view 1",
"view 2", ... (with the view's own overrides when the policy's views are asymmetric, as BYOL's are),
and each row the image's class on the left. Views are un-normalised for display; masked patches show
as the fill value after un-normalising.

Every view is drawn by one `Engine` call (`engine(x, views=V)`): the views of an image get independent
parameters from the engine's generator and each its own per-view overrides (`Policy.for_view(v)`), so
BYOL's view 1 (blur p=1) and view 2 (blur p=0.1, solarize p=0.2) differ as they do in training."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHORT_OPS = {"gaussian_blur": "blur", "horizontal_flip": "flip", "random_resized_crop": "crop",
             "color_jitter": "jitter", "patch_mask": "mask"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", action="append", metavar="POLICY",
                   help="a named policy or a .yaml file; repeat it or give a comma list to put several side by side "
                        "(default: simclr)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=int, default=6, help="number of images (rows)")
    p.add_argument("--views", type=int, default=2, help="views per image (columns after the original)")
    p.add_argument("--backend", default="fused", choices=["fused", "kornia", "albumentations"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default="cifar10", help="data set name for augbench.data.load_dataset")
    p.add_argument("--scale", type=int, default=4, help="pixel upscaling of each tile (nearest)")


def policy_names(values: list[str] | None) -> list[str]:
    """`--policy a --policy b,c` -> [a, b, c] (order kept, duplicates dropped); none given -> [simclr]."""
    names = [n.strip() for v in (values or ["simclr"]) for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(names))


def unnormalise(v, policy):
    import torch

    for op, p in policy.ops:
        if op == "normalize":
            mean = torch.tensor(p["mean"]).view(1, 3, 1, 1)
            std = torch.tensor(p["std"]).view(1, 3, 1, 1)
            v = v * std + mean
    return v.clamp(0, 1)


def asymmetric(policy) -> bool:
    return len({repr(sorted(v.items())) for v in policy.views}) > 1


def view_label(policy, v: int) -> list[str]:
    """["view 2", "blur p=0.1", "solarize p=0.2"]: the view's overrides when views differ by design."""
    lines = [f"view {v + 1}"]
    if asymmetric(policy):
        ov: dict[str, dict[str, Any]] = policy.views[v % len(policy.views)]
        lines += [f"{SHORT_OPS.get(op, op)} " + ", ".join(f"{k}={x}" for k, x in p.items()) for op, p in ov.items()]
    return lines


@dataclass
class Block:
    """One policy's part of the grid: its views of the shared images, each (n, 3, h, w) normalised."""
    policy: Any
    views: list

    @property
    def title(self) -> str:
        return f"policy {self.policy.name}" + (" (asymmetric views)" if asymmetric(self.policy) else "")

    def columns(self) -> list[list[str]]:
        return [["original"]] + [view_label(self.policy, v) for v in range(len(self.views))]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable with FreeType (Pillow >= 10.1)
    except TypeError:
        return ImageFont.load_default()


def render(images, classes: list[str], blocks: list[Block], scale: int, pad: int = 2, gap: int = 14):
    """HWC uint8 grid and the tile boxes {(block, row, col): (y, x, h, w)}; col 0 is the original."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image, ImageDraw

    font = _font(11)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    tw = lambda s: int(measure.textbbox((0, 0), s, font=font)[2])  # noqa: E731
    line = 14
    h = max([images.shape[-2]] + [v.shape[-2] for b in blocks for v in b.views]) * scale
    w = max([images.shape[-1]] + [v.shape[-1] for b in blocks for v in b.views]) * scale
    left = max(tw(c) for c in classes) + 2 * pad + 4
    head_lines = 1 + max(len(c) for b in blocks for c in b.columns())
    top = head_lines * line + pad
    widths = [[max(w, *(tw(s) + 4 for s in col)) for col in b.columns()] for b in blocks]
    block_w = [sum(ws) + pad * (len(ws) + 1) for ws in widths]
    canvas = Image.new("RGB", (left + sum(block_w) + gap * (len(blocks) - 1), top + len(images) * (h + pad) + pad),
                       "white")
    draw = ImageDraw.Draw(canvas)
    for r, c in enumerate(classes):
        draw.text((pad, top + pad + r * (h + pad) + h // 2 - line // 2), c, fill="black", font=font)
    boxes, x0 = {}, left
    for bi, (b, ws) in enumerate(zip(blocks, widths)):
        draw.text((x0 + pad, 0), b.title, fill="black", font=font)
        cols = [images.float() / 255] + [unnormalise(v.float().cpu(), b.policy) for v in b.views]
        x = x0 + pad
        for ci, (col, cw, label) in enumerate(zip(cols, ws, b.columns())):
            for li, s in enumerate(label):
                draw.text((x, (1 + li) * line), s, fill=(60, 60, 60) if li else "black", font=font)
            tiles = F.interpolate(col, size=(h, w), mode="nearest")
            tiles = (tiles * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for r in range(len(images)):
                y = top + pad + r * (h + pad)
                canvas.paste(Image.fromarray(tiles[r]), (x, y))
                boxes[bi, r, ci] = (y, x, h, w)
            x += cw + pad
        x0 += block_w[bi] + gap
    return np.asarray(canvas), boxes


def build(names: list[str], n: int = 6, views: int = 2, backend: str = "fused", seed: int = 0,
          dataset: str = "cifar10", scale: int = 4) -> dict:
    """The grid and what it shows: {"grid", "boxes", "blocks", "images", "classes"}."""
    from augbench.augment import Engine, Policy
    from augbench.data import load_dataset

    policies = [Policy.named(name) for name in names]
    # every policy is checked (engine built) before any data is loaded
    engines = [Engine(p, backend=backend, seed=seed) for p in policies]
    ds = load_dataset(dataset, "train", subset=-(-n // 10), seed=seed)  # per class
    idx = list(range(len(ds.images)))[:: max(1, len(ds.images) // n)][:n]  # spread over the classes
    images = ds.images[idx]
    classes = [ds.classes[int(ds.labels[i])] for i in idx]
    blocks = [Block(p, e(images, views=views)) for p, e in zip(policies, engines)]
    grid, boxes = render(images, classes, blocks, scale)
    return {"grid": grid, "boxes": boxes, "blocks": blocks, "images": images, "classes": classes}


def main(args: argparse.Namespace) -> int:
    from PIL import Image

    from augbench.errors import UserError

    for name in ("n", "views", "scale"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: expected a .png file name")
    names = policy_names(args.policy)
    res = build(names, args.n, args.views, args.backend, args.seed, args.dataset, args.scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(res["grid"]).save(out)
    print(f"wrote {out} ({len(res['images'])} images x {args.views} views; policies {', '.join(names)}; "
          f"backend {args.backend})")
    return 0
