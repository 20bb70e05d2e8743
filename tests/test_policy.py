"""The policy data model: validation messages name the field, generators, YAML, the registry."""
import pytest
import yaml

from augbench.augment import NAMED, Policy, PolicyError, leave_one_out, only, pairwise, strength_sweep
from augbench.errors import UserError


def _pol(*ops, views=None):
    d = {"name": "t", "ops": list(ops)}
    if views is not None:
        d["views"] = views
    return Policy.from_dict(d)


@pytest.mark.parametrize("ops, field", [
    ([{"op": "rotate"}], "ops[0]"),
    ([{"op": "horizontal_flip", "prob": 0.5}], "ops[0].horizontal_flip: unknown parameter(s) ['prob']"),
    ([{"op": "horizontal_flip", "p": 1.5}], "ops[0].horizontal_flip.p"),
    ([{"op": "random_resized_crop", "scale": [0.9, 0.2]}], "ops[0].random_resized_crop.scale: min 0.9 > max 0.2"),
    ([{"op": "random_resized_crop", "scale": [0.0, 1.0]}], "ops[0].random_resized_crop.scale"),
    ([{"op": "gaussian_blur", "kernel_size": 4}], "ops[0].gaussian_blur.kernel_size: must be odd"),
    ([{"op": "color_jitter", "hue": 0.7}], "ops[0].color_jitter.hue"),
    ([{"op": "patch_mask", "ratio": 1.0}], "ops[0].patch_mask.ratio"),
    ([{"op": "normalize", "std": [0.2, 0.0, 0.2]}], "ops[0].normalize.std"),
    ([{"op": "resize"}, {"op": "random_resized_crop"}], "either random_resized_crop or resize"),
    ([{"op": "normalize"}, {"op": "grayscale"}], "normalize must come last"),
])
def test_validation_errors_name_the_field(ops, field):
    with pytest.raises(PolicyError) as e:
        _pol(*ops)
    assert field in str(e.value)
    assert isinstance(e.value, UserError)  # the CLI turns it into a message and exit code 2


def test_view_override_errors_name_the_view():
    with pytest.raises(PolicyError, match=r"views\[1\]\.gaussian_blur\.p"):
        _pol({"op": "gaussian_blur"}, views=[{}, {"gaussian_blur": {"p": 2.0}}])
    with pytest.raises(PolicyError, match=r"views\[0\]\.solarize: overrides an op the policy does not have"):
        _pol({"op": "gaussian_blur"}, views=[{"solarize": {"p": 0.1}}])


def test_jitter_scalars_follow_torchvision():
    p = _pol({"op": "color_jitter", "brightness": 0.4, "contrast": 1.5, "hue": 0.1}).params("color_jitter")
    assert p["brightness"] == (0.6, 1.4)
    assert p["contrast"] == (0.0, 2.5)  # clipped at 0 for a multiplicative factor
    assert p["hue"] == (-0.1, 0.1)


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nops: [ {op: grayscale\n")
    with pytest.raises(PolicyError, match="bad.yaml: not a valid YAML"):
        Policy.from_yaml(bad)
    with pytest.raises(PolicyError, match="missing.yaml: no such policy file"):
        Policy.from_yaml(tmp_path / "missing.yaml")
    nonmap = tmp_path / "list.yaml"
    nonmap.write_text("- 1\n- 2\n")
    with pytest.raises(PolicyError, match="list.yaml: expected a mapping"):
        Policy.from_yaml(nonmap)
    with pytest.raises(PolicyError, match="unknown policy 'simclrr'"):
        Policy.named("simclrr")


@pytest.mark.parametrize("name", sorted(NAMED))
def test_yaml_round_trip(name, tmp_path):
    p = Policy.named(name)
    f = tmp_path / f"{name}.yaml"
    f.write_text(p.to_yaml())
    q = Policy.from_yaml(f)
    assert q == p
    assert yaml.safe_load(p.to_yaml()) == p.to_dict()


def test_registry_contents():
    for n in ("full", "simclr", "byol", "vicreg", "no_crop", "no_color", "no_blur", "no_flip", "no_solarize",
              "crop_only", "crop_color_only", "mask_instead_of_crop", "weak", "none"):
        assert n in NAMED, n
    full = Policy.named("full")
    assert full.op_names == ["random_resized_crop", "horizontal_flip", "color_jitter", "grayscale",
                             "gaussian_blur", "solarize", "normalize"]
    simclr = Policy.named("simclr")
    assert not simclr.has("solarize") and simclr.params("color_jitter")["p"] == 0.8
    byol = Policy.named("byol")
    v0, v1 = dict(byol.for_view(0)), dict(byol.for_view(1))
    assert (v0["gaussian_blur"]["p"], v0["solarize"]["p"]) == (1.0, 0.0)
    assert (v1["gaussian_blur"]["p"], v1["solarize"]["p"]) == (0.1, 0.2)
    assert dict(byol.for_view(2)) == v0  # overrides cycle
    no_crop = Policy.named("no_crop")
    assert no_crop.op_names[0] == "resize" and no_crop.output_size == (32, 32)
    assert Policy.named("crop_only").op_names == ["random_resized_crop", "normalize"]
    mask = Policy.named("mask_instead_of_crop")
    assert mask.op_names[-1] == "patch_mask" and not mask.has("random_resized_crop")
    assert Policy.named("weak").params("random_resized_crop")["scale"] == (0.5, 1.0)


def test_leave_one_out():
    base = Policy.named("full")
    pols = leave_one_out(base)
    names = [p.name for p in pols]
    assert names == ["full", "no_crop", "no_flip", "no_color", "no_jitter", "no_gray", "no_blur", "no_solarize"]
    by = {p.name: p for p in pols}
    assert not by["no_color"].has("color_jitter") and not by["no_color"].has("grayscale")
    assert by["no_jitter"].has("grayscale")
    assert by["no_crop"].params("resize") == {"size": (32, 32)}
    for p in pols[1:]:  # each drops only its own group
        assert len(set(base.op_names) - set(p.op_names) - {"random_resized_crop"}) <= 2
    # a BYOL base keeps its per-view overrides for the ops that remain
    byol_no_blur = leave_one_out(Policy.named("byol"), ["blur"])[1]
    assert byol_no_blur.name == "byol-no_blur" and byol_no_blur.views == ({"solarize": {"p": 0.0}},
                                                                          {"solarize": {"p": 0.2}})


def test_only_and_pairwise():
    base = Policy.named("full")
    p = only(base, ["crop", "blur"])
    assert p.name == "crop_blur_only" and p.op_names == ["random_resized_crop", "gaussian_blur", "normalize"]
    assert only(base, ["blur"]).op_names == ["resize", "gaussian_blur", "normalize"]
    pairs = pairwise(base)
    assert len(pairs) == 4 + 6  # four groups alone, every pair
    assert "pair_crop+color" in [q.name for q in pairs]
    with pytest.raises(PolicyError, match="unknown augmentation group 'colour'"):
        only(base, ["colour"])


def test_strength_sweeps():
    base = Policy.named("full")
    crops = strength_sweep(base, "crop_scale", [0.08, 0.5, 1.0])
    assert [c.params("random_resized_crop")["scale"] for c in crops] == [(0.08, 1.0), (0.5, 1.0), (1.0, 1.0)]
    col = strength_sweep(base, "color", [0.5, 1.0])[1].params("color_jitter")
    assert col["brightness"] == pytest.approx((0.2, 1.8)) and col["hue"] == pytest.approx((-0.2, 0.2))
    masks = strength_sweep(base, "mask_ratio", [0.0, 0.75])
    assert not masks[0].has("patch_mask") and masks[1].params("patch_mask")["ratio"] == 0.75
    blur = strength_sweep(base, "gaussian_blur.p", [0.0, 1.0])
    assert [b.params("gaussian_blur")["p"] for b in blur] == [0.0, 1.0]
    assert len({b.name for b in blur}) == 2
    with pytest.raises(PolicyError, match="unknown strength knob"):
        strength_sweep(base, "sharpness", [1])
    with pytest.raises(PolicyError, match=r"ops\[4\]\.gaussian_blur\.p: probability"):  # out of range fails like any policy
        strength_sweep(base, "gaussian_blur.p", [1.5])


# ---------------------------------------------------------------------- size-aware policies
def test_for_size_adapts_crop_blur_and_stats():
    from augbench.augment import DATASET_STATS, blur_kernel_size

    assert [blur_kernel_size(s) for s in (32, 64, 96, 224)] == [3, 7, 9, 23]  # SimCLR: 23 taps at 224 px
    p = Policy.named("simclr", size=224, dataset="imagenet")
    assert p.output_size == (224, 224) and p.params("gaussian_blur")["kernel_size"] == 23
    assert p.params("normalize")["mean"] == DATASET_STATS["imagenet"][0] and p.name == "simclr@224px-imagenet"
    assert p.params("color_jitter") == Policy.named("simclr").params("color_jitter")  # the rest unchanged
    # BYOL's per-view overrides survive (their p), the kernel follows the size on both views
    b = Policy.named("byol").for_size((96, 128), dataset=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert [dict(b.for_view(v))["gaussian_blur"]["p"] for v in (0, 1)] == [1.0, 0.1]
    assert {dict(b.for_view(v))["gaussian_blur"]["kernel_size"] for v in (0, 1)} == {9}
    assert b.output_size == (96, 128) and b.params("normalize")["std"] == (0.25, 0.25, 0.25)
    # size=None: only the stats; no blur op: nothing to adapt
    c = Policy.named("weak").for_size(None, dataset="cifar100")
    assert c.output_size == (32, 32) and c.params("normalize")["mean"] == DATASET_STATS["cifar100"][0]
    assert Policy.from_dict(Policy.named("simclr", size=224).to_dict()) == Policy.named("simclr", size=224)
    with pytest.raises(PolicyError, match="no statistics for 'svhn'"):
        Policy.named("simclr").for_size(64, dataset="svhn")
    with pytest.raises(PolicyError, match="for_size.size"):
        Policy.named("simclr").for_size(0)


def test_with_params_size_says_what_it_keeps():
    with pytest.warns(UserWarning, match=r"keeps gaussian_blur.kernel_size=3 and normalize's CIFAR-10 mean/std"):
        p = Policy.named("simclr").with_params("random_resized_crop", size=224)
    assert p.params("gaussian_blur")["kernel_size"] == 3  # unchanged, as the warning says
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where the kernel still fits, no warning
        Policy.named("simclr").with_params("random_resized_crop", size=24)
        Policy.named("simclr", size=224, dataset="imagenet").with_params("random_resized_crop", size=220)


def test_channel_stats_of_real_cifar10():
    from augbench.augment import DATASET_STATS, channel_stats
    from augbench.data import load_dataset

    mean, std = channel_stats(load_dataset("cifar10", "train", subset=100).images)  # 1000 real images
    ref_mean, ref_std = DATASET_STATS["cifar10"]
    assert all(abs(a - b) < 0.02 for a, b in zip(mean, ref_mean)), mean
    assert all(abs(a - b) < 0.02 for a, b in zip(std, ref_std)), std
    p = Policy.named("simclr").for_size(32, dataset=(mean, std))
    assert p.params("normalize")["mean"] == pytest.approx(mean) and p.name == "simclr@32px-stats"


def test_only_one_arms_are_the_resize_plus_one_group():
    """SimCLR Fig. 5's diagonal: crop_only keeps the crop; the other *_only arms replace it by the
    same resize that no_crop uses, and keep only their group's ops, with full's parameters."""
    full, resize = Policy.named("full"), Policy.named("no_crop").ops[0]
    want = {"color_only": ["color_jitter", "grayscale"], "blur_only": ["gaussian_blur"], "flip_only": ["horizontal_flip"]}
    for name, ops in want.items():
        pol = Policy.named(name)
        assert pol.name == name and pol.op_names == ["resize", *ops, "normalize"], name
        assert pol.ops[0] == resize and pol.output_size == Policy.named("crop_only").output_size == (32, 32)
        assert all(pol.params(op) == full.params(op) for op in ops)


def _luma_corr(a, b):
    a, b = a.mean(1).flatten(1), b.mean(1).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def test_only_one_arms_on_real_images():
    from augbench.augment import Engine
    from augbench.data import load_dataset

    x = load_dataset("cifar10", "train", subset=2).images  # 20 real images
    plain = Engine("none", seed=0)(x, views=1)[0]
    views = {n: Engine(n, seed=0)(x, views=1)[0] for n in ("flip_only", "color_only", "blur_only", "crop_only")}
    # flip only: each view is its image or its mirror, both happen (p=0.5)
    same = (views["flip_only"] - plain).abs().flatten(1).amax(1) < 1e-5
    mirrored = (views["flip_only"] - plain.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < len(x)
    # colour and blur only change pixel values, not where things are: the luminance stays aligned with
    # the original's (correlation > 0.9 for every image), which a crop does not keep (mean ~0.5)
    for name in ("color_only", "blur_only"):
        changed = (views[name] - plain).abs().flatten(1).amax(1) > 1e-3
        assert int(changed.sum()) >= len(x) // 4, name
        assert float(_luma_corr(views[name], plain).min()) > 0.9, name
    assert float(_luma_corr(views["crop_only"], plain).mean()) < 0.8
