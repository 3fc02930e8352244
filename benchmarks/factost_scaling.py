"""FactoST-v2 inference cost against the number of nodes (issue: N = 207, 2,000, 8,600, synthetic).

    .venv/bin/python benchmarks/factost_scaling.py [--nodes 207,2000,8600] [--batch 8] [--repeats 3]

Each N runs in a fresh subprocess (so the peak resident memory is that N's alone): a synthetic random-walk
dataset of N nodes, 12 -> 12 windows, the adapted model (STMF + STF + DSPA, random adapters on the shipped
backbone, or a random backbone with --random), one warm-up batch then the best of `repeats` timed batches.
Prints ms per batch, ms per node, peak RSS and its growth per node; linear growth means flat per-node figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _one(n: int, batch: int, repeats: int, random: bool) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from stcast.data.core import DatasetMeta, SpatioTemporalData
    from stcast.engine.splits import prepare_windows
    from stcast.models.registry import build_model

    rng = np.random.default_rng(0)
    T = 2 * 288
    vals = (50 + np.cumsum(rng.standard_normal((T, n, 1)), 0)).astype(np.float32)
    meta = DatasetMeta(name=f"synthetic-{n}", step_minutes=5, steps_per_day=288, channels=("value",))
    data = SpatioTemporalData(values=vals, timestamps=pd.date_range("2024-01-01", periods=T, freq="5min").values,
                              meta=meta)
    splits = prepare_windows(data, "forecast", 12, 12)
    model = build_model("factost", splits.spec, pretrained=not random).eval()
    b = splits.test.gather(splits.test.starts[:batch])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        model(b)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            model(b)
            best = min(best, time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"nodes": n, "ms_per_batch": 1000 * best, "peak_rss_mb": peak / 1024, "rss_growth_mb": (peak - base) / 1024}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nodes", default="207,2000,8600")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--random", action="store_true", help="random backbone instead of the shipped checkpoint")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.child is not None:
        print(json.dumps(_one(a.child, a.batch, a.repeats, a.random)))
        return 0
    rows = []
    for n in (int(v) for v in a.nodes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(n), "--batch", str(a.batch),
               "--repeats", str(a.repeats), "--threads", str(a.threads)] + (["--random"] if a.random else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
        r = rows[-1]
        print(f"N={r['nodes']:>6}  {r['ms_per_batch']:9.1f} ms/batch  {r['ms_per_batch'] / r['nodes']:.3f} ms/node  "
              f"peak RSS {r['peak_rss_mb']:8.1f} MB  (+{r['rss_growth_mb']:.1f} MB in the forward passes, "
              f"{1024 * r['rss_growth_mb'] / r['nodes']:.1f} KB/node)", flush=True)
    if len(rows) > 1:
        a0, a1 = rows[0], rows[-1]
        print(f"from N={a0['nodes']} to N={a1['nodes']} (x{a1['nodes'] / a0['nodes']:.1f}): time "
              f"x{a1['ms_per_batch'] / a0['ms_per_batch']:.1f}, forward memory "
              f"x{a1['rss_growth_mb'] / max(a0['rss_growth_mb'], 1e-9):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
