"""The fast training step and its observability: compile settings, per-epoch loss parts and z_std in
the log, timing, the fused optimizer, TensorBoard as an option, bench-train's JSON; and, on CUDA
(marker `cuda`), a step that never waits for the GPU and compiled training."""
import csv
import json
import warnings

import pytest
import torch

from augbench.train import step as fast
from augbench.augment import Engine
from augbench.config import ConfigError, RunConfig
from augbench.data import load_dataset
from augbench.methods import build_method
from augbench.models import build_backbone
from augbench.train.loop import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")
CUDA = torch.cuda.is_available()
TINY = dict(cifar_stem=True, width=4, batch_size=20, epochs=2, proj_hidden=32, proj_dim=16, pred_hidden=16,
            progress=False, ckpt_every=0, optimizer="sgd", lr=0.05)


def _train(tmp_path, device="cpu", subset=4, plain_views=False, **kw):
    cfg = RunConfig(**{**TINY, "device": device, **kw})
    images = load_dataset("cifar10", split="train", subset=subset, seed=0).images  # 10 x subset images
    torch.manual_seed(cfg.seed)
    method = build_method(cfg, build_backbone(cfg))
    if plain_views:  # the step alone (the engine's own no-sync test is in test_engine.py)
        from augbench.bench.train import PlainViews
        engine = PlainViews(None, (32, 32))
    else:
        engine = Engine(cfg.policy_obj(), seed=cfg.seed, device=torch.device(device))
    log = tmp_path / "logs" / f"{cfg.run_id}.csv"
    res = pretrain(cfg, method, images, engine, device=torch.device(device), log_path=log)
    return cfg, res, log


def test_compile_setting_resolves_per_device():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert fast.compile_mode("auto", cpu) is None  # CPU runs stay eager and bitwise deterministic
    assert fast.compile_mode("auto", gpu) == "reduce-overhead"  # CUDA graphs: the step's shapes are static
    assert fast.compile_mode("auto", gpu, distributed=True) == "default"  # DDP hooks stay out of graphs
    assert fast.compile_mode("off", gpu) is None and fast.compile_mode(False, gpu) is None
    assert fast.compile_mode(True, cpu) == "default" and fast.compile_mode("max-autotune-no-cudagraphs", gpu) \
        == "max-autotune-no-cudagraphs"
    assert RunConfig().compile == "auto" and RunConfig(compile=False).run_id == RunConfig().run_id  # not hashed
    with pytest.raises(ConfigError, match="'compile'"):
        RunConfig.from_dict({"compile": "fast"})


def test_log_has_z_std_and_the_methods_loss_parts(tmp_path):
    cfg, res, log = _train(tmp_path, method="vicreg", policy="vicreg")
    assert res.compile_mode is None  # auto: eager on the CPU
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 2 and list(rows[0])[:7] == ["epoch", "loss", "lr", "epoch_s", "aug_s", "model_s", "img_s"]
    for h, r in zip(res.history, rows):
        assert {"z_std", "invariance", "variance", "covariance"} <= set(h) and float(r["z_std"]) == h["z_std"]
        w = cfg.vicreg_weights  # the epoch means of the parts add up to the mean loss
        total = w[0] * h["invariance"] + w[1] * h["variance"] + w[2] * h["covariance"]
        assert total == pytest.approx(h["loss"], rel=1e-6)  # fp32 parts
        assert 0.0 < h["z_std"] <= 1.05 * cfg.proj_dim ** -0.5  # unbiased std: a bit over 1/sqrt(d)
        assert h["aug_s"] > 0 and h["model_s"] > 0 and h["aug_s"] + h["model_s"] <= h["epoch_s"]
    _, byol, _ = _train(tmp_path, method="byol", policy="byol")
    assert 0.99 <= byol.history[0]["tau"] < byol.history[1]["tau"] <= 1.0  # the EMA schedule, per epoch


def test_cpu_training_is_bitwise_repeatable(tmp_path):
    a = _train(tmp_path / "a", method="byol", policy="byol", epochs=1)[1].history
    b = _train(tmp_path / "b", method="byol", policy="byol", epochs=1)[1].history
    assert [(h["loss"], h["z_std"]) for h in a] == [(h["loss"], h["z_std"]) for h in b]


def test_cpu_bf16_autocast_is_its_own_run_and_bitwise_repeatable(tmp_path):
    """amp_cpu: bf16 autocast of the CPU step. A different computation (another run id, other losses),
    itself repeatable bit for bit; off, the run id is what it was before the field existed."""
    cfg = RunConfig(**TINY)
    assert "amp_cpu" not in cfg.to_dict() and cfg.replace(amp_cpu=True).run_id != cfg.run_id
    assert fast.bf16_autocast(cfg.replace(amp_cpu=True), torch.device("cpu"))
    assert not fast.bf16_autocast(cfg, torch.device("cpu")) and fast.bf16_autocast(cfg, torch.device("cuda"))
    with pytest.raises(ConfigError, match="'amp_cpu'"):
        RunConfig.from_dict({"amp_cpu": "yes"})
    runs = [_train(tmp_path / d, method="simclr", policy="simclr", epochs=1, amp_cpu=bf) for d, bf in
            (("a", True), ("b", True), ("c", False))]
    a, b, c = ([(h["loss"], h["z_std"]) for h in r[1].history] for r in runs)
    assert a == b and a != c and abs(a[0][0] - c[0][0]) < 0.05 * abs(c[0][0])  # close to fp32, not equal


def test_step_timer_sums_each_part_of_the_step():
    timer = fast.StepTimer(torch.device("cpu"))
    for _ in range(3):
        timer.mark()
        torch.randn(200, 200) @ torch.randn(200, 200)
        timer.mark()
        timer.mark()
    views_s, model_s, n = timer.collect()
    assert n == 3 and views_s > 0 and model_s >= 0 and timer.collect() == (0.0, 0.0, 0)


def test_tensorboard_is_refused_clearly_when_missing_and_written_when_present(tmp_path, results_root):
    from augbench.run import run_config

    cfg = RunConfig(**{**TINY, "subset": 2, "epochs": 1, "tensorboard": True, "eval_subset": 2, "knn_k": 3,
                       "linear_epochs": 0, "batch_size": 10})
    assert cfg.run_id == cfg.replace(tensorboard=False).run_id  # an execution-only switch
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="'tensorboard'.*augbench\\[tensorboard\\]"):
            run_config(cfg)
        assert not (results_root / "runs").exists()  # refused before any row or training
        return
    row = run_config(cfg)
    assert row["status"] == "done"
    assert list((results_root / "logs" / "tensorboard" / cfg.run_id).glob("events.out.tfevents.*"))


def test_bench_train_writes_each_case_as_it_finishes(tmp_path, monkeypatch):
    from augbench.bench import train as bench_train
    from augbench.cli import main as cli_main

    out = tmp_path / "bench.json"
    args = ["bench-train", "--methods", "simclr", "--epochs", "1", "--subset", "3", "--width", "4",
            "--batch-size", "10", "--linear-epochs", "1", "--eval-subset", "3", "--no-progress", "--out", str(out)]
    assert cli_main(args) == 0
    rep = json.loads(out.read_text())
    assert rep["finished"] and rep["device_type"] == "cpu" and rep["device"].startswith("cpu")
    eager = {c["aug"]: c for c in rep["cases"] if c["mode"] == "eager"}
    assert eager[True]["epoch_s"] > 0 and eager[False]["epoch_s"] > 0
    assert [c["mode"] for c in rep["cases"]] == ["nchw", "nchw", "eager", "eager", "bf16", "bf16"]  # CPU defaults
    bf16 = {c["aug"]: c for c in rep["cases"] if c["mode"] == "bf16"}
    assert bf16[True]["eval_s"] > 0 and "eval_s" not in eager[True]  # the evaluation is timed in the last mode
    assert bf16[True]["loss"] != eager[True]["loss"]  # the autocast step is a different computation
    ratio = rep["ratios"]["simclr/eager: with_aug / without_aug"]
    assert ratio == pytest.approx(eager[True]["epoch_s"] / eager[False]["epoch_s"])
    nchw = {c["aug"]: c for c in rep["cases"] if c["mode"] == "nchw"}
    for mode, case in (("eager", eager), ("bf16", bf16)):
        assert rep["ratios"][f"simclr/aug: images/s {mode} / nchw"] == pytest.approx(
            nchw[True]["epoch_s"] / case[True]["epoch_s"])
    # FLOPs counted, held against a measured peak
    assert rep["peak_gflops_sgemm"] > 0 and all(c["gflop_per_step"] > 0 for c in rep["cases"])
    peak = {"fp32 sgemm": rep["peak_gflops_sgemm"], "bf16 gemm": rep["peak_gflops_bf16_gemm"]}
    assert {c["peak"] for c in rep["cases"]} == set(peak)  # a bf16 step is held against the bf16 peak
    assert all(0 < c["share_of_peak"] == pytest.approx(c["gflops"] / peak[c["peak"]]) for c in rep["cases"])
    # interrupted during the second case: the first one is already on disk
    real, calls = bench_train.run_case, []

    def interrupt_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(bench_train, "run_case", interrupt_second)
    out.unlink()
    assert cli_main(args + ["--no-eval"]) == 130
    rep = json.loads(out.read_text())
    assert not rep["finished"] and [c["aug"] for c in rep["cases"]] == [True]


# ------------------------------------------------------------------ CUDA (scripts/device/gpu_checks.sh)
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_epoch_waits_for_the_gpu_a_fixed_number_of_times(tmp_path):
    """Syncs per epoch do not grow with the steps: none inside the step (losses, parts, timing and
    the NaN check stay on the device until the epoch's end)."""
    def syncs(subset):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                _train(tmp_path / str(subset), device="cuda", subset=subset, epochs=1, compile="off", plain_views=True)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(x.message) for x in w)

    syncs(2)  # warm-up: first-call allocations and lazy inits
    assert syncs(2) == syncs(8)  # 1 step vs 4 steps per epoch


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_compiled_step_trains_like_the_eager_one(tmp_path, method="byol"):
    """BYOL: predictor, EMA target and BatchNorm under CUDA graphs (SimCLR compiled: bench-train)."""
    _, eager, _ = _train(tmp_path / "e", device="cuda", subset=8, method=method, policy=method, compile="off")
    _, comp, _ = _train(tmp_path / "c", device="cuda", subset=8, method=method, policy=method)
    assert comp.compile_mode == "reduce-overhead"
    for a, b in zip(eager.history, comp.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05, abs=0.05)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_fused_optimizer_with_a_tensor_lr_matches_float_lr():
    torch.manual_seed(0)
    p1 = [torch.nn.Parameter(torch.randn(64, 32, device="cuda")), torch.nn.Parameter(torch.randn(32, device="cuda"))]
    p2 = [torch.nn.Parameter(p.detach().clone()) for p in p1]
    ref = torch.optim.SGD(p1, lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt, lr_t = fast.fast_optimizer(torch.optim.SGD(p2, lr=0.1, momentum=0.9, weight_decay=5e-4), torch.device("cuda"))
    assert lr_t is not None and opt.param_groups[0]["fused"]
    _step_both(ref, opt, lr_t, p1, p2, peak=0.1)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(p1, p2))


def _step_both(ref, opt, lr_t, p1, p2, peak, each_step=lambda: None):
    """Five steps of the float-lr optimizer `ref` on p1 and the fused `opt` on p2, the same gradients
    and an lr ramping to `peak`; `each_step` runs after each lr is set."""
    for step in range(5):
        lr = peak * (step + 1) / 5
        fast.set_lr(ref, None, lr)
        fast.set_lr(opt, lr_t, lr)
        each_step()
        for a, b in zip(p1, p2):
            a.grad = torch.sin(a.detach() * (step + 1))
            b.grad = torch.sin(b.detach() * (step + 1))
        ref.step()
        opt.step()


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_fused_optimizer_keeps_each_groups_lr_mult():
    """A predictor group (lr_mult 10, optim.param_groups) gets its own lr tensor: the fused step matches
    the float-lr optimizer group by group."""
    from augbench.train.optim import param_groups

    torch.manual_seed(0)
    p1 = [torch.nn.Parameter(torch.randn(64, 32, device="cuda")), torch.nn.Parameter(torch.randn(32, 16, device="cuda"))]
    p2 = [torch.nn.Parameter(p.detach().clone()) for p in p1]
    ref = torch.optim.SGD(param_groups(p1, False, scaled=p1[1:], lr_mult=10.0), lr=0.1, momentum=0.9)
    opt, lr_t = fast.fast_optimizer(torch.optim.SGD(param_groups(p2, False, scaled=p2[1:], lr_mult=10.0), lr=0.1,
                                                    momentum=0.9), torch.device("cuda"))
    assert lr_t is not None and len(lr_t) == 2

    def predictor_lr_is_ten_times():
        assert float(lr_t[1]) == pytest.approx(10 * float(lr_t[0]))

    _step_both(ref, opt, lr_t, p1, p2, peak=0.01, each_step=predictor_lr_is_ten_times)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(p1, p2))
