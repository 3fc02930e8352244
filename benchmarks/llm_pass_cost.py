"""What one full training pass over METR-LA costs each model on this CPU.

    .venv/bin/python benchmarks/llm_pass_cost.py [--models stid,st-link:node_sample=64] [--steps 4] [--threads 2]

Full METR-LA, 12 -> 12, 7:1:2 (23,974 training windows), batch 32, each model at its defaults. For every model,
in this one process: 1 warm-up step, then `steps` timed optimiser steps (forward + backward + Adam) on the same
training batches; prints seconds per batch, windows per second, the minutes one full pass would take, and the
ratio to STID's step time measured here. Issue 28's target: one full pass in <= 6 minutes on 2 cores.

`--second-epoch` times the steps as every epoch after the first sees them: each timed batch is forwarded once
(no grad, untimed) before, so what a model computes once per window and keeps (ST-VLM's correlation images with
`image_cache_dir`) is read back instead of recomputed. `--profile` adds, per model, the ops that hold the step
(torch.profiler over the timed steps, by self CPU time). `--before SRC` also times every model with the stcast
package found in SRC (another checkout's `src`, e.g. `git worktree add /tmp/before <commit>` then
`--before /tmp/before/src`), in a child process on the same batches, right before its row here: the before- and
after-figures of one change, measured side by side on the same machine in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch

from stcast.data.registry import load_dataset
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.models.registry import build_model


def parse_entry(entry: str) -> tuple[str, dict]:
    """'st-link:node_sample=64' -> ('st-link', {'node_sample': 64})."""
    import yaml

    name, _, rest = entry.partition(":")
    kw = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in rest.split(";") if item)}
    return name, kw


def step_seconds(entry: str, splits, batches, steps: int, second_epoch: bool = False,
                 profile: int = 0) -> tuple[float, int]:
    name, kw = parse_entry(entry)
    torch.manual_seed(0)
    model = build_model(name, splits.spec, **kw)
    model.fit_statistics(splits.train)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    if second_epoch:  # the first epoch's per-window work, done before the clock starts
        model.eval()
        with torch.no_grad():
            for batch in batches[: steps + 1]:
                model(batch)
    model.train()

    def step(batch):
        loss = task_loss(model(batch), batch, splits.scaler, "forecast")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = []
    for i, batch in enumerate(batches[: steps + 1]):
        t0 = time.perf_counter()
        step(batch)
        if i:  # the first step is a warm-up
            times.append(time.perf_counter() - t0)
    if profile:  # after the timing, on the same batches: the profiler's overhead never reaches the figures
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for batch in batches[1: steps + 1]:
                step(batch)
        print_top_ops(entry, prof, profile, time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], sum(p.numel() for p in params)


def print_top_ops(entry: str, prof, k: int, total_s: float) -> None:
    """The k ops with the most self CPU time over the profiled steps, as shares of the steps' wall time."""
    print(f"  {entry}: top {k} ops over {total_s:.1f} s of timed steps (self CPU time)")
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:k]
    for e in events:
        share = e.self_cpu_time_total / 1e6 / max(total_s, 1e-9)
        print(f"    {e.key[:48]:<48}{e.count:>8} calls{e.self_cpu_time_total / 1e6:>9.2f} s{100 * share:>7.1f} %")


def eval_seconds(entry: str, splits, batches) -> float:
    """Median seconds of one no-grad forward over a batch of every sensor (validation and test scoring)."""
    name, kw = parse_entry(entry)
    torch.manual_seed(0)
    model = build_model(name, splits.spec, **kw)
    model.fit_statistics(splits.train)
    model.eval()
    times = []
    with torch.no_grad():
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            model(batch)
            if i:
                times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="stid,gwnet,ust-sllm,st-link,st-link:node_sample=64,factost",
                    help="comma-separated; model:key=value;key=value sets hyper-parameters")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval", action="store_true",
                    help="time scoring instead: a no-grad forward per test batch, and the minutes one validation "
                         "pass (3,424 windows) and one test pass (6,851) take")
    ap.add_argument("--second-epoch", action="store_true",
                    help="forward each timed batch once before timing it (per-window caches filled, as in epoch 2+)")
    ap.add_argument("--profile", type=int, default=0, metavar="K",
                    help="print each model's K ops with the most self CPU time over the timed steps")
    ap.add_argument("--before", metavar="SRC",
                    help="also time each model with the stcast package in SRC (another checkout's src folder)")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: time one model, print JSON (the --before child)
    args = ap.parse_args()
    if args.before and args.eval:
        raise SystemExit("stcast: error: --before times training steps; it does not combine with --eval")
    if args.before and not os.path.isdir(os.path.join(args.before, "stcast")):
        raise SystemExit(f"stcast: error: --before {args.before}: no stcast package there (give a checkout's src)")
    torch.set_num_threads(args.threads)
    data = load_dataset("metr-la")
    splits = prepare_windows(data, "forecast", 12, 12, "7:1:2")
    n_train = len(splits.train)
    batches = list(splits.train.batches(args.batch_size, shuffle=True, seed=0))[: args.steps + 1]
    per_pass = math.ceil(n_train / args.batch_size)
    print(f"METR-LA: {n_train} training windows, batch {args.batch_size} -> {per_pass} steps per pass; "
          f"torch threads {torch.get_num_threads()}, median of {args.steps} timed steps")
    if args.eval:
        tests = list(splits.test.batches(args.batch_size, shuffle=False))[: args.steps + 1]
        print(f"scoring: {len(splits.val)} validation and {len(splits.test)} test windows")
        print(f"{'model':<26}{'s/batch':>9}{'val min':>9}{'test min':>10}{'x STID':>8}")
        ref = None
        for name in args.models.split(","):
            sec = eval_seconds(name, splits, tests)
            ref = sec if name == "stid" else ref
            ratio = f"{sec / ref:8.1f}" if ref else f"{'-':>8}"
            val, test = (sec * math.ceil(len(w) / args.batch_size) / 60 for w in (splits.val, splits.test))
            print(f"{name:<26}{sec:>9.3f}{val:>9.1f}{test:>10.1f}{ratio}", flush=True)
        return
    if args.one:
        sec, trainable = step_seconds(args.one, splits, batches, args.steps, args.second_epoch)
        print(json.dumps({"sec": sec, "trainable": trainable}))
        return
    print(f"{'model':<26}{'trainable':>11}{'s/batch':>9}{'windows/s':>11}{'min/pass':>10}{'x STID':>8}  <= 6 min")
    ref = None
    for name in args.models.split(","):
        if args.before:
            before = before_seconds(args, name)
            print(f"{'  before: ' + name:<26}{'':>11}{before:>9.3f}{args.batch_size / before:>11.1f}"
                  f"{before * per_pass / 60:>10.1f}", flush=True)
        sec, trainable = step_seconds(name, splits, batches, args.steps, args.second_epoch, args.profile)
        ref = sec if name == "stid" else ref
        minutes = sec * per_pass / 60
        ratio = f"{sec / ref:8.1f}" if ref else f"{'-':>8}"
        print(f"{name:<26}{trainable:>11,}{sec:>9.3f}{args.batch_size / sec:>11.1f}{minutes:>10.1f}{ratio}  "
              f"{'yes' if minutes <= 6 else 'NO'}", flush=True)


def before_seconds(args, name: str) -> float:
    """The same measurement with the stcast package in `args.before`, in a child process (one thread count)."""
    cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--threads", str(args.threads)] + (["--second-epoch"] if args.second_epoch else [])
    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.before)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"stcast: error: --before {args.before}: timing {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["sec"]


if __name__ == "__main__":
    main()
