"""Vision Transformer (Dosovitskiy et al. 2021) with MAE/MSN-style token dropping.

With ``keep_idx`` (B, N_keep) the masked patches are removed after patch + position embedding, so
the encoder never sees them (and runs faster), as in MAE and MSN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from augbench.errors import UserError


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise UserError(f"ViT embed dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:  # CPU autocast (amp_cpu), any torch version
            # bf16 on the CPU: SDPA's fused kernel runs its backward ~7x slower than these two matmuls
            # at a few dozen tokens (docs/cpu-scale.md, the masking claim); softmax stays in fp32.
            att = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
            out = att.float().softmax(-1).to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image_size: int = 32, patch_size: int = 4, embed_dim: int = 192, depth: int = 12,
                 num_heads: int = 3, mlp_ratio: float = 4.0, pool: str = "cls"):
        super().__init__()
        if image_size % patch_size:
            raise UserError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if pool not in ("cls", "mean"):
            raise UserError(f"ViT pool must be 'cls' or 'mean' (got {pool!r})")
        self.patch_size, self.pool, self.feat_dim = patch_size, pool, embed_dim
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**2 + 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _patch_pos(self, gh: int, gw: int) -> torch.Tensor:
        """Patch position embeddings for a gh x gw grid (interpolated if it differs from training)."""
        pos = self.pos_embed[:, 1:]
        if (gh, gw) == (self.grid, self.grid):
            return pos
        pos = pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(gh, gw), mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)

    def forward(self, x: torch.Tensor, keep_idx: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        if h % self.patch_size or w % self.patch_size:
            raise UserError(f"ViT input {h}x{w} is not a multiple of patch_size {self.patch_size}")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, D), patches row-major
        tokens = tokens + self._patch_pos(h // self.patch_size, w // self.patch_size)
        if keep_idx is not None:
            n = tokens.shape[1]
            if keep_idx.dim() != 2 or keep_idx.shape[0] != b:
                raise UserError(f"keep_idx must be (B={b}, N_keep), got {tuple(keep_idx.shape)}")
            # Range check on CPU only: on a GPU it would sync every step (gather still fails loudly).
            if keep_idx.device.type == "cpu" and keep_idx.numel() and (keep_idx.min() < 0 or keep_idx.max() >= n):
                raise UserError(f"keep_idx holds patch indices outside [0, {n})")
            keep_idx = keep_idx.to(tokens.device, torch.long)
            tokens = torch.gather(tokens, 1, keep_idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        for blk in self.blocks:
            tokens = blk(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(1)


# (embed dim, depth, heads). vit_nano and vit_micro are this project's, not published sizes: ViTs small
# enough to train at the CPU scale (24 px views, patch 4: 36 tokens; docs/cpu-scale.md, the masking claim).
VIT_SIZES = {"vit_nano": (96, 6, 3), "vit_micro": (128, 6, 4), "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}


def vit(name: str, image_size: int = 32, patch_size: int = 4, **overrides) -> ViT:
    """A named ViT; ``overrides`` (embed_dim, depth, num_heads, ...) shrink it for tests."""
    dim, depth, heads = VIT_SIZES[name]
    kw = {"embed_dim": dim, "depth": depth, "num_heads": heads, **overrides}
    return ViT(image_size=image_size, patch_size=patch_size, **kw)
