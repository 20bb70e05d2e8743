"""Evaluation protocols on synthetic features whose right answer is known."""
import torch

from augbench.augment.policy import Policy
from augbench.eval.features import extract, normalization, prepare
from augbench.eval.knn import knn_predict, knn_top1
from augbench.eval.linear import linear_probe


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


def test_probe_makes_the_same_updates_as_torch_sgd_with_cosine():
    """The hand-written probe step (no autograd) against nn.Linear + torch.optim.SGD + CosineAnnealingLR."""
    from augbench.eval.linear import fit_linear

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(100, 6, generator=g), torch.randint(0, 3, (100,), generator=g)
    epochs, lr, batch, wd = 3, 0.5, 32, 1e-3  # 4 steps an epoch, the last one partial
    w = fit_linear(x, y, 3, epochs, lr, seed=7, batch=batch, weight_decay=wd)
    head = torch.nn.Linear(6, 3)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * 4)
    order = torch.Generator().manual_seed(7)
    for _ in range(epochs):
        perm = torch.randperm(100, generator=order)
        for i in range(0, 100, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    assert torch.allclose(w[:-1], head.weight.detach().T, atol=1e-5) and torch.allclose(w[-1], head.bias.detach(), atol=1e-5)


def test_encoder_features_are_one_pass_and_random_init_knn_is_cached(tmp_path):
    from augbench.config import RunConfig
    from augbench.data import load_dataset
    from augbench.eval.evaluate import random_init_knn
    from augbench.eval.features import encoder_features
    from augbench.methods import build_method
    from augbench.models import build_backbone

    cfg = RunConfig(width=4, proj_hidden=16, proj_dim=8, knn_k=5, subset=3, eval_subset=2)
    train = load_dataset("cifar10", split="train", subset=3, seed=0)
    test = load_dataset("cifar10", split="test", subset=2, seed=0)
    torch.manual_seed(cfg.seed)
    method = build_method(cfg, build_backbone(cfg))
    calls = []
    method.backbone.register_forward_hook(lambda *a: calls.append(1))
    cpu = torch.device("cpu")
    f, z = encoder_features(method, train.images, cpu, None, (32, 32), desc="t")
    assert len(calls) == 1 and f.shape == (30, method.backbone.feat_dim) and z.shape == (30, 8)
    assert torch.allclose(z, method.projector(f), atol=1e-5)  # projector outputs of the same features
    calls.clear()
    first = random_init_knn(cfg, method, train, test, cpu, norm=None, size=(32, 32), cache_dir=tmp_path)
    assert len(calls) == 2  # train and test features
    calls.clear()
    again = random_init_knn(cfg, method, train, test, cpu, norm=None, size=(32, 32), cache_dir=tmp_path)
    assert again == first and not calls  # read from the cache: no forward pass
    other = cfg.replace(seed=1)  # another init: another cache entry
    random_init_knn(other, method, train, test, cpu, norm=None, size=(32, 32), cache_dir=tmp_path)
    assert len(calls) == 2 and len(list((tmp_path / "random_init_knn").glob("*.json"))) == 2
