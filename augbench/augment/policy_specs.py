"""Policy axis entries of a sweep file -> policy names or policy dicts: named policies, inline
policies (`{name: x, ops: [...]}`) and the generators of augbench.augment.policy:
`{leave_one_out: full}`, `{pairwise: full}`, `{only: [[crop], [crop, color]], base: full}`,
`{strength: mask_ratio, base: X, values: [...]}`, `{rand_augment: full, n: [1, 2], m: [5, 9]}` (the
grid of n and m; optional `ops`), `{trivial_augment: full}` (optional `ops`)."""
from __future__ import annotations

from typing import Any

from augbench.errors import UserError

POLICY_GENERATORS = ("leave_one_out", "only", "pairwise", "strength", "rand_augment", "trivial_augment")


class PolicySpecError(UserError):
    """A bad policy entry; the message names where it is (file and axis index)."""


def expand_policies(items: list[Any], where: str, start: int = 0) -> list[Any]:
    """Policy axis entries -> policy names or dicts. Generators come from augbench.augment.policy.
    `start`: the index of the first entry, for error messages."""
    from augbench.augment import policy as P

    out: list[Any] = []
    for i, item in enumerate(items, start):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            try:
                P.Policy.named(item)  # fail now, naming the file and entry, if unknown
            except UserError as e:
                raise PolicySpecError(f"{at}: {e}") from None
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise PolicySpecError(f"{at}: expected a policy name, a policy mapping or a generator, got {item!r}")
        if "ops" in item:
            out.append(P.Policy.from_dict(item, source=at).to_dict())
            continue
        gen = [k for k in POLICY_GENERATORS if k in item]
        if len(gen) != 1:
            raise PolicySpecError(f"{at}: expected exactly one generator of {list(POLICY_GENERATORS)}, got keys {sorted(item)}")
        g = gen[0]
        allowed = ({g, "n", "m", "ops"} if g == "rand_augment" else {g, "ops"} if g == "trivial_augment"
                   else {g, "base", "values", "groups"})
        if set(item) - allowed:
            raise PolicySpecError(f"{at}: unknown key(s) {sorted(set(item) - allowed)} for generator {g!r}")
        try:
            if g == "leave_one_out":
                pols = P.leave_one_out(P.Policy.named(item[g]), item.get("groups"))
            elif g == "pairwise":
                pols = P.pairwise(P.Policy.named(item[g]), *([item["groups"]] if "groups" in item else []))
            elif g == "rand_augment":
                ns, ms = (v if isinstance(v, list) else [v] for v in (item.get("n", 2), item.get("m", 9)))
                pols = [P.rand_augment(P.Policy.named(item[g]), n, m, item.get("ops")) for n in ns for m in ms]
            elif g == "trivial_augment":
                pols = [P.trivial_augment(P.Policy.named(item[g]), item.get("ops"))]
            elif g == "only":
                groups = item[g]
                if not isinstance(groups, list) or not all(isinstance(x, list) and x for x in groups):
                    raise PolicySpecError(f"{at}.only: expected a list of group lists such as [[crop], [crop, color]]")
                base = P.Policy.named(item.get("base", "full"))
                pols = [P.only(base, gs) for gs in groups]
            else:  # strength
                values = item.get("values")
                if not isinstance(values, list) or not values:
                    raise PolicySpecError(f"{at}.values: a strength sweep needs a non-empty list of values")
                pols = P.strength_sweep(P.Policy.named(item.get("base", "full")), item[g], values)
        except (TypeError, ValueError, KeyError) as e:
            if isinstance(e, PolicySpecError):
                raise
            if isinstance(e, UserError):
                raise PolicySpecError(f"{at}: {e}") from None
            raise PolicySpecError(f"{at}: bad {g} generator: {e!r}") from None
        out.extend(p.to_dict() for p in pols)
    return out
