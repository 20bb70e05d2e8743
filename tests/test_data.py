"""Data layer on real CIFAR-10 JPEGs (and tmp folders built from them)."""
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augbench.data import DataError, load_dataset
from augbench.data import base as data_base
from augbench.data import imagefolder

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_root() -> Path:
    return Path(os.environ["AUGBENCH_DATA"]) / "cifar10"


def pil_decode(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


@pytest.fixture(scope="module")
def cifar_test():
    return load_dataset("cifar10", split="test")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_folder(root: Path, per_class: int = 3, classes=("cat", "dog")) -> Path:
    """<root>/train/<class>/*.jpg copied from the real CIFAR-10 training JPEGs."""
    for cls in classes:
        (root / "train" / cls).mkdir(parents=True)
        for i in range(per_class):
            shutil.copy(cifar_root() / "train" / cls / f"{i:04d}.jpg", root / "train" / cls / f"{i:04d}.jpg")
    return root


def test_cifar10_jpeg_layout_shapes_and_labels(cifar_test):
    ds = cifar_test
    assert ds.images.shape == (10000, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.bincount().tolist() == [1000] * 10
    assert ds.classes == CIFAR10_CLASSES == sorted(os.listdir(cifar_root() / "test"))
    # Label = position of the folder; images in file-name order within each class.
    for cls, i in [("airplane", 0), ("cat", 17), ("truck", 999)]:
        idx = CIFAR10_CLASSES.index(cls) * 1000 + i
        assert ds.labels[idx] == CIFAR10_CLASSES.index(cls)
        assert torch.equal(ds.images[idx], pil_decode(cifar_root() / "test" / cls / f"{i:04d}.jpg"))


def test_subset_is_balanced_deterministic_and_seeded(cifar_test):
    a = load_dataset("cifar10", split="test", subset=5, seed=1)
    b = load_dataset("cifar10", split="test", subset=5, seed=1)
    c = load_dataset("cifar10", split="test", subset=5, seed=2)
    assert len(a) == 50 and a.labels.bincount().tolist() == [5] * 10
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    # Every subset image is one of the full split's images, with the same label.
    weights = torch.randint(1, 2**20, (3 * 32 * 32,), generator=torch.Generator().manual_seed(0))
    full_keys = dict(zip((cifar_test.images.flatten(1).long() @ weights).tolist(), cifar_test.labels.tolist()))
    sub_keys = (a.images.flatten(1).long() @ weights).tolist()
    assert [full_keys.get(k) for k in sub_keys] == a.labels.tolist()


def test_subset_larger_than_class_names_the_class(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "toy", per_class=2)
    with pytest.raises(DataError, match="subset=3.*'cat'"):
        load_dataset(f"imagefolder:{root}", subset=3)


def test_cache_is_reused_and_invalidated(tmp_path, tmp_cache, monkeypatch):
    root = make_folder(tmp_path / "toy")
    first = load_dataset(f"imagefolder:{root}")
    assert not first.cache_hit and first.cache_path.is_file() and first.cache_path.parent == tmp_cache
    assert first.classes == ["cat", "dog"] and first.labels.tolist() == [0, 0, 0, 1, 1, 1]

    def no_decode(*a, **k):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(data_base, "decode", no_decode)
    second = load_dataset(f"imagefolder:{root}")
    assert second.cache_hit and second.cache_path == first.cache_path
    assert torch.equal(second.images, first.images) and torch.equal(second.labels, first.labels)
    monkeypatch.undo()
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_cache))

    shutil.copy(cifar_root() / "train" / "dog" / "0100.jpg", root / "train" / "dog" / "0100.jpg")
    third = load_dataset(f"imagefolder:{root}")
    assert not third.cache_hit and third.cache_path != first.cache_path
    assert len(third) == 7 and torch.equal(third.images[-1], pil_decode(root / "train" / "dog" / "0100.jpg"))


def test_cache_invalidated_when_a_file_is_rewritten(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "toy")
    first = load_dataset(f"imagefolder:{root}")
    target = root / "train" / "cat" / "0001.jpg"
    shutil.copy(cifar_root() / "train" / "cat" / "0200.jpg", target)  # same name, other picture
    again = load_dataset(f"imagefolder:{root}")
    assert not again.cache_hit and torch.equal(again.images[1], pil_decode(target))
    assert not torch.equal(again.images[1], first.images[1])


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "toy", per_class=12)
    rels = [f"{c}/{i:04d}.jpg" for c in ("cat", "dog") for i in range(12)]
    serial = imagefolder.decode(root / "train", rels)
    monkeypatch.setattr(imagefolder, "_PARALLEL_MIN", 4)
    monkeypatch.setattr(imagefolder, "_CHUNK_MIN", 5)
    monkeypatch.setattr(imagefolder, "_workers", lambda: 2)
    assert torch.equal(torch.from_numpy(imagefolder.decode(root / "train", rels)), torch.from_numpy(serial))
    # A wrongly sized image in a later chunk is still named.
    Image.new("RGB", (40, 40)).save(root / "train" / "dog" / "0011.jpg")
    with pytest.raises(DataError, match=r"dog/0011\.jpg.*40x40"):
        imagefolder.decode(root / "train", rels)


def test_missing_root_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "cifar10") in msg and "download=True" in msg and "AUGBENCH_DATA" in msg


def test_empty_class_folder_is_named(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "toy")
    (root / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=str(root / "train" / "empty")):
        load_dataset(f"imagefolder:{root}")


def test_corrupt_image_is_named(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "toy")
    bad = root / "train" / "dog" / "0001.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=str(bad)):
        load_dataset(f"imagefolder:{root}")


def test_mixed_sizes_are_resized_and_said_once(tmp_path, tmp_cache, capsys):
    # (decode() itself still refuses mixed sizes unless asked to resize: test_parallel_decode_matches_serial)
    root = make_folder(tmp_path / "toy")
    Image.new("RGB", (48, 40), (200, 10, 10)).save(root / "train" / "dog" / "0002.jpg")
    ds = load_dataset(f"imagefolder:{root}")  # to the first image's size
    assert ds.images.shape == (6, 3, 32, 32)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "1 of 6 images" in err and "dog/0002.jpg" in err
    assert torch.equal(ds.images[0], pil_decode(root / "train" / "cat" / "0000.jpg"))  # the others as they are
    assert ds.images[5, 0].float().mean() > 150  # the red one, resized
    big = load_dataset(f"imagefolder:{root}", size=40)  # to a given size: another cache entry
    assert big.images.shape == (6, 3, 40, 40) and big.cache_path != ds.cache_path
    assert "6 of 6 images" in capsys.readouterr().err
    again = load_dataset(f"imagefolder:{root}")
    assert again.cache_hit and again.cache_path == ds.cache_path and torch.equal(again.images, ds.images)


def test_bad_name_and_split():
    with pytest.raises(DataError, match="imagefolder:<path>"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="split"):
        load_dataset("cifar10", split="val")


def test_imagefolder_without_test_split_is_an_error(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "toy")
    with pytest.raises(DataError, match=str(root / "test")):
        load_dataset(f"imagefolder:{root}", split="test")


# ------------------------------------------------------------------ pickled layout
def write_cifar_pickles(folder: Path, n_per_batch: int, protocol=2):
    """The torchvision/Toronto layout: pickled dicts with bytes keys and (N, 3072) uint8 data."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    expected = {}
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        imgs, labs = [], []
        for name in names:
            data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, n_per_batch).tolist()
            blob = pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                 b"filenames": [b"x.png"] * n_per_batch}, protocol=2 if protocol == "legacy" else protocol)
            if protocol == "legacy":  # the module path numpy 1 (and the original files) wrote
                blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            (folder / name).write_bytes(blob)
            imgs.append(data)
            labs += labels
        expected[split] = (np.concatenate(imgs).reshape(-1, 3, 32, 32), np.array(labs))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}, f, protocol=2)
    return expected


@pytest.mark.parametrize("protocol", [2, "legacy", pickle.HIGHEST_PROTOCOL])
def test_pickled_layout(tmp_path, protocol):
    expected = write_cifar_pickles(tmp_path / "cifar10" / "cifar-10-batches-py", 6, protocol)
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split=split, root=tmp_path)
        imgs, labs = expected[split]
        assert ds.images.dtype == torch.uint8 and torch.equal(ds.images, torch.from_numpy(imgs))
        assert ds.labels.tolist() == labs.tolist() and ds.classes == CIFAR10_CLASSES


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_pickled_layout_refuses_code(tmp_path):
    write_cifar_pickles(tmp_path / "cifar10" / "cifar-10-batches-py", 2)
    pwned = tmp_path / "pwned"
    with open(tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(str(pwned)), b"labels": []}, f, protocol=2)
    with pytest.raises(DataError, match=r"data_batch_3.*os.*makedirs|data_batch_3.*posix"):
        load_dataset("cifar10", root=tmp_path)
    assert not pwned.exists()


def test_truncated_cache_file_is_rebuilt(tmp_path, tmp_cache):
    root = make_folder(tmp_path / "toy")
    first = load_dataset(f"imagefolder:{root}")
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:100])  # a job killed mid-write elsewhere
    again = load_dataset(f"imagefolder:{root}")
    assert not again.cache_hit and torch.equal(again.images, first.images)
    assert load_dataset(f"imagefolder:{root}").cache_hit
