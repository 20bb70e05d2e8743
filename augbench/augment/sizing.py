"""What a policy's numbers depend on besides the method: the image size and the data set.

SimCLR blurs with a kernel of about 10 % of the image side (23 taps at 224 px, 3 at 32 px), and
normalizes with the data set's own channel statistics. `Policy.for_size` applies both:

    Policy.named("simclr").for_size(224, dataset="imagenet")   # 224 px crops, 23-tap blur, ImageNet stats
    Policy.named("simclr", size=96, dataset=channel_stats(my_images))
"""
from __future__ import annotations

from typing import Any, Sequence, Union

from augbench.augment.ops import CIFAR10_MEAN, CIFAR10_STD, PolicyError

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std), RGB in [0, 1]

DATASET_STATS: dict[str, Stats] = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # all 9,469 training images of $AUGBENCH_DATA/imagenette32, by augment.channel_stats
    "imagenette32": ((0.4623, 0.4578, 0.4301), (0.2620, 0.2607, 0.2830)),
}

DatasetArg = Union[str, Sequence[Sequence[float]], None]


def blur_kernel_size(side: int) -> int:
    """SimCLR's rule: int(10 % of the side), made odd, at least 3 (224 -> 23, 96 -> 9, 32 -> 3)."""
    k = int(0.1 * side)
    return max(3, k + 1 if k % 2 == 0 else k)


def channel_stats(images: Any) -> Stats:
    """Per-channel mean and std of uint8 (N, 3, H, W) images (or float in [0, 1]), in [0, 1]."""
    import torch

    x = torch.as_tensor(images)
    if x.dim() != 4 or x.shape[1] != 3:
        raise PolicyError(f"channel_stats: expected images (N, 3, H, W), got shape {tuple(x.shape)}")
    x = x.double() / 255 if x.dtype == torch.uint8 else x.double()
    flat = x.transpose(0, 1).reshape(3, -1)
    return tuple(flat.mean(1).tolist()), tuple(flat.std(1).tolist())


def resolve_stats(dataset: DatasetArg) -> Stats | None:
    """A data set's (mean, std): a name from DATASET_STATS, or a (mean, std) pair; None keeps the policy's."""
    if dataset is None:
        return None
    if isinstance(dataset, str):
        if dataset not in DATASET_STATS:
            raise PolicyError(f"dataset: no statistics for {dataset!r}; known: {sorted(DATASET_STATS)}, or pass "
                              "(mean, std), e.g. from augbench.augment.channel_stats(images)")
        return DATASET_STATS[dataset]
    try:
        mean, std = dataset
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise PolicyError(f"dataset: expected a name or (mean, std), got {dataset!r}") from None
