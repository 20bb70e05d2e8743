"""Imagenette-32 by its short name (the second data set of the CPU protocol), with its own channel
statistics, on the real images under $AUGBENCH_DATA/imagenette32."""
import pytest
import torch

from augbench.augment.sizing import DATASET_STATS, channel_stats
from augbench.data import load_dataset
from augbench.data.errors import DataError


def test_imagenette32_loads_by_name_balanced():
    test = load_dataset("imagenette32", split="test", subset=350)
    assert len(test) == 3500 and test.num_classes == 10 and tuple(test.images.shape[1:]) == (3, 32, 32)
    assert torch.bincount(test.labels).tolist() == [350] * 10
    assert "tench" in test.classes and "parachute" in test.classes


def test_its_normalization_is_its_own():
    train = load_dataset("imagenette32", split="train")
    mean, std = channel_stats(train.images)
    assert mean == pytest.approx(DATASET_STATS["imagenette32"][0], abs=1e-4)
    assert std == pytest.approx(DATASET_STATS["imagenette32"][1], abs=1e-4)


def test_a_missing_folder_names_where_it_was_looked_for(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "imagenette32")):
        load_dataset("imagenette32", root=tmp_path)
