"""The engine as a library, on real CIFAR-10: an nn.Module with replayable params, a per-image
transform on the same code, state in a model's state_dict."""
import importlib.util

import numpy as np
import pytest
import torch

from augbench.augment import AugmentInputError, Engine, Policy, ViewTransform

needs_kornia = pytest.mark.skipif(importlib.util.find_spec("kornia") is None, reason="kornia not installed")


@pytest.fixture(scope="module")
def images():
    from augbench.data import load_dataset

    return load_dataset("cifar10", "train", subset=2).images  # (20, 3, 32, 32) uint8, real


def test_engine_is_a_module_and_replays_exactly(images):
    e = Engine("byol", seed=4)
    assert isinstance(e, torch.nn.Module) and "policy='byol'" in repr(e)
    views, params = e(images, views=2, return_params=True)
    after = e.state_dict()
    again = e(images, params=params)  # same pixels from the same draws
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    assert len(e(images, params=params[1:])) == 1  # one view per params entry
    # replay draws nothing: the next call equals that of an engine that never replayed
    ref = Engine("byol", seed=4)
    ref.load_state_dict(after)
    assert torch.equal(e(images, views=1)[0], ref(images, views=1)[0])
    # another engine (another seed) replays the same params to the same pixels
    assert torch.equal(Engine("byol", seed=9)(images, params=params)[0], views[0])
    # a channels-last batch (not contiguous as NCHW) gives the same views
    cl = images.contiguous(memory_format=torch.channels_last)
    assert torch.equal(Engine("byol", seed=4)(cl, views=1)[0], views[0])


@needs_kornia
def test_kornia_engine_replays(images):
    e = Engine("full", backend="kornia", seed=1)
    views, params = e(images, views=2, return_params=True)
    for a, b in zip(views, e(images, params=params)):
        assert (a - b).abs().max() < 1e-4  # replayed by fused's maths in float32: tests/test_backends.py


def test_bad_params_are_user_errors(images):
    e = Engine("simclr", seed=0)
    _, params = e(images, views=1, return_params=True)
    with pytest.raises(AugmentInputError, match=r"drawn for a batch of 20, got a batch of 4"):
        e(images[:4], params=params)
    with pytest.raises(AugmentInputError, match=r"no draws for op\(s\) \['gaussian_blur'\]"):
        e(images, params=[{k: v for k, v in params[0].items() if k != "gaussian_blur"}])
    with pytest.raises(AugmentInputError, match="non-empty list"):
        e(images, params=[])
    with pytest.raises(AugmentInputError, match="cannot replay"):
        e(images, params=[{"albumentations": []}])


def test_state_travels_in_a_model_state_dict(images):
    model = torch.nn.Sequential(Engine("simclr", seed=2))
    model[0](images, views=2)
    state = model.state_dict()
    assert list(state) == ["0._extra_state"]
    fresh = torch.nn.Sequential(Engine("simclr", seed=2))
    fresh.load_state_dict(state)
    assert torch.equal(model[0](images, views=1)[0], fresh[0](images, views=1)[0])
    # a checkpoint from before the engine was a Module (its extra state itself) still loads
    old = Engine("simclr", seed=2)
    old.load_state_dict(model[0].get_extra_state())
    assert torch.equal(model[0](images, views=1)[0], old(images, views=1)[0])
    with pytest.raises(AugmentInputError, match="engine state"):
        old.load_state_dict({"nope": 1})


def test_view_transform_is_the_engine_on_a_batch_of_one(images):
    from PIL import Image

    pol = Policy.named("byol")
    t = pol.transform(views=2, seed=5)
    img = images[3]
    views = t(img)
    ref = Engine(pol, seed=5)(img[None], views=2)
    assert len(views) == 2 and all(torch.equal(v, r[0]) for v, r in zip(views, ref))
    # PIL and HWC numpy input give the same views as the tensor
    pil = Image.fromarray(img.permute(1, 2, 0).numpy())
    for x in (pil, np.asarray(pil)):
        assert all(torch.equal(a, b) for a, b in zip(ViewTransform(pol, seed=5)(x), views))
    with pytest.raises(AugmentInputError, match="expected 3 dims"):
        t(images[:2])
    with pytest.raises(AugmentInputError, match="views"):
        ViewTransform(pol, views=0)
    with pytest.raises(AugmentInputError, match="backend"):
        ViewTransform(pol, backend="dali")


class _Same(torch.utils.data.Dataset):
    def __init__(self, img, n, transform):
        self.img, self.n, self.transform = img, n, transform

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.transform(self.img)


def _epoch(img, seed):
    ds = _Same(img, 4, ViewTransform("simclr", views=1, seed=0))
    dl = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(seed))
    return torch.cat([b[0] for b in dl])


def test_view_transform_in_dataloader_workers(images):
    a = _epoch(images[0], seed=0)
    # two workers, one image: no two samples share draws (each worker seeds its own engine)
    assert len({v.numpy().tobytes() for v in a}) == 4
    assert torch.equal(a, _epoch(images[0], seed=0))  # reproducible from the loader's generator
    assert not torch.equal(a, _epoch(images[0], seed=1))  # and a new epoch seed gives new draws
