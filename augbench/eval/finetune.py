"""End-to-end fine-tuning of a copy of the backbone plus a linear head, with light augmentation."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from augbench.eval.features import extract


def finetune(backbone: nn.Module, train_images: torch.Tensor, train_y: torch.Tensor, test_images: torch.Tensor,
             test_y: torch.Tensor, num_classes: int, *, epochs: int, lr: float, device: torch.device,
             norm=None, size: tuple[int, int] = (32, 32), seed: int = 0, batch: int = 256,
             backend: str = "fused", amp: bool = False) -> float:
    """End-to-end fine-tuning of a copy of `backbone` plus a linear head, with light augmentation
    (random resized crop, scale >= 0.5, and flip, through the engine). Top-1 of the last epoch."""
    from augbench.augment import Engine
    from augbench.augment.policy import Policy

    ops = [{"op": "random_resized_crop", "size": list(size), "scale": [0.5, 1.0]}, {"op": "horizontal_flip"}]
    if norm is not None:
        ops.append({"op": "normalize", "mean": list(norm[0]), "std": list(norm[1])})
    engine = Engine(Policy.from_dict({"name": "finetune_light", "ops": ops}), backend=backend, seed=seed, device=device)
    model = nn.Sequential(copy.deepcopy(backbone), nn.Linear(backbone.feat_dim, num_classes)).to(device)
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    images = train_images.to(device)
    labels = train_y.to(device)
    batch = min(batch, len(images))
    steps_per_epoch = len(images) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(seed)
    amp = amp and device.type == "cuda"
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g).to(device)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            (x,) = engine(images[idx], views=1)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x).float(), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    logits = extract(model, test_images, device, norm, size, amp=amp)
    return 100.0 * (logits.argmax(1).cpu() == test_y.cpu()).float().mean().item()
