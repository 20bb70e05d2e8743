"""GPU fast paths that fail safe (issue 19, item 4), with the faults injected on the CPU: a kernel
(numba, Triton, the CUDA sampler's crop kernel) that raises when it compiles or launches, and a
compiled training step that fails on its first or a later step. The run goes on, on the reference
path, with one warning or message; the engine, the TrainResult and the row record it; the output
is what the reference path gives for the same parameters (same pixels, same final weights)."""
import contextlib
import warnings

import pytest
import torch
from torch import nn

from augbench.train import step as fast
from augbench.augment import AugmentInputError, Engine, Policy
from augbench.augment.backends import fused, fused_torch
from augbench.augment.backends.fused import FastPathFallback

pytestmark = pytest.mark.usefixtures("one_thread")
ILLEGAL = "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be reported later"


def _images(b=8, px=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, px, px), dtype=torch.uint8, generator=g)


def _faulty(calls, error, fail_from=1, works=fused_torch.run):
    """A kernel entry point that works (as `works`) before call `fail_from`, then raises `error`."""
    def run(x, plan, dtype, out=None):
        calls.append(1)
        if len(calls) >= fail_from:
            raise error
        return works(x, plan, dtype)
    return run


def _equal(a, b):
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathFallback)
        yield


# ---------------------------------------------------------------------------- the engine's kernels
@pytest.mark.parametrize("impl, module, error", [
    ("numba", "numba_view", RuntimeError(ILLEGAL)),
    ("triton", "triton_view", RuntimeError("triton compile failed: ptxas fatal error")),
])
def test_kernel_failure_on_the_first_call_falls_back_once_with_the_same_pixels(impl, module, error, monkeypatch):
    mod = pytest.importorskip(f"augbench.augment.backends.{module}")
    calls = []
    monkeypatch.setattr(mod, "run", _faulty(calls, error))
    x = _images()
    e = Engine("simclr", seed=0, impl=impl)
    assert e.impl == impl and e.fallback is None
    with pytest.warns(FastPathFallback) as rec:
        views, params = e(x, views=2, return_params=True)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert impl in msg and "RuntimeError" in msg and str(error).splitlines()[0] in msg and "torch path" in msg
    assert "\n" not in msg  # the first line only
    assert e.impl == "torch" and calls == [1]  # the second view went straight to the torch path
    assert e.fallback == {"from": impl, "to": "torch", "error": "RuntimeError: " + str(error).splitlines()[0]}
    # the same parameters, the same pixels as an engine on the torch path from the start
    ref = Engine("simclr", seed=0, impl="torch")
    ref_views, ref_params = ref(x, views=2, return_params=True)
    assert _equal(views, ref_views)
    assert all(torch.equal(params[v][op][k], ref_params[v][op][k]) for v in range(2)
               for op in params[v] for k in params[v][op])
    # later calls: no second warning, no second try of the kernel, still the reference pixels
    with _no_warning():
        assert _equal(e(x), ref(x))
        assert _equal(e(x, params=params), ref_views)  # replay too
    assert calls == [1] and e.impl == "torch"
    # the engine's state (generators) resumes as usual
    e2 = Engine("simclr", seed=0, impl="torch")
    e2.load_state_dict(e.state_dict())
    assert _equal(e2(x), ref(x))


def test_kernel_failure_on_a_later_call(monkeypatch):
    mod = pytest.importorskip("augbench.augment.backends.numba_view")
    calls = []
    monkeypatch.setattr(mod, "run", _faulty(calls, RuntimeError("numba: LoweringError"), fail_from=4))
    x = _images()
    e, ref = Engine("byol", seed=1, impl="numba"), Engine("byol", seed=1, impl="torch")
    with _no_warning():
        assert _equal(e(x), ref(x))  # calls 1, 2: the "kernel" works
    assert e.impl == "numba" and e.fallback is None
    with pytest.warns(FastPathFallback, match="numba kernel failed") as rec:
        assert _equal(e(x), ref(x))  # call 3 works, call 4 fails and is redone on the torch path
    assert len(rec) == 1 and e.fallback["error"] == "RuntimeError: numba: LoweringError" and e.impl == "torch"
    assert _equal(e(x), ref(x)) and len(calls) == 4


def test_bad_input_is_not_a_kernel_fault(monkeypatch):
    """A UserError from the kernel path is the caller's: it propagates, nothing falls back."""
    mod = pytest.importorskip("augbench.augment.backends.numba_view")
    monkeypatch.setattr(mod, "run", _faulty([], AugmentInputError("input: bad")))
    e = Engine("simclr", seed=0, impl="numba")
    with pytest.raises(AugmentInputError, match="input: bad"):
        e(_images())
    assert e.fallback is None and e.impl == "numba"


def test_triton_on_a_machine_without_a_gpu_falls_back():
    """A real fault, not an injected one: the Triton path forced where no driver is (unless the tests
    run Triton in its interpreter)."""
    import os

    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1" or torch.cuda.is_available():
        pytest.skip("Triton runs here (interpreter or GPU)")
    x = _images(4)
    e = Engine("full", seed=2, impl="triton")
    with pytest.warns(FastPathFallback, match="triton kernel failed"):
        views = e(x)
    assert e.impl == "torch" and _equal(views, Engine("full", seed=2, impl="torch")(x))


# ---------------------------------------------------------------------------- the CUDA sampler's crop kernel
def _sampler_args(seed=0):
    return dict(gen=torch.Generator().manual_seed(seed), device="cpu", order_gen=torch.Generator().manual_seed(seed + 1))


def test_crop_kernel_failure_uses_its_torch_twin_on_the_same_uniforms(monkeypatch):
    ts = pytest.importorskip("augbench.augment.backends.triton_sample")
    ops = Policy.named("full").with_params("patch_mask", ratio=0.5).for_view(0)
    shape = (16, 3, 32, 32)
    calls = []
    monkeypatch.setattr(ts, "crop", _faulty(calls, RuntimeError("triton: out of resources")))
    a = _sampler_args()
    with pytest.raises(RuntimeError, match="out of resources"):  # no handler: the caller sees the fault
        ts.sample_params(ops, shape, **a)
    errors = []
    a, b = _sampler_args(), _sampler_args()
    got = ts.sample_params(ops, shape, **a, on_kernel_error=errors.append)
    ref = ts.sample_params(ops, shape, **b, crop_kernel=False)
    assert [str(e) for e in errors] == ["triton: out of resources"]
    assert got.keys() == ref.keys() and all(torch.equal(got[o][k], ref[o][k]) for o in got for k in got[o])
    # nothing drawn twice: both generators are where the reference left them
    assert torch.equal(a["gen"].get_state(), b["gen"].get_state())
    assert torch.equal(a["order_gen"].get_state(), b["order_gen"].get_state())
    # the twin is the kernel's own reference (tests/test_kernel.py holds the kernel to it)
    u = torch.rand(500, 23, generator=torch.Generator().manual_seed(3))
    p = {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3), "p": 0.8}
    box = fused.crop_from_uniforms(u[:, :10], u[:, 10:20], u[:, 20], u[:, 21], (32, 24), p["scale"], p["ratio"])
    assert torch.equal(ts.crop_torch(u, 0, (32, 24), p),
                       torch.where((u[:, 22] < 0.8)[:, None], box, fused.full_box(500, (32, 24), "cpu")))


def test_engine_sampler_fault_falls_back_once(monkeypatch):
    """The engine on 'CUDA' (the CUDA sampler forced on the CPU): the crop kernel fails on the first
    view; one warning, the engine records it, and every later view uses the twin without trying."""
    ts = pytest.importorskip("augbench.augment.backends.triton_sample")
    monkeypatch.setattr(fused, "triton_sampler", lambda device: True)
    x = _images()
    good = Engine("simclr", seed=0, impl="torch")
    monkeypatch.setattr(ts, "crop", ts.crop_torch)
    ref = [good(x), good(x)]
    calls = []
    monkeypatch.setattr(ts, "crop", _faulty(calls, RuntimeError(ILLEGAL)))
    e = Engine("simclr", seed=0, impl="torch")
    with pytest.warns(FastPathFallback, match="triton kernel failed") as rec:
        first = e(x)
    assert len(rec) == 1 and e.fallback["from"] == "triton" and e.fallback["error"].startswith("RuntimeError: CUDA")
    with _no_warning():
        second = e(x)
    assert calls == [1] and _equal(first, ref[0]) and _equal(second, ref[1])


# ---------------------------------------------------------------------------- the compiled training step
TINY = dict(cifar_stem=True, width=4, batch_size=20, epochs=2, proj_hidden=32, proj_dim=16, pred_hidden=16,
            progress=False, ckpt_every=0, optimizer="sgd", lr=0.05, subset=4)


class Flaky(nn.Module):
    """A stand-in for torch.compile's module: runs the eager model, but step `fail_at` raises (before
    the forward, as a compile error does, or after it, as a failed CUDA-graph capture or backward
    does, with BatchNorm's statistics already updated)."""

    def __init__(self, inner, fail_at, after_forward=False):
        super().__init__()
        self.inner, self.fail_at, self.after_forward, self.calls = inner, fail_at, after_forward, 0

    def forward(self, *a, **kw):
        self.calls += 1
        if self.calls == self.fail_at and not self.after_forward:
            raise RuntimeError("torch._dynamo.exc.BackendCompilerFailed: backend='inductor' raised:\nmore")
        out = self.inner(*a, **kw)
        if self.calls == self.fail_at:
            raise RuntimeError("CUDA graph capture failed: operation not permitted when stream is capturing")
        return out


def _pretrain(compile_, monkeypatch=None, fail_at=None, after_forward=False, method="simclr"):
    from augbench.config import RunConfig
    from augbench.data import load_dataset
    from augbench.methods import build_method
    from augbench.models import build_backbone
    from augbench.train.loop import pretrain

    if monkeypatch is not None:
        monkeypatch.setattr(fast, "compile_model", lambda model, mode: Flaky(model, fail_at, after_forward))
    cfg = RunConfig(**{**TINY, "method": method, "policy": method, "compile": compile_})
    images = load_dataset("cifar10", split="train", subset=cfg.subset, seed=0).images
    torch.manual_seed(cfg.seed)
    m = build_method(cfg, build_backbone(cfg))
    res = pretrain(cfg, m, images, Engine(cfg.policy_obj(), seed=cfg.seed, impl="torch"), device=torch.device("cpu"))
    return res, m


@pytest.fixture(scope="module")
def eager_run(one_thread):
    return _pretrain("off")


# 40 images, batch 20: 2 steps an epoch; call 3 is epoch 2's first step
@pytest.mark.parametrize("fail_at, after_forward, epoch, step", [(1, False, 1, 1), (1, True, 1, 1), (3, True, 2, 1)])
def test_compiled_step_failure_trains_on_eagerly_with_the_same_weights(eager_run, monkeypatch, capsys,
                                                                         fail_at, after_forward, epoch, step):
    ref, ref_model = eager_run
    assert fast.compile_mode("on", torch.device("cpu")) == "default"  # reaches compile_model on the CPU
    res, model = _pretrain("on", monkeypatch, fail_at, after_forward)
    out = capsys.readouterr().out
    assert out.count("augbench: torch.compile") == 1 and "training eagerly" in out
    assert f"epoch {epoch} step {step}" in out and "RuntimeError" in out
    assert res.compile_mode is None
    assert [h["epoch"] for h in res.history] == [1, 2] and res.steps == ref.steps
    assert len(res.fallbacks) == 1
    f = res.fallbacks[0]
    assert {k: f[k] for k in ("kind", "from", "to", "epoch", "step")} == \
        {"kind": "compile", "from": "default", "to": "eager", "epoch": epoch, "step": step}
    assert f["error"].startswith("RuntimeError: ") and "\n" not in f["error"]
    # the failed step was redone once with the same views: every weight and BatchNorm statistic
    # (put back after a failure past the forward) equals the eager run's, bitwise
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref.history]
    sd, ref_sd = model.state_dict(), ref_model.state_dict()
    assert sd.keys() == ref_sd.keys() and all(torch.equal(sd[k], ref_sd[k]) for k in sd)


def test_eager_run_reports_no_fallback(eager_run):
    assert eager_run[0].fallbacks == [] and eager_run[0].compile_mode is None


def test_buffer_snapshot_puts_batchnorm_statistics_back():
    bn = nn.BatchNorm1d(3)
    snap = fast.BufferSnapshot(bn)
    snap.save()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    bn(torch.randn(8, 3))
    assert not torch.equal(bn.running_mean, before["running_mean"]) and int(bn.num_batches_tracked) == 1
    snap.restore()
    assert all(torch.equal(v, before[k]) for k, v in bn.state_dict().items())


# ---------------------------------------------------------------------------- the row
SMALL = dict(method="simclr", policy="simclr", cifar_stem=True, width=4, subset=10, epochs=2, batch_size=20,
             optimizer="sgd", lr=0.1, weight_decay=1e-6, temperature=0.2, proj_hidden=64, proj_dim=32,
             eval_subset=10, knn_k=20, linear_epochs=0, progress=False, num_threads=1, ckpt_every=0,
             recipe="generic")


def test_row_records_what_fell_back_and_trains_like_the_reference_paths(tmp_path, monkeypatch, capsys):
    """A run whose numba kernel and compiled step both fail = a run on the torch path, eager."""
    numba_view = pytest.importorskip("augbench.augment.backends.numba_view")
    from augbench.config import RunConfig
    from augbench.run import run_config

    monkeypatch.setenv("AUGBENCH_FUSED_IMPL", "torch")
    ref = run_config(RunConfig(**SMALL, compile="off"), results_dir=tmp_path / "ref" / "runs")
    assert ref["status"] == "done" and ref["env"]["aug_impl"] == "torch" and ref["env"]["fallbacks"] == []

    monkeypatch.setenv("AUGBENCH_FUSED_IMPL", "numba")
    monkeypatch.setattr(numba_view, "run", _faulty([], RuntimeError(ILLEGAL)))
    monkeypatch.setattr(fast, "compile_model", lambda model, mode: Flaky(model, 2, after_forward=True))
    cfg = RunConfig(**SMALL, compile="on")
    with pytest.warns(FastPathFallback, match="numba kernel failed"):
        row = run_config(cfg, results_dir=tmp_path / "faulty" / "runs")
    assert row["status"] == "done", row["error"]
    assert row["run_id"] == ref["run_id"]  # execution only: the same run
    assert [h["epoch"] for h in row["history"]] == [1, 2]
    env = row["env"]
    assert env["aug_impl"] == "torch"
    kinds = {f["kind"]: f for f in env["fallbacks"]}
    assert sorted(kinds) == ["augment", "compile"] and len(env["fallbacks"]) == 2
    assert kinds["augment"] == {"kind": "augment", "policy": "simclr", "from": "numba", "to": "torch",
                                "error": "RuntimeError: CUDA error: an illegal memory access was encountered"}
    assert kinds["compile"]["from"] == "default" and kinds["compile"]["step"] == 2
    assert capsys.readouterr().out.count("augbench: torch.compile") == 1
    assert row["weights_sha256"] == ref["weights_sha256"]
    assert [h["loss"] for h in row["history"]] == [h["loss"] for h in ref["history"]]
    assert row["metrics"] == ref["metrics"]
    from augbench.store.rows import read_row

    assert read_row(cfg.run_id, tmp_path / "faulty" / "runs")["env"]["fallbacks"] == env["fallbacks"]
