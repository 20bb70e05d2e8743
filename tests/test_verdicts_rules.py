"""The crop verdicts' and claims' rules on synthetic result rows (issue 18): missing arms, zero variance and
the resolution floor, cells split by every config value and the policy's spec, disjoint seeds, ties, the claim
labels, the seeds an undecided verdict would need. `row`/`grid`/`frame` build rows as `augbench train` writes
them (tests/test_report_synthetic.py uses them too)."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import claims, labels
from analysis import stats as S
from analysis import verdicts as V
from augbench.store.collect import flatten_row

GROUPS = {"crop": {"op": "random_resized_crop", "scale": [0.08, 1.0]}, "flip": {"op": "horizontal_flip", "p": 0.5},
          "color": {"op": "color_jitter", "brightness": [0.6, 1.4]}, "blur": {"op": "gaussian_blur", "p": 0.5}}
CONFIG = dict(method="simclr", backbone="resnet18", dataset="cifar10", epochs=30, recipe="generic", lr=0.06,
              vicreg_weights=[25.0, 25.0, 1.0], eval_subset=None, num_threads=None)
# all eight expected arms, crop far ahead in both kinds (3 seeds)
CROP_AHEAD = {"full": [80, 82, 81], "no_crop": [60, 63, 61], "no_color": [70, 71, 70.5], "no_flip": [79, 81, 80],
              "no_blur": [79.5, 81.5, 80], "crop_only": [50, 52, 51], "color_only": [40, 41, 40.5],
              "flip_only": [30, 31, 30], "blur_only": [31, 30, 31]}


def spec(policy: str, brightness: float = 0.4) -> dict:
    """A policy dict like Policy.to_dict(): full, no_<group> or <group>_only over GROUPS."""
    keep = [g for g in GROUPS if policy == "full" or policy == f"{g}_only" or (policy.startswith("no_") and
                                                                                 policy != f"no_{g}")]
    ops = [dict(GROUPS[g]) for g in keep]
    for o in ops:
        if o["op"] == "color_jitter":
            o["brightness"] = [1 - brightness, 1 + brightness]
    return {"name": policy, "ops": ops}


def row(policy: str, seed: int, knn: float, linear: float | None = None, brightness: float = 0.4, **config) -> dict:
    cfg = {**CONFIG, **config, "seed": seed, "policy": spec(policy, brightness)}
    metrics = {"knn_top1": float(knn), **({"linear_top1": float(linear)} if linear is not None else {})}
    return {"run_id": hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16], "status": "done",
            "method": cfg["method"], "policy": cfg["policy"], "backbone": cfg["backbone"], "dataset": cfg["dataset"],
            "epochs": cfg["epochs"], "seed": seed, "sweep": None, "config": cfg, "metrics": metrics,
            "env": {"git_commit": "abc1234", "device_name": "test device"},
            "finished_at": f"2026-01-01T00:{seed:02d}:00+00:00"}


def grid(accs: dict[str, list], seeds=None, **config) -> list[dict]:
    """Rows of {policy: per-seed kNN}; `seeds` names the seeds (default 0, 1, ...)."""
    return [row(p, s, a, **config) for p, v in accs.items() for s, a in zip(seeds or range(len(v)), v)]


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([flatten_row(r) for r in rows])


def verdicts(rows, metric="knn_top1") -> pd.DataFrame:
    return V.crop_verdicts(frame(rows), metric).set_index("verdict")


# ---------------------------------------------------------------------- 1. missing arms
def test_a_missing_expected_arm_is_not_testable_and_never_counts():
    accs = {k: v for k, v in CROP_AHEAD.items() if k in ("full", "no_crop", "no_flip", "crop_only", "color_only")}
    v = verdicts(grid(accs))
    assert list(v["answer"]) == ["not testable", "not testable"]
    assert v.loc["leave-one-out", "label"] == "not testable (missing: no_color, no_blur)"
    assert v.loc["only-one", "label"] == "not testable (missing: flip_only, blur_only)"
    c = claims.crop(frame(grid(accs)), ["knn_top1"], 0.05)
    assert c.status == "not testable" and "no testable verdict; 2 not testable, not counted" in "\n".join(c.text)
    # with every arm: both verdicts yes, and the claim is supported (two yes)
    v = verdicts(grid(CROP_AHEAD))
    assert list(v["answer"]) == ["yes", "yes"] and claims.crop(frame(grid(CROP_AHEAD)), ["knn_top1"], 0.05).status \
        == "supported"


def test_dominates_names_missing_arms_even_when_crop_wins():
    rng = np.random.default_rng(0)
    big, small = 20 + rng.normal(0, 0.5, 5), 3 + rng.normal(0, 0.5, 5)
    v = V.dominates({"crop": big, "color": small}, "only-one")
    assert v.answer == "not testable" and v.missing == ["flip_only", "blur_only"]
    assert "crop 20" in v.reason and v.label == "not testable (missing: flip_only, blur_only)"


# ---------------------------------------------------------------------- 2. zero variance, resolution
def test_zero_or_noise_variance_is_not_certainty():
    assert S.ttest_p([1e-9, -1e-9], "greater") == pytest.approx(0.5)
    assert 0 < S.ttest_p([5.0, 5.0, 5.0]) < 1e-4 and S.ttest_p([5.0, 5.0], "less") > 0.5
    # two seeds, constant paired differences: no decision under three seeds
    two = {k: v[:2] for k, v in CROP_AHEAD.items()}
    two["no_crop"] = [two["full"][0] - 30, two["full"][1] - 30]
    v = verdicts(grid(two))
    assert list(v["answer"]) == ["undecided", "undecided"]
    assert "2 paired seed(s): a yes or no needs at least 3" in v.loc["leave-one-out", "reason"]


def test_a_tie_hidden_by_float_noise_is_a_tie():
    accs = dict(CROP_AHEAD, crop_only=[73.67, 73.67, 73.67],
                color_only=[73.67 - 1e-12, 73.67 - 2e-12, 73.67 - 1e-12])
    v = verdicts(grid(accs)).loc["only-one"]
    assert v["answer"] == "undecided" and v["order"].startswith("crop 73.67 = color 73.67 > ")
    assert "tied with color" in v["reason"] and "a tie (difference below the resolution" in v["reason"]


def test_resolution_from_the_test_set():
    d = frame(grid({"full": [1]}) + grid({"full": [1]}, dataset="imagenette32", method="byol")
              + grid({"full": [1]}, eval_subset=20, method="vicreg"))
    per = {m: S.resolution(d[d["method"] == m]) for m in ("simclr", "byol", "vicreg")}
    assert per == {"simclr": pytest.approx(0.01), "byol": pytest.approx(100 / 3925), "vicreg": pytest.approx(0.5)}
    assert S.resolution(d.assign(dataset="imagefolder:x")) == S.FALLBACK_RESOLUTION


# ---------------------------------------------------------------------- 3. cells
def _drops(rows) -> pd.DataFrame:
    t = S.drop_table(frame(rows), "knn_top1")
    return t[t["policy"] == "no_crop"]


def test_list_fields_split_cells():
    rows = grid({"full": [80, 81], "no_crop": [60, 61]}) + grid({"full": [70, 71], "no_crop": [68, 69]},
                                                                 vicreg_weights=[5.0, 5.0, 1.0])
    t = _drops(rows)
    assert "vicreg_weights" in t and sorted(t["mean"]) == [pytest.approx(2), pytest.approx(20)]


def test_two_specs_of_one_name_are_two_cells():
    rows = grid({"full": [80, 81], "no_crop": [60, 61]}) + grid({"full": [70, 71], "no_crop": [68, 69]},
                                                                 brightness=0.5)
    t = _drops(rows)
    assert sorted(t["mean"]) == [pytest.approx(2), pytest.approx(20)]
    assert set(t[S.POLICY_PARAMS]) == {"color_jitter.brightness=[0.6, 1.4]", "color_jitter.brightness=[0.5, 1.5]"}


def test_execution_fields_do_not_split_and_datasets_do():
    rows = grid({"full": [80, 81], "no_crop": [60, 61]}) + grid({"full": [80], "no_crop": [62]}, seeds=[2],
                                                                 num_threads=4)
    assert len(_drops(rows)) == 1 and _drops(rows)["n"].item() == 3
    rows += grid({"full": [50, 51], "no_crop": [45, 44]}, dataset="imagenette32")
    t = _drops(rows).set_index("dataset")
    assert t.loc["cifar10", "n"] == 3 and t.loc["imagenette32", "mean"] == pytest.approx(6)
    assert labels.value("dataset", "imagenette32") == "Imagenette-32"


# ---------------------------------------------------------------------- 4. disjoint seeds
def test_disjoint_seeds_are_not_testable():
    rows = [r for r in grid(CROP_AHEAD) + grid(CROP_AHEAD, seeds=[3, 4, 5])
            if not ((r["policy"]["name"] == "no_crop" and r["seed"] >= 3) or
                    (r["policy"]["name"] == "no_blur" and r["seed"] < 3))]
    v = verdicts(rows).loc["leave-one-out"]
    assert v["answer"] == "not testable" and "nan" not in v["reason"]
    assert v["reason"].startswith("no paired seeds for no_blur, no_color, no_crop, no_flip")
    assert "no_crop 0,1,2" in v["reason"] and "no_blur 3,4,5" in v["reason"]


# ---------------------------------------------------------------------- 5. ties
def test_ties_are_ties():
    accs = dict(CROP_AHEAD, no_crop=[50.13, 52.13, 51.13], no_color=[50.13, 52.13, 51.13])
    v = verdicts(grid(accs)).loc["leave-one-out"]
    assert v["order"].startswith("crop 29.87 = color 29.87 > ") and v["answer"] == "undecided"
    rk = S.ranking(S.drop_table(frame(grid(accs)), "knn_top1")).set_index("augmentation")
    assert rk.loc["crop", "rank"] == rk.loc["color", "rank"] == 1 and rk.loc["flip", "rank"] == 3
    assert V.ranked({"a": 1.0, "b": 1.004, "crop": 1.0, "d": 0.5}, 0.01) == "crop 1.00 = a 1.00 = b 1.00 > d 0.50"


# ---------------------------------------------------------------------- 6. claim labels
def test_claim_labels():
    assert claims.aggregate(["yes", "yes", "not testable"]) == ("supported", "all 2 testable yes; 1 not testable, "
                                                                "not counted")
    assert claims.aggregate(["yes", "undecided", "undecided"]) == ("partly supported",
                                                                   "1 of 3 testable yes, rest undecided")
    status, why = claims.aggregate(["yes", "not testable", "not testable"])
    assert status == "partly supported" and "'supported' needs at least 2" in why
    assert claims.aggregate(["yes", "no"])[0] == "conflicting"
    assert claims.aggregate(["no", "undecided"])[0] == "partly contradicted"
    assert claims.aggregate(["undecided", "not testable"])[0] == "undecided"
    assert claims.aggregate(["yes"], need=1)[0] == "supported"


def test_one_yes_with_the_rest_not_testable_is_not_supported():
    loo = {k: v for k, v in CROP_AHEAD.items() if not k.endswith("_only")}
    c = claims.crop(frame(grid(loo) + grid(CROP_AHEAD, method="byol")), ["knn_top1"], 0.05)
    text = "\n".join(c.text)
    assert c.status == "supported"  # overall: 3 yes (simclr's one, byol's two), 1 not testable ...
    assert "byol: **supported** (all 2 testable yes)" in text  # ... but simclr alone rests on one verdict
    assert "simclr: **partly supported** (1 of 1 testable yes; 'supported' needs at least 2; 1 not testable" in text
    assert "*unadjusted*" in text and "*Holm-adjusted*" in text and "per method and overall" in text
    assert "On CIFAR-10:" in text and "crop − color: +" in text and "95% CI [" in text



def test_runs_behind_the_crop_claim_are_those_of_cells_with_a_testable_verdict():
    """A ViT cell with only full and no_crop (the masking grids') gets two not-testable verdicts: its 6 runs
    back no decision and are not counted; the ResNet cell's 27 are."""
    vit = grid({k: CROP_AHEAD[k] for k in ("full", "no_crop")}, backbone="vit_nano")
    c = claims.crop(frame(grid(CROP_AHEAD) + vit), ["knn_top1"], 0.05)
    assert c.n_runs == 27, c.n_runs
    assert "2 not testable" in "\n".join(c.text)

# ---------------------------------------------------------------------- power of an undecided verdict
def test_undecided_names_the_weak_comparison_and_the_seeds_it_needs():
    accs = dict(CROP_AHEAD, crop_only=[50, 52, 51], color_only=[48, 52.5, 49.4])
    v = verdicts(grid(accs)).loc["only-one"]
    d = np.array([50, 52, 51]) - np.array([48, 52.5, 49.4])
    assert v["answer"] == "undecided" and v["vs"] == "color" and v["diff"] == pytest.approx(d.mean())
    lo, hi = S.t_interval(d)
    assert (v["ci_lo"], v["ci_hi"]) == (pytest.approx(lo), pytest.approx(hi))
    n = v["needed"]
    sf = lambda k: sps.t.sf(d.mean() * np.sqrt(k) / d.std(ddof=1), k - 1)  # noqa: E731
    assert n > 3 and sf(n) < 0.05 <= sf(n - 1)
    assert f"crop vs color: {d.mean():+.2f}" in v["reason"] and f"~{n} paired seeds would decide it" in v["reason"]
    # pointing the other way: no number of seeds makes crop win
    v = verdicts(grid(dict(accs, color_only=[51, 52.2, 51.5]))).loc["only-one"]
    assert v["answer"] == "undecided" and pd.isna(v["needed"]) and "points the other way: –" in v["reason"]


def test_grid_holes_are_sought_within_one_sweeps_rows():
    """A sweep that runs one method under a new policy, beside another sweep's grid of two methods, opens
    no hole for the other method; a seed missing within one sweep is still a hole."""
    from analysis.grid import grid_holes

    two = grid({"full": [80, 81, 82], "no_crop": [60, 61, 62]}) + grid({"full": [70, 71, 72]}, method="byol")
    for r in two:
        r["sweep"] = "grid"
    extra = grid({"crop_only": [50, 51]})  # seeds 0 and 1 only
    for r in extra:
        r["sweep"] = "extra"
    holes = grid_holes(frame(two + extra))
    assert [(h.method, h.policy, h.seeds) for h in holes.itertuples()] == [("byol", "no_crop", "0,1,2")]
    assert "(sweep grid)" in holes["group"].iloc[0]
    # the same rows as one sweep's: byol lacks crop_only too, and simclr its seed 2
    for r in extra:
        r["sweep"] = "grid"
    holes = grid_holes(frame(two + extra))
    assert [(h.method, h.policy, h.seeds) for h in holes.itertuples()] == [
        ("byol", "crop_only", "0,1,2"), ("byol", "no_crop", "0,1,2"), ("simclr", "crop_only", "2")]


def test_a_strength_curve_takes_its_base_policys_own_runs_at_the_value_their_spec_holds():
    """mask_instead_of_crop (ratio 0.5) joins its mask_ratio sweep in the cells where that ran, once per seed
    even when the sweep also ran 0.5 under its own name; its runs elsewhere stay out."""
    from analysis.stats import knob_value, strength_rows

    def masked(name, ratio, seed, knn, **config):
        r = row("full", seed, knn, **config)
        r["policy"] = r["config"]["policy"] = {"name": name, "ops": [
            {"op": "resize", "size": 32}, {"op": "patch_mask", "ratio": ratio, "patch_size": 4}]}
        return r

    sweep = [masked(f"mask_instead_of_crop-mask_ratio={v:g}", v, s, 50 - 10 * v + s) for v in (0.25, 0.75)
             for s in (0, 1)]
    base = [masked("mask_instead_of_crop", 0.5, s, 45 + s) for s in (0, 1)]
    elsewhere = [masked("mask_instead_of_crop", 0.5, 0, 40, dataset="imagenette32")]
    d = strength_rows(frame(sweep + base + elsewhere))
    assert sorted(zip(d["value"], d["seed"], d["policy"])) == sorted(
        [(v, s, f"mask_instead_of_crop-mask_ratio={v:g}") for v in (0.25, 0.75) for s in (0, 1)]
        + [(0.5, s, "mask_instead_of_crop") for s in (0, 1)])
    assert set(d["dataset"]) == {"cifar10"} and set(d["knob"]) == {"mask_ratio"}
    # the sweep's own 0.5 at seed 0: the base's seed-0 run is not counted again
    d = strength_rows(frame(sweep + base + [masked("mask_instead_of_crop-mask_ratio=0.5", 0.5, 0, 45)]))
    assert sorted(d.loc[d["value"] == 0.5, "policy"]) == ["mask_instead_of_crop", "mask_instead_of_crop-mask_ratio=0.5"]
    assert knob_value({"ops": [{"op": "random_resized_crop", "scale": [0.2, 1.0]}]}, "crop_scale") == 0.2
    assert knob_value({"ops": [{"op": "color_jitter", "brightness": [0.6, 1.4]}]}, "color") == 0.5
    assert knob_value({"ops": [{"op": "resize", "size": 32}]}, "mask_ratio") is None
