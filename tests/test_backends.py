"""fused vs the Kornia reference (and albumentations): the same parameters give the same pixels,
and the parameter distributions agree. Each test needs its libraries only (the lent GPU image has
neither Kornia nor albumentations)."""
from importlib.util import find_spec

import numpy as np
import pytest
import torch
from op_cases import GEOMETRY_AND_PIXEL_OPS

from augbench.augment import Engine, Policy
from augbench.augment.backends import fused

needs_kornia = pytest.mark.skipif(find_spec("kornia") is None, reason="kornia not installed (extra `kornia`)")
needs_albu = pytest.mark.skipif(find_spec("albumentations") is None,
                                reason="albumentations not installed (extra `albumentations`)")

# float32 pixel maths in a different op order (HSV round trip, blend, separable conv); after
# normalize (std ~0.25) differences grow 4x. Observed max ~1.5e-5 after normalize.
ATOL = 1e-4


@pytest.fixture(scope="module")
def images():
    from augbench.data import load_dataset

    return load_dataset("cifar10", "train", subset=3).images  # (30, 3, 32, 32) uint8, real


def _policy(*ops):
    return Policy.from_dict({"name": "t", "ops": [{"op": o, **p} for o, p in ops]})


PER_OP = {
    **GEOMETRY_AND_PIXEL_OPS,
    "jitter": [("color_jitter", {"p": 1.0, "brightness": 0.6, "contrast": 0.6, "saturation": 0.6, "hue": 0.4})],
}


@needs_kornia
@pytest.mark.parametrize("case", sorted(PER_OP))
def test_same_params_same_output_per_op(images, case):
    pol = _policy(*PER_OP[case])
    e = Engine(pol, backend="kornia", seed=1)
    views, params = e(images, views=2, return_params=True)
    for v in range(2):
        replay = fused.apply(images, pol.for_view(v), params[v])
        assert replay.shape == views[v].shape
        assert (replay - views[v]).abs().max() < ATOL, case


@needs_kornia
@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)])
def test_fixed_jitter_order_matches_kornia(images, order):
    pol = _policy(("color_jitter", {"p": 1.0, "hue": 0.5, "saturation": 0.8}))
    k = Engine(pol, backend="kornia", seed=2, jitter_order=order)
    view, params = k(images, views=1, return_params=True)
    assert params[0]["color_jitter"]["order"].tolist() == list(order)
    assert (fused.apply(images, pol.for_view(0), params[0]) - view[0]).abs().max() < ATOL
    # the order matters: another order on the same factors gives another image
    params[0]["color_jitter"]["order"] = torch.tensor(order[::-1])
    assert (fused.apply(images, pol.for_view(0), params[0]) - view[0]).abs().max() > 1e-2


@needs_kornia
@pytest.mark.parametrize("name", ["full", "byol", "mask_instead_of_crop"])
def test_whole_policies_match_kornia(images, name):
    e = Engine(name, backend="kornia", seed=3)
    views, params = e(images, views=2, return_params=True)
    for v in range(2):
        assert (fused.apply(images, e.policy.for_view(v), params[v]) - views[v]).abs().max() < ATOL


def test_float_input_path_matches(images):
    """The large-image grid_sample path and the small-image matmul path give the same crop."""
    b = 6
    x = torch.nn.functional.interpolate(images[:b].float(), size=(128, 128), mode="bilinear") / 255
    gen = torch.Generator().manual_seed(0)
    box = fused.sample_crop(b, (128, 128), (0.08, 1.0), (0.75, 4 / 3), gen, "cpu")
    flip = torch.tensor([True, False] * 3)
    big = fused.resample(x, box, flip, (112, 112), torch.float32)  # 128^2 > 96^2: grid_sample
    ry = fused._interp_matrix(box[:, 1], box[:, 3], 112, 128, None)
    rx = fused._interp_matrix(box[:, 0], box[:, 2], 112, 128, flip)
    assert (big - ry[:, None] @ x @ rx.transpose(1, 2)[:, None]).abs().max() < 1e-4


# ---------------------------------------------------------------------- distributions
N = 3000
CROP = dict(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))


def _area_logratio(w, h, hw=32 * 32):
    w, h = np.asarray(w, float), np.asarray(h, float)
    return w * h / hw, np.log(w / h)


def fused_crops(scale=CROP["scale"]):
    box = fused.sample_crop(N, (32, 32), scale, CROP["ratio"], torch.Generator().manual_seed(0), "cpu")
    return _area_logratio(box[:, 2], box[:, 3])


def kornia_crops(scale=CROP["scale"]):
    import kornia.augmentation as K

    torch.manual_seed(0)
    src = K.RandomResizedCrop((32, 32), scale=scale, ratio=CROP["ratio"]).forward_parameters(
        torch.Size([N, 3, 32, 32]))["src"]
    return _area_logratio(src[:, 1, 0] - src[:, 0, 0] + 1, src[:, 2, 1] - src[:, 0, 1] + 1)


def albu_crops():
    from augbench.augment.backends import albu

    t = albu.AlbuTransform([("random_resized_crop", {"size": (32, 32), **CROP, "p": 1.0})], seed=0)
    img = np.zeros((32, 32, 3), np.uint8)
    w, h = [], []
    for _ in range(N):
        t(img)
        x1, y1, x2, y2 = dict(t.last_params)["RandomResizedCrop"]["crop_coords"]
        w.append(x2 - x1)
        h.append(y2 - y1)
    return _area_logratio(w, h)


@needs_kornia
@needs_albu
def test_crop_distributions_match_kornia_and_albumentations():
    from scipy import stats

    fa, fr = fused_crops()
    for name, (a, r) in {"kornia": kornia_crops(), "albumentations": albu_crops()}.items():
        assert stats.ks_2samp(fa, a).pvalue > 1e-3, f"crop area vs {name}"
        assert stats.ks_2samp(fr, r).pvalue > 1e-3, f"aspect ratio vs {name}"
    # the test has power: a modest change of the scale range is detected
    ka, _ = kornia_crops(scale=(0.2, 1.0))
    assert stats.ks_2samp(fa, ka).pvalue < 1e-6
    # and the draws cover the range they should
    assert fa.min() < 0.1 and fa.max() == 1.0 and np.exp(fr).min() < 0.8 and np.exp(fr).max() > 1.25


def _gate_ok(rate, p, n=N):
    return abs(rate - p) < 4.5 * np.sqrt(max(p * (1 - p), 1e-12) / n)


@needs_kornia
def test_gate_rates_and_jitter_ranges_fused_vs_kornia():
    from scipy import stats

    from augbench.augment.backends import kornia_backend

    pol = Policy.named("full")
    ops = pol.for_view(0)
    x = torch.zeros(N, 3, 32, 32)
    fp = fused.sample_params(ops, x.shape, torch.Generator().manual_seed(0), "cpu", order_gen=torch.Generator())
    seq = kornia_backend.build([o for o in ops if o[0] != "random_resized_crop"])  # crop: its own test
    torch.manual_seed(0)
    seq(x)
    kp = kornia_backend.to_fused_params(seq)
    cfg = dict(ops)
    for op in ("horizontal_flip", "color_jitter", "grayscale", "gaussian_blur", "solarize"):
        p = cfg[op]["p"]
        for name, params in (("fused", fp), ("kornia", kp)):
            rate = params[op]["applied"].float().mean().item()
            assert _gate_ok(rate, p), f"{name} {op}: rate {rate} vs p {p}"
    for k in ("brightness", "contrast", "saturation", "hue"):
        lo, hi = cfg["color_jitter"][k]
        f = fp["color_jitter"][k].numpy()
        assert lo <= f.min() < lo + 0.01 * (hi - lo) and hi - 0.01 * (hi - lo) < f.max() <= hi, k
        assert stats.ks_2samp(f, kp["color_jitter"][k].numpy()).pvalue > 1e-3, k
    lo, hi = cfg["gaussian_blur"]["sigma"]
    assert stats.ks_2samp(fp["gaussian_blur"]["sigma"].numpy(), kp["gaussian_blur"]["sigma"].numpy()).pvalue > 1e-3
    assert lo <= fp["gaussian_blur"]["sigma"].min() and fp["gaussian_blur"]["sigma"].max() <= hi


@needs_albu
def test_gate_rates_albumentations():
    from augbench.augment.backends import albu

    pol = Policy.named("full").without("crop")
    t = albu.AlbuTransform(pol.for_view(0), seed=0)
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    n, counts = 1500, {}
    for _ in range(n):
        t(img)
        for name, _ in t.last_params:
            counts[name] = counts.get(name, 0) + 1
    cfg = dict(pol.for_view(0))
    for name, op in (("HorizontalFlip", "horizontal_flip"), ("ColorJitter", "color_jitter"),
                     ("ToGray", "grayscale"), ("GaussianBlur", "gaussian_blur"), ("Solarize", "solarize")):
        assert _gate_ok(counts.get(name, 0) / n, cfg[op]["p"], n), (name, counts.get(name, 0) / n)
