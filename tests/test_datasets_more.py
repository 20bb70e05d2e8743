"""Datasets beyond CIFAR: STL-10's binary layout (with its unlabeled split), Tiny-ImageNet's folders,
on small synthetic files in the published layouts; the memory estimate before decoding."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augbench.config import RunConfig
from augbench.data import DataError, load_dataset
from augbench.data import memory
from augbench.data.dataset import NAMES

STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_stl10(root: Path, per_class=(3, 2), unlabeled=25, seed=0) -> dict:
    """<root>/stl10/stl10_binary/ as the tarball unpacks: column-major uint8 images, labels 1..10."""
    folder = root / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    expected = {}
    for part, n in (("train", per_class[0]), ("test", per_class[1]), ("unlabeled", unlabeled)):
        count = n * 10 if part != "unlabeled" else n
        images = rng.integers(0, 256, (count, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W), as displayed
        images.transpose(0, 1, 3, 2).tofile(folder / f"{part}_X.bin")  # stored column-major
        if part != "unlabeled":
            labels = rng.permutation(np.repeat(np.arange(10), n))
            (labels + 1).astype(np.uint8).tofile(folder / f"{part}_y.bin")
        else:
            labels = np.full(count, -1)
        expected[part] = (images, labels)
    (folder / "class_names.txt").write_text("\n".join(STL_CLASSES) + "\n")
    return expected


def test_stl10_splits_labels_and_pixels(tmp_path):
    exp = write_stl10(tmp_path)
    for split in ("train", "test", "unlabeled"):
        ds = load_dataset("stl10", split=split, root=tmp_path)
        images, labels = exp[split]
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(labels), 3, 96, 96)
        assert torch.equal(ds.images, torch.from_numpy(images)) and ds.labels.tolist() == labels.tolist()
        assert ds.classes == STL_CLASSES and ds.split == split
    # the layout as documented: np.fromfile(...).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    raw = np.fromfile(tmp_path / "stl10" / "stl10_binary" / "train_X.bin", dtype=np.uint8)
    assert torch.equal(load_dataset("stl10", root=tmp_path).images,
                       torch.from_numpy(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2).copy()))
    both = load_dataset("stl10", split="train+unlabeled", root=tmp_path)
    assert len(both) == 30 + 25 and both.labels[:30].tolist() == exp["train"][1].tolist()
    assert (both.labels[30:] == -1).all() and torch.equal(both.images[30:], torch.from_numpy(exp["unlabeled"][0]))


def test_stl10_subsets_keep_classes_and_unlabeled_in_proportion(tmp_path):
    exp = write_stl10(tmp_path)  # 3 train images per class, 25 unlabeled
    sub = load_dataset("stl10", split="train+unlabeled", root=tmp_path, subset=2, seed=0)
    # labeled: 2 per class; unlabeled: the train split's share, 2 of 3 per class -> 25 * 2 // 3 = 16
    assert sub.labels[sub.labels >= 0].bincount().tolist() == [2] * 10 and (sub.labels == -1).sum() == 16
    assert torch.equal(sub.images, load_dataset("stl10", split="train+unlabeled", root=tmp_path, subset=2).images)
    # drawn apart: the same labeled images as the train split's subset, the same unlabeled ones as the unlabeled split's
    train = load_dataset("stl10", split="train", root=tmp_path, subset=2)
    unl = load_dataset("stl10", split="unlabeled", root=tmp_path, subset=2)
    assert torch.equal(sub.images[:20], train.images) and torch.equal(sub.labels[:20], train.labels)
    assert torch.equal(sub.images[20:], unl.images) and len(unl) == 16
    # the subset's images are those of the whole split (only they are read)
    whole = load_dataset("stl10", split="train+unlabeled", root=tmp_path)
    rows = [next(i for i in range(len(whole)) if torch.equal(whole.images[i], im)) for im in sub.images]
    assert rows == sorted(rows) and torch.equal(whole.labels[rows], sub.labels)
    assert len(load_dataset("stl10", split="unlabeled", root=tmp_path, subset=3)) == 25  # 3 of 3: all of it
    assert torch.equal(load_dataset("stl10", split="unlabeled", root=tmp_path, subset=1, seed=1).images,
                       torch.from_numpy(exp["unlabeled"][0])[np.sort(np.random.default_rng(1).permutation(25)[:8])])
    with pytest.raises(DataError, match="has only 3"):
        load_dataset("stl10", split="unlabeled", root=tmp_path, subset=4)
    with pytest.raises(DataError, match="split must be one of"):
        load_dataset("cifar10", split="unlabeled")  # only STL-10 has one


def test_stl10_unlabeled_dataset_pretrains_on_train_and_unlabeled(tmp_path):
    write_stl10(tmp_path)
    ds = load_dataset("stl10-unlabeled", split="train", root=tmp_path, subset=2)
    train = load_dataset("stl10", split="train", root=tmp_path, subset=2)
    both = load_dataset("stl10", split="train+unlabeled", root=tmp_path, subset=2)
    # evaluation sees the labeled train images, exactly stl10's; pretraining sees them and the unlabeled ones
    assert ds.name == "stl10-unlabeled" and ds.split == "train" and len(ds) == 20
    assert torch.equal(ds.images, train.images) and torch.equal(ds.labels, train.labels)
    assert torch.equal(ds.pretraining, both.images) and len(ds.pretraining) == 20 + 16
    assert ds.images.data_ptr() == ds.pretraining.data_ptr()  # a view: the labeled images are held once
    test = load_dataset("stl10-unlabeled", split="test", root=tmp_path, subset=2)
    assert torch.equal(test.images, load_dataset("stl10", split="test", root=tmp_path, subset=2).images)
    assert test.pretrain_images is None and torch.equal(test.pretraining, test.images)
    assert load_dataset("stl10", split="train", root=tmp_path).pretrain_images is None  # stl10 stays as it was
    from augbench.data import to_device
    moved = to_device(ds, "cpu")
    assert torch.equal(moved.pretraining, ds.pretraining) and torch.equal(moved.images, ds.images)
    from augbench.data import balanced_subset
    with pytest.raises(DataError, match="pass subset= to load_dataset"):
        balanced_subset(ds, 1)


def test_stl10_unlabeled_memory_estimate_counts_what_the_subset_keeps(tmp_path, monkeypatch):
    write_stl10(tmp_path)
    monkeypatch.setattr(memory, "available_bytes", lambda: 40 * 27_648)
    with pytest.raises(DataError, match=r"dataset stl10 \(train\+unlabeled.*55 images x 3 x 96 x 96"):
        load_dataset("stl10-unlabeled", split="train", root=tmp_path)
    assert len(load_dataset("stl10-unlabeled", split="train", root=tmp_path, subset=2).pretraining) == 36


def test_stl10_missing_and_truncated_files_are_named(tmp_path):
    with pytest.raises(DataError, match="stl10_binary"):
        load_dataset("stl10", root=tmp_path)
    write_stl10(tmp_path)
    x = tmp_path / "stl10" / "stl10_binary" / "test_X.bin"
    x.write_bytes(x.read_bytes()[:-5])
    with pytest.raises(DataError, match=f"{x}.*not a whole number"):
        load_dataset("stl10", split="test", root=tmp_path)
    (tmp_path / "stl10" / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(DataError, match="unlabeled_X.bin"):
        load_dataset("stl10", split="train+unlabeled", root=tmp_path)


def write_tiny_imagenet(root: Path, wnids=("n09999999", "n01443537", "n05000000"), per_class=3, val_per_class=2):
    """<root>/tiny-imagenet-200/ as the zip unpacks (64 px JPEGs; wnids.txt not sorted)."""
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(0)

    def image(path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)

    for w in wnids:
        for i in range(per_class):
            image(folder / "train" / w / "images" / f"{w}_{i}.JPEG")
        (folder / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for k in range(val_per_class * len(wnids)):
        w = wnids[(k * 2) % len(wnids)]
        image(folder / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (folder / "test" / "images").mkdir(parents=True)  # unlabeled: never read
    return folder, sorted(wnids), lines


def pil(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def test_tiny_imagenet_train_and_val_layouts(tmp_path, tmp_cache):
    folder, classes, lines = write_tiny_imagenet(tmp_path)
    train = load_dataset("tiny-imagenet", split="train", root=tmp_path)
    assert train.classes == classes and train.images.shape == (9, 3, 64, 64)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert torch.equal(train.images[4], pil(folder / "train" / classes[1] / "images" / f"{classes[1]}_1.JPEG"))
    test = load_dataset("tiny-imagenet", split="test", root=tmp_path)  # val/, by val_annotations.txt
    want = sorted((classes.index(line.split("\t")[1]), line.split("\t")[0]) for line in lines)
    assert test.labels.tolist() == [label for label, _ in want]
    for i, (label, name) in enumerate(want):
        assert torch.equal(test.images[i], pil(folder / "val" / "images" / name))
    assert not test.cache_hit and load_dataset("tiny-imagenet", split="test", root=tmp_path).cache_hit
    assert load_dataset("tiny-imagenet", root=tmp_path, subset=2).labels.bincount().tolist() == [2, 2, 2]


def test_tiny_imagenet_bad_annotation_is_named(tmp_path, tmp_cache):
    folder, _, _ = write_tiny_imagenet(tmp_path)
    ann = folder / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_x.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=f"{ann}, line 7.*n00000000"):
        load_dataset("tiny-imagenet", split="test", root=tmp_path)


def test_memory_estimate_refuses_before_decoding(tmp_path, tmp_cache, monkeypatch):
    write_stl10(tmp_path)
    write_tiny_imagenet(tmp_path)
    monkeypatch.setattr(memory, "available_bytes", lambda: 100_000)
    with pytest.raises(DataError) as e:
        load_dataset("stl10", split="train+unlabeled", root=tmp_path)
    msg = str(e.value)
    # 55 images x 27,648 bytes = 1.45 MiB, against the 0.1 MiB available
    assert "dataset stl10" in msg and "1.5 MiB" in msg and "0.1 MiB is available" in msg and "55 images" in msg

    from augbench.data import base as data_base

    def no_decode(*a, **k):
        raise AssertionError("decoded although it cannot fit")

    monkeypatch.setattr(data_base, "decode", no_decode)
    with pytest.raises(DataError, match=r"dataset tiny-imagenet \(train.*9 images x 3 x 64 x 64"):
        load_dataset("tiny-imagenet", root=tmp_path)
    monkeypatch.undo()
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_cache))
    assert len(load_dataset("stl10", split="train+unlabeled", root=tmp_path)) == 55  # fits in real memory


def test_available_memory_is_read():
    avail = memory.available_bytes()
    assert avail is None or 2**20 < avail < 2**50


def test_new_names_are_valid_run_settings():
    assert {"stl10", "stl10-unlabeled", "tiny-imagenet"} <= set(NAMES)
    for name in ("stl10", "stl10-unlabeled", "tiny-imagenet"):
        RunConfig(dataset=name).validate()


def test_same_size_folders_are_unchanged_by_a_size(tmp_cache):
    # run.py passes size=cfg.image_size: a folder of one size (CIFAR-10, imagenette32) loads as before
    a = load_dataset("imagenette32", split="test", subset=2)
    b = load_dataset("imagenette32", split="test", subset=2, size=32)
    c = load_dataset("imagenette32", split="test", subset=2, size=24)
    assert torch.equal(a.images, b.images) and torch.equal(a.images, c.images) and a.images.shape[-1] == 32
    assert a.cache_path == b.cache_path == c.cache_path


def test_a_size_never_resizes_a_folder_of_one_size_even_on_a_cold_cache(tmp_path, tmp_cache, capsys):
    root = tmp_path / "toy"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / "train" / c / f"{i}.png")
    cold = load_dataset(f"imagefolder:{root}", size=32)  # nothing cached yet: decoded with a size given
    assert cold.images.shape == (4, 3, 40, 40) and not cold.cache_hit and "resized" not in capsys.readouterr().err
    assert torch.equal(cold.images[0], pil(root / "train" / "a" / "0.png"))
    plain = load_dataset(f"imagefolder:{root}")
    assert plain.cache_hit and plain.cache_path == cold.cache_path and torch.equal(plain.images, cold.images)
    # mixed sizes: every image to size x size, said once
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / "train" / "b" / "2.png")
    mixed = load_dataset(f"imagefolder:{root}", size=32)
    assert mixed.images.shape == (5, 3, 32, 32) and "5 of 5 images" in capsys.readouterr().err


def test_a_run_on_stl10(tmp_path, monkeypatch):
    from augbench.run import run_config

    write_stl10(tmp_path / "data")
    monkeypatch.setenv("AUGBENCH_DATA", str(tmp_path / "data"))
    cfg = RunConfig(method="simclr", policy="simclr", dataset="stl10", cifar_stem=True, width=4, subset=2,
                    batch_size=10, epochs=1, eval_subset=2, knn_k=5, linear_epochs=0, proj_hidden=16, proj_dim=8,
                    progress=False, num_threads=1, device="cpu", optimizer="sgd", lr=0.1)
    row = run_config(cfg, results_dir=tmp_path / "results" / "runs")
    assert row["status"] == "done", row["error"]
    assert row["dataset"] == "stl10" and 0.0 <= row["metrics"]["knn_top1"] <= 100.0


def test_a_run_on_stl10_unlabeled_pretrains_on_unlabeled_and_evaluates_on_train_test(tmp_path, monkeypatch):
    """Every pretraining batch comes from train+unlabeled (and some from the unlabeled split); the kNN bank,
    the linear probe and the random-init kNN get STL-10's labeled train and test images."""
    import augbench.augment as augment
    import augbench.eval.evaluate as evaluate
    from augbench.run import run_config

    exp = write_stl10(tmp_path / "data")
    monkeypatch.setenv("AUGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))
    batches, evaluated = [], {}
    real_engine, real_eval, real_random = augment.Engine, evaluate.evaluate_encoder, evaluate.random_init_knn

    def engine(*a, **k):
        e = real_engine(*a, **k)
        e.register_forward_pre_hook(lambda mod, args: batches.append(args[0].detach().cpu().clone()))
        return e

    def spy(key, real):
        def wrapped(cfg, method, train, test, *a, **k):
            evaluated[key] = (train, test)
            return real(cfg, method, train, test, *a, **k)
        return wrapped

    monkeypatch.setattr(augment, "Engine", engine)
    monkeypatch.setattr(evaluate, "evaluate_encoder", spy("eval", real_eval))
    monkeypatch.setattr(evaluate, "random_init_knn", spy("random_init", real_random))
    cfg = RunConfig(method="simclr", policy="simclr", dataset="stl10-unlabeled", cifar_stem=True, width=4,
                    subset=2, batch_size=10, epochs=1, eval_subset=2, knn_k=5, linear_epochs=1, proj_hidden=16,
                    proj_dim=8, progress=False, num_threads=1, device="cpu", optimizer="sgd", lr=0.1)
    row = run_config(cfg, results_dir=tmp_path / "results" / "runs")
    assert row["status"] == "done", row["error"]
    assert row["dataset"] == "stl10-unlabeled" and 0.0 <= row["metrics"]["linear_top1"] <= 100.0

    def keys(images) -> list[bytes]:
        return [im.numpy().tobytes() for im in images]

    unlabeled = set(keys(torch.from_numpy(exp["unlabeled"][0])))
    labeled = set(keys(torch.from_numpy(exp["train"][0])))
    seen = [k for b in batches for k in keys(b)]
    # 20 labeled + 16 unlabeled images: 3 batches of 10 in the epoch, each image at most once
    assert [len(b) for b in batches] == [10, 10, 10] and len(set(seen)) == 30
    assert set(seen) <= labeled | unlabeled
    assert len(set(seen) & unlabeled) >= 10  # more than the 20 labeled images could fill
    assert row["timings"]["images"] == 30
    want_train = load_dataset("stl10", split="train", root=tmp_path / "data", subset=2)
    want_test = load_dataset("stl10", split="test", root=tmp_path / "data", subset=2)
    for key in ("eval", "random_init"):
        train, test = evaluated[key]
        assert torch.equal(train.images.cpu(), want_train.images) and torch.equal(train.labels.cpu(), want_train.labels)
        assert torch.equal(test.images.cpu(), want_test.images) and torch.equal(test.labels.cpu(), want_test.labels)
        assert not set(keys(train.images.cpu())) & unlabeled


def test_stl10_unlabeled_is_fetched_as_stl10_and_reported_at_stl10s_resolution(tmp_path, monkeypatch):
    import pandas as pd

    from analysis import labels
    from analysis import stats as S
    from augbench.data import download
    from augbench.sweeps.cli import missing_data

    monkeypatch.setenv("AUGBENCH_DATA", str(tmp_path / "data"))
    assert download.archive_for("stl10-unlabeled") == "stl10" and download.archive_for("imagenette32") is None
    cfgs = [RunConfig(dataset="stl10-unlabeled"), RunConfig(dataset="stl10")]
    assert missing_data(cfgs) == ["stl10"]  # a sweep says `augbench data get stl10` before it starts
    write_stl10(tmp_path / "data")
    assert missing_data(cfgs) == []
    # the test split is STL-10's: 8,000 images (eval_subset 2 x 10 classes = 20 of them)
    rows = pd.DataFrame({"dataset": ["stl10-unlabeled", "stl10-unlabeled"], "eval_subset": [None, 2]})
    assert S.resolution(rows.iloc[:1]) == 100 / 8000 and S.resolution(rows) == 100 / 20
    assert labels.value("dataset", "stl10-unlabeled") == "STL-10 (+unlabeled)"
