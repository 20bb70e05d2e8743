"""analysis.stats against scipy and on constructed samples with a known answer."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import published
from analysis import stats as S


def test_paired_t_p_equals_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(80, 1, size=6)
    b = a - rng.normal(0.7, 0.5, size=6)
    r = S.paired_test(a, b, n_boot=2000)
    assert r.p_t == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)
    assert r.mean == pytest.approx(np.mean(a - b))
    assert r.n == 6


def test_bootstrap_ci_covers_true_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    true = 2.0
    d = true + rng.normal(0, 1, size=40)
    lo, hi = S.bootstrap_ci(d, n_boot=4000, seed=3)
    assert lo < true < hi
    assert lo < d.mean() < hi
    assert (lo, hi) == S.bootstrap_ci(d, n_boot=4000, seed=3)
    assert (lo, hi) != S.bootstrap_ci(d, n_boot=4000, seed=4)
    # a wider interval at a smaller alpha
    lo99, hi99 = S.bootstrap_ci(d, n_boot=4000, alpha=0.01, seed=3)
    assert lo99 < lo and hi99 > hi


def test_permutation_p_exact_small_n():
    # all 4 diffs positive: only the all-plus and all-minus flips are as extreme -> 2/16
    assert S.permutation_p([1.0, 2.0, 3.0, 4.0]) == pytest.approx(2 / 16)
    assert S.permutation_p([1.0, -1.0, 1.0, -1.0]) == pytest.approx(1.0)


def test_spearman_equals_scipy():
    ours = {"crop": 30.0, "color": 20.0, "blur": 2.0, "flip": 1.0, "gray": 5.0}
    theirs = {"crop": 27.0, "color": 22.0, "blur": 2.7, "flip": 0.6, "gray": 6.0, "solarize": 0.1}
    r = S.spearman(ours, theirs)
    keys = sorted(set(ours) & set(theirs))
    ref = sps.spearmanr([ours[k] for k in keys], [theirs[k] for k in keys])
    assert r["n"] == 5 and r["rho"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)
    assert np.isnan(S.spearman({"a": 1, "b": 2}, {"a": 1, "b": 2})["rho"])  # too few shared keys


def test_crop_verdict_yes_no_undecided():
    rng = np.random.default_rng(0)
    n = 5
    big = 20 + rng.normal(0, 0.5, n)
    small = 3 + rng.normal(0, 0.5, n)
    close = 19.9 + rng.normal(0, 3, n)
    assert S.crop_verdict({"crop": big, "color": small, "flip": small / 3}).answer == "yes"
    v = S.crop_verdict({"crop": small, "color": big, "flip": small / 3})
    assert v.answer == "no" and v.top == "color"
    v = S.crop_verdict({"crop": big, "color": close})
    assert v.answer == "undecided" and "not significantly" in v.reason
    v = S.crop_verdict({"crop": big[:1], "color": small[:1]})
    assert v.answer == "undecided" and "1 paired seed" in v.reason
    assert S.crop_verdict({"color": big}).answer == "undecided"
    assert S.crop_verdict({"crop": big}).answer == "undecided"


def _rows(accs: dict[str, list[float]], method="simclr"):
    return pd.DataFrame([dict(status="done", method=method, backbone="resnet18", dataset="cifar10", epochs=1,
                              policy=p, seed=s, knn_top1=a) for p, v in accs.items() for s, a in enumerate(v)])


def test_drop_table_pairs_by_seed_and_skips_unmatched():
    df = _rows({"full": [80, 82, 81], "no_crop": [60, 63], "no_flip": [79, 81, 80]})
    df.loc[len(df)] = dict(status="failed", method="simclr", backbone="resnet18", dataset="cifar10", epochs=1,
                           policy="no_crop", seed=2, knn_top1=np.nan)
    t = S.drop_table(df, "knn_top1", n_boot=500).set_index("policy")
    assert t.loc["no_crop", "n"] == 2 and t.loc["no_crop", "mean"] == pytest.approx(19.5)
    assert t.loc["no_crop", "seeds"] == "0,1"
    assert t.loc["no_flip", "mean"] == pytest.approx(1.0)
    rk = S.ranking(S.drop_table(df, "knn_top1", n_boot=500))
    assert list(rk["augmentation"]) == ["crop", "flip"]
    s = S.summarize(df, "knn_top1").set_index("policy")
    assert s.loc["full", "n"] == 3 and s.loc["full", "mean"] == pytest.approx(81)
    assert s.loc["full", "std"] == pytest.approx(np.std([80, 82, 81], ddof=1))


def test_verdicts_from_rows():
    df = _rows({"full": [80, 82, 81, 80], "no_crop": [60, 63, 61, 60], "no_flip": [79, 81, 80, 79.5]})
    v = S.verdicts(df, "knn_top1", n_boot=500)
    assert list(v["answer"]) == ["yes"]
    assert S.verdicts(_rows({"no_crop": [1, 2]}), "knn_top1").empty  # no baseline: no verdict, no crash


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
