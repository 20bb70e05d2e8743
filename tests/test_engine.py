"""The engine on real CIFAR-10 images: shapes, bad input, determinism, resume, per-view policies,
returned parameters, patch masks."""
import pytest
import torch

from augbench.augment import AugmentInputError, Engine, Policy, PolicyError
from augbench.augment.backends import fused
from augbench.data import load_dataset
from augbench.errors import UserError


@pytest.fixture(scope="module")
def images():
    return load_dataset("cifar10", "train", subset=4).images  # (40, 3, 32, 32) uint8: 4 real images per class


@pytest.mark.parametrize("backend", ["fused", "kornia", "albumentations"])
def test_shapes_dtypes_uint8_and_float(images, backend):
    e = Engine("full", backend=backend, seed=0)
    for x in (images[:8], images[:8].float() / 255):
        views = e(x, views=3)
        assert len(views) == 3
        for v in views:
            assert v.shape == (8, 3, 32, 32) and v.dtype == torch.float32 and v.device == x.device
            assert torch.isfinite(v).all()


def test_dtype_size_and_float_input_match_uint8(images):
    pol = Policy.named("simclr").with_params("random_resized_crop", size=24)
    v64 = Engine(pol, seed=3, dtype=torch.float64)(images[:8], views=1)[0]
    assert v64.shape == (8, 3, 24, 24) and v64.dtype == torch.float64
    a = Engine("full", seed=3)(images[:8], views=1)[0]
    b = Engine("full", seed=3)(images[:8].float() / 255, views=1)[0]
    assert torch.allclose(a, b, atol=1e-5)  # uint8 -> float is fused into the resampling, same result


@pytest.mark.parametrize("bad, match", [
    (lambda x: x.to(torch.int32), "dtype torch.int32"),
    (lambda x: x.double(), r"float images must lie in \[0, 1\]"),  # 0..255 as float64: out of range
    (lambda x: x.float() / 255 - 0.1, r"float images must lie in \[0, 1\]"),
    (lambda x: x[0], "expected 4 dims"),
    (lambda x: x[:, :1], "expected 3 channels"),
    (lambda x: x[:0], "empty batch"),
    (lambda x: x.numpy(), "expected a torch.Tensor"),
])
def test_bad_input_is_a_user_error(images, bad, match):
    e = Engine("simclr")
    with pytest.raises(AugmentInputError, match=match):
        e(bad(images[:4]))


def test_bad_arguments(images):
    with pytest.raises(AugmentInputError, match="views"):
        Engine("simclr")(images[:4], views=0)
    with pytest.raises(AugmentInputError, match="backend: unknown backend 'dali'"):
        Engine("simclr", backend="dali")
    with pytest.raises(AugmentInputError, match="patch_mask.patch_size 64"):
        Engine(Policy.named("simclr").with_params("patch_mask", patch_size=64))(images[:2])
    with pytest.raises(AugmentInputError, match="mask_mode"):
        Engine("simclr", mask_mode="tokens")
    with pytest.raises(AugmentInputError, match="jitter_order"):
        Engine("simclr", jitter_order=(0, 0, 1))
    with pytest.raises(PolicyError, match="unknown policy"):
        Engine("nope")
    with pytest.raises(UserError, match="token.*p = 1"):
        Engine(Policy.named("simclr").with_params("patch_mask", p=0.5), mask_mode="token")
    # a float64 batch inside [0, 1] is fine
    assert Engine("simclr")(images[:2].double() / 255, views=1)[0].dtype == torch.float32


def test_policy_as_name_dict_or_policy(images):
    d = Policy.named("weak").to_dict()
    outs = [Engine(p, seed=1)(images[:4], views=1)[0] for p in ("weak", d, Policy.named("weak"))]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("backend", ["fused", "kornia", "albumentations"])
def test_determinism_and_seeds(images, backend):
    x = images[:16]
    a = Engine("full", backend=backend, seed=7)(x)
    b = Engine("full", backend=backend, seed=7)(x)
    c = Engine("full", backend=backend, seed=8)(x)
    assert all(torch.equal(u, v) for u, v in zip(a, b))  # bitwise on CPU
    assert not torch.allclose(a[0], c[0])
    assert not torch.allclose(a[0], a[1])  # two views of the same batch differ


def test_engine_does_not_touch_global_rng(images):
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    Engine("full", backend="kornia")(images[:4])
    Engine("full")(images[:4])
    assert torch.equal(torch.rand(3), before)


def test_views_have_independent_params(images):
    _, params = Engine("full", seed=0)(images, views=2, return_params=True)
    b0, b1 = params[0]["random_resized_crop"]["box"], params[1]["random_resized_crop"]["box"]
    assert (b0 != b1).any(1).float().mean() > 0.9
    f0, f1 = params[0]["horizontal_flip"]["applied"], params[1]["horizontal_flip"]["applied"]
    assert 0.3 < (f0 != f1).float().mean() < 0.7  # independent fair coins agree about half the time


@pytest.mark.parametrize("backend", ["fused", "kornia", "albumentations"])
def test_state_dict_resume_is_exact(images, backend):
    x = images[:16]
    e = Engine("byol", backend=backend, seed=5)
    e(x)
    state = e.state_dict()
    cont = e(x) + e(x)
    r = Engine("byol", backend=backend, seed=123)
    r.load_state_dict(state)
    again = r(x) + r(x)
    assert all(torch.equal(u, v) for u, v in zip(cont, again))
    with pytest.raises(AugmentInputError, match="engine state"):
        r.load_state_dict({"seed": 1})


def test_byol_asymmetric_views(images):
    views, params = Engine("byol", seed=0)(images, views=4, return_params=True)
    for v in (0, 2):  # blur p=1, solarize p=0
        assert params[v]["gaussian_blur"]["applied"].all()
        assert not params[v]["solarize"]["applied"].any()
    for v in (1, 3):  # blur p=0.1, solarize p=0.2
        assert params[v]["gaussian_blur"]["applied"].float().mean() < 0.35
        assert 0 < params[v]["solarize"]["applied"].float().mean() < 0.5
    # replaying view 0 without its blur changes every image: the blur really ran on all of them
    ops = Policy.named("byol").for_view(0)
    p0 = {k: dict(d) for k, d in params[0].items()}
    p0["gaussian_blur"]["applied"] = torch.zeros(len(images), dtype=torch.bool)
    unblurred = fused.apply(images, ops, p0)
    assert torch.equal(fused.apply(images, ops, params[0]), views[0])
    visible = params[0]["gaussian_blur"]["sigma"] > 0.5  # sigma near 0.1 is (rightly) almost the identity
    assert visible.sum() > 20
    assert ((unblurred - views[0]).abs().amax((1, 2, 3))[visible] > 1e-2).all()


def test_params_are_per_sample_and_replayable(images):
    e = Engine("full", seed=2)
    views, params = e(images, views=2, return_params=True)
    assert len(params) == 2
    p = params[0]
    assert set(p) == {"random_resized_crop", "horizontal_flip", "color_jitter", "grayscale", "gaussian_blur",
                      "solarize"}
    B = len(images)
    assert p["random_resized_crop"]["box"].shape == (B, 4)
    assert p["color_jitter"]["brightness"].shape == (B,) and p["gaussian_blur"]["sigma"].shape == (B,)
    box = p["random_resized_crop"]["box"]
    assert (box[:, 0] + box[:, 2] <= 32).all() and (box[:, 1] + box[:, 3] <= 32).all()
    assert torch.equal(fused.apply(images, e.policy.for_view(0), p), views[0])


def test_jitter_order_per_sample(images):
    """The per-sample order path equals the batch path when every row holds the same order."""
    pol = Policy.named("simclr")
    ops = pol.for_view(0)
    images = images[:16]
    _, params = Engine(pol, seed=0, jitter_order="sample")(images, views=1, return_params=True)
    p = params[0]
    assert p["color_jitter"]["order"].shape == (len(images), 4)
    assert len({tuple(r) for r in p["color_jitter"]["order"].tolist()}) > 5  # orders differ between images
    for order in ([3, 1, 0, 2], [0, 1, 2, 3]):
        p["color_jitter"]["order"] = torch.tensor(order).expand(len(images), 4)
        per_sample = fused.apply(images, ops, p)
        p["color_jitter"]["order"] = torch.tensor(order)
        assert torch.allclose(per_sample, fused.apply(images, ops, p), atol=1e-6)


@pytest.mark.parametrize("ratio, patch", [(0.5, 4), (0.75, 8), (0.3, 4)])
def test_patch_mask_counts(images, ratio, patch):
    pol = Policy.named("simclr").with_params("patch_mask", ratio=ratio, patch_size=patch, fill=0.0)
    n = (32 // patch) ** 2
    n_mask = round(ratio * n)
    # token mode: keep_idx (B, N - n_mask) sorted, distinct, in range; pixels untouched
    views, params = Engine(pol, seed=0, mask_mode="token")(images, views=2, return_params=True)
    keep = params[0]["patch_mask"]["keep_idx"]
    assert keep.shape == (len(images), n - n_mask) and keep.dtype == torch.long
    assert (keep.diff(dim=1) > 0).all() and keep.min() >= 0 and keep.max() < n
    assert not torch.equal(keep, params[1]["patch_mask"]["keep_idx"])
    # pixel mode: exactly n_mask whole patches equal the fill value in every image
    fill = -7.0
    pol = pol.with_params("patch_mask", fill=fill)
    v = Engine(pol, seed=0)(images, views=1)[0]
    g = 32 // patch
    patches = v.view(len(images), 3, g, patch, g, patch)
    masked = (patches == fill).all(5).all(3).all(1)  # (B, g, g)
    assert (masked.flatten(1).sum(1) == n_mask).all()
    assert ((v == fill).flatten(1).sum(1) == n_mask * patch * patch * 3).all()


def test_fused_reads_no_tensor_values_back(images):
    """The fused hot path never reads a tensor value to the host (.item/.tolist), except the
    per-batch jitter order, which is drawn on the CPU. (On CUDA: the test below.)"""
    calls = []
    orig_item, orig_tolist = torch.Tensor.item, torch.Tensor.tolist

    def spy(name, f):
        def g(self, *a, **k):
            if self.device.type != "cpu" or self.numel() > 4:  # the CPU-side jitter order is allowed
                calls.append(name)
            return f(self, *a, **k)
        return g

    torch.Tensor.item, torch.Tensor.tolist = spy("item", orig_item), spy("tolist", orig_tolist)
    try:
        Engine("full", seed=0)(images, views=2)
        Engine(Policy.named("simclr").with_params("patch_mask", ratio=0.5), mask_mode="token")(images)
    finally:
        torch.Tensor.item, torch.Tensor.tolist = orig_item, orig_tolist
    assert calls == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("impl", ["triton", "torch"])
@pytest.mark.parametrize("name, jitter_order", [("full", "batch"), ("byol", "sample"), ("mask_instead_of_crop", "batch")])
def test_cuda_views_stay_on_device_without_sync(images, impl, name, jitter_order, monkeypatch):
    """Sampling and both application paths on CUDA never synchronise (blur, per-sample jitter
    order and the patch mask included)."""
    monkeypatch.setenv("AUGBENCH_FUSED_IMPL", impl)
    x = images.cuda()
    e = Engine(name, seed=0, jitter_order=jitter_order)
    e(x)  # first call: kernels compile, caches fill; uint8 input: the input check reads nothing back
    assert e.impl == impl
    torch.cuda.set_sync_debug_mode("error")
    try:
        views = e(x, views=2)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(v.device.type == "cuda" and v.shape == (len(x), 3, 32, 32) for v in views)
    assert torch.isfinite(views[0]).all()


def test_views_never_alias_reused_buffers(images):
    """The torch path reuses scratch buffers between calls (CPU): a returned view must own its
    memory, whatever op ends the policy (jitter, solarize, blur, mask, normalize)."""
    x = images[:8]
    for pol in ("byol", "mask_instead_of_crop", Policy.named("simclr").without("blur").with_ops(
            "jitter_last", [(o, p) for o, p in Policy.named("simclr").ops if o in ("random_resized_crop", "color_jitter")])):
        e = Engine(pol, seed=0)
        first = e(x, views=2)
        kept = [v.clone() for v in first]
        e(x, views=2)
        e(x.flip(0), views=2)
        assert all(torch.equal(a, b) for a, b in zip(first, kept))
