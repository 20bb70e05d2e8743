"""Sweep files -> validated RunConfigs -> plan; CLI refusals; concurrent row writers. No training here
(see test_sweep_local.py for real runs)."""
import dataclasses
import multiprocessing as mp
import json
from pathlib import Path

import pytest
import torch
import yaml

from augbench.cli import main as cli
from augbench.config import RunConfig
from augbench.errors import UserError
from augbench.store.collect import collect
from augbench.store.rows import read_row, write_row
from augbench.sweeps import expand, load_sweep, make_plan, policy_sweep, sweep_from_dict


def write_sweep(tmp_path: Path, d: dict, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d))
    return p


SMALL = {"name": "t", "base": {"epochs": 2, "width": 8}, "axes": {"policy": ["full", "no_crop"], "seed": [0, 1]}}


# ---------------------------------------------------------------------- shipped sweeps
EXPECTED_ARMS = {"full", "no_crop", "no_color", "no_flip", "no_blur", "crop_only", "color_only", "blur_only",
                 "flip_only"}


def test_crop_matters_is_three_methods_by_nine_policies_by_three_seeds():
    cfgs = expand(load_sweep("crop_matters"))
    assert len(cfgs) == 81 and len({c.run_id for c in cfgs}) == 81
    assert {c.method for c in cfgs} == {"simclr", "byol", "vicreg"}
    assert {c.policy_name for c in cfgs} == EXPECTED_ARMS  # every arm both verdicts expect
    assert {c.seed for c in cfgs} == {0, 1, 2}
    assert all(c.epochs == 30 and c.backbone == "resnet18" and c.cifar_stem for c in cfgs)
    # each method runs its published recipe (the default), not one shared set of values
    assert {c.recipe for c in cfgs} == {"solo-learn"}
    assert {(c.method, c.optimizer, c.lr, c.proj_dim) for c in cfgs} == {
        ("simclr", "lars", 0.4, 256), ("byol", "lars", 1.0, 256), ("vicreg", "lars", 0.3, 2048)}


def test_schedule_crosses_epochs_and_caps_the_recipe_warmup():
    cfgs = expand(load_sweep("schedule"))
    assert len(cfgs) == 2 * 3 * 3 and {c.seed for c in cfgs} == {0}
    assert {c.policy_name for c in cfgs} == {"full", "no_crop", "no_color"}
    assert {(c.epochs, c.warmup_epochs) for c in cfgs} == {(30, 3), (100, 10), (200, 10)}


def test_masking_sweeps_mask_ratio_on_both_backbones():
    cfgs = expand(load_sweep("masking"))
    assert len(cfgs) == 2 * 4 * 3
    ratios = set()
    for c in cfgs:
        pol = c.policy_obj()
        assert not pol.has("random_resized_crop")
        ratios.add(pol.params("patch_mask")["ratio"] if pol.has("patch_mask") else 0.0)
    assert ratios == {0.0, 0.25, 0.5, 0.75}
    assert {c.backbone for c in cfgs} == {"resnet18", "vit_tiny"}


@pytest.mark.parametrize("name,n", [("projector", 24), ("momentum", 24), ("smoke", 4), ("default", 3), ("schedule", 18)])
def test_every_shipped_sweep_expands(name, n):
    assert len(expand(load_sweep(name))) == n


def test_policy_generators_expand_to_the_policy_module_names(tmp_path):
    d = {**SMALL, "axes": {"policy": [{"leave_one_out": "full"}, {"only": [["crop"], ["crop", "color"]], "base": "full"},
                                      {"strength": "crop_scale", "base": "full", "values": [0.2, 0.5]}]}}
    names = [c.policy_name for c in expand(sweep_from_dict(d))]
    assert names[:3] == ["full", "no_crop", "no_flip"]
    assert {"crop_only", "crop_color_only", "crop_scale=0.2", "crop_scale=0.5"} <= set(names)
    # named policies and their generated twins hash the same: `full` from leave_one_out is deduped
    assert len(names) == len(set(names))
    pw = expand(sweep_from_dict({**SMALL, "axes": {"policy": {"pairwise": "full"}}}))
    assert {"pair_crop", "pair_crop+color"} <= {c.policy_name for c in pw}


def test_identical_runs_are_deduplicated_and_include_exclude_apply():
    d = {**SMALL, "axes": {"policy": ["full", "no_crop"], "seed": [0, 1], "progress": [True, False]},
         "exclude": [{"policy": "no_crop", "seed": 1}], "include": [{"policy": "full", "seed": 0}, {"method": "byol"}]}
    cfgs = expand(sweep_from_dict(d))
    # progress is execution-only (not hashed): 8 crossed -> 4, minus 1 excluded, + byol; the full/0 include is a dup
    got = sorted((c.method, c.policy_name, c.seed) for c in cfgs)
    assert got == [("byol", "simclr", 0), ("simclr", "full", 0), ("simclr", "full", 1), ("simclr", "no_crop", 0)]


def test_an_include_entry_takes_a_policy_generator():
    gen = {"strength": "mask_ratio", "base": "mask_instead_of_crop", "values": [0.25, 0.75]}
    d = {**SMALL, "axes": {"policy": ["full"], "seed": [0]}, "include": [{"seed": 1, "width": 16, "policy": gen}]}
    got = sorted((c.policy_name, c.seed, c.width) for c in expand(sweep_from_dict(d)))
    assert got == [("full", 0, 8), ("mask_instead_of_crop-mask_ratio=0.25", 1, 16),
                   ("mask_instead_of_crop-mask_ratio=0.75", 1, 16)]


# ---------------------------------------------------------------------- validation names file and field
@pytest.mark.parametrize("change,needle", [
    ({"colour": 1}, "colour"),
    ({"axes": {"policy": ["full", "no_such_policy"]}}, "no_such_policy"),
    ({"axes": {"method": ["simclr", "moco"]}}, "'method'"),
    ({"axes": {"backbone": ["resnet34"]}}, "'backbone'"),
    ({"axes": {"proj_depth": [1, 7]}}, "'proj_depth'"),
    ({"axes": {"lerning_rate": [0.1]}}, "lerning_rate"),
    ({"axes": {"seed": []}}, "axes.seed"),
    ({"base": {"epochs": 0}}, "'epochs'"),
    ({"slurm": {"gpus": 1}}, "slurm"),
    ({"slurm": {"timeout_min": -5}}, "slurm.timeout_min"),
    ({"slurm": {"tasks_per_node": 0}}, "slurm.tasks_per_node"),
    ({"slurm": {"tasks_per_node": "2"}}, "slurm.tasks_per_node"),
    ({"slurm": {"gpus_per_node": 4, "tasks_per_node": 2}}, "slurm.tasks_per_node"),
    ({"estimate": {"resnet18": "fast"}}, "estimate.resnet18"),
    ({"axes": {"policy": [{"leave_one_out": "full", "colour": 1}]}}, "colour"),
    ({"axes": {"policy": [{"strength": "sharpness", "base": "full", "values": [1]}]}}, "sharpness"),
    ({"exclude": [{"polcy": "full"}]}, "polcy"),
    ({"include": [{"policy": {"strength": "sharpness", "base": "full", "values": [1]}}]}, "include[0]"),
])
def test_bad_sweep_is_refused_naming_file_and_field(tmp_path, change, needle):
    path = write_sweep(tmp_path, {**SMALL, **change})
    with pytest.raises(UserError) as e:  # SweepError, or the RunConfig/Policy error it found
        expand(load_sweep(path))
    assert str(path) in str(e.value) and needle in str(e.value)


def test_cli_refuses_bad_sweep_before_running(tmp_path, capsys):
    path = write_sweep(tmp_path, {**SMALL, "axes": {"method": ["simclr", "moco"]}})
    root = tmp_path / "res"
    assert cli(["sweep", "run", str(path), "--executor", "local", "--results", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "moco" in err
    assert not root.exists()  # no row, no ledger, nothing started
    assert cli(["sweep", "run", "no_such_sweep", "--dry-run"]) == 2
    assert "no_such_sweep" in capsys.readouterr().err
    assert cli(["sweep", "run", "smoke", "--seeds", "0,x", "--dry-run"]) == 2


# ---------------------------------------------------------------------- plan and status
def _row(cfg: RunConfig, status: str, sweep: str = "t") -> dict:
    return {"run_id": cfg.run_id, "status": status, "sweep": sweep, "backbone": cfg.backbone, "epochs": cfg.epochs,
            "method": cfg.method, "policy": cfg.policy_spec(), "seed": cfg.seed, "config": cfg.to_dict()}


def test_plan_skips_done_reruns_lost_and_retries_failed_on_request(tmp_path):
    sweep = sweep_from_dict({**SMALL, "estimate": {"resnet18": 90.0}})
    cfgs = expand(sweep)
    runs = tmp_path / "runs"
    write_row(_row(cfgs[0], "done"), runs)
    write_row(_row(cfgs[1], "failed"), runs)
    write_row(_row(cfgs[2], "running"), runs)  # no live job: a killed task
    plan = make_plan(sweep, cfgs, tmp_path, active={})
    assert plan.counts() == {"done": 1, "failed": 1, "running": 0, "lost": 1, "pending": 1}
    assert [c.run_id for c in plan.todo] == [cfgs[2].run_id, cfgs[3].run_id]
    if torch.cuda.is_available():  # the file's estimate is GPU-seconds per epoch
        assert plan.estimate_basis == "GPU" and plan.estimate_s == pytest.approx(2 * 2 * 90)
    else:  # the runs would train on this CPU: measured (a few real steps), cached under <root>/cache
        assert plan.estimate_basis == "this CPU" and plan.estimate_s > 0
        assert "on this CPU" in plan.summary() and (tmp_path / "cache" / "calibration.json").exists()
    on_cpu = sweep_from_dict({**SMALL, "base": {**SMALL["base"], "device": "cpu"}, "estimate": {"resnet18": 90.0}})
    cpu_plan = make_plan(on_cpu, expand(on_cpu), tmp_path, active={})  # device cpu: the estimate is for it
    assert cpu_plan.estimate_basis == "this CPU" and cpu_plan.estimate_s == pytest.approx(2 * 2 * 90)  # same run ids: 2 to run
    retry = make_plan(sweep, cfgs, tmp_path, retry_failed=True, active={cfgs[3].run_id: "123_3"})
    assert [c.run_id for c in retry.todo] == [cfgs[1].run_id, cfgs[2].run_id]  # the live one is not resubmitted
    assert retry.state[cfgs[3].run_id] == "running"
    assert "4 runs - 1 done, 1 failed, 1 running, 1 lost, 0 pending; 2 to run" in retry.summary()


def test_status_and_dry_run_cli(tmp_path, capsys):
    root = tmp_path / "res"
    cfgs = expand(load_sweep("smoke"))
    write_row(_row(cfgs[0], "done", "smoke"), root / "runs")
    assert cli(["sweep", "run", "smoke", "--dry-run", "--results", str(root)]) == 0
    assert "4 runs - 1 done" in capsys.readouterr().out
    assert cli(["sweep", "status", "smoke", "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 done" in out and out.count("pending ") == 3
    assert cli(["sweep", "status", "--results", str(root)]) == 0  # every sweep: only smoke has rows
    assert "sweep smoke:" in capsys.readouterr().out
    assert cli(["sweep", "cancel", "smoke", "--results", str(root)]) == 0  # empty ledger: nothing to cancel
    assert "cancelled 0 job(s)" in capsys.readouterr().out


def test_policy_option_runs_the_policy_against_full_for_simclr_seeds_0_1_2():
    cfgs = expand(policy_sweep("no_crop", smoke=True))
    assert sorted((c.method, c.policy_name, c.seed) for c in cfgs) == sorted(
        ("simclr", p, s) for p in ("full", "no_crop") for s in (0, 1, 2))
    assert len(expand(policy_sweep("full"))) == 3


# ---------------------------------------------------------------------- concurrent writers
def _writer(args):
    root, i = args
    for k in range(10):
        write_row({"run_id": f"run{i:02d}", "status": "done", "k": k, "writer": i}, root)
        write_row({"run_id": "shared", "status": "running", "k": k, "writer": i}, root)  # all race on one file
    return i


def test_16_concurrent_writer_processes_leave_16_valid_rows(tmp_path):
    runs = tmp_path / "runs"
    with mp.get_context("fork").Pool(16) as pool:
        assert sorted(pool.map(_writer, [(runs, i) for i in range(16)])) == list(range(16))
    files = sorted(p.name for p in runs.iterdir())
    assert files == sorted([f"run{i:02d}.json" for i in range(16)] + ["shared.json"])  # no temp files left
    for i in range(16):
        assert read_row(f"run{i:02d}", runs) == {"run_id": f"run{i:02d}", "status": "done", "k": 9, "writer": i}
    assert json.loads((runs / "shared.json").read_text())["k"] == 9
    assert len(collect(runs, csv_path=False)) == 17


def test_status_with_nothing_run_says_so(tmp_path, capsys):
    assert cli(["sweep", "status", "--results", str(tmp_path)]) == 0
    assert "no sweep has run under" in capsys.readouterr().out


@pytest.mark.parametrize("name,dataset,per_class,scale", [
    ("crop_matters_cpu", "cifar10", (1000, 500), (8, 32, False)),  # the first grids: 32 px, 8 epochs, fp32
    ("crop_matters_cpu_imagenette", "imagenette32", (850, 350), (8, 32, False)),
    ("crop_matters_cpu24", "cifar10", (1000, 500), (12, 24, True)),  # the chosen scale: 24 px, 12 epochs, bf16
    ("crop_matters_cpu24_imagenette", "imagenette32", (850, 350), (12, 24, True))])
def test_the_cpu_grids_hold_every_arm_seed_major_with_one_recipe_per_method(name, dataset, per_class, scale):
    cfgs = expand(load_sweep(name))
    assert len(cfgs) == 81 and len({c.run_id for c in cfgs}) == 81
    assert {c.policy_name for c in cfgs} == EXPECTED_ARMS and {c.method for c in cfgs} == {"simclr", "byol", "vicreg"}
    assert [c.seed for c in cfgs] == sorted(c.seed for c in cfgs)  # seed-major: a grid cut short is balanced
    assert {(c.dataset, c.subset, c.eval_subset, c.recipe, c.cifar_stem, c.width, c.batch_size, c.epochs, c.image_size,
             c.amp_cpu) for c in cfgs} == {(dataset, *per_class, "cpu-small", True, 8, 128, *scale)}
    by_method = {}
    for c in cfgs:  # within a method every run shares the recipe's values: only policy and seed vary
        d = {k: v for k, v in c.hashed_dict().items() if k not in ("policy", "seed")}
        by_method.setdefault(c.method, set()).add(repr(sorted(d.items())))
    assert all(len(v) == 1 for v in by_method.values())
    # the warm-up solo-learn's cap would give a 12-epoch run cost VICReg 2-3 points (docs/cpu-scale.md item 13)
    assert {c.warmup_epochs for c in cfgs if c.method == "vicreg"} == {0}



@pytest.mark.parametrize("name,grid", [("masking_cpu24", "crop_matters_cpu24"),
                                       ("masking_cpu24_imagenette", "crop_matters_cpu24_imagenette")])
def test_the_cpu_masking_grids_pair_each_backbone_and_reuse_the_crop_grids_resnet_rows(name, grid):
    cfgs = expand(load_sweep(name))
    assert len(cfgs) == 2 * 2 * 2 * 3 + 3 and len({c.run_id for c in cfgs}) == 27
    assert {(c.method, c.backbone, c.policy_name) for c in cfgs} == {("simclr", "vit_nano", "no_crop")} | {
        (m, b, p) for m in ("simclr", "vicreg") for b in ("resnet18", "vit_nano") for p in ("full", "mask_instead_of_crop")}
    assert [c.seed for c in cfgs] == sorted(c.seed for c in cfgs)
    # the ResNet's full runs are the crop grid's rows, by run id; its other runs keep the recipe
    crop_full = {c.run_id for c in expand(load_sweep(grid)) if c.policy_name == "full" and c.method != "byol"}
    resnet = [c for c in cfgs if c.backbone == "resnet18"]
    assert {c.run_id for c in resnet if c.policy_name == "full"} == crop_full
    assert {c.optimizer for c in resnet} == {"lars"}
    # the ViT: AdamW at the lr stage Q/R chose per method, masking its own 4x4 patches (dropped tokens)
    vit = [c for c in cfgs if c.backbone == "vit_nano"]
    assert {(c.method, c.optimizer, c.lr, c.weight_decay) for c in vit} == {
        ("simclr", "adamw", 1e-3, 0.05), ("vicreg", "adamw", 2e-3, 0.05)}
    for c in vit:
        pol = c.policy_obj()
        assert c.image_size == 24 and (not pol.has("patch_mask") or pol.params("patch_mask")["patch_size"] == c.patch_size)

def test_the_cpu_recipe_departs_from_solo_learn_only_where_a_row_says_so():
    from augbench import recipes

    recs = recipes.load()
    for method, entries in recs["cpu-small"].items():
        for field, e in entries.items():
            if e["repo"] == "augbench":
                assert e["file"] == "sweeps/cpu_scale.yaml" and "row " in e["key"] and len(e["commit"]) == 40
            else:  # inherited unchanged
                assert e == recs["solo-learn"][method][field]
    changed = {m: {f for f, e in es.items() if e["repo"] == "augbench"} for m, es in recs["cpu-small"].items()}
    assert changed["simclr"] == {"proj_norm"} and "tau_base" in changed["byol"] and "proj_hidden" in changed["vicreg"]


@pytest.mark.parametrize("name,masking,crop", [("strength_cpu24", "masking_cpu24", "crop_matters_cpu24"),
                                               ("strength_cpu24_imagenette", "masking_cpu24_imagenette",
                                                "crop_matters_cpu24_imagenette")])
def test_the_cpu_strength_grids_extend_the_masking_and_crop_grids_runs(name, masking, crop):
    """Each strength run differs from a masking or crop grid run in the knob's value only: swapping
    its policy for the base's (mask_instead_of_crop: ratio 0.5, full: scale 0.08) gives that grid's
    run id, so a curve's base point is a row that already exists, in the same cell."""
    cfgs = expand(load_sweep(name))
    assert len(cfgs) == 21 and [c.seed for c in cfgs] == sorted(c.seed for c in cfgs)
    grid_ids = {c.run_id for s in (masking, crop) for c in expand(load_sweep(s))}
    points = set()
    for c in cfgs:
        pol = c.policy_obj()
        assert pol.output_size == (c.image_size, c.image_size) == (24, 24)
        if pol.has("patch_mask"):
            knob, value, base = "mask_ratio", pol.params("patch_mask")["ratio"], "mask_instead_of_crop"
        else:
            knob, value, base = "crop_scale", pol.params("random_resized_crop")["scale"][0], "full"
        points.add((c.backbone, knob, value))
        assert dataclasses.replace(c, policy=base).run_id in grid_ids, c.policy_name
    assert points == {(b, "mask_ratio", r) for b in ("resnet18", "vit_nano") for r in (0.25, 0.75)} | {
        ("resnet18", "crop_scale", s) for s in (0.2, 0.5, 1.0)}


@pytest.mark.parametrize("name,masking,grid", [
    ("crop_matters_cpu24_vit", "masking_cpu24", "crop_matters_cpu24"),
    ("crop_matters_cpu24_vit_imagenette", "masking_cpu24_imagenette", "crop_matters_cpu24_imagenette")])
def test_the_vit_crop_grids_hold_every_arm_and_reuse_the_masking_grids_vit_rows(name, masking, grid):
    cfgs = expand(load_sweep(name))
    assert len(cfgs) == 27 and {c.policy_name for c in cfgs} == EXPECTED_ARMS
    assert [c.seed for c in cfgs] == sorted(c.seed for c in cfgs)
    vit = {c.run_id for c in expand(load_sweep(masking)) if c.backbone == "vit_nano" and c.method == "simclr"}
    assert {c.run_id for c in cfgs if c.policy_name in ("full", "no_crop")} == vit - {
        c.run_id for c in expand(load_sweep(masking)) if c.policy_name == "mask_instead_of_crop"}
    # the same scale and data as the ResNet grid: only the backbone and its optimizer differ
    res = next(c for c in expand(load_sweep(grid)) if c.method == "simclr")
    skip = {"backbone", "optimizer", "lr", "weight_decay", "policy", "seed"}
    assert all({k: v for k, v in c.hashed_dict().items() if k not in skip} ==
               {k: v for k, v in res.hashed_dict().items() if k not in skip} for c in cfgs)
