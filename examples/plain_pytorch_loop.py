"""The augbench engine dropped into a plain PyTorch training loop (no augbench trainer).

A tiny ConvNet learns SimCLR-style on real CIFAR-10 images from $AUGBENCH_DATA: each step draws
two views of the batch with `Engine` (an nn.Module, on the batch's device) and minimises the
NT-Xent loss between them. Needs only torch, numpy and pyyaml (plus pillow to decode JPEGs once).

    python examples/plain_pytorch_loop.py --steps 20 --batch 128
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from augbench.augment import Engine, Policy
from augbench.data import load_dataset


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """SimCLR's loss: each view's positive is the other view of its image, the rest are negatives."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / tau
    sim.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def main(argv: list[str] | None = None) -> list[float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--policy", default="simclr")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    images = load_dataset("cifar10", "train", subset=args.batch).images  # uint8 (10 * batch, 3, 32, 32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=args.batch,
                                         shuffle=True, drop_last=True)
    augment = Engine(Policy.named(args.policy), seed=args.seed)  # augments on the batch's device
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    losses, step = [], 0
    while step < args.steps:
        for (x,) in loader:
            v1, v2 = augment(x.to(device, non_blocking=True), views=2)  # uint8 in, normalized float views out
            loss = nt_xent(model(v1), model(v2))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
            if step == args.steps:
                break
    # to resume exactly, checkpoint augment.state_dict() (its generators) beside the model's
    return losses


if __name__ == "__main__":
    main()
