"""Mean +- std over seeds of benchmark rows CSVs (one CSV per seed, same models), as a Markdown table, and the
gap between two rows in units of their pooled seed standard deviation, with Welch's t-test p-value, and, where every
run kept its per-window errors (`<name>.windows/`), the paired test over the test windows (bench/paired.py).

    .venv/bin/python scripts/seed_table.py results/lm-ablation/metr-la-ust-sllm-lm-epochs-seed*.csv \
        --compare ust-sllm,ust-sllm-random [--compare a,b ...] [--reference stid]

`--reference M` adds each row's MAE as a multiple of M's (mean over seeds); the epochs, best-epoch (the epoch whose
weights were kept, where the rows record it) and train-hours columns are per seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["mae@3", "mae@6", "mae@12", "mae", "rmse"]


def _per_seed(rows, col: str, fmt: str) -> str:
    """One value per seed ('-' where a run did not record the column, e.g. rows written before it existed)."""
    if col not in rows or rows[col].isna().all():
        return "-"
    return " / ".join("-" if pd.isna(v) else format(v, fmt) for v in rows[col])


def welch(a, b) -> str:
    """Welch's two-sided t-test on the per-seed MAEs (unequal variances): the p-value a reader can cite, with its
    degrees of freedom; with 2-3 seeds a side it has little power, so a large p says "not shown", not "equal"."""
    from scipy import stats

    res = stats.ttest_ind(a, b, equal_var=False)
    if not np.isfinite(res.pvalue):
        return "Welch t-test undefined (no spread on either side)"
    return f"Welch t-test p = {res.pvalue:.3g} (t = {res.statistic:.2f}, df = {res.df:.1f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--compare", action="append", default=[],
                    help="A,B: how far A is below B, in seed standard deviations (repeatable)")
    ap.add_argument("--reference", default=None, help="a model: every row's MAE as a multiple of its MAE")
    args = ap.parse_args()
    bad = [c for c in args.compare if len(c.split(",")) != 2]
    if bad:
        print(f"stcast: error: --compare {bad[0]!r}: give two models as A,B", file=sys.stderr)
        return 2
    missing = [p for p in args.csv if not Path(p).is_file()]
    if missing:
        print(f"stcast: error: no such result CSV: {', '.join(missing)}", file=sys.stderr)
        return 2
    frames = [pd.read_csv(p).assign(run=p) for p in args.csv]
    df = pd.concat(frames)
    columns = [c for c in COLUMNS if c in df]  # imputation rows have no per-step columns
    steps = [int(c.split("@")[1]) for c in columns if c.startswith("mae@")]
    g = df.groupby("model", sort=False)
    print(f"{len(frames)} runs: {', '.join(args.csv)}\n")
    ref = None
    if args.reference:
        if args.reference not in g.groups:
            print(f"stcast: error: --reference {args.reference}: no such model in the CSVs", file=sys.stderr)
            return 2
        ref = g.get_group(args.reference)["mae"].mean()
    extra = [f"x {args.reference}"] if ref else []
    print("| model | seeds | " + " | ".join(columns + extra) + " | epochs | best epoch | passes | train h |")
    print("|---|---|" + "---|" * (len(columns) + len(extra) + 4))
    for model, rows in g:
        cells = [f"{rows[c].mean():.3f} +- {rows[c].std(ddof=1):.3f}" if len(rows) > 1 else f"{rows[c].mean():.3f}"
                 for c in columns]
        cells += [f"{rows['mae'].mean() / ref:.3f}"] if ref else []
        print(f"| {model} | {len(rows)} | " + " | ".join(cells) + f" | {_per_seed(rows, 'epochs', '.0f')} | "
              f"{_per_seed(rows, 'best_epoch', '.0f')} | {_per_seed(rows, 'passes', '.2f')} | "
              f"{_per_seed(rows.assign(hours=rows['train_s'] / 3600), 'hours', '.2f')} |")
    for pair in args.compare:
        a, b = pair.split(",")
        if a not in g.groups or b not in g.groups:
            print(f"\n{a} vs {b}: not both in the CSVs yet")
            continue
        ra, rb = g.get_group(a)["mae"], g.get_group(b)["mae"]
        gap = rb.mean() - ra.mean()
        line = f"\n{a} vs {b}: pooled MAE {ra.mean():.4f} vs {rb.mean():.4f}; {a} lower by {gap:.4f}"
        if min(len(ra), len(rb)) < 2:
            print(line + f" ({len(ra)} and {len(rb)} seeds: a seed spread needs >= 2 on each side)")
            print(paired(g.get_group(a), g.get_group(b), steps))
            continue
        sd = ((ra.var(ddof=1) + rb.var(ddof=1)) / 2) ** 0.5
        print(line + f" = {gap / sd:.2f} seed std (std {sd:.4f}; the issue's bar: > 2); {welch(ra, rb)}")
        print(paired(g.get_group(a), g.get_group(b), steps))
    return 0


def paired(rows_a, rows_b, steps=()) -> str:
    """The test-window view beside the seed view, where every run kept its per-window errors (bench/paired.py):
    pooled, then at each of the table's steps."""
    from stcast.bench.paired import load_window_errors, summary, window_errors_path

    files = [[window_errors_path(r["run"], r["dataset"], r["model"]) for _, r in rows.iterrows()]
             for rows in (rows_a, rows_b)]
    if not all(f.is_file() for side in files for f in side):
        return "  (paired over test windows: not every run kept its per-window errors)"
    return "\n".join("  " + x for x in summary(*[[load_window_errors(f) for f in side] for side in files], steps))

if __name__ == "__main__":
    sys.exit(main())
