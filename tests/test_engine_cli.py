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
    assert rep["env"]["torch"] and rep["env"]["device"] == "cpu"
    assert "x kornia" in capsys.readouterr().out
