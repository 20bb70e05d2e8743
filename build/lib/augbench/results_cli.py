"""`augbench collect`: result rows -> results/runs.csv."""
from __future__ import annotations

from augbench.results import collect, runs_dir


def add_arguments(p) -> None:
    p.add_argument("--runs", default=None, help="folder of result rows (default: results/runs)")
    p.add_argument("--csv", default=None, help="output CSV (default: results/runs.csv)")


def main(args) -> int:
    df = collect(args.runs, args.csv)
    if df.empty:
        print(f"no result rows under {runs_dir(args.runs)}")
        return 0
    counts = df.groupby("status").size().to_dict()
    print(f"{len(df)} rows ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}) -> "
          f"{args.csv or runs_dir(args.runs).parent / 'runs.csv'}")
    return 0
