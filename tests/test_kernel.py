"""The fused backend's kernels equal its torch path for the same parameters: the Triton kernel
(the CUDA path) and the numba kernel (the CPU path), per op and for whole policies, 32 px (one
Triton program per image) and 96 px (several tiles: the contrast mean from a stats launch, blur
across tile borders). On a CPU machine the Triton kernel runs in Triton's interpreter
(TRITON_INTERPRET=1), on small batches; on a GPU, compiled, on CUDA. numba runs on the CPU."""
import importlib
import os

import pytest
import torch
from op_cases import GEOMETRY_AND_PIXEL_OPS

CUDA = torch.cuda.is_available()
if not CUDA:  # must be set before triton_view is first imported (triton.jit reads it)
    os.environ.setdefault("TRITON_INTERPRET", "1")

from augbench.augment import Engine, Policy  # noqa: E402
from augbench.augment.backends import fused, fused_torch  # noqa: E402

DEV = torch.device("cuda" if CUDA else "cpu")
KERNELS = {"triton": ("triton_view", DEV), "numba": ("numba_view", torch.device("cpu"))}  # module, device


def _kernel(name: str):
    """The kernel's module (the test is skipped where its library is not installed)."""
    pytest.importorskip(name)
    mod = importlib.import_module(f"augbench.augment.backends.{KERNELS[name][0]}")
    mod.name, mod.device = name, KERNELS[name][1]
    return mod


@pytest.fixture(params=sorted(KERNELS))
def kernel(request):
    return _kernel(request.param)


def _triton_sample():
    pytest.importorskip("triton")
    from augbench.augment.backends import triton_sample

    return triton_sample


# float32 in a different order (bilinear taps vs matmuls, composed colour matrices); normalize
# divides by std ~0.25, so absolute errors after it are ~4x those before.
MAX_ABS, REL = 5e-5, 1e-5


def _policy(*ops, name="t"):
    return Policy.from_dict({"name": name, "ops": [{"op": o, **p} for o, p in ops]})


def _images(b, px, seed=0, dev=DEV):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (b, 3, px, px), dtype=torch.uint8, generator=g).to(dev)  # random, never 0


def _both(kernel, x, ops, seed=0, jitter_order="batch", dtype=torch.float32, mask_mode="pixel"):
    """(the kernel's output written over a NaN-poisoned buffer, torch path output) for one draw."""
    dev = kernel.device
    x = x.to(dev)
    p = fused.sample_params(ops, x.shape, torch.Generator(dev).manual_seed(seed), dev, mask_mode=mask_mode,
                            jitter_order=jitter_order, order_gen=torch.Generator().manual_seed(seed))
    plan = fused.prepare(x.shape, ops, p, dev, mask_mode)
    oh, ow = plan.size
    out = torch.full((x.shape[0], 3, oh, ow), float("nan"), dtype=dtype, device=dev)
    got = kernel.run(x, plan, dtype, out=out)
    assert got.data_ptr() == out.data_ptr()
    assert not out.isnan().any(), "some output element was never written"
    tf32 = torch.backends.cuda.matmul.allow_tf32  # the reference's matmuls in full fp32, whatever ran before
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return out, fused_torch.run(x, fused.prepare(x.shape, ops, p, dev, mask_mode), torch.float32)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _close(out, ref, max_abs=MAX_ABS, rel=REL):
    out = out.float()
    err = (out - ref).abs().max().item()
    r = ((out - ref).norm() / ref.norm()).item()
    assert err < max_abs and r < rel, f"max abs {err:.3g}, relative {r:.3g}"


PER_OP = {
    **GEOMETRY_AND_PIXEL_OPS,
    "brightness": [("color_jitter", {"p": 1.0, "brightness": 0.8, "contrast": 0, "saturation": 0, "hue": 0})],
    "contrast": [("color_jitter", {"p": 1.0, "brightness": 0, "contrast": 0.8, "saturation": 0, "hue": 0})],
    "saturation": [("color_jitter", {"p": 1.0, "brightness": 0, "contrast": 0, "saturation": 0.8, "hue": 0})],
    "hue": [("color_jitter", {"p": 1.0, "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0.5})],
    "patch_mask": [("normalize", {}), ("patch_mask", {"ratio": 0.5, "patch_size": 5, "fill": -3.0})],
}


@pytest.mark.parametrize("case", sorted(PER_OP))
def test_kernel_equals_torch_path_per_op(kernel, case):
    x = _images(4, 32)
    out, ref = _both(kernel, x, _policy(*PER_OP[case]).for_view(0), seed=1)
    _close(out, ref)


@pytest.mark.parametrize("name, views", [("full", 1), ("byol", 2), ("mask_instead_of_crop", 1), ("none", 1)])
def test_kernel_equals_torch_path_whole_policies(kernel, name, views):
    x = _images(4, 32, seed=2)
    pol = Policy.named(name)
    for v in range(views):  # byol: view 0 blurs every image, view 1 solarizes some
        out, ref = _both(kernel, x, pol.for_view(v), seed=v)
        _close(out, ref)


def test_kernel_per_sample_jitter_order_and_float_input(kernel):
    pol = Policy.named("simclr").with_params("color_jitter", p=1.0, hue=0.4)
    x = _images(4, 32, seed=3)
    out, ref = _both(kernel, x, pol.for_view(0), jitter_order="sample")
    _close(out, ref)
    for xf in (x.float() / 255, x.double() / 255):  # a float source: no 1/255 scale
        out_f, _ = _both(kernel, xf, pol.for_view(0), jitter_order="sample")
        _close(out_f, ref)


def test_kernel_several_tiles_with_contrast_blur_and_mask(kernel):
    """80 px output from a 96 px source: 7 tiles per image, so contrast's mean comes from the
    stats launch and the blur reads across tile borders; the patch grid leaves a ragged border."""
    pol = (Policy.named("full").with_params("random_resized_crop", size=80)
           .with_params("gaussian_blur", kernel_size=9, p=1.0)
           .with_params("color_jitter", p=1.0, contrast=0.8)
           .with_params("patch_mask", ratio=0.4, patch_size=10, fill=0.5))
    x = _images(1, 96, seed=4)
    for order in ((1, 0, 2, 3), (3, 2, 1, 0)):  # contrast first and after every other step
        out, ref = _both(kernel, x, pol.for_view(0), jitter_order=order)
        _close(out, ref)


def test_kernel_64px_order_per_sample_and_half_output(kernel):
    pol = Policy.named("byol").with_params("random_resized_crop", size=64)
    x = _images(1, 64, seed=5)
    out, ref = _both(kernel, x, pol.for_view(1), jitter_order="sample")
    _close(out, ref)
    half, _ = _both(kernel, x, pol.for_view(1), jitter_order="sample", dtype=torch.bfloat16)
    _close(half, ref, max_abs=0.05, rel=5e-3)  # bf16 keeps 8 bits of mantissa


def test_engine_uses_the_forced_path(kernel, monkeypatch):
    x = _images(4, 32, seed=6, dev=kernel.device)
    monkeypatch.setenv("AUGBENCH_FUSED_IMPL", kernel.name)
    e = Engine("full", seed=0)
    views = e(x, views=2)
    assert e.impl == kernel.name
    monkeypatch.setenv("AUGBENCH_FUSED_IMPL", "torch")
    e2 = Engine("full", seed=0)
    ref = e2(x, views=2)
    assert e2.impl == "torch"
    for a, b in zip(views, ref):  # same seed -> same parameters -> the same pixels on either path
        _close(a, b)
    monkeypatch.setenv("AUGBENCH_FUSED_IMPL", "cuda")
    with pytest.raises(fused.UserError, match="AUGBENCH_FUSED_IMPL"):
        e(x)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_auto_picks_triton_on_cuda():
    assert fused.resolve_impl(torch.device("cuda")) == "triton"
    assert fused.resolve_impl(torch.device("cpu")) == ("numba" if fused.numba_available() else "torch")


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("in_px, out_px, batch, blur", [(32, 32, 512, 3), (256, 224, 16, 23)])
def test_cuda_kernel_matches_torch_path_at_bench_sizes(in_px, out_px, batch, blur):
    """The compiled kernel at bench-aug's sizes (224 px: 49 tiles, 23-tap blur), both BYOL views
    (blur on every image / solarize), per-sample jitter order, fp32 and bf16 outputs."""
    pol = Policy.named("byol").with_params("random_resized_crop", size=out_px).with_params(
        "gaussian_blur", kernel_size=blur)
    x = _images(batch, in_px, seed=7)
    tv = _kernel("triton")
    for v in range(2):
        out, ref = _both(tv, x, pol.for_view(v), seed=v, jitter_order="sample")
        _close(out, ref)
        half, _ = _both(tv, x, pol.for_view(v), seed=v, jitter_order="sample", dtype=torch.bfloat16)
        _close(half, ref, max_abs=0.05, rel=5e-3)


def test_sampler_crop_kernel_equals_torch_maths():
    """The CUDA sampler's crop kernel = fused.crop_from_uniforms (the CPU sampler's maths) on the
    same uniforms, gate included; every box inside the image."""
    triton_sample = _triton_sample()
    n = 3000
    u = torch.rand(n, 23, generator=torch.Generator().manual_seed(0)).to(DEV)
    for p in ({"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3), "p": 0.8}, {"scale": (0.5, 1.0), "ratio": (2.0, 3.0), "p": 1.0}):
        box = triton_sample.crop(u, 0, (32, 24), p)
        ref = fused.crop_from_uniforms(u[:, :10], u[:, 10:20], u[:, 20], u[:, 21], (32, 24), p["scale"], p["ratio"])
        ref = torch.where((u[:, 22] < p["p"])[:, None], ref, fused.full_box(n, (32, 24), DEV))
        # float32 exp on a GPU may differ from torch's in the last bit: a .5 tie in a rounding, rarely
        assert (box == ref).all(1).float().mean() > 0.999
        assert (box[:, :2] >= 0).all() and (box[:, 2:] >= 1).all()
        assert (box[:, 0] + box[:, 2] <= 24).all() and (box[:, 1] + box[:, 3] <= 32).all()


def test_sampler_same_format_and_distributions_as_fused_sampler():
    triton_sample = _triton_sample()
    n = 3000
    ops = Policy.named("full").with_params("patch_mask", ratio=0.5).for_view(0)
    args = dict(order_gen=torch.Generator().manual_seed(1))
    ref = fused.sample_params(ops, (n, 3, 32, 32), torch.Generator(DEV).manual_seed(0), DEV, **args) if not CUDA \
        else None
    got = triton_sample.sample_params(ops, (n, 3, 32, 32), torch.Generator(DEV).manual_seed(0), DEV, **args)
    if ref is not None:  # on CUDA fused.sample_params *is* this sampler
        assert {o: {k: (v.shape, v.dtype) for k, v in d.items()} for o, d in got.items()} == \
            {o: {k: (v.shape, v.dtype) for k, v in d.items()} for o, d in ref.items()}
    cfg = dict(ops)
    for op in ("random_resized_crop", "horizontal_flip", "color_jitter", "grayscale", "gaussian_blur", "solarize"):
        rate, p = got[op]["applied"].float().mean().item(), cfg[op]["p"]
        assert abs(rate - p) < 4.5 * max(p * (1 - p), 1e-12) ** 0.5 / n ** 0.5 + 1e-9, (op, rate, p)
    for op, key in [("color_jitter", k) for k in fused.JITTER_KEYS] + [("gaussian_blur", "sigma")]:
        lo, hi = cfg[op][key]
        v = got[op][key]
        assert lo <= v.min() < lo + 0.01 * (hi - lo) and hi - 0.01 * (hi - lo) < v.max() <= hi, (op, key)
    from scipy import stats

    box = got["random_resized_crop"]["box"][got["random_resized_crop"]["applied"]].cpu()
    cpu = fused.sample_crop(n, (32, 32), cfg["random_resized_crop"]["scale"], cfg["random_resized_crop"]["ratio"],
                            torch.Generator().manual_seed(5), "cpu")
    for f in (lambda b: b[:, 2] * b[:, 3], lambda b: torch.log(b[:, 2] / b[:, 3])):  # area, log aspect ratio
        assert stats.ks_2samp(f(box).numpy(), f(cpu).numpy()).pvalue > 1e-3
    assert (got["patch_mask"]["mask"].sum(1) == 32).all()


# Compiled (not interpreted) for the H200's sm_90 down to a cubin with the ptxas that ships with
# triton: no GPU needed, and it catches what the interpreter accepts but the compiler does not
# (branch types, unsupported constructs). A subprocess, as TRITON_INTERPRET is set above.
_COMPILE = r"""
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from augbench.augment.backends import triton_view as tv
ptrs = dict(src="*u8", dst="*fp32", part="*fp32", box="*fp32", flip="*u8", jon="*u8", fb="*fp32", fc="*fp32",
            fs="*fp32", fh="*fp32", order="*i32", gray="*u8", thr="*fp32", son="*u8", mask="*u8", sig="*fp32", bon="*u8")
floats = "m0 m1 m2 is0 is1 is2 fill src_scale".split()
def sig(fn, **over):
    s = {n: ptrs.get(n, "fp32" if n in floats else ("constexpr" if n.isupper() and n not in
         ("H", "W", "OH", "OW", "NT", "GH", "GW", "PATCH") else "i32")) for n in fn.arg_names}
    return {**s, **over}
base = dict(SRC=0, K=1, OP0=1, OP1=2, OP2=3, OP3=4, ORDER_PER_SAMPLE=True, STATS=False, MASK=True, FLIP=True,
            NTP=1, BLOCK=1024)
variants = [({}, base), ({"dst": "*bf16"}, dict(base, ORDER_PER_SAMPLE=False, NTP=64)),
            ({}, dict(base, STATS=True, NTP=64, OP1=0, OP2=0, OP3=0)),
            ({"src": "*fp32"}, dict(base, SRC=1, K=23, OP0=3, OP1=4, OP2=0, OP3=0, FLIP=False))]
for over, const in variants:
    out = triton.compile(ASTSource(tv._view_kernel, sig(tv._view_kernel, **over), constexprs=const),
                         target=GPUTarget("cuda", 90, 32))
    assert out.asm["cubin"], const
out = triton.compile(ASTSource(tv._blur_h_kernel, {"src": "*fp32", "dst": "*fp32", "sig": "*fp32", "bon": "*u8", "OH": "i32",
                     "OW": "i32", "K": "constexpr", "BLOCK": "constexpr"}, constexprs=dict(K=23, BLOCK=1024)),
                     target=GPUTarget("cuda", 90, 32))
from augbench.augment.backends import triton_sample as ts
out = triton.compile(ASTSource(ts._crop_kernel, {n: ("*fp32" if n in ("u", "box") else "constexpr" if n == "BLOCK" else
                     "i32" if n in ("B", "K", "C0", "H", "W") else "fp32") for n in ts._crop_kernel.arg_names},
                     constexprs=dict(BLOCK=128)), target=GPUTarget("cuda", 90, 32))
print("compiled", len(variants) + 2)
"""


def test_kernels_compile_for_sm90():
    pytest.importorskip("triton")
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", _COMPILE], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "compiled 6" in r.stdout, r.stderr[-3000:]
