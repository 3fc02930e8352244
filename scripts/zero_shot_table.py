"""The zero-shot tables of docs/benchmarks.md (issue 31), from the rows in results/zero-shot/.

    .venv/bin/python scripts/zero_shot_table.py [--dir results/zero-shot] [--datasets los-loop,aqi36]

For each dataset, every CSV `zero-shot-<dataset>*.csv` is read (the anchors and old checkpoint, then each
checkpoint's rows; a file's suffix names the checkpoint) and one markdown table printed: row, lookback, MAE, MAE
as a multiple of last value's (same windows), CRPS and the 80 % interval's coverage where the row has them.
Rows of different files are comparable only when they scored the same test windows: the script refuses a
dataset whose files disagree on `test_windows`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def table(frames: list[tuple[str, pd.DataFrame]]) -> list[str]:
    windows = {int(w) for _, d in frames for w in d["test_windows"].dropna().unique()}
    if len(windows) > 1:
        raise SystemExit(f"stcast: error: the files score different test windows ({sorted(windows)}): not comparable")
    rows = pd.concat([d.assign(source=s) for s, d in frames], ignore_index=True)
    lv = rows.loc[rows["model"] == "last-value", "mae"]
    base = float(lv.iloc[0]) if len(lv) else float("nan")
    out = ["| row | file | lookback | mae | x last value | crps | coverage 80 % |", "|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        look = "protocol" if pd.isna(r.get("context_len")) else str(int(r["context_len"]))
        crps = "" if pd.isna(r.get("crps", float("nan"))) else f"{r['crps']:.3f}"
        cov = "" if pd.isna(r.get("coverage80", float("nan"))) else f"{100 * r['coverage80']:.1f} %"
        ratio = r["mae"] / base
        out.append(f"| {r['model']} | {r['source']} | {look} | {r['mae']:.3f} | {ratio:.3f} | {crps} | {cov} |")
    return [f"**{rows['dataset'].iloc[0]}** ({windows.pop() if windows else '?'} test windows)", ""] + out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="results/zero-shot")
    ap.add_argument("--datasets", default="los-loop,hangzhou-metro,aqi36,etth2,metr-la")
    args = ap.parse_args()
    root = Path(args.dir)
    if not root.is_dir():
        print(f"stcast: error: {root} is not a folder of zero-shot rows", file=sys.stderr)
        raise SystemExit(2)
    for ds in args.datasets.split(","):
        files = sorted(root.glob(f"zero-shot-{ds}*.csv"), key=lambda p: (len(p.stem), p.stem))
        files = [f for f in files if f.stem == f"zero-shot-{ds}" or f.stem[len(f"zero-shot-{ds}")] == "-"]
        if not files:
            print(f"(no rows for {ds} in {root})\n")
            continue
        frames = [(f.stem.removeprefix(f"zero-shot-{ds}").lstrip("-") or "anchors", pd.read_csv(f)) for f in files]
        print("\n".join(table(frames)) + "\n")


if __name__ == "__main__":
    main()
