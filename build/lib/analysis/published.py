"""Published figures to compare against, copied from /work/shared/reference/published.md with their
sources (analysis/published.csv). `memory` = yes marks figures not read from the primary text.
These are references only: never written into result rows or shown as measured."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

CSV = Path(__file__).with_name("published.csv")

# Statements (not numbers) from the papers, for the report's claims.
CLAIMS = {
    "crop": [("SimCLR, arXiv 2002.05709 §3 / Fig. 5 (primary text)",
              "no single transformation suffices; crop + colour stands out")],
    "mask": [("MAE, arXiv 2111.06377", "75 % masking is best for ViT; linear probe 54.6 vs 73.5 across ratios (ViT-L)"),
             ("Masked Siamese ConvNets, arXiv 2206.07700",
              "masking with ConvNets creates artificial edges; masked siamese networks practically only work well with ViTs")],
    "projector": [("SimCLR, arXiv 2002.05709 §4.2 (primary)",
                   "the layer before the head beats its output by >10 points; non-linear head beats linear by ~3, no head by >10"),
                  ("Cookbook of SSL, arXiv 2304.12210 §3.2", "at 100 epochs a projector adds about 20 points (SimCLR ~50 -> 68)")],
    "momentum": [("BYOL, arXiv 2006.07733 Table 5a", "target decay tau 0 collapses (0.3 %), tau 0.99 best (72.5 %)")],
}


@lru_cache(maxsize=1)
def load() -> pd.DataFrame:
    df = pd.read_csv(CSV, dtype={"policy": "string"})
    df["memory"] = df["memory"].eq("yes")
    return df


def removal_drops(source_prefix: str, method: str) -> dict[str, float]:
    """Published drop (baseline - ablation, points) per our policy name, for one source and method."""
    df = load()
    d = df[df["source"].str.startswith(source_prefix) & (df["method"] == method) & df["policy"].notna()]
    base = d[d["policy"] == "full"]["value"]
    if base.empty:
        return {}
    b = float(base.iloc[0])
    return {p: round(b - float(v), 2) for p, v in zip(d["policy"], d["value"]) if p != "full"}


def removal_sources() -> list[tuple[str, str, str]]:
    """(source prefix, method, description) pairs with a removal table we can rank against."""
    out = []
    for m in ("byol", "simclr"):
        out.append(("BYOL", m, f"BYOL Table 17 ({m}, ImageNet linear, 300 ep)"))
    for m in ("simclr", "barlow", "simsiam", "moco"):
        out.append(("MIFA-Lab", m, f"MIFA-Lab CIFAR-10 cumulative removal ({m}, kNN, 800 ep)"))
    return out


def full_policy_accuracy(method: str) -> pd.DataFrame:
    df = load()
    return df[(df["table"] == "CIFAR-10 full policy") & (df["method"] == method)]
