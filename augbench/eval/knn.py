"""Weighted kNN on cosine similarity (Wu et al. 2018 / DINO): a chunked matmul on the device (bf16 on CUDA)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int,
                k: int = 200, t: float = 0.1, chunk: int | None = None) -> torch.Tensor:
    """Weighted kNN on cosine similarity (Wu et al. 2018 / DINO): each of the k nearest neighbours
    votes for its class with weight exp(sim / t). On CUDA the similarity matmul runs in bf16 (the
    top-k and the votes in fp32), 4096 test rows at a time; on the CPU in fp32, 1024 at a time."""
    cuda = train_f.device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    chunk = chunk or (4096 if cuda else 1024)
    train_t = F.normalize(train_f.float(), dim=1).to(dtype).T.contiguous()
    test_f = F.normalize(test_f.float().to(train_f.device), dim=1).to(dtype)
    train_y = train_y.to(train_f.device)
    k = min(k, len(train_f))
    preds = []
    for i in range(0, len(test_f), chunk):
        sim = (test_f[i:i + chunk] @ train_t).float()
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / t).exp()
        votes = torch.zeros(len(sim), num_classes, device=sim.device)
        votes.scatter_add_(1, train_y[top_idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_top1(train_f, train_y, test_f, test_y, num_classes: int, k: int = 200, t: float = 0.1) -> float:
    pred = knn_predict(train_f, train_y, test_f, num_classes, k, t)
    return 100.0 * (pred.cpu() == test_y.cpu()).float().mean().item()
