"""analysis.cpu_scale: docs/cpu-scale.md's table from calibration rows: one line per setting (seeds
averaged, execution fields ignored), the gain over the random-init encoder, and the fields outside the
columns in which a setting differs from the others of its method."""
from analysis import cpu_scale
from augbench.config import RunConfig


def _row(run_id, seed, knn, random, started, **cfg):
    cfg = {"method": "byol", "recipe": "cpu-small", "width": 8, "subset": 1000, "epochs": 8, "batch_size": 128,
           "num_threads": 1, **cfg}
    c = RunConfig(seed=seed, **cfg)
    return {"run_id": run_id, "seed": seed, "status": "done", "started_at": started, "config": c.to_dict(),
            "metrics": {"knn_top1": knn, "knn_top1_random_init": random, "linear_top1": knn + 3},
            "history": [{"epoch_s": 30.0}, {"epoch_s": 40.0}, {"epoch_s": 35.0}],
            "timings": {"train_s": 300.0, "eval_s": 12.0}, "env": {"git_commit": "abc", "num_threads": 1}}


def test_seeds_of_one_setting_are_averaged_and_others_name_the_hidden_difference():
    rows = [_row("a" * 16, 0, 34.0, 24.0, "1"), _row("b" * 16, 1, 30.0, 26.0, "2", num_threads=2),
            _row("c" * 16, 0, 32.0, 24.0, "3", weight_decay=1e-4), _row("d" * 16, 0, 33.0, 24.0, "4"),
            _row("e" * 16, 0, 33.0, 24.0, "5", pred_lr_mult=10.0),
            {"run_id": "f" * 16, "seed": 0, "status": "failed", "config": {}}]
    rows[3]["config"]["epochs"] = 16  # a shown column: never listed under "other"
    entries = cpu_scale.settings(rows)
    assert [len(e["seeds"]) for e in entries] == [2, 1, 1, 1]  # threads are execution: seeds 0 and 1 pool
    assert entries[0]["gain"] == (10.0 + 4.0) / 2 and entries[0]["epoch_s"] == 35.0
    assert cpu_scale.others(entries) == ["–", "weight_decay=0.0001", "–", "pred_lr_mult=10.0"]
    table = cpu_scale.table(entries)
    assert table.count("\n") == len(entries) + 1 and "**+7.0**" in table and "| weight_decay=0.0001 |" in table


def test_a_vit_row_names_its_backbone_and_shows_no_resnet_stem_or_width():
    rows = [_row("a" * 16, 0, 34.0, 24.0, "1"),
            _row("b" * 16, 0, 30.0, 26.0, "2", backbone="vit_nano", image_size=24, optimizer="adamw", lr=1e-3)]
    entries = cpu_scale.settings(rows)
    lines = cpu_scale.table(entries).splitlines()[2:]
    assert "| byol | cifar10 | resnet18 | CIFAR | 8 |" in lines[0]
    assert "| byol | cifar10 | vit_nano | – | – | 24 |" in lines[1] and "| adamw | 0.001 |" in lines[1]
    assert cpu_scale.others(entries) == ["–", "–"]  # the backbone has its own column
