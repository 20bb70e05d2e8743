"""The projector and momentum claims decide per cell, paired over seeds, and never pool cells: two cells whose
effects point opposite ways conflict, where a test over their pooled pairs would see no effect, or one."""
import hashlib
import json

from test_verdicts_rules import CONFIG, frame, spec

from analysis import claims
from augbench.augment import Policy
from augbench.augment.policy import strength_sweep

SEEDS = (0, 1, 2)


def _row(policy: dict, seed: int, knn: float, projector: float | None = None, random: float | None = None,
         **config) -> dict:
    cfg = {**CONFIG, **config, "seed": seed, "policy": policy}
    metrics = {"knn_top1": float(knn), **({"knn_top1_projector": float(projector)} if projector is not None else {}),
               **({"knn_top1_random_init": float(random)} if random is not None else {})}
    return {"run_id": hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16], "status": "done",
            "method": cfg["method"], "policy": policy, "backbone": cfg["backbone"], "dataset": cfg["dataset"],
            "epochs": cfg["epochs"], "seed": seed, "sweep": None, "config": cfg, "metrics": metrics,
            "env": {"git_commit": "abc1234", "device_name": "test device"}}


def _depth_rows(effects: dict[str, float]) -> list[dict]:
    """Per data set, proj_depth 0 and 2 under `full` on 3 seeds; depth 2 adds `effect` (+ a little per seed)."""
    rows = []
    for ds, effect in effects.items():
        for s, base in zip(SEEDS, (50.0, 52.0, 51.0)):
            rows.append(_row(spec("full"), s, base, proj_depth=0, dataset=ds))
            rows.append(_row(spec("full"), s, base + effect + 0.4 * s, projector=base - effect, proj_depth=2, dataset=ds))
    return rows


def test_projector_helps_per_cell_conflicts_when_cells_disagree():
    rows = _depth_rows({"cifar10": 3.0, "imagenette32": -3.0})
    c = claims.projector_helps(frame(rows), "knn_top1")
    text = "\n".join(c.text)
    assert c.status == "conflicting" and c.n_runs == 12, text
    assert "simclr / resnet18 / cifar10 / 30 ep / policy=full: **yes** — depth minus none: mean +3.40" in text
    assert "simclr / resnet18 / imagenette32 / 30 ep / policy=full: **no** — depth minus none: mean -2.60" in text
    # pooled over both cells the mean would be +0.40 and no test would reject: the cells are what decide
    one = claims.projector_helps(frame([r for r in rows if r["dataset"] == "cifar10"]), "knn_top1")
    assert one.status == "supported" and "Overall: **supported** (all 1 testable yes" in "\n".join(one.text)
    # two seeds decide nothing
    two = claims.projector_helps(frame([r for r in rows if r["dataset"] == "cifar10" and r["seed"] < 2]), "knn_top1")
    assert two.status == "undecided" and "under 3 paired seeds" in "\n".join(two.text)


def test_projector_helps_is_not_testable_without_a_depth_0_run():
    rows = [r for r in _depth_rows({"cifar10": 3.0}) if r["config"]["proj_depth"] == 2]
    c = claims.projector_helps(frame(rows), "knn_top1")
    assert c.status == "not testable" and "depth-0" in c.text[0]


def test_projector_removed_per_cell():
    # depth-2 runs record kNN on the projector output: backbone - projector = 2 * effect + 0.4 * seed
    c = claims.projector_removed(frame(_depth_rows({"cifar10": 3.0, "imagenette32": 1.0})))
    text = "\n".join(c.text)
    assert c.status == "supported" and "Overall: **supported** (all 2 testable yes)" in text, text
    c = claims.projector_removed(frame(_depth_rows({"cifar10": 3.0, "imagenette32": -3.0})))
    assert c.status == "conflicting"


def test_momentum_per_cell():
    """BYOL: the EMA target gains 1 point under full and 5 under weak on CIFAR-10 (yes), the other way round
    on Imagenette-32 (no): conflicting. A null momentum is BYOL's default, on (stats.effective_momentum)."""
    weak = Policy.named("weak").to_dict()
    rows = []
    for ds, (g_full, g_weak) in {"cifar10": (1.0, 5.0), "imagenette32": (5.0, 1.0)}.items():
        for s, base in zip(SEEDS, (50.0, 52.0, 51.0)):
            for pol, gain in ((spec("full"), g_full), (weak, g_weak)):
                rows.append(_row(pol, s, base, method="byol", momentum=False, dataset=ds))
                rows.append(_row(pol, s, base + gain + 0.3 * s, method="byol", momentum=None, dataset=ds))
    c = claims.momentum(frame(rows), "knn_top1")
    text = "\n".join(c.text)
    assert c.status == "conflicting" and c.n_runs == 24, text
    assert "byol / resnet18 / cifar10 / 30 ep: **yes** — weak minus full: mean +4.00" in text
    assert "byol / resnet18 / imagenette32 / 30 ep: **no** — weak minus full: mean -4.00" in text
    assert "Gain from momentum (knn_top1), byol / resnet18 / cifar10 / 30 ep: under `full` mean +1.30" in text


def test_masking_compares_vit_with_convnet_per_method_data_and_epochs():
    """Masking instead of cropping costs the ViT 1 point and the ResNet 6 on CIFAR-10 (yes), the other way
    round on Imagenette-32 (no): conflicting; STL-10 has ResNet runs only: listed, not counted."""
    mask = Policy.named("mask_instead_of_crop").to_dict()
    rows = []
    for ds, drops in {"cifar10": {"vit_tiny": 1.0, "resnet18": 6.0}, "imagenette32": {"vit_tiny": 6.0, "resnet18": 1.0},
                      "stl10": {"resnet18": 2.0}}.items():
        for bb, drop in drops.items():
            for s, base in zip(SEEDS, (60.0, 61.0, 62.5)):
                rows.append(_row(spec("full"), s, base, random=base - (12.0 if bb == "vit_tiny" else 20.0),
                                 backbone=bb, dataset=ds))
                rows.append(_row(mask, s, base - drop - 0.2 * s, backbone=bb, dataset=ds))
                # a `full` run of another cell (no masking arm): not part of the ResNet's gain
                rows.append(_row(spec("full"), s, base, random=base, proj_depth=0, backbone=bb, dataset=ds))
                if ds == "cifar10":  # without the crop the ResNet loses 9, the ViT 1.5 (+ a little per seed)
                    rows.append(_row(spec("no_crop"), s, base - (1.5 if bb == "vit_tiny" else 9.0) - 0.1 * s,
                                     backbone=bb, dataset=ds))
                if ds == "cifar10" and bb == "resnet18":  # a mask-ratio sweep: a quarter costs 3, three quarters 10
                    for p, cost in zip(strength_sweep(Policy.named("mask_instead_of_crop"), "mask_ratio", [0.25, 0.75]),
                                       (3.0, 10.0)):
                        rows.append(_row(p.to_dict(), s, base - cost, backbone=bb, dataset=ds))
    c = claims.masking(frame(rows), "knn_top1")
    text = "\n".join(c.text)
    assert c.status == "conflicting" and "1 yes and 1 no of 2 testable" in text, text
    assert "simclr / cifar10 / 30 ep: **yes** — masking instead of cropping costs ViTs 1.20 and ConvNets 6.20" in text
    assert "simclr / cifar10 / 30 ep, ViT: drop full - mask_instead_of_crop = mean +1.20" in text
    assert "; its `full` runs clear random init by +12.0 kNN points." in text
    assert "; its `full` runs clear random init by +20.0 kNN points." in text
    # no_crop beside it, where the cell has it: masking in the crop's place earns the ResNet 2.9 of the 9.1
    assert "simclr / cifar10 / 30 ep, ConvNet, beside it (no verdict): drop full - no_crop = mean +9.10" in text
    assert "masking where the crop was, against neither: mean +2.90" in text
    assert "imagenette32 / 30 ep, ViT, beside it" not in text and c.status == "conflicting"
    # the ratio sweep beside it, its 0.5 point the mask_instead_of_crop runs themselves; the ViT ran none
    assert ("simclr / cifar10 / 30 ep, ConvNet, beside it (no verdict): drop full - masked, by mask ratio: "
            "0.25: 3.00 (n=3); 0.5: 6.20 (n=3); 0.75: 10.00 (n=3).") in text
    assert "ViT, beside it (no verdict): drop full - masked" not in text
    assert "simclr / imagenette32 / 30 ep: **no**" in text
    assert "simclr / stl10 / 30 ep: only ConvNet runs; the claim compares both." in text


def test_an_undecided_cell_says_how_many_seeds_would_decide_it():
    rows = _depth_rows({"cifar10": 0.3})
    for r in rows:  # seed 1's depth-2 run loses: a noisy +0.3 effect
        if r["seed"] == 1 and r["config"]["proj_depth"] == 2:
            r["metrics"]["knn_top1"] -= 2.0
    text = "\n".join(claims.projector_helps(frame(rows), "knn_top1").text)
    assert "**undecided**" in text and "paired seeds would decide it" in text, text


def test_the_crop_claim_gives_the_crop_scale_sweep_beside_its_verdicts():
    """A `crop_scale` sweep of `full` in the cell: its mean drop per minimum scale, per metric, with no verdict;
    a cell without one gets no line."""
    from test_verdicts_rules import CROP_AHEAD, grid

    rows = grid(CROP_AHEAD) + grid(CROP_AHEAD, dataset="imagenette32")
    for s, base in zip(SEEDS, CROP_AHEAD["full"]):
        for scale, cost in ((0.5, 4.0), (1.0, 9.0)):
            p = spec("full")
            p["name"] = f"crop_scale={scale:g}"
            p["ops"][0] = {**p["ops"][0], "scale": [scale, 1.0]}
            rows.append(_row(p, s, base - cost - 0.1 * s))
    text = "\n".join(claims.crop(frame(rows), ["knn_top1"], 0.05).text)
    assert "Beside it (no verdict), the crop's minimum scale (`full`: 0.08): drop full - policy, by scale:" in text
    assert "  - simclr / resnet18 / cifar10 / 30 ep, knn_top1: 0.5: 4.10 (n=3); 1: 9.10 (n=3)." in text, text
    assert "imagenette32 / 30 ep, knn_top1: 0.5" not in text
    assert "by scale" not in "\n".join(claims.crop(frame(grid(CROP_AHEAD)), ["knn_top1"], 0.05).text)


def test_the_crop_claim_says_per_backbone_where_there_are_several():
    """Crop ahead on the ResNet, colour ahead on the ViT: each backbone's own answer beside the methods'."""
    from test_verdicts_rules import CROP_AHEAD, grid

    colour_ahead = {**CROP_AHEAD, "no_color": [55, 57, 56], "color_only": [60, 61, 60.5]}
    rows = grid(CROP_AHEAD) + grid(colour_ahead, backbone="vit_tiny")
    text = "\n".join(claims.crop(frame(rows), ["knn_top1"], 0.05).text)
    assert "Per backbone: ResNet-18: **supported** (" in text and "; ViT-Tiny: **not supported** (" in text, text
    assert "Per backbone" not in "\n".join(claims.crop(frame(grid(CROP_AHEAD)), ["knn_top1"], 0.05).text)
