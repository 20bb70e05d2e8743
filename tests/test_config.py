"""RunConfig: validation names the field; the run id hashes the whole config, policy included."""
import pytest
import yaml

from augbench.augment.ops import PolicyError
from augbench.config import ConfigError, RunConfig


def test_defaults_validate_and_hash_is_stable():
    a, b = RunConfig(), RunConfig()
    a.validate()
    assert a.run_id == b.run_id and len(a.run_id) == 16


def test_run_id_changes_with_any_policy_parameter():
    base = RunConfig(policy="full")
    spec = base.policy_spec()
    spec["ops"][0]["scale"] = [0.2, 1.0]  # same name, one parameter changed
    changed = RunConfig(policy=spec)
    assert spec["name"] == "full"
    assert changed.run_id != base.run_id
    assert RunConfig(policy="no_crop").run_id != base.run_id
    assert RunConfig(seed=1).run_id != base.run_id


def test_named_policy_and_its_expanded_spec_hash_alike():
    assert RunConfig(policy="no_flip").run_id == RunConfig(policy=RunConfig(policy="no_flip").policy_spec()).run_id


def test_execution_fields_do_not_change_run_id():
    assert RunConfig(ckpt_every=5, progress=False, device="cpu").run_id == RunConfig().run_id


@pytest.mark.parametrize("field,value,needle", [
    ("method", "moco", "'method'"),
    ("epochs", 0, "'epochs'"),
    ("batch_size", "big", "'batch_size'"),
    ("proj_depth", 4, "'proj_depth'"),
    ("dataset", "mnist", "'dataset'"),
    ("temperature", 0.0, "'temperature'"),
    ("momentum", "yes", "'momentum'"),
])
def test_bad_values_name_the_field(field, value, needle):
    with pytest.raises(ConfigError, match=needle):
        RunConfig.from_dict({field: value})


def test_unknown_key_and_bad_policy():
    with pytest.raises(ConfigError, match="unknown key.*'epoch'"):
        RunConfig.from_dict({"epoch": 3})
    with pytest.raises(PolicyError, match="unknown policy 'no_such'"):
        RunConfig.from_dict({"policy": "no_such"})
    with pytest.raises(PolicyError, match=r"ops\[1\].*unknown op 'rotate'"):
        RunConfig.from_dict({"policy": {"name": "x", "ops": [{"op": "resize"}, {"op": "rotate"}]}})


def test_byol_needs_a_projector():
    with pytest.raises(ConfigError, match="proj_depth"):
        RunConfig.from_dict({"method": "byol", "proj_depth": 0})


def test_yaml_file_round_trip_and_errors(tmp_path):
    cfg = RunConfig(method="vicreg", policy="no_color", epochs=3, seed=2)
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg.to_dict()))
    assert RunConfig.from_yaml(p).run_id == cfg.run_id
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not a valid YAML config file"):
        RunConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")


def test_constructor_fills_recipe_fields_like_from_dict():
    """Tests build tiny configs with RunConfig(...): the recipe fills what they leave out, the
    widths they give win."""
    assert RunConfig(method="byol").to_dict() == RunConfig.from_dict({"method": "byol"}).to_dict()
    tiny = RunConfig(method="byol", proj_hidden=32, proj_dim=16, pred_hidden=8)
    assert (tiny.proj_hidden, tiny.proj_dim, tiny.pred_hidden, tiny.optimizer) == (32, 16, 8, "lars")
    assert tiny.given == {"proj_hidden", "proj_dim", "pred_hidden"}
    assert RunConfig(recipe="generic", lr=0.1).run_id != RunConfig(recipe="solo-learn", lr=0.1).run_id


def test_channels_last_is_an_execution_field():
    assert RunConfig(channels_last=False).run_id == RunConfig(channels_last=True).run_id == RunConfig().run_id
    with pytest.raises(ConfigError, match="'channels_last'"):
        RunConfig.from_dict({"channels_last": "yes"})


def test_a_named_policy_follows_the_dataset_stats_and_image_size_and_keeps_its_name():
    from augbench.augment.sizing import DATASET_STATS

    c10 = RunConfig(policy="no_crop")
    nette = RunConfig(policy="no_crop", dataset="imagenette32")
    assert c10.policy_obj().params("normalize")["mean"] == tuple(DATASET_STATS["cifar10"][0])
    assert nette.policy_obj().params("normalize")["mean"] == tuple(DATASET_STATS["imagenette32"][0])
    assert nette.policy_name == "no_crop" and nette.run_id != c10.run_id
    big = RunConfig(policy="full", image_size=48)
    assert big.policy_obj().output_size == (48, 48) and big.policy_name == "full"
    assert big.policy_obj().params("gaussian_blur")["kernel_size"] == 5  # SimCLR's ~10 % of the side, odd


def test_a_generated_policy_adapts_like_the_named_policy_it_comes_from():
    """Sweep generators derive their policies from the registry's 32 px CIFAR-10 ones: a sweep adapts
    them to each run's image_size and data set as a named policy is, keeping their name."""
    from augbench.sweeps import expand, sweep_from_dict

    gen = {"strength": "mask_ratio", "base": "mask_instead_of_crop", "values": [0.5]}
    for kw in ({"dataset": "imagenette32", "image_size": 24}, {"image_size": 48}, {"dataset": "imagenette32"}, {}):
        (c,) = expand(sweep_from_dict({"name": "t", "base": {"epochs": 1, **kw}, "axes": {"policy": [gen]}}))
        named = RunConfig(policy="mask_instead_of_crop", **kw).policy_obj()
        assert c.policy_obj().ops == named.ops and c.policy_name == "mask_instead_of_crop-mask_ratio=0.5", kw
        # the recorded spec is the adapted one, and it hashes as the run did (rows verify retrains from it)
        assert RunConfig(policy=c.to_dict()["policy"], epochs=1, **kw).run_id == c.run_id


def test_a_mapping_keeps_the_size_and_statistics_it_sets_itself():
    spec = {"name": "mine", "ops": [{"op": "resize", "size": 16},
                                    {"op": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}]}
    pol = RunConfig(policy=spec, dataset="imagenette32", image_size=24).policy_obj()
    assert pol.output_size == (16, 16) and pol.params("normalize")["mean"] == (0.5, 0.5, 0.5)
