"""`augbench preview` on real CIFAR-10 images: several policies side by side in one labelled PNG, the
originals pixel-exact, and the two views of an image different (BYOL's by design as well as by draw)."""
import numpy as np
import pytest
from PIL import Image

from augbench.augment import preview
from augbench.cli import main

SCALE = 2


@pytest.fixture(scope="module")
def grid():
    return preview.build(["full", "no_crop", "byol"], n=4, views=2, scale=SCALE)


def _tile(res, block, row, col):
    y, x, h, w = res["boxes"][block, row, col]
    return res["grid"][y:y + h, x:x + w].astype(int)


def test_policy_names_from_repeats_and_comma_lists():
    assert preview.policy_names(["full,no_crop", "byol", " full "]) == ["full", "no_crop", "byol"]
    assert preview.policy_names(None) == ["simclr"]


def test_labels_name_policy_views_and_classes(grid):
    from augbench.data import load_dataset

    titles = [b.title for b in grid["blocks"]]
    assert titles == ["policy full", "policy no_crop", "policy byol (asymmetric views)"]
    assert grid["blocks"][0].columns() == [["original"], ["view 1"], ["view 2"]]
    assert grid["blocks"][2].columns() == [["original"], ["view 1", "blur p=1.0", "solarize p=0.0"],
                                          ["view 2", "blur p=0.1", "solarize p=0.2"]]
    ds = load_dataset("cifar10", "train", subset=1)
    assert grid["classes"] == ds.classes[::2][:4]  # 4 of 10 one-per-class images, spread over the classes
    img = grid["grid"]
    # the labels are drawn: dark pixels in the header above every block and left of every row
    for b in range(3):
        y, x, h, w = grid["boxes"][b, 0, 0]
        assert (img[:y, x:x + w] < 100).any()
    for r in range(4):
        y, x, h, w = grid["boxes"][0, r, 0]
        assert (img[y:y + h, :x] < 100).any()


def test_originals_are_the_images_and_views_differ(grid):
    for b in range(3):
        for r, im in enumerate(grid["images"]):
            orig = _tile(grid, b, r, 0)
            assert np.array_equal(orig[::SCALE, ::SCALE], im.permute(1, 2, 0).numpy())
            v1, v2 = _tile(grid, b, r, 1), _tile(grid, b, r, 2)
            assert np.abs(v1 - v2).mean() > 1, (b, r)  # two views, not one drawn twice


def test_byol_views_follow_their_own_overrides():
    import torch

    from augbench.augment import Engine, Policy
    from augbench.data import load_dataset

    x = load_dataset("cifar10", "train", subset=10).images  # 100 real images
    views, params = Engine(Policy.named("byol"), seed=0)(x, views=2, return_params=True)
    assert params[0]["gaussian_blur"]["applied"].all() and not params[0]["solarize"]["applied"].any()
    assert params[1]["gaussian_blur"]["applied"].float().mean() < 0.3 and params[1]["solarize"]["applied"].any()
    assert not torch.equal(params[0]["random_resized_crop"]["box"], params[1]["random_resized_crop"]["box"])
    assert not torch.allclose(views[0], views[1])


def test_cli_writes_one_png_for_several_policies(tmp_path, capsys):
    out = tmp_path / "p.png"
    assert main(["preview", "--policy", "full,no_crop", "--policy", "byol", "--out", str(out), "--n", "2",
                 "--scale", "1"]) == 0
    assert "policies full, no_crop, byol" in capsys.readouterr().out
    one = tmp_path / "one.png"
    assert main(["preview", "--policy", "full", "--out", str(one), "--n", "2", "--scale", "1"]) == 0
    w3, w1 = Image.open(out).size[0], Image.open(one).size[0]
    assert w3 > 2.5 * w1 - 100  # three blocks side by side (one class-label margin)


def test_bad_input_is_a_user_error(tmp_path, capsys):
    assert main(["preview", "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["preview", "--policy", "full,nope", "--out", str(tmp_path / "y.png")]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err and not (tmp_path / "y.png").exists()
