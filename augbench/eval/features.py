"""What every evaluation feeds the encoder: the images as uint8 -> float, resized to the training view
size and normalised as the views were (no augmentation), and one forward pass per batch that gives the
backbone features and the projector outputs together."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from augbench.augment.ops import CIFAR10_MEAN, CIFAR10_STD


def normalization(policy) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean/std the views were normalised with; None when the policy does not normalise."""
    if policy is None:
        return CIFAR10_MEAN, CIFAR10_STD
    if policy.has("normalize"):
        p = policy.params("normalize")
        return tuple(p["mean"]), tuple(p["std"])
    return None


def prepare(x: torch.Tensor, norm, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, resized to the training view size, normalised."""
    x = x.float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    if norm is not None:
        mean = torch.tensor(norm[0], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(norm[1], device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x


def _bar(total: int, desc: str, progress: bool, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, leave=False)


@torch.no_grad()
def extract(fn: Callable[[torch.Tensor], Any], images: torch.Tensor, device: torch.device,
            norm=None, size=None, batch: int = 1024, amp: bool = False, desc: str = "features",
            progress: bool = False, nhwc: bool | None = None):
    """fn applied to every image (no augmentation), as float32 features on `device`; a tuple of
    them when fn returns a tuple (several outputs of one forward pass)."""
    out: list = []
    nhwc = (amp and device.type == "cuda") if nhwc is None else nhwc
    with _bar(len(images), desc, progress, "img") as bar:
        for i in range(0, len(images), batch):
            x = prepare(images[i:i + batch].to(device, non_blocking=True), norm, size)
            if nhwc:  # the layout the model was trained in (train.pretrain)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                y = fn(x)
            out.append(tuple(t.float() for t in y) if isinstance(y, tuple) else y.float())
            bar.update(len(x))
    if out and isinstance(out[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*out))
    return torch.cat(out)


def encoder_features(method: nn.Module, images: torch.Tensor, device: torch.device, norm, size, *,
                     amp: bool = False, projector: bool = True, desc: str = "features",
                     progress: bool = False) -> tuple[torch.Tensor, ...]:
    """(backbone features,) or (backbone features, projector outputs), from ONE forward pass per
    batch, in eval mode."""
    method.eval()
    bb, proj = method.backbone, getattr(method, "projector", None)
    if projector and isinstance(proj, nn.Module) and any(True for _ in proj.parameters()):
        def fn(x):
            f = bb(x)
            return f, proj(f)
    else:
        def fn(x):
            return (bb(x),)
    w = next((p for p in bb.parameters() if p.dim() == 4), None)  # feed a channels_last model NHWC
    nhwc = w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    return extract(fn, images, device, norm, size, amp=amp, desc=desc, progress=progress, nhwc=nhwc)
