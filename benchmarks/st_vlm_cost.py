"""What ST-VLM costs on this CPU, and the correlation image's share of it.

    .venv/bin/python benchmarks/st_vlm_cost.py [--nodes 207,883] [--batch 32] [--repeats 3]

Part 1, the image alone: seconds per window of each channel (DTW, lagged cross-correlation, FFT Pearson) on
random 12-step series of N nodes, N = 207 (METR-LA) and 883 (PEMS07), in one process.
Part 2, one training step and one inference batch of ST-VLM on Los-loop (207 sensors, 12 -> 12) at its CPU
defaults: with the image computed (first epoch) and served from the cache (later epochs); inference batch 64.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stcast.data.registry import load_dataset
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.models.registry import build_model
from stcast.nn.correlation import fft_pearson, lagged_xcorr, pairwise_dtw


def timed(fn, repeats: int) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", default="207,883")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| N | DTW s/window | lagged xcorr s/window | FFT Pearson s/window | all three s/window |")
    print("|---|---|---|---|---|")
    for n in (int(v) for v in args.nodes.split(",")):
        s = torch.randn(1, n, 12, 1)
        parts = [timed(lambda f=f, s=s: f(s), args.repeats)
                 for f in (pairwise_dtw, lambda x: lagged_xcorr(x, 3), fft_pearson)]
        print(f"| {n} | {parts[0]:.3f} | {parts[1]:.4f} | {parts[2]:.4f} | {sum(parts):.3f} |", flush=True)

    sp = prepare_windows(load_dataset("los-loop"), "forecast", 12, 12)
    torch.manual_seed(0)
    model = build_model("st-vlm", sp.spec)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    batches = [b for _, b in zip(range(args.repeats + 1), sp.train.batches(args.batch, shuffle=True, seed=0))]

    def step(b):
        loss = task_loss(model(b), b, sp.scaler, "forecast")
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.train()
    first = []
    for b in batches:  # every window new to the cache: the image is drawn
        t = time.perf_counter()
        step(b)
        first.append(time.perf_counter() - t)
    cached = [timed(lambda b=b: step(b), 1) for b in batches[1:]]  # the same windows again: from the cache
    model.eval()
    test = next(iter(sp.test.batches(64)))
    with torch.no_grad():
        infer_fresh = timed(lambda: (model.cache.store.clear(), model(test)), args.repeats)
        infer_cached = timed(lambda: model(test), args.repeats)
    f, c = statistics.median(first[1:]), statistics.median(cached)
    epoch = len(sp.train) / args.batch
    print(f"\nST-VLM, Los-loop 12 -> 12, batch {args.batch}, {len(sp.train)} training windows\n")
    print("| | s/step | s/epoch (estimated) | image share |\n|---|---|---|---|")
    print(f"| first epoch (image drawn) | {f:.2f} | {f * epoch:.0f} | {(f - c) / f:.0%} |")
    print(f"| later epochs (image cached) | {c:.2f} | {c * epoch:.0f} | 0% |")
    print(f"\ninference, batch 64: {infer_fresh * 1000:.0f} ms with the image drawn, {infer_cached * 1000:.0f} ms "
          f"from the cache ({(infer_fresh - infer_cached) / infer_fresh:.0%} image)")


if __name__ == "__main__":
    main()
