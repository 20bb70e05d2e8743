"""Augmentation backends: `fused` (the fast path), `kornia` (the reference), `albu` (per image, CPU)."""
