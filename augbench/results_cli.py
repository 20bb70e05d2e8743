"""`augbench collect`: result rows -> <results>/runs.csv."""
from __future__ import annotations

import argparse

from augbench.results import collect
from augbench.store import RunStore


def add_arguments(p) -> None:
    p.add_argument("--results", metavar="ROOT", default=None,
                   help="results root: reads ROOT/runs (default: $AUGBENCH_RESULTS or ./results)")
    p.add_argument("--runs", default=None, help=argparse.SUPPRESS)  # before --results meant the root: a rows folder
    p.add_argument("--csv", default=None, help="output CSV (default: ROOT/runs.csv)")


def main(args) -> int:
    store = RunStore.of_runs_dir(args.runs) if args.runs else RunStore.at(args.results)
    df = collect(store.runs, args.csv)
    if df.empty:
        print(f"no result rows under {store.runs}")
        return 0
    counts = df.groupby("status").size().to_dict()
    print(f"{len(df)} rows ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}) -> "
          f"{args.csv or store.runs.parent / 'runs.csv'}")
    return 0
