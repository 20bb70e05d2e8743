"""Accuracy during training (solo-learn's online kNN callback, made cheap): every N epochs, a weighted kNN
of the backbone's features on a fixed, class-balanced slice: a bank of labeled training images and
queries from the test split, which pretraining never sees.

It only reads the encoder: features come from an eval-mode forward pass under no_grad (BatchNorm
statistics are not updated) and nothing draws from a random generator, so a run with the monitor on
trains exactly the same weights as one with it off (tests/test_online_knn.py checks the hash). That is
why its settings are execution fields, outside the run id.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from augbench.eval.features import encoder_features
from augbench.eval.knn import knn_top1


def balanced_slice(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """The first `per_class` indices of each class, in index order (fewer where a class has fewer):
    the same slice in every run and every epoch, with no random draw."""
    labels = labels.cpu()
    keep = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)]
    return torch.cat(keep).sort().values


class OnlineKNN:
    """Called at the end of an epoch with the method being trained; returns the columns it adds to that
    epoch's log row ({"knn_online": top-1 %, "knn_online_s": seconds}) or {} on epochs it skips."""

    def __init__(self, train, test, device: torch.device, *, every: int, per_class: int, k: int, t: float,
                 norm, size, amp: bool = False) -> None:
        n = len(train.classes)
        bank, queries = balanced_slice(train.labels, n, per_class), balanced_slice(test.labels, n, per_class)
        self.bank_x, self.bank_y = train.images[bank], train.labels[bank]
        self.query_x, self.query_y = test.images[queries], test.labels[queries]
        self.every, self.num_classes, self.k, self.t = every, n, k, t
        self.device, self.norm, self.size, self.amp = device, norm, size, amp

    def __call__(self, method: nn.Module, epoch: int) -> dict[str, float]:
        """`epoch`: the 1-based number of the epoch just finished."""
        if self.every <= 0 or epoch % self.every:
            return {}
        t0 = time.perf_counter()
        was_training = method.training
        kw = dict(projector=False, amp=self.amp, desc="online kNN")
        try:
            (fb,) = encoder_features(method, self.bank_x, self.device, self.norm, self.size, **kw)
            (fq,) = encoder_features(method, self.query_x, self.device, self.norm, self.size, **kw)
        finally:
            method.train(was_training)
        acc = knn_top1(fb, self.bank_y, fq, self.query_y, self.num_classes, self.k, self.t)
        return {"knn_online": acc, "knn_online_s": time.perf_counter() - t0}
