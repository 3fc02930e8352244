"""Benchmark runs of one table over several seeds (one CSV per seed or per part) as one curated CSV that
`stcast report` reads for docs/results.md: one row per model variant with the mean and std over the seeds run so
far, the table's name, setting, budget and source. The raw run CSVs stay where the runs wrote them (their own
directories, outside the report's glob).

    .venv/bin/python scripts/seed_rows.py                      # the converged METR-LA 10 % table (issue 28 §3a)
    .venv/bin/python scripts/seed_rows.py results/imputation/aqi36-peers*.csv --out results/aqi36/peers.csv \
        --table "the field's imputers, GRIN protocol" --setting imputation --budget "<= 30 epochs, <= 6 min" \
        --source "docs/benchmarks.md: The field's imputers on AQI-36" --published "grin=12.08 (GRIN paper)"

`--drop MODEL=PATH` leaves out one model's rows of one run: a row that a later run of changed code supersedes
(e.g. `--drop brits=results/imputation/aqi36-peers-converged.csv` when the fixed BRITS ran in another CSV).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import pandas as pd

CONVERGED = "few-shot 10 % trained to convergence (patience 5, at most 50 passes), 1 thread"
SOURCE = "docs/benchmarks.md: Full METR-LA 10 % few-shot, trained to convergence"
BACKBONE = {"random": "random", "no-lm": "removed", "no-backbone": "removed"}
SETTINGS = ("full", "few-shot", "zero-shot", "imputation")  # as stcast report reads them
MEANS = ("mae@3", "mae@6", "mae@12", "rmse", "passes", "epochs", "best_epoch", "train_s")


def variant(name: str) -> tuple[str, str, str]:
    """'ust-sllm-10%-random' -> ('ust-sllm (random)', 'ust-sllm', 'random'); plain rows keep their name."""
    base, _, tail = name.partition("-10%")
    kind = BACKBONE.get(tail.lstrip("-"), "")
    return (f"{base} ({kind})" if kind else base), (base if kind else ""), kind


def curate(df: pd.DataFrame, table: str, setting: str, budget: str, source: str) -> pd.DataFrame:
    rows = []
    for (dataset, name), g in df.groupby(["dataset", "model"], sort=False):
        model, method, backbone = variant(name)
        rows.append({"dataset": dataset, "table": table, "setting": setting, "model": model, "method": method,
                     "backbone": backbone, "mae": round(g["mae"].mean(), 4),
                     "mae_std": round(g["mae"].std(ddof=1), 4) if len(g) > 1 else None, "seeds": len(g),
                     **{c: round(g[c].mean(), 4) for c in MEANS if c in g and g[c].notna().all()},
                     "threads": 1, "budget": budget, "source": source})
    ablated = {(r["dataset"], r["method"]) for r in rows if r["method"]}
    for r in rows:  # the plain row of an ablated method is its pretrained row
        if not r["method"] and (r["dataset"], r["model"]) in ablated:
            r["method"], r["backbone"] = r["model"], "pretrained"
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="*", help="default: results/converged/metr-la-few-shot-converged{,-s[0-9]*}.csv")
    ap.add_argument("--out", default="results/metr-la/few-shot-converged.csv")
    ap.add_argument("--table", default=CONVERGED)
    ap.add_argument("--setting", default="few-shot", choices=SETTINGS)
    ap.add_argument("--budget", default="converged, val_stride 4")
    ap.add_argument("--source", default=SOURCE)
    ap.add_argument("--published", action="append", default=[], metavar="MODEL=TEXT",
                    help="the paper's figure for a model, with its source, shown beside ours (repeatable)")
    ap.add_argument("--drop", action="append", default=[], metavar="MODEL=PATH",
                    help="leave out MODEL's rows read from PATH (one of the CSVs; repeatable)")
    args = ap.parse_args()
    # the seed-0 run, its parts run under their own names (-gwnet: GWNet's row, run beside the main run), and the
    # seed runs (-s1, -s2, -s1-llm-ts-net, ...); not the side experiments (-cosine12) or the reruns (-windows)
    paths = args.csv or ["results/converged/metr-la-few-shot-converged.csv",
                         *glob.glob("results/converged/metr-la-few-shot-converged-gwnet.csv"),
                         *sorted(glob.glob("results/converged/metr-la-few-shot-converged-s[0-9]*.csv"))]
    missing = [p for p in paths if not Path(p).is_file()]
    if not paths or missing:
        print(f"stcast: error: no result CSV ({', '.join(missing) or 'none found'})", file=sys.stderr)
        return 2
    try:
        frames = [pd.read_csv(p) for p in paths]
    except (OSError, ValueError) as e:
        print(f"stcast: error: a result CSV could not be read ({e})", file=sys.stderr)
        return 2
    lacking = sorted({c for f in frames for c in ("dataset", "model", "mae") if c not in f})
    if lacking:
        print(f"stcast: error: the CSVs lack the column(s) {', '.join(lacking)} (stcast benchmark writes them)",
              file=sys.stderr)
        return 2
    for spec in args.drop:
        model, _, path = spec.partition("=")
        hits = [i for i, p in enumerate(paths) if Path(p).resolve() == Path(path).resolve()] if path else []
        if not model or not hits:
            print(f"stcast: error: --drop {spec!r}: takes MODEL=PATH with PATH one of the CSVs given", file=sys.stderr)
            return 2
        for i in hits:
            if not (frames[i]["model"] == model).any():
                print(f"stcast: error: --drop {spec!r}: {path} has no row of model {model!r}", file=sys.stderr)
                return 2
            frames[i] = frames[i][frames[i]["model"] != model]
    df = pd.concat(frames, ignore_index=True)
    for col in ("mae", *MEANS):
        if col in df:
            bad = df[col].notna() & pd.to_numeric(df[col], errors="coerce").isna()
            if bad.any():
                print(f"stcast: error: column {col}: {df[col][bad].iloc[0]!r} is not a number (model "
                      f"{df['model'][bad].iloc[0]})", file=sys.stderr)
                return 2
    published = dict(p.split("=", 1) for p in args.published if "=" in p)
    if len(published) != len(args.published):
        print(f"stcast: error: --published takes MODEL=TEXT (got {args.published})", file=sys.stderr)
        return 2
    out = curate(df, args.table, args.setting, args.budget, args.source)
    unknown = sorted(set(published) - set(out["model"]))
    if unknown:
        print(f"stcast: error: --published {', '.join(unknown)}: no such model in the CSVs", file=sys.stderr)
        return 2
    if published:
        out["published"] = out["model"].map(published)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, index=False)
    print(f"{len(out)} rows from {len(paths)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
