"""analysis.stats against scipy and on constructed samples with a known answer."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import published
from analysis import stats as S


def test_paired_t_p_and_interval_equal_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(80, 1, size=6)
    b = a - rng.normal(0.7, 0.5, size=6)
    r = S.paired_test(a, b)
    ref = sps.ttest_rel(a, b)
    assert r.p == pytest.approx(ref.pvalue, rel=1e-12)
    lo, hi = ref.confidence_interval(0.95)
    assert (r.ci_lo, r.ci_hi) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert r.mean == pytest.approx(np.mean(a - b)) and r.n == 6
    # a wider interval at a smaller alpha; one-sided p is half the two-sided p in the direction of the mean
    lo99, hi99 = S.t_interval(a - b, alpha=0.01)
    assert lo99 < r.ci_lo and hi99 > r.ci_hi
    assert S.ttest_p(a - b, "greater") == pytest.approx(r.p / 2)


def test_one_seed_has_no_interval_and_no_p():
    r = S.paired_test([65.16], [41.47])
    assert r.mean == pytest.approx(23.69) and r.n == 1
    assert np.isnan(r.ci_lo) and np.isnan(r.ci_hi) and np.isnan(r.p)


def test_three_seeds_can_reach_small_p():
    # a sign-flip permutation test over 3 pairs never goes below 2/8 = 0.25; the paired t-test does
    d = [23.1, 24.0, 23.6]
    assert S.ttest_p(d) < 0.001
    lo, hi = S.t_interval(d)
    assert lo > 20 and hi < 27 and lo < np.mean(d) < hi
    # zero variance: the sd is floored at the resolution (0.01 points), so constant differences are not certain
    assert 0 < S.ttest_p([5.0, 5.0, 5.0]) < 1e-4 and S.ttest_p([0.0, 0.0]) == 1.0


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    adj = S.holm(p)
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, max(0.04, 0.09), max(0.09, 0.08), max(0.09, 0.5)
    assert np.allclose(adj[[0, 2, 1, 4]], [0.04, 0.09, 0.09, 0.5]) and np.isnan(adj[3])
    assert np.all(adj[~np.isnan(p)] >= p[~np.isnan(p)])
    assert S.holm([0.6, 0.7]).max() == 1.0  # capped


def test_spearman_equals_scipy():
    ours = {"crop": 30.0, "color": 20.0, "blur": 2.0, "flip": 1.0, "gray": 5.0}
    theirs = {"crop": 27.0, "color": 22.0, "blur": 2.7, "flip": 0.6, "gray": 6.0, "solarize": 0.1}
    r = S.spearman(ours, theirs)
    keys = sorted(set(ours) & set(theirs))
    ref = sps.spearmanr([ours[k] for k in keys], [theirs[k] for k in keys])
    assert r["n"] == 5 and r["rho"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)
    assert np.isnan(S.spearman({"a": 1, "b": 2}, {"a": 1, "b": 2})["rho"])  # too few shared keys


def test_dominates_yes_no_undecided():
    from analysis.verdicts import dominates

    rng = np.random.default_rng(0)
    n = 5
    big = 20 + rng.normal(0, 0.5, n)
    small = 3 + rng.normal(0, 0.5, n)
    close = 19.9 + rng.normal(0, 3, n)
    rest = {"flip": small / 3, "blur": small / 2}
    assert dominates({"crop": big, "color": small, **rest}, "leave-one-out").answer == "yes"
    v = dominates({"crop": small, "color": big, **rest}, "leave-one-out")
    assert v.answer == "no" and v.reason.startswith("color's drop is larger")
    v = dominates({"crop": big, "color": close, **rest}, "leave-one-out")
    assert v.answer == "undecided" and "not separated: crop vs color" in v.reason
    # larger than EVERY other: one close competitor is enough to leave it undecided
    assert dominates({"crop": big, "color": close, "flip": small, "blur": small}, "leave-one-out").answer == "undecided"
    v = dominates({"crop": big[:1], "color": small[:1], "flip": small[:1], "blur": small[:1]}, "leave-one-out")
    assert v.answer == "undecided" and "1 paired seed(s)" in v.reason and "crop ranks 1 of 4" in v.reason
    v = dominates({"crop": big, "flip": small}, "only-one")
    assert v.answer == "not testable" and v.label == "not testable (missing: color_only, blur_only)"
    assert dominates({"color": big}, "leave-one-out").label.startswith("not testable (missing: no_crop, no_flip")


def _rows(accs: dict[str, list[float]], method="simclr"):
    return pd.DataFrame([dict(status="done", method=method, backbone="resnet18", dataset="cifar10", epochs=1,
                              policy=p, seed=s, knn_top1=a) for p, v in accs.items() for s, a in enumerate(v)])


def test_drop_table_pairs_by_seed_and_skips_unmatched():
    df = _rows({"full": [80, 82, 81], "no_crop": [60, 63], "no_flip": [79, 81, 80]})
    df.loc[len(df)] = dict(status="failed", method="simclr", backbone="resnet18", dataset="cifar10", epochs=1,
                           policy="no_crop", seed=2, knn_top1=np.nan)
    t = S.drop_table(df, "knn_top1").set_index("policy")
    assert t.loc["no_crop", "n"] == 2 and t.loc["no_crop", "mean"] == pytest.approx(19.5)
    assert t.loc["no_crop", "seeds"] == "0,1"
    assert t.loc["no_flip", "mean"] == pytest.approx(1.0)
    assert t.loc["no_crop", "p"] == pytest.approx(sps.ttest_1samp([20, 19], 0).pvalue)
    assert t.loc["no_crop", "p_holm"] == pytest.approx(S.holm(t["p"].to_numpy())[list(t.index).index("no_crop")])
    rk = S.ranking(S.drop_table(df, "knn_top1"))
    assert list(rk["augmentation"]) == ["crop", "flip"]
    s = S.summarize(df, "knn_top1").set_index("policy")
    assert s.loc["full", "n"] == 3 and s.loc["full", "mean"] == pytest.approx(81)
    assert s.loc["full", "std"] == pytest.approx(np.std([80, 82, 81], ddof=1))


def test_verdicts_from_rows_both_kinds():
    from analysis.verdicts import crop_verdicts

    accs = {"full": [80, 82, 81, 80], "no_crop": [60, 63, 61, 60], "no_flip": [79, 81, 80, 79.5],
            "crop_only": [50, 52, 51, 50.5], "color_only": [40, 41, 40.5, 40]}
    v = crop_verdicts(_rows(accs), "knn_top1").set_index("verdict")  # crop far ahead, but arms never ran
    assert v.loc["leave-one-out", "label"] == "not testable (missing: no_color, no_blur)"
    assert v.loc["only-one", "label"] == "not testable (missing: flip_only, blur_only)"
    accs.update(no_color=[70, 71, 70.5, 70], no_blur=[79.5, 81.5, 80, 80], blur_only=[30, 31, 30, 30.5],
                flip_only=[31, 30, 31, 30])
    v = crop_verdicts(_rows(accs), "knn_top1").set_index("verdict")
    assert v.loc["leave-one-out", "answer"] == "yes" and v.loc["only-one", "answer"] == "yes"
    assert v.loc["only-one", "vs"] == "color" and v.loc["only-one", "diff"] == pytest.approx(10.5)
    df = _rows({"no_crop": [1, 2], "no_flip": [1, 2]})  # no baseline: no drops, and it says so
    v = crop_verdicts(df, "knn_top1").set_index("verdict")
    assert v.loc["leave-one-out", "answer"] == "not testable" and "no `full` run" in v.loc["leave-one-out", "reason"]


def test_recipes_split_cells():
    # a `recipe` that varies keeps its runs apart, like any design field (lr, proj_depth, ...)
    df = pd.concat([_rows({"full": [80, 81], "no_crop": [60, 61]}).assign(recipe="solo-learn"),
                    _rows({"full": [70, 71], "no_crop": [65, 66]}).assign(recipe="default")])
    t = S.drop_table(df, "knn_top1").set_index("recipe")
    assert "recipe" in S.cell_cols(S.done_rows(df))
    assert t.loc["solo-learn", "mean"] == pytest.approx(20) and t.loc["default", "mean"] == pytest.approx(5)
    # one recipe per method: its values follow the method, so they split nothing more and add no column
    per_method = pd.concat([_rows({"full": [80], "no_crop": [60]}).assign(recipe="simclr", lr=0.3),
                            _rows({"full": [70], "no_crop": [65]}, method="byol").assign(recipe="byol", lr=1.0)])
    assert S.cell_cols(S.done_rows(per_method)) == ["method", "backbone", "dataset", "epochs"]
    assert len(S.drop_table(per_method, "knn_top1")) == 2


def test_published_sources_and_drops():
    df = published.load()
    assert df["source"].notna().all() and df["ref"].notna().all()
    assert df[df["table"].str.contains("Fig. 5")]["memory"].all()
    d = published.removal_drops("BYOL", "simclr")
    assert d["no_color"] == pytest.approx(67.9 - 45.7)
    assert published.removal_drops("BYOL", "nonexistent") == {}


def test_figure_name_parsers_match_the_policy_generators():
    from analysis.plots import PAIR_RE, STRENGTH_RE
    from augbench.augment.policy import Policy, pairwise, strength_sweep

    full = Policy.named("full")
    for knob, vals in (("crop_scale", [0.08, 0.5]), ("color", [0.5, 1.0])):
        for p in strength_sweep(full, knob, vals):
            m = STRENGTH_RE.match(p.name)
            assert m and m["knob"] == knob and float(m["value"]) in vals
    masked = Policy.named("mask_instead_of_crop")
    m = STRENGTH_RE.match(strength_sweep(masked, "mask_ratio", [0.25])[0].name)
    assert m and m["base"] == "mask_instead_of_crop" and float(m["value"]) == 0.25
    pairs = [PAIR_RE.match(p.name) for p in pairwise(full)]
    assert all(pairs) and {(m["a"], m["b"]) for m in pairs} >= {("crop", None), ("crop", "color")}
