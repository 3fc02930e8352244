"""The converged METR-LA 10 % rows (issue 28 §3a) as results/metr-la/few-shot-converged.csv, the layout
`stcast report` reads for docs/results.md: one row per model variant, mean and std over the seeds run so far.

    .venv/bin/python scripts/converged_csv.py [results/converged/metr-la-few-shot-converged*.csv] \
        [--out results/metr-la/few-shot-converged.csv]
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import pandas as pd

TABLE = "few-shot 10 % trained to convergence (patience 5, at most 50 passes), 1 thread"
SOURCE = "docs/benchmarks.md: Full METR-LA 10 % few-shot, trained to convergence"
BACKBONE = {"random": "random", "no-lm": "removed", "no-backbone": "removed"}


def variant(name: str) -> tuple[str, str, str]:
    """'ust-sllm-10%-random' -> ('ust-sllm (random)', 'ust-sllm', 'random'); plain rows keep their name."""
    base, _, tail = name.partition("-10%")
    kind = BACKBONE.get(tail.lstrip("-"), "")
    return (f"{base} ({kind})" if kind else base), (base if kind else ""), kind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="*")
    ap.add_argument("--out", default="results/metr-la/few-shot-converged.csv")
    args = ap.parse_args()
    paths = args.csv or sorted(glob.glob("results/converged/metr-la-few-shot-converged*.csv"))
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        print(f"stcast: error: no converged result CSV ({', '.join(missing) or 'none found'})", file=sys.stderr)
        return 2
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    rows = []
    for name, g in df.groupby("model", sort=False):
        model, method, backbone = variant(name)
        rows.append({"dataset": "metr-la", "table": TABLE, "setting": "few-shot", "model": model, "method": method,
                     "backbone": backbone, "mae": round(g["mae"].mean(), 4),
                     "mae_std": round(g["mae"].std(ddof=1), 4) if len(g) > 1 else None, "seeds": len(g),
                     **{c: round(g[c].mean(), 4) for c in ("mae@3", "mae@6", "mae@12", "rmse")},
                     "passes": round(g["passes"].mean(), 2), "epochs": round(g["epochs"].mean(), 1),
                     "train_s": round(g["train_s"].mean(), 1), "threads": 1,
                     "budget": "converged, val_stride 4", "source": SOURCE})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"{len(rows)} rows from {len(paths)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
