"""What reading a user's own table costs: wide and long CSV layouts, the real METR-LA values, many sensors.

    .venv/bin/python benchmarks/table_reading.py [--sensors 2070] [--steps 8640] [--before SRC]

Builds one table from the real full METR-LA speeds (its first `steps` steps; past 207 sensors the sensors are
repeated under new names, so the values stay real), writes it as a wide CSV (time + one column per sensor) and a
long CSV (time, node, value; rows shuffled, as exports from a database come), and times `load_user_table` on each,
in a fresh process per reading (the import is not timed). `--before SRC` also times the stcast package found in
SRC (another checkout's `src`, e.g. `git worktree add /tmp/before <commit>`), right before this one, on the same
files: the before- and after-figures come from one run. Checks both layouts read to the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from stcast.data.user_tables import load_user_table
t = time.perf_counter()
d = load_user_table(sys.argv[1], null_value=0)
s = time.perf_counter() - t
order = np.argsort(d.node_ids)
np.save(sys.argv[2], np.where(d.mask, d.values, np.nan)[:, order])
print(json.dumps({"seconds": s, "shape": list(d.values.shape)}))
"""


def _time(src: str, table: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, str(table), str(out)], env=env, capture_output=True,
                         text=True, check=False)
    if res.returncode:
        raise SystemExit(f"stcast: error: reading {table} with {src} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=2070)
    ap.add_argument("--steps", type=int, default=8640)
    ap.add_argument("--before", metavar="SRC", help="also time the stcast package in SRC (another checkout's src)")
    args = ap.parse_args()
    from stcast.data.registry import load_dataset

    here = str(Path(__file__).resolve().parents[1] / "src")
    metr = load_dataset("metr-la")
    steps = min(args.steps, metr.num_steps)
    base = metr.values[:steps, :, 0]
    reps = -(-args.sensors // base.shape[1])
    values = np.tile(base, (1, reps))[:, : args.sensors]
    names = [f"{i}_{metr.node_ids[i % base.shape[1]]}" for i in range(args.sensors)]
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, "time", pd.to_datetime(metr.timestamps[:steps]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame.to_csv(tmp / "wide.csv", index=False, float_format="%.4g")
        long = frame.melt(id_vars="time", var_name="node", value_name="value").sample(frac=1.0, random_state=0)
        long.to_csv(tmp / "long.csv", index=False, float_format="%.4g")
        print(f"metr-la speeds, {steps} steps x {args.sensors} sensors: wide CSV "
              f"{(tmp / 'wide.csv').stat().st_size / 2**20:.0f} MiB, long CSV {len(long):,} rows "
              f"{(tmp / 'long.csv').stat().st_size / 2**20:.0f} MiB (rows shuffled)")
        trees = ([("before", args.before)] if args.before else []) + [("this", here)]
        print(f"{'layout':8} " + " ".join(f"{name + ' s':>10}" for name, _ in trees) +
              ("   speed-up" if args.before else ""))
        read = {}
        for layout in ("wide", "long"):
            secs = []
            for name, src in trees:
                r = _time(src, tmp / f"{layout}.csv", tmp / f"{layout}-{name}.npy")
                secs.append(r["seconds"])
                read[(layout, name)] = np.load(tmp / f"{layout}-{name}.npy")
            print(f"{layout:8} " + " ".join(f"{s:10.2f}" for s in secs) +
                  (f"   {secs[0] / secs[1]:8.2f}x" if args.before else ""))
        same = all(np.array_equal(read[("wide", "this")], v, equal_nan=True) for v in read.values())
        print(f"every reading gives the same values: {same}")


if __name__ == "__main__":
    main()
