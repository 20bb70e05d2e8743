"""Recipes as data: every value names its source, RunConfig fills the fields a recipe sets with the
precedence built-in < recipe < given (file, sweep, flag), replace() re-applies the recipe of a new
method, bad recipes and values are refused naming the field, `augbench recipes` lists them."""
import re

import pytest
import yaml

from augbench import recipes
from augbench.cli import main as cli
from augbench.config import GENERIC, LATE_DEFAULTS, METHODS, RECIPE_FIELDS, ConfigError, RunConfig
from augbench.run import add_arguments, config_from_args
from augbench.sweeps.schema import expand, sweep_from_dict

TINY = {"width": 4, "proj_hidden": 16, "proj_dim": 8, "pred_hidden": 8}


def test_every_value_names_repo_file_commit_and_key():
    recs = recipes.load()
    assert set(recs["solo-learn"]) == set(METHODS) and set(recs["generic"]) == set(METHODS)
    assert set(recs["lightly"]) == {"simclr", "byol", "barlow", "simsiam"}  # lightly's CIFAR benchmark has no VICReg
    n = 0
    for name, methods in recs.items():
        for method, entries in methods.items():
            for field, e in entries.items():
                assert field in RECIPE_FIELDS
                assert e["repo"] and e["file"] and e["key"], (name, method, field)
                assert re.fullmatch(r"[0-9a-f]{40}", e["commit"]), (name, method, field)
                n += 1
    assert n > 60


def test_a_config_takes_each_methods_published_values():
    for method, entries in recipes.load()["solo-learn"].items():
        cfg = RunConfig.from_dict({"method": method, "epochs": 200})
        assert cfg.recipe == "solo-learn" and cfg.given == frozenset()
        for field, e in entries.items():
            want = tuple(e["value"]) if isinstance(e["value"], list) else e["value"]
            assert getattr(cfg, field) == want, (method, field)
        for field in RECIPE_FIELDS - set(entries):  # what the recipe leaves alone keeps the built-in value
            assert getattr(cfg, field) == GENERIC[field], (method, field)
    simclr, byol = RunConfig.from_dict({"method": "simclr"}), RunConfig.from_dict({"method": "byol"})
    assert (simclr.optimizer, simclr.lr, simclr.temperature, simclr.proj_dim, simclr.lars_eta, simclr.lars_clip) == \
        ("lars", 0.4, 0.2, 256, 0.02, True)
    assert (byol.tau_base, byol.proj_hidden, byol.pred_hidden, byol.weight_decay) == (0.99, 4096, 4096, 1e-5)
    assert RunConfig.from_dict({"method": "barlow"}).barlow_scale == 0.1


def test_generic_recipe_is_the_old_shared_values():
    for method in METHODS:
        cfg = RunConfig.from_dict({"method": method, "recipe": "generic"})
        assert {f: getattr(cfg, f) for f in RECIPE_FIELDS} == GENERIC


def test_warmup_is_capped_at_a_tenth_of_the_run():
    assert [RunConfig.from_dict({"epochs": e}).warmup_epochs for e in (2, 9, 30, 100, 1000)] == [0, 0, 3, 10, 10]
    assert RunConfig.from_dict({"epochs": 30, "warmup_epochs": 12}).warmup_epochs == 12  # given: kept


def test_precedence_builtin_recipe_file_sweep_flag(tmp_path):
    import argparse

    # given in the constructor / from_dict beats the recipe
    assert RunConfig.from_dict({"method": "simclr", "temperature": 0.3}).temperature == 0.3
    # config file beats the recipe, a flag beats the file
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"method": "simclr", "lr": 0.7, "temperature": 0.1}))
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["--config", str(path), "--temperature", "0.15", "--no-lars-clip"]))
    assert (cfg.lr, cfg.temperature, cfg.lars_clip, cfg.weight_decay) == (0.7, 0.15, False, 1e-4)
    assert cfg.given == {"lr", "temperature", "lars_clip"}
    # a sweep: base and axes beat the recipe, which follows each run's method
    sw = sweep_from_dict({"name": "t", "base": {"lr": 0.2, **TINY},
                          "axes": {"method": ["simclr", "byol"], "temperature": [0.1, 0.5]}})
    cfgs = expand(sw)
    assert {(c.method, c.lr, c.temperature, c.optimizer, c.weight_decay) for c in cfgs} == {
        ("simclr", 0.2, 0.1, "lars", 1e-4), ("simclr", 0.2, 0.5, "lars", 1e-4),
        ("byol", 0.2, 0.1, "lars", 1e-5), ("byol", 0.2, 0.5, "lars", 1e-5)}
    # the recipe itself is a sweep axis; its values land in the configs, so the run ids differ
    by = {c.recipe: c for c in expand(sweep_from_dict({"name": "t", "axes": {"recipe": ["solo-learn", "generic"]}}))}
    assert by["generic"].optimizer == "sgd" and by["solo-learn"].optimizer == "lars"
    assert by["generic"].run_id != by["solo-learn"].run_id


def test_replace_reapplies_the_recipe_and_keeps_given_values():
    cfg = RunConfig.from_dict({"method": "simclr", "lr": 0.1, "epochs": 30, **TINY})
    byol = cfg.replace(method="byol")
    assert byol.lr == 0.1 and byol.proj_hidden == 16 and byol.given == cfg.given  # given: kept
    assert byol.weight_decay == 1e-5 and byol.temperature == GENERIC["temperature"]  # recipe: byol's now
    generic = byol.replace(recipe="generic")
    assert generic.optimizer == "sgd" and generic.lr == 0.1 and generic.warmup_epochs == 0
    assert cfg.replace(epochs=200).warmup_epochs == 10 and cfg.replace(epochs=200).lr == 0.1
    assert byol.replace(method="simclr") == cfg and byol.replace(method="simclr").run_id == cfg.run_id
    # a row's config (every value concrete) loads back to the same run
    again = RunConfig.from_concrete(cfg.to_dict())
    assert again.run_id == cfg.run_id and again.given == RECIPE_FIELDS


def test_the_row_config_records_the_recipe_and_every_value():
    d = RunConfig.from_dict({"method": "vicreg"}).to_dict()
    # every recipe value but a late field at its default (left out so earlier rows keep their ids)
    assert d["recipe"] == "solo-learn" and RECIPE_FIELDS - set(LATE_DEFAULTS) <= set(d)
    assert (d["optimizer"], d["lr"], d["proj_depth"], d["vicreg_weights"]) == ("lars", 0.3, 3, [25.0, 25.0, 1.0])
    assert "<from the recipe>" not in repr(d)


@pytest.mark.parametrize("change,needle", [
    ({"recipe": "solo_learn"}, "field 'recipe' must be one of"),
    ({"recipe": None}, "field 'recipe'"),
    ({"recipe": "lightly", "method": "vicreg"}, "field 'recipe': recipe 'lightly' has no values for method 'vicreg'"),
    ({"lars_eta": -0.1}, "field 'lars_eta'"),
    ({"lr_scaling": "sqrt"}, "field 'lr_scaling'"),
    ({"warmup_epochs": 30, "epochs": 30}, "field 'warmup_epochs'"),
])
def test_bad_recipe_or_value_names_the_field(change, needle):
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({**TINY, **change}, source="s.yaml")
    assert needle in str(e.value) and str(e.value).startswith("s.yaml: ")


def test_a_bad_recipes_file_names_the_entry(tmp_path):
    def load(d):
        path = tmp_path / "r.yaml"
        path.write_text(yaml.safe_dump(d))
        return recipes.load.__wrapped__(path)

    ok = {"repo": "a/b", "file": "f.yaml", "commit": "0" * 40}
    with pytest.raises(recipes.RecipeError, match=r"recipes\.x\.simclr\.colour: not a field a recipe sets"):
        load({"recipes": {"x": {"common": ok, "methods": {"simclr": {"values": {"colour": {"value": 1, "key": "k"}}}}}}})
    with pytest.raises(recipes.RecipeError, match=r"recipes\.x\.simclr\.lr: its source lacks \['key'\]"):
        load({"recipes": {"x": {"common": ok, "methods": {"simclr": {"values": {"lr": {"value": 1}}}}}}})
    with pytest.raises(recipes.RecipeError, match=r"recipes\.x\.common\.lr: expected"):
        load({"recipes": {"x": {"common": {**ok, "values": {"lr": 0.1}}, "methods": {"simclr": None}}}})
    with pytest.raises(recipes.RecipeError, match=r"recipes\.x: expected a mapping"):
        load({"recipes": {"x": ["simclr"]}})
    got = load({"recipes": {"x": {"common": ok, "methods": {"byol": {"commit": "1" * 40,
                                                                    "values": {"lr": {"value": 2.0, "key": "k"}}}}}}})
    assert got["x"]["byol"]["lr"] == {**ok, "commit": "1" * 40, "value": 2.0, "key": "k"}


def test_cli_lists_recipes_with_sources(capsys):
    assert cli(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("solo-learn", "lightly", "generic"):
        assert re.search(rf"^{name}: ", out, re.M), name
    assert "solo-learn: solo-learn's CIFAR pretraining configs" in out and "(default)" in out
    assert re.search(r"temperature = 0\.2 +vturrisi/solo-learn@d155957129 scripts/pretrain/cifar/simclr\.yaml: "
                     r"method_kwargs\.temperature", out)
    assert "warmup_epochs = 10 (at most 0.1 x epochs)" in out
    assert cli(["recipes", "lightly", "--method", "simsiam"]) == 0
    one = capsys.readouterr().out
    assert "lr_scaling = none" in one and "simclr:" not in one and "solo-learn" not in one
    assert cli(["recipes", "nope"]) == 2
    assert "unknown recipe 'nope'; recipes: ['solo-learn', 'lightly', 'generic', 'cpu-small']" in capsys.readouterr().err


def test_a_recipe_may_build_on_an_earlier_one(tmp_path):
    from augbench.recipes import RecipeError, load

    src = {"repo": "r", "file": "f", "commit": "c" * 40}
    base = {"recipes": {"a": {"common": src, "methods": {"simclr": {"values": {"lr": {"value": 0.4, "key": "k"},
                                                                              "temperature": {"value": 0.2, "key": "k"}}}}},
                        "b": {"base": "a", "common": {**src, "repo": "mine"},
                              "methods": {"simclr": {"values": {"lr": {"value": 0.1, "key": "row x"}}}}}}}
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(base))
    recs = load(p)
    assert recs["b"]["simclr"]["lr"]["value"] == 0.1 and recs["b"]["simclr"]["lr"]["repo"] == "mine"
    assert recs["b"]["simclr"]["temperature"] == recs["a"]["simclr"]["temperature"]  # inherited with its source
    base["recipes"]["b"]["base"] = "zzz"
    p.write_text(yaml.safe_dump(base))
    load.cache_clear()
    with pytest.raises(RecipeError, match="recipes.b.base: 'zzz' is not a recipe defined above it"):
        load(p)
    load.cache_clear()
