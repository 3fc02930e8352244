"""Mean +- std over seeds of benchmark rows CSVs (one CSV per seed, same models), as a Markdown table, and the
gap between two rows in units of their pooled seed standard deviation.

    .venv/bin/python scripts/seed_table.py results/lm-ablation/metr-la-ust-sllm-lm-epochs-seed*.csv \
        --compare ust-sllm,ust-sllm-random
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

COLUMNS = ["mae@3", "mae@6", "mae@12", "mae", "rmse"]


def _passes(rows) -> str:
    """Training windows seen / training windows, per seed (rows written before the column existed: '-')."""
    if "passes" not in rows or rows["passes"].isna().all():
        return "-"
    return " / ".join(f"{v:.2f}" for v in rows["passes"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--compare", default=None, help="A,B: how far A is below B, in seed standard deviations")
    args = ap.parse_args()
    frames = [pd.read_csv(p).assign(run=p) for p in args.csv]
    df = pd.concat(frames)
    g = df.groupby("model", sort=False)
    print(f"{len(frames)} runs: {', '.join(args.csv)}\n")
    print("| model | seeds | " + " | ".join(COLUMNS) + " | epochs | passes | train s |")
    print("|---|---|" + "---|" * (len(COLUMNS) + 3))
    for model, rows in g:
        cells = [f"{rows[c].mean():.3f} +- {rows[c].std(ddof=1):.3f}" if len(rows) > 1 else f"{rows[c].mean():.3f}"
                 for c in COLUMNS]
        print(f"| {model} | {len(rows)} | " + " | ".join(cells) +
              f" | {rows['epochs'].mean():.1f} | {_passes(rows)} | {rows['train_s'].mean():.0f} |")
    if args.compare:
        a, b = args.compare.split(",")
        ra, rb = g.get_group(a)["mae"], g.get_group(b)["mae"]
        sd = ((ra.var(ddof=1) + rb.var(ddof=1)) / 2) ** 0.5
        gap = rb.mean() - ra.mean()
        print(f"\n{a} vs {b}: pooled MAE {ra.mean():.4f} vs {rb.mean():.4f}; {a} lower by {gap:.4f} "
              f"= {gap / sd:.2f} seed std (std {sd:.4f}; the issue's bar: > 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
