"""Training recipes as data (augbench/recipes.yaml): per recipe and method, published values of the
RunConfig fields a recipe sets, each with its source (repo, file, commit, key).

RunConfig fills those fields from ``values_for`` unless they are given; ``augbench recipes`` lists
the recipes with their sources.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from augbench.errors import UserError, read_yaml

RECIPES_FILE = Path(__file__).with_name("recipes.yaml")
DEFAULT = "solo-learn"
SOURCE_KEYS = ("repo", "file", "commit", "key")
# What the fields marked R were before recipes (lightly-style SGD; one head shape for every method):
# the "generic" recipe, and what a recipe that omits a field leaves there. Its keys are the fields a recipe
# sets (the RunConfig fields marked R: config.RECIPE_FIELDS, checked equal there).
GENERIC: dict[str, Any] = dict(
    proj_depth=2, proj_hidden=2048, proj_dim=128, proj_norm="bn", proj_out_norm=None, pred_hidden=512, pred_lr_mult=1.0, tau_base=0.99, temperature=0.5,
    vicreg_weights=(25.0, 25.0, 1.0), barlow_lambda=0.005, barlow_scale=1.0, optimizer="sgd", lr=0.06,
    lr_scaling="linear", weight_decay=5e-4, exclude_bias_norm=False, lars_eta=0.001, lars_clip=False,
    warmup_epochs=0)


class RecipeError(UserError):
    """A bad recipe file or an unknown recipe; the message names the recipe, method and field."""


@functools.lru_cache(maxsize=None)
def load(path: str | Path = RECIPES_FILE) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """recipe -> method -> field -> {value, repo, file, commit, key[, note, max_fraction]}, with
    `common` values and file/commit defaults resolved, and every entry checked."""
    data = read_yaml(path, "recipes file", RecipeError)
    if not isinstance(data, dict) or not isinstance(data.get("recipes"), dict):
        raise RecipeError(f"{path}: expected a mapping with a 'recipes' mapping")
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for name, rec in data["recipes"].items():
        if not isinstance(rec, dict) or not isinstance(rec.get("methods"), dict):
            raise RecipeError(f"{path}: recipes.{name}: expected a mapping with 'methods' (and optional 'common')")
        base = rec.get("base")  # a recipe that changes a few values of an earlier one
        if base is not None and base not in out:
            raise RecipeError(f"{path}: recipes.{name}.base: {base!r} is not a recipe defined above it")
        common = rec.get("common") or {}
        where = {k: common[k] for k in ("repo", "file", "commit") if k in common}
        out[name] = {}
        for method, spec in rec["methods"].items():
            spec = spec or {}
            at = {**where, **{k: spec[k] for k in ("file", "commit") if k in spec}}
            if base is not None and method not in out[base]:
                raise RecipeError(f"{path}: recipes.{name}.{method}: the base recipe {base!r} has no {method}")
            entries = dict(out[base][method]) if base is not None else {}
            for block, vals in (("common", common.get("values") or {}), (method, spec.get("values") or {})):
                for field, v in vals.items():
                    loc = f"{path}: recipes.{name}.{block}.{field}"
                    if field not in GENERIC:
                        raise RecipeError(f"{loc}: not a field a recipe sets ({sorted(GENERIC)})")
                    if not isinstance(v, dict) or "value" not in v:
                        raise RecipeError(f"{loc}: expected {{value: ..., key: ...}}")
                    e = {**at, **v} if block == method else {**where, **v}
                    missing = [k for k in SOURCE_KEYS if not e.get(k)]
                    if missing:
                        raise RecipeError(f"{loc}: its source lacks {missing}")
                    entries[field] = e
            out[name][method] = entries
    return out


def names() -> list[str]:
    return list(load())


def description(recipe: str) -> str:
    return read_yaml(RECIPES_FILE, "recipes file", RecipeError)["recipes"][recipe].get("description", "")


def check(recipe: Any, method: str, error: type[UserError] = RecipeError, where: str = "recipe") -> None:
    """Raise `error` unless `recipe` is known and has an entry for `method`."""
    recs = load()
    if not isinstance(recipe, str) or recipe not in recs:
        raise error(f"{where} must be one of {list(recs)} (got {recipe!r})")
    if method not in recs[recipe]:
        has = [r for r in recs if method in recs[r]]
        raise error(f"{where}: recipe {recipe!r} has no values for method {method!r}; recipes for {method}: {has}")


def values_for(recipe: Any, method: Any, epochs: Any) -> dict[str, Any]:
    """The recipe's concrete values for this method and run length ({} for an unknown recipe or
    method: RunConfig.validate reports those). A value with `max_fraction` is capped at that
    fraction of the run's epochs (the warm-up)."""
    entries = load().get(recipe, {}).get(method, {}) if isinstance(recipe, str) and isinstance(method, str) else {}
    out = {}
    for field, e in entries.items():
        v = e["value"]
        if "max_fraction" in e and isinstance(epochs, int) and not isinstance(epochs, bool):
            v = min(v, int(epochs * e["max_fraction"]))
        out[field] = tuple(v) if isinstance(v, list) else v
    return out


# ---------------------------------------------------------------------- `augbench recipes`
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one recipe (default: all)")
    p.add_argument("--method", help="only this method")


def main(args: argparse.Namespace) -> int:
    recs = load()
    methods = list(dict.fromkeys(m for rec in recs.values() for m in rec))  # every method some recipe has
    if args.name is not None and args.name not in recs:
        raise RecipeError(f"unknown recipe {args.name!r}; recipes: {list(recs)}")
    if args.method is not None and args.method not in methods:
        raise RecipeError(f"unknown method {args.method!r}; methods: {methods}")
    for name in [args.name] if args.name else recs:
        print(f"{name}: {description(name)}" + (" (default)" if name == DEFAULT else ""))
        for method, entries in recs[name].items():
            if args.method and method != args.method:
                continue
            print(f"  {method}:")
            for field, e in entries.items():
                note = f"  [{e['note']}]" if e.get("note") else ""
                cap = f" (at most {e['max_fraction']:g} x epochs)" if "max_fraction" in e else ""
                print(f"    {field} = {e['value']}{cap}    {e['repo']}@{e['commit'][:10]} {e['file']}: {e['key']}{note}")
            rest = sorted(set(GENERIC) - set(entries))
            if rest:
                print("    generic (recipes.GENERIC): " + ", ".join(f"{f}={GENERIC[f]}" for f in rest))
    return 0
