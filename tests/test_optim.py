"""augbench.train.optim: LARS (foreach) against a plain per-parameter reference of solo-learn's LARS, the
bias/norm exclusion, the optimisers a RunConfig builds, and the lr schedule."""
import copy

import pytest
import torch
from torch import nn

from augbench.config import ConfigError, RunConfig
from augbench.train.optim import LARS, build_optimizer, lr_at, param_groups, peak_lr


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


def _reference_step(params, bufs, lr, momentum, wd, eta, clip, exclude, eps=1e-8):
    """solo-learn's LARS step (solo/utils/lars.py) written out per parameter."""
    with torch.no_grad():
        for i, p in enumerate(params):
            d = p.grad.clone()
            if p.ndim != 1 or not exclude:
                p_norm, g_norm = torch.norm(p), torch.norm(p.grad)
                if p_norm != 0 and g_norm != 0:
                    trust = eta * p_norm / (g_norm + p_norm * wd + eps)
                    if clip:
                        trust = min(trust / lr, 1)
                    d = (d + wd * p) * trust
            bufs[i] = d.clone() if bufs[i] is None else bufs[i].mul_(momentum).add_(d)
            p.sub_(lr * bufs[i])


@pytest.mark.parametrize("clip,exclude", [(True, True), (False, True), (True, False), (False, False)])
def test_lars_matches_the_reference_step_for_step(clip, exclude):
    ours, ref = _model(), _model()
    ref.load_state_dict(ours.state_dict())
    opt = LARS(param_groups(ours.parameters(), exclude, lars=True), lr=0.1, momentum=0.9, weight_decay=1e-3,
               eta=0.02, clip_lr=clip)
    ref_params, bufs = list(ref.parameters()), [None] * len(list(ref.parameters()))
    g = torch.Generator().manual_seed(1)
    for step, lr in enumerate([0.05, 0.4, 2.0, 0.01, 1.0]):
        x, y = torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g)
        for m in (ours, ref):
            m.zero_grad()
            nn.functional.mse_loss(m(x), y).backward()
            if step == 2:  # a zero gradient: solo-learn steps by it (no decay), momentum carries on
                m[3].weight.grad.zero_()
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        _reference_step(ref_params, bufs, lr, 0.9, 1e-3, 0.02, clip, exclude)
        for a, b in zip(ours.parameters(), ref.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step}")
    # the zero-initialised BatchNorm bias had a zero norm at step 0 and still moved
    assert ours[1].bias.abs().sum() > 0


def test_lars_leaves_biases_and_norms_out_of_decay_and_trust_ratio():
    model = _model()
    before = copy.deepcopy(model)
    opt = LARS(param_groups(model.parameters(), True, lars=True), lr=0.5, momentum=0.9, weight_decay=0.1,
               eta=0.001, clip_lr=True)
    nn.functional.mse_loss(model(torch.randn(16, 8)), torch.randn(16, 4)).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    for (name, p), q in zip(model.named_parameters(), before.parameters()):
        step = (q - p).detach()
        if p.ndim == 1:  # plain SGD: lr x grad, no weight decay, no trust ratio
            torch.testing.assert_close(step, 0.5 * grads[name])
        else:  # scaled by the trust ratio: far smaller than lr x grad at eta 0.001
            assert step.norm() < 0.5 * 0.01 * (grads[name] + 0.1 * q.detach()).norm(), name
    groups = opt.param_groups
    assert [g["adapt"] for g in groups] == [True, False] and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in groups[1]["params"]) and all(p.ndim > 1 for p in groups[0]["params"])


def _cfg(**kw) -> RunConfig:
    return RunConfig.from_dict({"width": 4, "proj_hidden": 16, "proj_dim": 8, "pred_hidden": 8, **kw})


def test_build_optimizer_follows_the_config():
    model = _model()
    lars = build_optimizer(_cfg(method="simclr"), model.parameters(), 0.3)  # solo-learn: LARS, eta 0.02, clip
    assert isinstance(lars, LARS) and len(lars.param_groups) == 2
    assert lars.param_groups[0]["eta"] == 0.02 and lars.param_groups[0]["clip_lr"] is True
    assert lars.param_groups[0]["weight_decay"] == 1e-4
    sgd = build_optimizer(_cfg(method="simsiam"), model.parameters(), 0.3)  # solo-learn SimSiam: SGD, decay on all
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 1 and sgd.defaults["foreach"] is True
    sgd2 = build_optimizer(_cfg(optimizer="sgd", exclude_bias_norm=True), model.parameters(), 0.3)
    assert [g["weight_decay"] for g in sgd2.param_groups] == [1e-4, 0.0]
    adamw = build_optimizer(_cfg(optimizer="adamw", recipe="generic"), model.parameters(), 1e-3)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 5e-4


def test_peak_lr_scales_linearly_or_not_at_all():
    assert peak_lr(_cfg(lr=0.4, batch_size=512)) == pytest.approx(0.8)
    assert peak_lr(_cfg(lr=0.4, batch_size=128), world_size=4) == pytest.approx(0.8)
    assert peak_lr(_cfg(lr=0.06, batch_size=512, lr_scaling="none")) == 0.06


def test_lr_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 1e-3


@pytest.mark.parametrize("field,value", [("lars_eta", 0.0), ("lars_clip", "yes"), ("exclude_bias_norm", 1),
                                         ("lr_scaling", "sqrt"), ("optimizer", "adam"), ("barlow_scale", -1.0)])
def test_bad_optimizer_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        _cfg(**{field: value})


def test_predictor_lr_mult_scales_only_the_predictors_step():
    """pred_lr_mult 10: after one SGD step (no momentum history yet) the predictor moved 10x as far as at
    mult 1 and every other parameter exactly as far; the lr schedule keeps the ratio."""
    from augbench.methods import build_method
    from augbench.models import build_backbone
    from augbench.train.step import set_lr

    def one_step(mult):
        cfg = RunConfig(method="byol", recipe="generic", width=4, proj_hidden=16, proj_dim=8, pred_hidden=16,
                        pred_lr_mult=mult, optimizer="sgd", weight_decay=0.0)
        torch.manual_seed(0)
        m = build_method(cfg, build_backbone(cfg))
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        opt = build_optimizer(cfg, m.parameters(), 0.05, predictor=m.predictor.parameters())
        set_lr(opt, None, 0.05)
        torch.manual_seed(1)
        loss, _ = m([torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)])
        loss.backward()
        opt.step()
        return {n: p.detach() - before[n] for n, p in m.named_parameters()}, opt

    base, _ = one_step(1.0)
    fast, opt = one_step(10.0)
    assert sorted({g.get("lr_mult", 1.0) for g in opt.param_groups}) == [1.0, 10.0]
    assert all(g["lr"] == pytest.approx(0.05 * g.get("lr_mult", 1.0)) for g in opt.param_groups)
    moved = [n for n in base if n.startswith("predictor.") and base[n].abs().max() > 0]
    assert moved, "the predictor should have moved"
    for n in base:
        if n.startswith("predictor."):
            torch.testing.assert_close(fast[n], 10 * base[n], rtol=1e-4, atol=1e-7)
        else:
            torch.testing.assert_close(fast[n], base[n], rtol=0, atol=0)


def test_predictor_lr_mult_keeps_earlier_run_ids_and_names_bad_values():
    cfg = RunConfig(method="byol")
    assert "pred_lr_mult" not in cfg.to_dict()  # left out at its default: earlier rows keep their ids
    assert cfg.run_id == RunConfig(method="byol", pred_lr_mult=1.0).run_id
    assert RunConfig(method="byol", pred_lr_mult=10.0).run_id != cfg.run_id
    assert RunConfig(method="byol", pred_lr_mult=10.0).to_dict()["pred_lr_mult"] == 10.0
    assert RunConfig(method="byol", pred_lr_mult=10.0).replace(seed=1).pred_lr_mult == 10.0
    for bad, msg in ((0.0, "pred_lr_mult"), (-1.0, "pred_lr_mult"), ("x", "must be a number")):
        with pytest.raises(ConfigError, match=msg):
            RunConfig.from_dict({"method": "byol", "pred_lr_mult": bad})
    with pytest.raises(ConfigError, match="pred_lr_mult.*predictor"):
        RunConfig.from_dict({"method": "simclr", "pred_lr_mult": 10.0})


def test_a_row_without_the_late_field_keeps_its_default_when_a_recipe_sets_it(monkeypatch):
    """A row written before pred_lr_mult existed (or at 1) has no such key; if a recipe later sets it,
    the row still loads as the run it was (from_concrete), while a new config takes the recipe's value."""
    from augbench import config as C

    old = RunConfig(method="byol")
    row = old.to_dict()
    real = C.recipes.values_for
    monkeypatch.setattr(C.recipes, "values_for", lambda *a: {**real(*a), "pred_lr_mult": 10.0})
    assert RunConfig(method="byol").pred_lr_mult == 10.0
    again = RunConfig.from_concrete(row)
    assert again.pred_lr_mult == 1.0 and again.run_id == old.run_id
    assert RunConfig.from_concrete(RunConfig(method="byol", pred_lr_mult=1.0).to_dict()).pred_lr_mult == 1.0
