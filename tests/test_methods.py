"""Losses against direct formulas, the five methods end to end, and the momentum encoder."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augbench.config import RunConfig
from augbench.methods import build_method
from augbench.methods.losses import barlow_loss, byol_loss, nt_xent, simsiam_loss, vicreg_loss, vicreg_terms
from augbench.models import build_backbone


pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ["simclr", "byol", "vicreg", "barlow", "simsiam"]


def hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


# ------------------------------------------------------------------ losses
def nt_xent_direct(z1, z2, t):
    """SimCLR eq. (1), one anchor at a time, in float64 numpy."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[pos] / t) / denom)
    return total / (2 * n)


def test_nt_xent_matches_direct_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    for t in (0.1, 0.5):
        assert nt_xent(z1, z2, t).item() == pytest.approx(nt_xent_direct(z1.numpy(), z2.numpy(), t), rel=1e-5)


def test_nt_xent_identical_orthogonal_embeddings():
    n, t = 4, 0.5
    z = torch.eye(n) * 3.0  # scale must not matter: the loss normalises
    # positive similarity 1, the other 2n - 2 are orthogonal (similarity 0)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert nt_xent(z, z, t).item() == pytest.approx(expected, rel=1e-6)


def test_byol_and_simsiam_values_and_stop_gradient():
    p = torch.randn(5, 8, requires_grad=True)
    z = torch.randn(5, 8, requires_grad=True)
    assert byol_loss(p, p.detach() * 2).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(p, -p.detach()).item() == pytest.approx(4.0, abs=1e-6)
    assert simsiam_loss(p, p.detach()).item() == pytest.approx(-1.0, abs=1e-6)
    expected = (2 - 2 * F.cosine_similarity(p, z, dim=-1)).mean()
    assert byol_loss(p, z).item() == pytest.approx(expected.item(), rel=1e-6)
    (byol_loss(p, z) + simsiam_loss(p, z)).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None  # the target side is stop-gradient


def test_vicreg_terms():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 8, generator=g)
    z = (z - z.mean(0)) / z.std(0) * 2.0  # every dimension has std 2 >= 1
    inv, var, cov = vicreg_terms(z, z)
    assert inv.item() == 0.0 and var.item() == 0.0
    # Decorrelated dimensions (Hadamard columns, std ~1.01 >= 1): no covariance penalty either.
    h = hadamard(16)[:, 1:9] * 1.5
    inv, var, cov = vicreg_terms(h, h)
    assert var.item() == 0.0 and cov.item() == pytest.approx(0.0, abs=1e-10)
    # A collapsed embedding pays the full variance hinge; correlated dims pay covariance.
    collapsed = torch.ones(16, 8)
    assert vicreg_terms(collapsed, collapsed)[1].item() == pytest.approx(1 - math.sqrt(1e-4), rel=1e-5)
    x = torch.randn(32, 1, generator=g).repeat(1, 4)
    c = x[:, 0].var().item()  # every covariance entry equals the variance
    assert vicreg_terms(x, x)[2].item() == pytest.approx(2 * 12 * c**2 / 4, rel=1e-4)
    w = (25.0, 25.0, 1.0)
    z2 = torch.randn(64, 8, generator=g)
    i, v, cv = vicreg_terms(z, z2)
    assert vicreg_loss(z, z2, *w).item() == pytest.approx((25 * i + 25 * v + cv).item(), rel=1e-6)


def test_barlow_loss():
    h = hadamard(16)[:, 1:9]  # zero-mean, unit-variance, uncorrelated columns
    assert barlow_loss(h, h, 0.005).item() == pytest.approx(0.0, abs=1e-6)
    assert barlow_loss(h, -h, 0.005).item() == pytest.approx(4.0 * 8, rel=1e-4)  # diagonal -1
    # Fully redundant dims: diagonal 1, all d(d-1) off-diagonal entries 1, weighted by lambda.
    x = torch.randn(32, 1).repeat(1, 4)
    assert barlow_loss(x, x, 0.5).item() == pytest.approx(0.5 * 12, rel=1e-4)


# ------------------------------------------------------------------ methods
def tiny_cfg(method, **kw):
    return RunConfig(method=method, width=4, proj_hidden=32, proj_dim=16, pred_hidden=8, **kw)


def views(n=2, b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, 16, 16, generator=g) for _ in range(n)]


@pytest.mark.parametrize("method", METHODS)
def test_methods_train_step(method):
    torch.manual_seed(0)
    cfg = tiny_cfg(method)
    m = build_method(cfg, build_backbone(cfg))
    assert m.predictor is not None if method in ("byol", "simsiam") else m.predictor is None
    assert m.momentum == (method == "byol")
    loss, logs = m(views(3))
    assert loss.ndim == 0 and torch.isfinite(loss) and logs["loss"] == loss.detach()
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in logs.values())
    loss.backward()
    for part in (m.backbone, m.projector):
        assert all(p.grad is not None for p in part.parameters())
        assert sum(p.grad.abs().sum() for p in part.parameters()) > 0


def test_vicreg_logs_its_terms():
    cfg = tiny_cfg("vicreg", vicreg_weights=(1.0, 2.0, 3.0))
    m = build_method(cfg, build_backbone(cfg))
    loss, logs = m(views())
    parts = 1.0 * logs["invariance"] + 2.0 * logs["variance"] + 3.0 * logs["covariance"]
    assert loss.item() == pytest.approx(parts.item(), rel=1e-5)


def test_symmetric_over_views():
    for method in ("simclr", "byol", "vicreg"):
        torch.manual_seed(0)
        cfg = tiny_cfg(method)
        m = build_method(cfg, build_backbone(cfg)).eval()  # eval: BatchNorm uses fixed statistics
        a, b = views()
        assert m([a, b])[0].item() == pytest.approx(m([b, a])[0].item(), rel=1e-5)


def test_projector_depth_zero_is_identity():
    cfg = tiny_cfg("simclr", proj_depth=0)
    backbone = build_backbone(cfg)
    m = build_method(cfg, backbone)
    x = torch.randn(4, 3, 16, 16)
    m.eval()
    assert torch.equal(m.projector(backbone(x)), backbone(x)) and m.projector.out_dim == backbone.feat_dim


def test_vit_method_with_token_masks():
    torch.manual_seed(0)
    cfg = tiny_cfg("simclr", backbone="vit_tiny", patch_size=8, image_size=16)
    m = build_method(cfg, build_backbone(cfg, depth=1, embed_dim=16, num_heads=2))
    keep = [torch.tensor([[0, 1, 2]] * 8), torch.tensor([[3]] * 8)]  # per view, different counts
    loss, _ = m(views(), keep_idx=keep)
    loss.backward()
    assert torch.isfinite(loss)


# ------------------------------------------------------------------ momentum
@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_momentum_target_ema(method):
    torch.manual_seed(0)
    cfg = tiny_cfg(method, momentum=True, tau_base=0.9)
    m = build_method(cfg, build_backbone(cfg))
    targets = list(m.target_backbone.parameters()) + list(m.target_projector.parameters())
    onlines = list(m.backbone.parameters()) + list(m.projector.parameters())
    before = [t.detach().clone() for t in targets]
    loss, logs = m(views())
    loss.backward()
    with torch.no_grad():  # a plain SGD step over everything that has a gradient
        for p in m.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    # Backprop and the optimiser leave the target alone...
    assert all(t.grad is None and not t.requires_grad for t in targets)
    assert all(torch.equal(t, b) for t, b in zip(targets, before))
    assert any(not torch.equal(o, b) for o, b in zip(onlines, before))
    # ...update_target moves it by the cosine-scheduled EMA.
    step, total = 3, 10
    tau = 1 - (1 - 0.9) * (math.cos(math.pi * step / total) + 1) / 2
    m.update_target(step, total)
    assert m.tau == pytest.approx(tau)
    for t, b, o in zip(targets, before, onlines):
        assert torch.allclose(t, tau * b + (1 - tau) * o.detach(), atol=1e-6)
    for tb, ob in zip(m.target_backbone.buffers(), m.backbone.buffers()):
        assert torch.equal(tb, ob)  # BatchNorm statistics copied
    # At the start tau = tau_base; at the end tau = 1 (the target stops moving).
    m.update_target(0, total)
    assert m.tau == pytest.approx(0.9)
    frozen = [t.detach().clone() for t in targets]
    m.update_target(total, total)
    assert m.tau == 1.0 and all(torch.equal(t, f) for t, f in zip(targets, frozen))


def test_no_momentum_means_no_target():
    cfg = tiny_cfg("simclr")
    m = build_method(cfg, build_backbone(cfg))
    assert not hasattr(m, "target_backbone")
    state = {k: v.clone() for k, v in m.state_dict().items()}
    m.update_target(5, 10)  # a no-op
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())


# ------------------------------------------------------------------ distributed gather
def _dist_worker(rank, world, tmp, z1, z2):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    try:
        n, out = len(z1) // world, {}
        for name, fn in (("nt_xent", lambda a, b: nt_xent(a, b, 0.5)), ("barlow", barlow_loss),
                         ("vicreg", vicreg_loss)):
            a = z1[rank * n:(rank + 1) * n].clone().requires_grad_(True)
            b = z2[rank * n:(rank + 1) * n].clone().requires_grad_(True)
            loss = fn(a, b)
            loss.backward()
            # DDP averages gradients over ranks: that average must be the global-batch gradient.
            out[name] = (loss.detach(), a.grad / world, b.grad / world)
        torch.save(out, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_batch_losses_gather_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g)
    # fork: the children skip re-importing torch (seconds on 2 cores); they only run gloo on CPU.
    mp.start_processes(_dist_worker, args=(2, str(tmp_path), z1, z2), nprocs=2, start_method="fork")
    out = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, fn in (("nt_xent", lambda a, b: nt_xent(a, b, 0.5)), ("barlow", barlow_loss),
                     ("vicreg", vicreg_loss)):
        a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
        loss = fn(a, b)
        loss.backward()
        for rank in range(2):
            r_loss, r_ga, r_gb = out[rank][name]
            assert r_loss.item() == pytest.approx(loss.item(), rel=1e-5), name
            assert torch.allclose(r_ga, a.grad[rank * 4:(rank + 1) * 4], atol=1e-6), name
            assert torch.allclose(r_gb, b.grad[rank * 4:(rank + 1) * 4], atol=1e-6), name
