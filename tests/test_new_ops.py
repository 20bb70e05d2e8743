"""The ops added through the registry -- random_erasing, equalize, posterize, rotation, affine and
rand_augment (RandAugment / TrivialAugment) -- against Kornia: on the same parameters they give
Kornia's pixels, and their samplers draw from Kornia's distributions. Also the RandAugment /
TrivialAugment policy generators and `augbench ops`."""
from importlib.util import find_spec

import numpy as np
import pytest
import torch

from augbench.augment import AugmentInputError, Engine, Policy, PolicyError, rand_augment, trivial_augment
from augbench.augment.backends import fused
from augbench.augment.ops import OPS, auto_space
from augbench.augment.ops import rand_augment as ra

needs_kornia = pytest.mark.skipif(find_spec("kornia") is None, reason="kornia not installed (extra `kornia`)")
needs_scipy = pytest.mark.skipif(find_spec("scipy") is None, reason="scipy not installed (extra `analysis`)")

GEO_ATOL = 1e-4  # warps: Kornia inverts the normalised matrix, we the pixel one (float32 rounding)
N = 4000  # draws per distribution test

NEW_OPS = {  # case -> (op, params)
    "erasing": ("random_erasing", {"p": 0.6}),
    "erasing_wide_valued": ("random_erasing", {"p": 1.0, "scale": [0.1, 0.4], "ratio": [0.5, 0.8], "value": 0.3}),
    "equalize": ("equalize", {"p": 0.6}),
    "posterize": ("posterize", {"p": 0.6, "bits": [0, 8]}),
    "posterize_default": ("posterize", {"p": 1.0}),
    "rotation": ("rotation", {"p": 0.6, "degrees": 45}),
    "affine": ("affine", {"p": 0.6, "degrees": 30, "translate": [0.2, 0.1], "scale": [0.7, 1.3],
                          "shear": [-10, 10, -5, 5]}),
}
GEOMETRIC = ("rotation", "affine")


@pytest.fixture(scope="module")
def images():
    from augbench.data import load_dataset

    return load_dataset("cifar10", "train", subset=2).images  # (20, 3, 32, 32) uint8, real


def _policy(*ops, name="t"):
    return Policy.from_dict({"name": name, "ops": [{"op": o, **p} for o, p in ops]})


# ---------------------------------------------------------------------- the same parameters
@needs_kornia
@pytest.mark.parametrize("case", sorted(NEW_OPS))
def test_same_params_same_pixels_as_kornia(images, case):
    op, p = NEW_OPS[case]
    pol = _policy((op, p))
    assert Engine(pol, backend="fused").impl == "reference"  # no fast path covers a new op
    k = Engine(pol, backend="kornia", seed=3)
    views, params = k(images, views=2, return_params=True)
    for v in range(2):
        assert set(params[v][op]) >= {"applied"} and params[v][op]["applied"].shape == (len(images),)
        replay = fused.apply(images, pol.for_view(v), params[v])  # the reference path
        err = (replay - views[v]).abs().max().item()
        assert err < (GEO_ATOL if op in GEOMETRIC else 1e-6), (case, err)  # intensity ops: Kornia's arithmetic
    if NEW_OPS[case][1]["p"] < 1:  # the gate is honoured: some samples unchanged, some changed
        on = params[0][op]["applied"]
        same = (views[0] - images.float() / 255).flatten(1).abs().amax(1) < 1e-6
        assert 0 < on.sum() < len(images) and not same[on].all() and same[~on].all()


@needs_kornia
@pytest.mark.parametrize("op", ["random_erasing", "rotation", "affine"])
def test_new_op_inside_a_policy_matches_kornia(images, op):
    """In SimCLR's policy (after the crop, flip, jitter, grayscale and blur, before normalize)."""
    pol = Policy.named("simclr").with_params(op, name="t", p=0.7, **({"degrees": 20} if op == "affine" else {}))
    k = Engine(pol, backend="kornia", seed=1)
    views, params = k(images, views=1, return_params=True)
    assert (fused.apply(images, pol.for_view(0), params[0]) - views[0]).abs().max() < GEO_ATOL


def test_fused_engine_replays_and_is_deterministic(images):
    pol = Policy.named("full").with_params("affine", name="t", degrees=15, translate=[0.1, 0.1], p=0.5) \
        .with_params("random_erasing", name="t", p=0.5).with_params("posterize", name="t", p=0.5)
    a, pa = Engine(pol, seed=5)(images, views=2, return_params=True)
    b = Engine(pol, seed=5)(images, views=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(torch.equal(x, y) for x, y in zip(a, Engine(pol, seed=9)(images, params=pa)))
    assert not torch.equal(a[0], Engine(pol, seed=6)(images, views=1)[0])


# ---------------------------------------------------------------------- the same distributions
def _ours(op, p, n=N, hw=(32, 32)):
    pol = _policy((op, p))
    return fused.sample_params(pol.for_view(0), (n, 3, *hw), torch.Generator().manual_seed(0), "cpu")[op]


def _kornias(op, p, n=N, hw=(32, 32), seed=0):
    pol = _policy((op, p))
    cfg = dict(pol.for_view(0))[op]
    mod = OPS[op].kornia(cfg)
    torch.manual_seed(seed)
    return OPS[op].from_kornia(mod.forward_parameters(torch.Size((n, 3, *hw))), mod)


def _columns(op, d):
    """The drawn values of an op as named 1-D arrays."""
    if op == "random_erasing":
        return {k: d["box"][:, i] for i, k in enumerate(("x0", "y0", "w", "h"))}
    if op == "rotation":
        return {"degrees": d["degrees"]}
    if op == "affine":
        return {"angle": d["angle"], "tx": d["translate"][:, 0], "ty": d["translate"][:, 1], "scale": d["scale"][:, 0],
                "scale_y": d["scale"][:, 1], "shear_x": d["shear"][:, 0], "shear_y": d["shear"][:, 1]}
    if op == "posterize":
        return {"bits": d["bits"]}
    return {}


def _rate_ok(rate, p, n=N):
    return abs(rate - p) < 4.5 * np.sqrt(max(p * (1 - p), 1e-12) / n)


def _same_discrete(a, b, n=N):
    va, ca = np.unique(a, return_counts=True)
    vb, cb = np.unique(b, return_counts=True)
    fa, fb = dict(zip(va, ca / n)), dict(zip(vb, cb / n))
    for v in set(fa) | set(fb):
        f = (fa.get(v, 0) + fb.get(v, 0)) / 2
        assert abs(fa.get(v, 0) - fb.get(v, 0)) < 4.5 * np.sqrt(2 * max(f * (1 - f), 1e-12) / n) + 1e-9, (v, fa, fb)


@needs_kornia
@needs_scipy
@pytest.mark.parametrize("case", sorted(NEW_OPS))
def test_same_distributions_as_kornia(case):
    from scipy import stats

    op, p = NEW_OPS[case]
    ours, theirs = _ours(op, p), _kornias(op, p)
    for name, d in (("ours", ours), ("kornia", theirs)):
        assert _rate_ok(d["applied"].float().mean().item(), p["p"]), (name, case)
    for col, a in _columns(op, ours).items():
        a, b = a.double().numpy(), _columns(op, theirs)[col].double().numpy()
        if col in ("bits", "x0", "y0", "w", "h"):  # whole numbers
            _same_discrete(a, b)
        else:
            assert stats.ks_2samp(a, b).pvalue > 1e-3, (case, col)


@needs_kornia
@needs_scipy
def test_distribution_tests_have_power():
    """A modest change of a range is detected by the same comparisons."""
    from scipy import stats

    a = _ours("rotation", {"degrees": 45})["degrees"].numpy()
    b = _kornias("rotation", {"degrees": 38})["degrees"].numpy()
    assert stats.ks_2samp(a, b).pvalue < 1e-5  # the comparisons above accept p > 1e-3
    with pytest.raises(AssertionError):
        _same_discrete(_ours("random_erasing", {"scale": [0.02, 0.33]})["box"][:, 2].numpy(),
                       _kornias("random_erasing", {"scale": [0.05, 0.33]})["box"][:, 2].numpy())


def test_erasing_boxes_lie_inside_and_follow_the_ratio_coin():
    d = _ours("random_erasing", {"p": 1.0, "ratio": [0.3, 3.3]}, hw=(24, 40))
    x0, y0, w, h = d["box"].unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 40).all() and (y0 + h <= 24).all()
    assert (w >= 1).all() and (h >= 1).all()
    tall = (h > w).float().mean().item()
    assert 0.35 < tall < 0.6  # Kornia's fair coin between the ranges below and above 1


def test_new_op_parameters_are_checked():
    bad = [("posterize", {"bits": 9}), ("posterize", {"bits": [5, 3]}), ("random_erasing", {"value": 2}),
           ("random_erasing", {"ratio": [0, 1]}), ("rotation", {"degrees": -3}), ("affine", {"shear": [1, 2, 3]}),
           ("affine", {"translate": [0.5, 2]}), ("affine", {"scale": [0, 1]}), ("equalize", {"bits": 3})]
    for op, p in bad:
        with pytest.raises(PolicyError, match=rf"{op}"):
            _policy((op, p))
    # Kornia's conventions for scalars
    assert _policy(("posterize", {"bits": 4})).params("posterize")["bits"] == (4.0, 8.0)
    assert _policy(("rotation", {"degrees": 10})).params("rotation")["degrees"] == (-10.0, 10.0)
    assert _policy(("affine", {"shear": 5})).params("affine")["shear"] == (-5.0, 5.0, 0.0, 0.0)


# ---------------------------------------------------------------------- RandAugment / TrivialAugment
KEY = {"rotate": "degrees", "shear_x": "shear_x", "shear_y": "shear_y", "translate_x": "translate_x",
       "translate_y": "translate_y", "posterize": "bits_factor", "solarize": "thresholds"}
# Kornia's drawn value -> the candidate's magnitude value: shear degrees are atan(factor), translations pixels
INVERSE = {"shear_x": lambda v: torch.tan(torch.deg2rad(v)), "shear_y": lambda v: torch.tan(torch.deg2rad(v)),
           "translate_x": lambda v: v / 32, "translate_y": lambda v: v / 32}
CANDIDATES = [("rotate", -30, 30), ("shear_x", -0.3, 0.3), ("shear_y", -0.3, 0.3), ("translate_x", -0.1, 0.1),
              ("translate_y", -0.5, 0.5), ("posterize", 4, 8), ("posterize", 0, 4), ("solarize", 0, 1),
              ("equalize", 0, 1)]


def _ra_params_from_kornia(name, lo, hi, data, m, b):
    """Kornia's drawn value of one candidate -> rand_augment's params (magnitude in [0, 30], sign)."""
    a = auto_space()[name]
    if name not in KEY or m is not None:
        mag = torch.full((b, 1), float(m if m is not None else 0.0))
        v = data[KEY[name]].float() if name in KEY else torch.zeros(b)
    else:
        v = data[KEY[name]].float()
        frac = (INVERSE.get(name, lambda t: t)(v).abs() / hi) if a.signed else (hi - v) / (hi - lo) if a.reverse else (v - lo) / (hi - lo)
        mag = (frac * 30)[:, None]
    return {"choice": torch.zeros(b, 1, dtype=torch.long), "magnitude": mag, "sign": (v < 0)[:, None],
            "applied": torch.ones(b, dtype=torch.bool)}


@needs_kornia
@pytest.mark.parametrize("mode", ["rand_augment", "trivial_augment"])
@pytest.mark.parametrize("name, lo, hi", CANDIDATES)
def test_rand_augment_candidates_match_kornia(images, mode, name, lo, hi):
    """Each candidate on Kornia's drawn values (RandAugment: a fixed m; TrivialAugment: per-row
    magnitudes) gives Kornia's pixels: the magnitude mappings, signs and quantizations agree."""
    from kornia.augmentation.auto import RandAugment, TrivialAugment

    x = images.float() / 255
    m = 13 if mode == "rand_augment" else None
    torch.manual_seed(1)
    aug = RandAugment(n=1, m=m, policy=[[(name, lo, hi)]]) if m else TrivialAugment(policy=[[(name, lo, hi)]])
    y = aug(x.clone())
    data = aug._params[0].data[0].data
    pol = _policy(("rand_augment", {"ops": [[name, lo, hi]], "n": 1, "magnitude": m if m else [0, 30]}))
    params = {"rand_augment": _ra_params_from_kornia(name, lo, hi, data, m, len(x))}
    err = (fused.apply(images, pol.for_view(0), params) - y).abs().max().item()
    assert err < (1e-6 if name in ("posterize", "solarize", "equalize") else GEO_ATOL), err


@needs_kornia
@pytest.mark.parametrize("name, factor", [("brightness", 1.3), ("contrast", 0.4), ("color", 1.7)])
def test_rand_augment_colour_candidates_use_torchvision_formulas(images, name, factor):
    """brightness / contrast / color: PIL's (torchvision's) formulas, those of Kornia's ColorJitter."""
    import kornia.augmentation as K

    key = {"brightness": "brightness", "contrast": "contrast", "color": "saturation"}[name]
    y = K.ColorJitter(**{key: (factor, factor)}, p=1.0)(images.float() / 255)
    m = (factor - 0.1) / 1.8 * 30
    pol = _policy(("rand_augment", {"ops": [name], "n": 1, "magnitude": m}))
    b = len(images)
    params = {"rand_augment": {"choice": torch.zeros(b, 1, dtype=torch.long), "magnitude": torch.full((b, 1), m),
                               "sign": torch.zeros(b, 1, dtype=torch.bool), "applied": torch.ones(b, dtype=torch.bool)}}
    assert (fused.apply(images, pol.for_view(0), params) - y).abs().max() < 1e-5


def _ra_sample(p, n=N):
    pol = _policy(("rand_augment", p))
    cfg = pol.params("rand_augment")
    return cfg, fused.sample_params(pol.for_view(0), (n, 3, 32, 32), torch.Generator().manual_seed(0), "cpu")["rand_augment"]


@needs_scipy
def test_rand_augment_draws_candidates_uniformly_without_replacement():
    from scipy import stats

    cfg, d = _ra_sample({"n": 3, "magnitude": 9})
    k = len(cfg["ops"])
    c = d["choice"]
    assert c.shape == (N, 3) and all(len(set(row)) == 3 for row in c.tolist())  # distinct per sample
    freq = torch.bincount(c.flatten(), minlength=k).numpy() / N  # each candidate in n / k of the samples
    assert all(_rate_ok(f, 3 / k) for f in freq), freq
    assert (d["magnitude"] == 9).all() and d["applied"].all()
    _, t = _ra_sample({"n": 1, "magnitude": [0, 30], "ops": list(ra.TRIVIAL_AUGMENT_OPS)})
    assert stats.kstest(t["magnitude"].flatten().numpy() / 30, "uniform").pvalue > 1e-3
    assert _rate_ok(t["sign"].float().mean().item(), 0.5)


@needs_kornia
@needs_scipy
@pytest.mark.parametrize("name, lo, hi", [("rotate", -30, 30), ("shear_x", -0.3, 0.3), ("posterize", 0, 4),
                                          ("solarize", 0, 1), ("translate_x", -0.5, 0.5)])
def test_trivial_augment_values_have_kornias_distribution(name, lo, hi):
    """TrivialAugment: the values a candidate gets (sign, mapping, quantization) are distributed as
    Kornia's TrivialAugment draws them, row by row."""
    from kornia.augmentation.auto import TrivialAugment
    from scipy import stats

    a = auto_space()[name]
    _, d = _ra_sample({"n": 1, "magnitude": [0, 30], "ops": [[name, lo, hi]]})
    v = ra.value(a, lo, hi, d["magnitude"][:, 0], d["sign"][:, 0], sampled=True)
    ours = a.params(v, (32, 32), True)
    torch.manual_seed(0)
    kp = TrivialAugment(policy=[[(name, lo, hi)]]).forward_parameters(torch.Size((N, 3, 32, 32)))[0].data[0].data
    theirs = kp[KEY[name]].double().numpy()
    if name == "posterize":
        _same_discrete(ours["bits"].numpy(), theirs)
        return
    mine = {"rotate": lambda: ours["degrees"], "shear_x": lambda: ours["shear"][:, 0],
            "solarize": lambda: ours["threshold"], "translate_x": lambda: ours["translate"][:, 0]}[name]()
    assert stats.ks_2samp(mine.double().numpy(), theirs).pvalue > 1e-3


def test_whole_bit_ranges_draw_every_bit_count_equally_often():
    """posterize on a whole range [lo, hi] draws each whole number 1 / (hi - lo + 1) of the time, the
    ends too (rounding a draw on [lo, hi] gave them half as often); a fractional range rounds."""
    bits = _ours("posterize", {"bits": [0, 2], "p": 1.0})["bits"]
    assert set(bits.tolist()) == {0, 1, 2}
    assert all(_rate_ok((bits == k).float().mean().item(), 1 / 3) for k in (0, 1, 2))
    frac = _ours("posterize", {"bits": [0.2, 2.7], "p": 1.0})["bits"]  # a continuous draw, rounded
    assert all(_rate_ok((frac == k).float().mean().item(), share) for k, share in enumerate((0.12, 0.4, 0.4, 0.08)))
    # TrivialAugment's drawn posterize bits: the same equal shares on its (0, 4) range
    _, d = _ra_sample({"n": 1, "magnitude": [0, 30], "ops": [["posterize", 0, 4]]})
    v = ra.value(auto_space()["posterize"], 0, 4, d["magnitude"][:, 0], d["sign"][:, 0], sampled=True)
    assert all(_rate_ok((v == k).float().mean().item(), 1 / 5) for k in range(5))


def test_shear_candidates_take_a_shear_factor():
    """shear_x / shear_y magnitudes are shear factors (PIL, torchvision, Kornia >= 0.9.2): the angle is
    atan(factor), so the top of the default range, 0.3, shears by 16.7 degrees, not 0.3 x 180."""
    a = auto_space()["shear_x"]
    v = ra.value(a, -0.3, 0.3, torch.tensor([30.0, 15.0]), torch.tensor([False, True]))
    shear = a.params(v, (32, 32), False)["shear"]
    assert torch.allclose(shear[:, 0], torch.tensor([16.699, -8.531]), atol=1e-3) and (shear[:, 1] == 0).all()
    assert torch.allclose(auto_space()["shear_y"].params(v, (32, 32), False)["shear"][:, 1], shear[:, 0])


def test_rand_augment_with_p_0_is_its_base_policy(images):
    """The op gated off leaves each sample as the base policy makes it (the reference path against
    the fused one, on the base's own draws: rand_augment draws after them)."""
    base = Policy.named("full")
    pol = rand_augment(base, 2, 9).with_params("rand_augment", name="t", p=0.0)
    a = Engine(base, seed=4, impl="torch")(images, views=1)[0]
    e = Engine(pol, seed=4)
    b = e(images, views=1)[0]
    assert e.impl == "reference" and (a - b).abs().max() < 1e-5


def test_generators_build_policies():
    full = Policy.named("full")
    p = rand_augment(full, 2, 9)
    assert p.name == "ra_n2_m9" and p.op_names[-2:] == ["rand_augment", "normalize"]
    cfg = p.params("rand_augment")
    assert cfg["n"] == 2 and cfg["magnitude"] == (9.0, 9.0) and [c[0] for c in cfg["ops"]] == list(ra.RAND_AUGMENT_OPS)
    assert Policy.from_dict(p.to_dict()).to_dict() == p.to_dict()
    assert Policy.from_dict(__import__("yaml").safe_load(p.to_yaml())) == p
    t = trivial_augment(Policy.named("simclr"))
    assert t.name == "simclr-trivial_augment"
    cfg = t.params("rand_augment")
    assert cfg["n"] == 1 and cfg["magnitude"] == (0.0, 30.0) and ("posterize", 0.0, 4.0) in cfg["ops"]
    assert rand_augment(full, 1, 5, ops=["rotate", ["posterize", 0, 4]]).params("rand_augment")["ops"] == (
        ("rotate", -30.0, 30.0), ("posterize", 0.0, 4.0))
    # the other ops keep their spec: a RandAugment arm differs from its base by the one op
    assert p.to_dict()["ops"][:-2] == full.to_dict()["ops"][:-1]


def test_generators_in_sweep_files():
    from augbench.augment.policy_specs import PolicySpecError, expand_policies

    out = expand_policies([{"rand_augment": "full", "n": [1, 2], "m": [5, 9]}, {"trivial_augment": "simclr"}], "f")
    assert [o["name"] for o in out] == ["ra_n1_m5", "ra_n1_m9", "ra_n2_m5", "ra_n2_m9", "simclr-trivial_augment"]
    with pytest.raises(PolicySpecError, match=r"f\[0\].*unknown key"):
        expand_policies([{"rand_augment": "full", "values": [1]}], "f")


def test_rand_augment_checks():
    for p, match in [({"n": 3, "ops": ["rotate", "equalize"]}, "only 2 candidates"),
                     ({"ops": ["rotate", "sharpness"]}, "unknown candidate 'sharpness'"),
                     ({"ops": [["rotate", 0, 30]]}, "symmetric"), ({"magnitude": 31}, "magnitude"),
                     ({"ops": ["rotate", "rotate"]}, "twice"), ({"n": 0}, r"\.n")]:
        with pytest.raises(PolicyError, match=match):
            _policy(("rand_augment", p))


def test_backends_that_cannot_run_an_op_say_so(images):
    pol = rand_augment(Policy.named("full"), 1, 5)
    if find_spec("kornia") is not None:
        with pytest.raises(AugmentInputError, match=r"backend='kornia' cannot run op 'rand_augment'"):
            Engine(pol, backend="kornia")
        assert Engine(_policy(("equalize", {})), backend="kornia").impl == "kornia"
    if find_spec("albumentations") is not None:
        with pytest.raises(AugmentInputError, match=r"backend='albumentations' cannot run op 'random_erasing'"):
            Engine(_policy(("random_erasing", {})), backend="albumentations")


def test_new_ops_read_no_tensor_values_back(images):
    """The reference path, like the fused one, reads no tensor value to the host."""
    calls = []
    orig_item, orig_tolist = torch.Tensor.item, torch.Tensor.tolist

    def spy(name, f):
        def g(self, *a, **k):
            if self.device.type != "cpu" or self.numel() > 4:  # the CPU-side jitter order is allowed
                calls.append(name)
            return f(self, *a, **k)
        return g

    pol = trivial_augment(Policy.named("full")).with_params("random_erasing", name="t").with_params(
        "affine", name="t", degrees=10).with_params("equalize", name="t").with_params("posterize", name="t")
    torch.Tensor.item, torch.Tensor.tolist = spy("item", orig_item), spy("tolist", orig_tolist)
    try:
        Engine(rand_augment(pol, 3, 12), seed=0)(images, views=2)
    finally:
        torch.Tensor.item, torch.Tensor.tolist = orig_item, orig_tolist
    assert calls == []


# ---------------------------------------------------------------------- augbench ops
def test_augbench_ops_lists_every_op_with_its_parameters(capsys):
    from augbench.cli import main

    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name, spec in OPS.items():
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{name}: "))
        assert spec.doc in line
        block = out.split(line, 1)[1].split("\n")[1:3]
        assert all(f"{k}=" in block[0] for k in spec.params), (name, block)
        assert ("reference path" in block[1]) == (name not in fused.covers("torch")), (name, block)
    assert "fast paths: torch" in out and "rotate: op rotation, range [-30, 30]" in out
    assert main(["ops", "posterize"]) == 0
    one = capsys.readouterr().out
    assert one.startswith("posterize: ") and "bits=[3, 8], p=0.5" in one and "equalize" not in one
    assert main(["ops", "nope"]) == 2
    assert "unknown op 'nope'" in capsys.readouterr().err
