"""The last thing gpu_checks.sh prints: each step's exit status and seconds, then the measured figures
against issue 9's bars (H200). Also writes them to OUT/summary.json. Any missing file is reported as
missing, never fatal.  Usage: python3 gpu_summary.py STEPS.tsv OUT_DIR"""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _case(bench, method: str, aug: bool, eager: bool):
    for c in (bench or {}).get("cases", []):
        if c["method"] == method and c["aug"] == aug and (c["mode"] == "eager") == eager and "epoch_s" in c:
            return c
    return None


def figures(out: Path) -> list[tuple[str, float | None, str]]:
    """(what, value, bar) rows; value None = not measured (step failed, cut or skipped)."""
    rows: list[tuple[str, float | None, str]] = []
    aug = _load(out / "bench-aug-gpu.json")
    for case in ("32px_b512", "224px_b256"):
        c = ((aug or {}).get("cases") or {}).get(case) or {}
        v = (c.get("views_per_s") or {}).get("fused")
        rows.append((f"engine fused views/s {case}", v, ">= 2e6" if case.startswith("32") else ">= 3e5"))
    bench = _load(out / "bench-train-gpu.json")
    for method, bar in (("simclr", "<= 1.2"), ("byol", "<= 1.8")):
        best = [c["epoch_s"] for c in (_case(bench, method, True, False), _case(bench, method, True, True)) if c]
        rows.append((f"{method} epoch s, with aug (best mode)", min(best) if best else None, bar))
    for eager in (False, True):
        a, b = _case(bench, "simclr", True, eager), _case(bench, "simclr", False, eager)
        rows.append((f"simclr with/without aug ({'eager' if eager else 'compiled'})",
                     a["epoch_s"] / b["epoch_s"] if a and b else None, "<= 1.1"))
    ev = [c["eval_s"] for c in (bench or {}).get("cases", []) if "eval_s" in c]
    rows.append(("evaluation s (max over methods)", max(ev) if ev else None, "<= 3"))
    try:
        with tarfile.open(out / "runs.tar") as t:
            row = next(json.load(t.extractfile(m)) for m in t.getmembers()
                       if m.name.startswith("runs/") and m.name.endswith(".json"))
        tm = row.get("timings", {})
        rows += [("SimCLR run: status done", 1.0 if row.get("status") == "done" else 0.0, "== 1"),
                 ("SimCLR run: epoch s", tm.get("epoch_s"), "<= 1.2"), ("SimCLR run: eval s", tm.get("eval_s"), "<= 3"),
                 ("SimCLR run: kNN top-1", row.get("metrics", {}).get("knn_top1"), "(5 epochs)")]
    except (OSError, StopIteration, tarfile.TarError, ValueError, KeyError):
        rows.append(("SimCLR run", None, "row in runs.tar"))
    return rows


def main(steps_tsv: str, out_dir: str) -> int:
    out = Path(out_dir)
    steps = [line.split("\t") for line in Path(steps_tsv).read_text().splitlines() if line.strip()]
    print(f"{'step':40s} {'rc':>7s} {'seconds':>8s}")
    for name, rc, secs in steps:
        print(f"{name:40s} {rc:>7s} {secs:>8s}" + ("  CUT (time limit)" if rc in ("124", "137") else ""))
    rows = figures(out)
    print(f"\n{'figure':44s} {'value':>12s}  bar")
    for what, v, bar in rows:
        print(f"{what:44s} {('%.4g' % v) if v is not None else 'unmeasured':>12s}  {bar}")
    summary = {"steps": [{"name": n, "rc": r, "seconds": int(s)} for n, r, s in steps],
               "figures": [{"what": w, "value": v, "bar": b} for w, v, b in rows]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
