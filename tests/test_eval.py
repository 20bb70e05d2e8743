"""Evaluation protocols on synthetic features whose right answer is known."""
import torch

from augbench.augment.policy import Policy
from augbench.evaluate import extract, knn_predict, knn_top1, linear_probe, normalization, prepare


def test_knn_on_one_hot_label_features_is_perfect():
    g = torch.Generator().manual_seed(0)
    ytr, yte = torch.randint(0, 10, (500,), generator=g), torch.randint(0, 10, (200,), generator=g)
    eye = torch.eye(10)
    assert knn_top1(eye[ytr], ytr, eye[yte], yte, num_classes=10, k=20, t=0.1) == 100.0


def test_knn_weighted_vote_prefers_close_neighbours():
    # two far neighbours of class 1 outvote nothing: one near neighbour of class 0 has weight e^(1/t)
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-0.1, 1.0]])
    y = torch.tensor([0, 1, 1])
    pred = knn_predict(train, y, torch.tensor([[1.0, 0.05]]), num_classes=2, k=3, t=0.1)
    assert pred.tolist() == [0]
    # with a huge temperature the vote is a plain majority
    assert knn_predict(train, y, torch.tensor([[1.0, 0.05]]), num_classes=2, k=3, t=1e6).tolist() == [1]


def test_knn_on_random_features_is_near_chance():
    g = torch.Generator().manual_seed(1)
    ytr, yte = torch.randint(0, 10, (2000,), generator=g), torch.randint(0, 10, (1000,), generator=g)
    acc = knn_top1(torch.randn(2000, 32, generator=g), ytr, torch.randn(1000, 32, generator=g), yte, 10)
    assert acc < 20.0


def test_linear_probe_learns_a_separable_problem_and_is_deterministic():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 3
    ytr, yte = torch.randint(0, 5, (600,), generator=g), torch.randint(0, 5, (300,), generator=g)
    xtr = centres[ytr] + torch.randn(600, 16, generator=g)
    xte = centres[yte] + torch.randn(300, 16, generator=g)
    acc = linear_probe(xtr, ytr, xte, yte, num_classes=5, epochs=10, lr=0.1, seed=0)
    assert acc > 95.0
    assert acc == linear_probe(xtr, ytr, xte, yte, num_classes=5, epochs=10, lr=0.1, seed=0)
    # labels unrelated to the features: no better than chance (the probe cannot cheat on test)
    shuffled = yte[torch.randperm(300, generator=g)]
    assert linear_probe(xtr, ytr, xte, shuffled, num_classes=5, epochs=10, lr=0.1, seed=0) < 40.0


def test_features_use_the_policy_normalisation_and_view_size():
    pol = Policy.from_dict({"name": "p", "ops": [{"op": "resize", "size": 16},
                                                  {"op": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}]})
    norm = normalization(pol)
    x = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    y = prepare(x, norm, (16, 16))
    assert y.shape == (2, 3, 16, 16) and torch.allclose(y, torch.ones_like(y))
    assert normalization(Policy.from_dict({"name": "q", "ops": [{"op": "resize", "size": 32}]})) is None
    feats = extract(lambda t: t.flatten(1)[:, :4], x, torch.device("cpu"), norm, (16, 16), batch=1)
    assert feats.shape == (2, 4) and torch.allclose(feats, torch.ones(2, 4))
