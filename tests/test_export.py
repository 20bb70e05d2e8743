"""`augbench export` and `augbench.load_backbone`: a tiny real run's backbone round-trips bitwise
(features on real CIFAR-10 images), with torchvision's ResNet key names; refusals say what to do."""
import json
import shutil

import pytest
import torch

import augbench
from augbench.train import checkpoint
from augbench.cli import build_parser
from augbench.cli import main as cli_main
from augbench.data import load_dataset
from augbench.eval.features import prepare
from augbench.export import (ExportError, _torchvision_warnings, export_run, from_torchvision_keys,
                             to_torchvision_keys)
from augbench.models import build_backbone, resnet18, resnet50
from augbench.run import config_from_args

# sweeps/smoke.yaml's tiny settings; ckpt_every 0: the only checkpoint is the final one
SMOKE = ["--method", "simclr", "--cifar-stem", "--width", "8", "--subset", "20", "--epochs", "2",
         "--batch-size", "64", "--proj-hidden", "64", "--proj-dim", "32", "--knn-k", "20", "--linear-epochs", "2",
         "--eval-subset", "10", "--no-amp", "--device", "cpu", "--num-threads", "1", "--no-progress",
         "--ckpt-every", "0"]


def torchvision_resnet18_shapes(width=64, cifar_stem=False) -> dict[str, tuple]:
    """torchvision.models.resnet18().state_dict() names and shapes, without fc (written out: torchvision
    is optional here)."""
    out = {}

    def bn(prefix, c):
        out.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                    f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    out["conv1.weight"] = (width, 3, 3, 3) if cifar_stem else (width, 3, 7, 7)
    bn("bn1", width)
    cin = width
    for i in range(4):
        c = width * 2 ** i
        for b in range(2):
            p = f"layer{i + 1}.{b}"
            out[f"{p}.conv1.weight"] = (c, cin if b == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            out[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if b == 0 and i > 0:
                out[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "results"
    argv = ["train", "--results", str(root), *SMOKE]
    assert cli_main(argv) == 0
    cfg = config_from_args(build_parser().parse_args(argv))
    return cfg, root


@pytest.fixture(scope="module")
def real_images():
    return load_dataset("cifar10", split="test", subset=3, seed=0).images  # 30 real images


def reference_backbone(cfg, root):
    """The backbone straight from the run's final checkpoint."""
    state = checkpoint.load(root / "checkpoints" / cfg.run_id)
    net = build_backbone(cfg)
    net.load_state_dict({k[len("backbone."):]: v for k, v in state["model"].items() if k.startswith("backbone.")})
    return net.eval()


def features(net, images, card):
    norm = card["input"]["normalize"]
    x = prepare(images, (tuple(norm["mean"]), tuple(norm["std"])), tuple(card["input"]["size"]))
    with torch.no_grad():
        return net(x)


def test_runs_keep_their_final_checkpoint(tiny_run):
    cfg, root = tiny_run
    state = checkpoint.load(root / "checkpoints" / cfg.run_id)
    assert state["run_id"] == cfg.run_id and (state["epoch"], state["step_in_epoch"]) == (cfg.epochs, 0)


def test_export_round_trips_bitwise_with_torchvision_keys(tiny_run, real_images, tmp_path, capsys):
    cfg, root = tiny_run
    out = tmp_path / "take" / "backbone.pt"
    assert cli_main(["export", cfg.run_id[:8], "--results", str(root), "--out", str(out)]) == 0
    io = capsys.readouterr()
    assert str(out) in io.out and "CIFAR stem" in io.err and "width 8" in io.err and "no fc" not in io.err
    card = json.loads(out.with_suffix(".json").read_text())
    row = json.loads((root / "runs" / f"{cfg.run_id}.json").read_text())
    assert card["run_id"] == cfg.run_id and card["format"] == "torchvision"
    assert card["config"] == row["config"] and card["metrics"] == row["metrics"] and card["metrics"]["knn_top1"] >= 0
    assert card["commit"] == row["env"]["git_commit"] and card["data"]["dataset"] == "cifar10"
    assert card["data"]["subset_per_class"] == 20 and card["checkpoint"]["verified"] is True
    assert card["architecture"] == {"backbone": "resnet18", "width": 8, "cifar_stem": True, "feat_dim": 64}
    assert card["input"]["size"] == [32, 32] and len(card["input"]["normalize"]["mean"]) == 3
    assert [w.split(":")[0] for w in card["warnings"]] == ["CIFAR stem", "width 8"] and "no fc" in card["keys"]

    # a plain dict of tensors, torchvision's names and (for this stem and width) shapes
    raw = torch.load(out, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in raw.values())
    assert {k: tuple(v.shape) for k, v in raw.items()} == torchvision_resnet18_shapes(8, cifar_stem=True)

    loaded = augbench.load_backbone(out)
    assert not loaded.training
    ref = reference_backbone(cfg, root)
    a, b = features(loaded, real_images, card), features(ref, real_images, card)
    assert a.shape == (30, 64) and torch.equal(a, b)  # bitwise, on CPU
    assert torch.equal(features(augbench.load_backbone(out.with_suffix(".json")), real_images, card), b)


def test_export_in_augbench_format_and_default_path(tiny_run, real_images):
    cfg, root = tiny_run
    weights, card_path = export_run(cfg.run_id, root, fmt="augbench")
    assert weights == root / "exports" / f"{cfg.run_id}.pt" and card_path == weights.with_suffix(".json")
    card = json.loads(card_path.read_text())
    assert card["format"] == "augbench" and card["warnings"] == []
    assert "stem.0.weight" in torch.load(weights, weights_only=True)
    ref = reference_backbone(cfg, root)
    assert torch.equal(features(augbench.load_backbone(weights), real_images, card), features(ref, real_images, card))


def test_a_missing_checkpoint_says_to_retrain(tiny_run, tmp_path, capsys):
    cfg, root = tiny_run
    copy = tmp_path / "results"
    shutil.copytree(root / "runs", copy / "runs")
    rc = cli_main(["export", cfg.run_id, "--results", str(copy)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert str(copy / "checkpoints" / cfg.run_id / "last.pt") in err and "missing" in err
    assert "trained again" in err and "augbench rows verify" in err and "augbench train" in err and "--force" in err
    assert not (copy / "exports").exists()
    # doing what it says brings the checkpoint back, with the same weights (CPU: bitwise)
    import yaml

    row = json.loads((copy / "runs" / f"{cfg.run_id}.json").read_text())
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(row["config"]))
    assert cli_main(["train", "--config", str(tmp_path / "run.yaml"), "--force", "--results", str(copy)]) == 0
    weights, _ = export_run(cfg.run_id, copy)
    a = torch.load(weights, weights_only=True)
    b = torch.load(export_run(cfg.run_id, root, out=tmp_path / "orig.pt")[0], weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_that_is_not_the_rows_weights_is_refused(tiny_run, tmp_path):
    cfg, root = tiny_run
    copy = tmp_path / "results"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("exports"))
    ckpt = copy / "checkpoints" / cfg.run_id
    state = checkpoint.load(ckpt)
    state["model"]["backbone.layer1.0.conv1.weight"] += 1.0
    checkpoint.save(ckpt, {k: v for k, v in state.items() if k != "rng"})
    with pytest.raises(ExportError, match="not the ones the row reports"):
        export_run(cfg.run_id, copy)


def test_unknown_unfinished_and_vit_runs_are_refused(tiny_run, tmp_path):
    cfg, root = tiny_run
    with pytest.raises(ExportError, match="no run 0123456789abcdef"):
        export_run("0123456789abcdef", root)
    runs = tmp_path / "results" / "runs"
    runs.mkdir(parents=True)
    row = json.loads((root / "runs" / f"{cfg.run_id}.json").read_text())
    (runs / f"{cfg.run_id}.json").write_text(json.dumps({**row, "status": "running"}))
    with pytest.raises(ExportError, match="is running, not done"):
        export_run(cfg.run_id, tmp_path / "results")
    vit = {**row, "run_id": "feedfacefeedface", "config": {**row["config"], "backbone": "vit_tiny"}}
    (runs / "feedfacefeedface.json").write_text(json.dumps(vit))
    with pytest.raises(ExportError, match="ResNet keys only.*--format augbench"):
        export_run("feedfacefeedface", tmp_path / "results", fmt="torchvision")
    with pytest.raises(ExportError, match="checkpoint .*missing"):  # augbench format: on to the checkpoint
        export_run("feedfacefeedface", tmp_path / "results")


def test_key_mapping_matches_torchvision_resnet18_exactly():
    net = resnet18(width=64, cifar_stem=False)
    mapped = to_torchvision_keys(net.state_dict())
    assert {k: tuple(v.shape) for k, v in mapped.items()} == torchvision_resnet18_shapes(64)
    assert list(from_torchvision_keys(mapped)) == list(net.state_dict())
    # torchvision's own architecture: nothing to warn about; the CIFAR stem and other widths are named
    assert _torchvision_warnings({"backbone": "resnet18", "width": 64, "cifar_stem": False}) == []
    assert [w.split(":")[0] for w in _torchvision_warnings({"backbone": "resnet50", "width": 32,
                                                            "cifar_stem": True})] == ["CIFAR stem", "width 32"]
    big = resnet50(width=64, cifar_stem=False).state_dict()
    tv50 = to_torchvision_keys(big)
    assert "layer1.0.downsample.0.weight" in tv50 and tuple(tv50["conv1.weight"].shape) == (64, 3, 7, 7)
    assert list(from_torchvision_keys({**tv50, "fc.weight": torch.zeros(1), "fc.bias": torch.zeros(1)})) == list(big)


def test_torchvision_loads_the_export_when_installed():
    tv = pytest.importorskip("torchvision")
    ours = resnet18(width=64, cifar_stem=False).eval()
    theirs = tv.models.resnet18()
    theirs.fc = torch.nn.Identity()
    theirs.load_state_dict(to_torchvision_keys(ours.state_dict()))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(theirs.eval()(x), ours(x), atol=1e-5)


def test_the_card_names_the_split_a_run_pretrained_on():
    from augbench.export import pretraining_split

    assert pretraining_split("stl10-unlabeled") == "train+unlabeled"  # STL-10's labeled + unlabeled images
    assert pretraining_split("cifar10") == pretraining_split("imagefolder:/x") == "train"
