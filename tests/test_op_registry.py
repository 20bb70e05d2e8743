"""The op registry: a user registers an op from their own file and uses it by name in a policy,
on `Engine(..., backend="fused")` (the reference path, `engine.impl == "reference"`) and in a
run; policies of covered ops still run fused; the reference path gives the fused path's pixels;
examples/custom_op.py runs; augbench/augment has no import cycle."""
import ast
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from augbench.augment import (NAMED, AugmentInputError, Engine, OpSpec, Policy, PolicyError, reference, register_op,
                              unregister_op)
from augbench.augment.backends import fused
from augbench.augment.ops import BUILTIN, GROUPS, OPS, prob, range_in

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "custom_op.py"


@pytest.fixture(scope="module")
def images():
    from augbench.data import load_dataset

    return load_dataset("cifar10", "train", subset=2).images  # (20, 3, 32, 32) uint8, real


def _sample(b, hw, p, gen, device, ctx):
    return {"gain": torch.rand(b, 3, generator=gen, device=device) * (p["gain"][1] - p["gain"][0]) + p["gain"][0],
            "applied": torch.rand(b, generator=gen, device=device) < p["p"]}


def _apply(x, p, d, ctx):
    g = torch.where(d["applied"][:, None], d["gain"], torch.ones_like(d["gain"])).to(x.dtype)
    return (x * g[:, :, None, None]).clamp(0, 1)


@pytest.fixture
def channel_gain():
    """A user op: a per-sample, per-channel gain drawn from `gain`, with probability p."""
    spec = register_op(name="channel_gain", params={"gain": ((0.5, 1.5), range_in(0.0, 10.0)), "p": (0.5, prob)},
                       sample=_sample, apply=_apply, doc="scale each channel by a factor drawn from `gain`",
                       group="gain")
    yield spec
    unregister_op("channel_gain")


def _with_gain(base="simclr", **p):
    return Policy.named(base).with_params("channel_gain", name=f"{base}+gain", **p)


def test_a_registered_op_is_usable_by_name(channel_gain, tmp_path):
    assert OPS["channel_gain"] is channel_gain and GROUPS["gain"] == ("channel_gain",)
    pol = Policy.from_dict({"name": "t", "ops": [{"op": "random_resized_crop"}, {"op": "channel_gain", "p": 1.0},
                                                 {"op": "normalize"}]})
    assert pol.params("channel_gain") == {"gain": (0.5, 1.5), "p": 1.0}
    f = tmp_path / "p.yaml"
    f.write_text(_with_gain(p=0.3).to_yaml())
    assert Policy.from_yaml(f).params("channel_gain")["p"] == 0.3
    with pytest.raises(PolicyError, match=r"channel_gain\.gain"):
        Policy.from_dict({"name": "t", "ops": [{"op": "channel_gain", "gain": [2, 1]}]})
    assert Policy.named("full").without("gain").name  # the op's group is an ablation group
    assert not _with_gain().without("gain").has("channel_gain")


def test_a_user_op_runs_on_the_reference_path(channel_gain, images):
    pol = _with_gain(p=0.5)
    e = Engine(pol, backend="fused", seed=0)
    assert e.impl == "reference"
    views, params = e(images, views=2, return_params=True)
    assert e.impl == "reference" and [tuple(v.shape) for v in views] == [(20, 3, 32, 32)] * 2
    assert params[0]["channel_gain"]["gain"].shape == (20, 3)
    assert all(torch.equal(a, b) for a, b in zip(views, e(images, params=params)))  # replay
    assert all(torch.equal(a, b) for a, b in zip(views, Engine(pol, seed=0)(images, views=2)))  # seeded
    # the other ops draw as they do without it (the user op draws after them), and their pixels are
    # the fused path's: gated off, the op leaves the fused view
    plain = Engine("simclr", seed=0, impl="torch")(images, views=1)[0]
    off = Engine(_with_gain(p=0.0), seed=0)(images, views=1)[0]
    assert (plain - off).abs().max() < 1e-5
    on = params[0]["channel_gain"]["applied"]
    assert 0 < on.sum() < len(images)


def test_covered_policies_still_run_fused(channel_gain, images):
    fast = fused.resolve_impl(torch.device("cpu"))
    for name in NAMED:
        e = Engine(name, seed=0)
        assert e.impl == fast != "reference", name
    e = Engine("byol", seed=0)
    e(images[:4])
    assert e.impl == fast
    assert Engine("byol", seed=0, impl="torch").impl == "torch"
    assert Engine(_with_gain(), seed=0, impl="torch").impl == "reference"  # a forced path does not cover it


@pytest.mark.parametrize("name", sorted(NAMED))
def test_the_reference_path_gives_the_fused_pixels(images, name):
    """Every built-in op's reference implementation, on the fused path's draws, gives its pixels."""
    pol = Policy.named(name)
    views, params = Engine(pol, seed=2, impl="torch")(images, views=2, return_params=True)
    for v in range(2):
        ref = reference.apply(images, pol.for_view(v), params[v])
        assert (ref - views[v]).abs().max() < 2e-5, name
    token = Policy.named("simclr").with_params("patch_mask", name="m", ratio=0.5)
    (tv,), (tp,) = Engine(token, seed=0, mask_mode="token", impl="torch")(images, views=1, return_params=True)
    assert (reference.apply(images, token.for_view(0), tp, mask_mode="token") - tv).abs().max() < 2e-5


def test_backends_without_the_op_name_it(channel_gain):
    from importlib.util import find_spec

    if find_spec("kornia"):
        with pytest.raises(AugmentInputError, match=r"backend='kornia' cannot run op 'channel_gain'"):
            Engine(_with_gain(), backend="kornia")
    if find_spec("albumentations"):
        with pytest.raises(AugmentInputError, match=r"backend='albumentations' cannot run op 'channel_gain'"):
            Engine(_with_gain(), backend="albumentations")


def test_one_user_module_reaches_every_backend(images):
    """A user op that declares its Kornia module and its albumentations transform runs on all three
    backends: the same op, from one place. A vertical flip at p=1 is exact everywhere."""
    pytest.importorskip("kornia")
    pytest.importorskip("albumentations")
    import albumentations as A
    import kornia.augmentation as K

    def sample(b, hw, p, gen, device, ctx):
        return {"applied": torch.rand(b, generator=gen, device=device) < p["p"]}

    def apply(x, p, d, ctx):
        return torch.where(d["applied"][:, None, None, None], x.flip(-2), x)

    register_op(name="vflip", params={"p": (0.5, prob)}, sample=sample, apply=apply, doc="mirror top-bottom",
                kornia=lambda p, **settings: K.RandomVerticalFlip(p=p["p"]),
                from_kornia=lambda data, module: {"applied": data["batch_prob"] > 0.5},
                albumentations=lambda p: A.VerticalFlip(p=p["p"]))
    try:
        pol = Policy.from_dict({"name": "v", "ops": [{"op": "vflip", "p": 1.0}]})
        x = images.float() / 255
        for backend in ("fused", "kornia", "albumentations"):
            (view,) = Engine(pol, backend=backend, seed=0)(images, views=1)
            assert torch.equal(view, x.flip(-2)), backend
        with pytest.raises(PolicyError, match="`albumentations` must be callable"):
            register_op(name="vflip2", params={}, apply=apply, albumentations="VerticalFlip")
    finally:
        unregister_op("vflip")


def test_register_op_checks_what_it_is_given(channel_gain):
    ok = dict(params={"p": (0.5, prob)}, sample=_sample, apply=_apply, doc="")
    with pytest.raises(PolicyError, match="already registered; pass replace=True"):
        register_op(name="channel_gain", **ok)
    for name in ("color_jitter", "normalize"):  # committed results depend on the built-in ops
        assert name in BUILTIN
        with pytest.raises(PolicyError, match="built-in"):
            register_op(name=name, replace=True, **ok)
        with pytest.raises(PolicyError, match="built-in"):
            unregister_op(name)
    for bad, match in [(dict(ok, name="Bad-Name"), "lower_snake_case"), (dict(ok, name="x1", apply=None), "apply"),
                       (dict(ok, name="x2", params={"p": (1.5, prob)}), r"x2\.p \(default\)"),
                       (dict(ok, name="x3", params={"p": 0.5}), r"\(default, check\)"),
                       (dict(ok, name="x4", stage="early"), "stage"), (dict(ok, name="x5", colour=1), "unexpected")]:
        with pytest.raises(PolicyError, match=match):
            register_op(**bad)
        assert bad.get("name") not in OPS
    again = register_op(OpSpec("channel_gain", channel_gain.params, "again", sample=_sample, apply=_apply), replace=True)
    assert OPS["channel_gain"] is again


def test_the_example_defines_an_op_outside_the_package(images, capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "impl=reference" in out and "replay equal: True" in out
    assert OPS["invert"].module == "__main__" and "invert" not in BUILTIN
    ns = runpy.run_path(str(EXAMPLE))  # imported again: registers again (replace=True)
    e = Engine(ns["POLICY"], backend="fused", seed=0)
    views, params = e(images, views=2, return_params=True)
    assert e.impl == "reference" and params[1]["invert"]["strength"].shape == (20,)
    inv = Policy.from_dict({"name": "i", "ops": [{"op": "invert", "p": 1.0}]})
    assert torch.allclose(Engine(inv, seed=0)(images, views=1)[0], 1 - images.float() / 255, atol=1e-6)


def test_the_example_op_in_a_sweep_file_and_a_tiny_run(tmp_path, one_thread):
    """The example's op in a sweep's policy axis and in a whole (tiny) run: trained, evaluated, its
    row holding the policy spec with the user op."""
    try:
        from augbench.run import run_config
    except ImportError:  # after the package layout moves
        from augbench.train.run import run_config
    from augbench.augment.policy_specs import expand_policies
    from augbench.config import RunConfig

    ns = runpy.run_path(str(EXAMPLE))
    (spec,) = expand_policies([ns["POLICY"]], "sweep.axes.policy")
    assert spec["ops"][3] == {"op": "invert", "strength": [0.5, 1.0], "p": 0.5}
    cfg = RunConfig(method="simclr", policy=spec, cifar_stem=False, width=4, subset=10, epochs=1, batch_size=20,
                    eval_subset=10, knn_k=10, linear_epochs=1, proj_hidden=32, proj_dim=16, progress=False,
                    num_threads=1, device="cpu")
    row = run_config(cfg, results_dir=tmp_path / "runs")
    assert row["status"] == "done", row.get("error")
    assert row["config"]["policy"]["ops"][3]["op"] == "invert" and row["run_id"] == cfg.run_id


def test_user_ops_load_from_augbench_ops_in_another_process(tmp_path):
    """$AUGBENCH_OPS names the file: a process that never imported it knows the op (the CLI, a
    sweep worker reading a policy)."""
    f = tmp_path / "p.yaml"
    f.write_text("name: inv\nops:\n  - op: invert\n    p: 1.0\n")
    env = {**os.environ, "AUGBENCH_OPS": str(EXAMPLE), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    code = ("import sys, torch; from augbench.augment import Engine, Policy; p = Policy.from_yaml(sys.argv[1]); "
            "e = Engine(p); e(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)); print(e.impl, p.op_names)")
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "reference ['invert']"
    bad = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, timeout=300,
                         env={**env, "AUGBENCH_OPS": str(tmp_path / "missing.py")})
    assert bad.returncode != 0 and "AUGBENCH_OPS" in bad.stderr and "missing.py" in bad.stderr


def _imports(root: Path) -> dict[str, set[str]]:
    """module -> the augbench modules it imports (module level and inside functions)."""
    mods = {}
    for p in (root / "augbench").rglob("*.py"):
        parts = p.relative_to(root).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    graph = {}
    for m, p in mods.items():
        out = set()
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:  # a submodule, or the module
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                         for a in node.names]
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != m:
                    out.add(n)
        graph[m] = out
    return graph


def test_no_import_cycle_in_augment():
    graph = _imports(REPO)
    aug = {m for m in graph if m.startswith("augbench.augment")}

    def reaches(a, b, seen):
        for n in graph[a]:
            if n == b:
                return True
            if n not in seen and n in aug:
                seen.add(n)
                if reaches(n, b, seen):
                    return True
        return False

    cycles = sorted(m for m in aug if reaches(m, m, set()))
    assert cycles == [], f"import cycles through {cycles}"
    # the three the issue named are gone
    assert "augbench.augment.engine" not in graph["augbench.augment.backends.albu"]
    assert "augbench.augment.transform" not in graph["augbench.augment.policy"]
    assert "augbench.augment.backends.fused" not in graph["augbench.augment.backends.triton_sample"]
