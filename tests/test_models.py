"""Backbones and heads: shapes, the CIFAR stem, and ViT token dropping."""
import pytest
import torch

from augbench.config import RunConfig
from augbench.errors import UserError
from augbench.models import MLP, build_backbone, resnet18, resnet50, vit


pytestmark = pytest.mark.usefixtures("one_thread")

torch.manual_seed(0)


@pytest.mark.parametrize("name,width,expect", [("resnet18", 8, 64), ("resnet50", 4, 128)])
def test_resnet_feature_shapes(name, width, expect):
    net = build_backbone(RunConfig(backbone=name, width=width))
    assert net.feat_dim == expect
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, expect)


@pytest.mark.parametrize("cifar_stem,side", [(True, 32), (False, 8)])
def test_cifar_stem_keeps_resolution_into_layer1(cifar_stem, side):
    net = resnet18(width=4, cifar_stem=cifar_stem)
    seen = {}
    net.layer1.register_forward_hook(lambda m, inp, out: seen.update(shape=tuple(inp[0].shape)))
    net(torch.randn(2, 3, 32, 32))
    assert seen["shape"] == (2, 4, side, side)


def test_resnet_refuses_token_masks():
    with pytest.raises(UserError, match="mask_mode='pixel'"):
        resnet50(width=2)(torch.randn(2, 3, 32, 32), keep_idx=torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("name,dim,depth", [("vit_nano", 96, 6), ("vit_micro", 128, 6), ("vit_tiny", 192, 12),
                                            ("vit_small", 384, 12)])
def test_vit_feature_shapes(name, dim, depth):
    net = build_backbone(RunConfig(backbone=name, patch_size=8), depth=1)
    assert net.feat_dim == dim and net.grid == 4
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, dim)
    assert dim // net.blocks[0].attn.heads in (32, 64)  # head width: 64 for the published sizes
    assert len(build_backbone(RunConfig(backbone=name), embed_dim=16, num_heads=2).blocks) == depth


def test_vit_cpu_bf16_attention_matches_sdpa():
    """Under CPU autocast the attention is two matmuls (faster than SDPA's bf16 kernel at a few dozen
    tokens). Against fp32 SDPA it must be as close, forward and backward, as SDPA's own bf16 kernel."""
    torch.manual_seed(0)
    attn = vit("vit_nano", image_size=24, depth=1).blocks[0].attn
    torch.nn.init.normal_(attn.qkv.weight, std=0.3)  # peaked attention: a wrong scale or axis would show
    x = torch.randn(4, 37, 96)

    def sdpa(xi):
        q, k, v = attn.qkv(xi).view(4, 37, 3, 3, 32).permute(2, 0, 3, 1, 4)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return attn.proj(out.transpose(1, 2).reshape(4, 37, 96))

    def run(fn, bf16):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = fn(xi).float()
        out.square().sum().backward()
        return out.detach(), xi.grad

    ref_out, ref_grad = run(sdpa, False)
    fast_out, fast_grad = run(attn, True)
    slow_out, slow_grad = run(sdpa, True)
    assert ref_out.abs().max() > 1  # not a trivially small output
    for fast, slow, ref in ((fast_out, slow_out, ref_out), (fast_grad, slow_grad, ref_grad)):
        assert (fast - ref).abs().max() <= 2 * (slow - ref).abs().max()


def tiny_vit(pool="cls"):
    torch.manual_seed(0)
    return vit("vit_tiny", patch_size=8, embed_dim=32, depth=2, num_heads=2, pool=pool).eval()


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_ignores_dropped_tokens(pool):
    net = tiny_vit(pool)
    x = torch.rand(2, 3, 32, 32)
    keep = torch.tensor([[0, 5, 6, 15], [1, 2, 9, 12]])  # 4 of the 16 patches (4x4 grid), row-major
    out = net(x, keep_idx=keep)
    assert out.shape == (2, 32)
    # Change every pixel of the dropped patches: features must not move.
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[torch.arange(2)[:, None], keep] = False
    pix = mask.view(2, 1, 4, 1, 4, 1).expand(2, 3, 4, 8, 4, 8).reshape(2, 3, 32, 32)
    x2 = torch.where(pix, torch.rand_like(x), x)
    assert torch.allclose(net(x2, keep_idx=keep), out, atol=1e-6)
    # ... while changing a kept patch does, and so does running on all tokens.
    x3 = x.clone()
    x3[0, :, 8:16, 8:16] = 1 - x3[0, :, 8:16, 8:16]  # patch 5 of sample 0 (kept)
    assert not torch.allclose(net(x3, keep_idx=keep)[0], out[0], atol=1e-4)
    assert not torch.allclose(net(x2), net(x), atol=1e-4)


def test_vit_keep_all_equals_no_mask():
    net = tiny_vit()
    x = torch.rand(3, 3, 32, 32)
    keep = torch.arange(16).expand(3, 16)
    assert torch.allclose(net(x, keep_idx=keep), net(x), atol=1e-5)


def test_vit_bad_keep_idx():
    net = tiny_vit()
    with pytest.raises(UserError, match="outside"):
        net(torch.rand(1, 3, 32, 32), keep_idx=torch.tensor([[16]]))
    with pytest.raises(UserError, match="B=2"):
        net(torch.rand(2, 3, 32, 32), keep_idx=torch.tensor([[1, 2]]))


def test_vit_other_input_size_interpolates_positions():
    net = tiny_vit()
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 32)
    with pytest.raises(UserError, match="patch_size"):
        net(torch.rand(2, 3, 20, 20))


@pytest.mark.parametrize("depth,linears", [(0, 0), (1, 1), (2, 2), (3, 3)])
def test_mlp_depths(depth, linears):
    head = MLP(16, 32, 8, depth)
    x = torch.randn(4, 16)
    out = head(x)
    assert sum(isinstance(m, torch.nn.Linear) for m in head) == linears
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head) == max(depth - 1, 0)
    assert out.shape == (4, head.out_dim) and head.out_dim == (8 if depth else 16)
    if depth == 0:
        assert torch.equal(out, x)


@pytest.mark.parametrize("method,recipe,norms", [
    # (BatchNorm1d layers between the projector's linears, the last one's affine) as the recipes cite
    ("simclr", "solo-learn", (0, None)),  # solo-learn's Linear-ReLU-Linear
    ("simclr", "lightly", (0, None)),  # lightly's SimCLRProjectionHead at the cited commit
    ("byol", "solo-learn", (1, None)),
    ("vicreg", "solo-learn", (2, None)),
    ("simsiam", "solo-learn", (3, False)),  # ends in BatchNorm1d(affine=False)
    ("simsiam", "lightly", (2, True)),  # ProjectionHead([... (2048, 2048, BN)]): affine
    ("simclr", "generic", (1, None)),  # augbench's values before recipes: BN between layers
])
def test_projector_norms_follow_the_recipe(method, recipe, norms):
    from augbench.config import RunConfig
    from augbench.methods import build_method
    from augbench.models import resnet18

    cfg = RunConfig(method=method, recipe=recipe, width=4)
    proj = build_method(cfg, resnet18(4)).projector
    bns = [m for m in proj if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == norms[0]
    last = proj[-1]
    assert isinstance(last, torch.nn.BatchNorm1d) == (norms[1] is not None)
    if norms[1] is not None:
        assert last.affine is norms[1]
    layers = list(proj) + [None]  # a linear followed by a BatchNorm has no bias
    for lin, nxt in zip(layers, layers[1:]):
        if isinstance(lin, torch.nn.Linear):
            assert (lin.bias is None) == isinstance(nxt, torch.nn.BatchNorm1d)
    row = cfg.to_dict()  # recorded in the row's config
    assert row["proj_norm"] == cfg.proj_norm and "proj_out_norm" in row
