"""The library as others install it: a core of torch + numpy + pyyaml runs the engine on real
images; extras, version, typing marker, the drop-in example."""
import json
import math
import os
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import torch

from augbench.augment import Engine, Policy

REPO = Path(__file__).resolve().parents[1]
# everything outside the core install: importing any of these on the engine's path is a bug
BLOCKED = ["pandas", "scipy", "seaborn", "matplotlib", "tqdm", "PIL", "kornia", "albumentations", "cv2",
           "submitit", "torchvision", "numba", "llvmlite"]

CORE_ONLY = r"""
import importlib.abc, json, sys
BLOCKED = set(sys.argv[2].split(","))

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
import numpy as np, torch
from augbench.augment import BackendUnavailable, Engine, Policy, ViewTransform

x = torch.from_numpy(np.load(sys.argv[1]))
engine = Engine(Policy.named("byol"), seed=0)
views, params = engine(x, views=2, return_params=True)
replayed = engine(x, params=params)
one = ViewTransform(Policy.named("simclr", size=24), views=2, seed=0)(x[0])
try:
    Engine("simclr", backend="kornia")
    kornia = "constructed"
except BackendUnavailable as e:
    kornia = str(e)
print(json.dumps({"sums": [v.double().sum().item() for v in views], "replay_equal": all(
    bool(torch.equal(a, b)) for a, b in zip(views, replayed)), "one": [list(v.shape) for v in one],
    "kornia": kornia, "impl": engine.impl, "loaded": sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)}))
"""


def test_engine_runs_with_only_the_core_install(tmp_path):
    from augbench.data import load_dataset

    x = load_dataset("cifar10", "train", subset=2).images  # real CIFAR-10, (20, 3, 32, 32) uint8
    np.save(tmp_path / "x.npy", x.numpy())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", CORE_ONLY, str(tmp_path / "x.npy"), ",".join(BLOCKED)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    # without numba the CPU takes the torch path: the same views as that path here
    assert out["impl"] == "torch"
    ref = Engine(Policy.named("byol"), seed=0, impl="torch")(x, views=2)
    assert out["sums"] == [v.double().sum().item() for v in ref]
    assert out["replay_equal"] and out["one"] == [[3, 24, 24], [3, 24, 24]]
    assert "backend='kornia' needs kornia" in out["kornia"] and "augbench[kornia]" in out["kornia"]


def test_core_dependencies_are_torch_numpy_pyyaml():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].split("<")[0].strip() for d in meta["dependencies"])
    assert names == ["numpy", "pyyaml", "torch"]
    extras = meta["optional-dependencies"]
    assert any(d.startswith("albumentations>=1.4.22") for d in extras["albumentations"])  # Solarize(threshold_range)
    assert set(BLOCKED) - {"PIL", "cv2", "torchvision", "llvmlite"} <= {  # llvmlite: numba's own dependency
        d.split(">")[0].split("[")[0] for group in extras.values() for d in group}
    assert (REPO / "augbench" / "py.typed").exists() and (REPO / "LICENSE").exists()


def test_version_flag(capsys):
    import pytest

    from augbench.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "augbench" and out[1] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_plain_pytorch_loop_example(one_thread):
    main = runpy.run_path(str(REPO / "examples" / "plain_pytorch_loop.py"))["main"]
    losses = main(["--steps", "3", "--batch", "32"])
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    # an untrained encoder cannot tell 2 x 32 views apart: NT-Xent starts near ln(2 * 32 - 1)
    assert abs(losses[0] - math.log(63)) < 0.5, losses
