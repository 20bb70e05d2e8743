"""The engine's commands: `augbench policies`, `preview` and `bench-aug` (structure, not speed)."""
import json

from augbench.cli import main


def test_policies_lists_every_named_policy(capsys):
    from augbench.augment import NAMED

    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    for name in NAMED:
        assert f"{name}:\n" in out
    assert "view 1: gaussian_blur: p=0.1; solarize: p=0.2" in out  # BYOL's asymmetric second view
    assert main(["policies", "nope"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err


def test_bench_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench-aug", "--cases", "32px_b256", "--backends", "fused", "kornia", "--iters", "1",
                 "--batch", "8", "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    case = rep["cases"]["32px_b256"]
    assert case["batch"] == 8 and case["images"] == "cifar10-train"
    assert set(case["views_per_s"]) == {"fused", "kornia"} and case["ratio_to_kornia"]["kornia"] == 1.0
    assert rep["env"]["torch"] and rep["env"]["device"] == "cpu" and rep["complete"] is True
    assert "x kornia" in capsys.readouterr().out


BENCH_BLOCKED = r"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("kornia", "albumentations", "cv2", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
from augbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bench_without_kornia_albumentations_torchvision(tmp_path):
    """The lent GPU image has neither Kornia nor albumentations: bench-aug runs what it can and says why."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "b.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", BENCH_BLOCKED, "bench-aug", "--cases", "32px_b256", "--iters", "1",
                        "--batch", "8", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    case = json.loads(out.read_text())["cases"]["32px_b256"]
    assert set(case["views_per_s"]) == {"fused", "fused-torch"} and case["ratio_to_kornia"] == {}
    for be, module in (("kornia", "kornia"), ("albumentations", "albumentations"), ("torchvision", "torchvision"),
                       ("torchvision-loop", "torchvision")):
        assert case["skipped"][be].startswith(f"{module} not importable (ModuleNotFoundError"), case["skipped"]
    assert "[1/1] 32px_b256" in r.stdout and "kornia" in r.stdout and "skipped" in r.stdout


def test_bench_keeps_finished_cases_when_interrupted(tmp_path, monkeypatch, capsys):
    import augbench.bench.augment as bench

    real, calls = bench.run_case, []

    def run_case(name, *a, **k):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a Ctrl-C in the second case
        return real(name, *a, **k)

    monkeypatch.setattr(bench, "run_case", run_case)
    out = tmp_path / "b.json"
    assert main(["bench-aug", "--cases", "32px_b256", "224px_b256", "--backends", "fused", "--iters", "1",
                 "--batch", "4", "--out", str(out)]) == 130
    rep = json.loads(out.read_text())
    assert list(rep["cases"]) == ["32px_b256"] and rep["complete"] is False
    assert rep["cases"]["32px_b256"]["views_per_s"]["fused"] > 0
    printed = capsys.readouterr().out
    assert "[1/2] 32px_b256" in printed and "[2/2] 224px_b256" in printed and "fused: iteration 1/1" in printed
    assert not list(tmp_path.glob(".b.json.*"))  # no temporary file left behind
