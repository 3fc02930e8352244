"""What one full training pass over METR-LA costs each model on this CPU.

    .venv/bin/python benchmarks/llm_pass_cost.py [--models stid,st-link:node_sample=64] [--steps 4] [--threads 2]

Full METR-LA, 12 -> 12, 7:1:2 (23,974 training windows), batch 32, each model at its defaults. For every model,
in this one process: 1 warm-up step, then `steps` timed optimiser steps (forward + backward + Adam) on the same
training batches; prints seconds per batch, windows per second, the minutes one full pass would take, and the
ratio to STID's step time measured here. The issue's budget is one full pass in <= 30 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import math
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


def step_seconds(entry: str, splits, batches, steps: int) -> tuple[float, int]:
    name, kw = parse_entry(entry)
    torch.manual_seed(0)
    model = build_model(name, splits.spec, **kw)
    model.fit_statistics(splits.train)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    model.train()
    times = []
    for i, batch in enumerate(batches[: steps + 1]):
        t0 = time.perf_counter()
        loss = task_loss(model(batch), batch, splits.scaler, "forecast")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step is a warm-up
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], sum(p.numel() for p in params)


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
    args = ap.parse_args()
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
    print(f"{'model':<26}{'trainable':>11}{'s/batch':>9}{'windows/s':>11}{'min/pass':>10}{'x STID':>8}  <= 30 min")
    ref = None
    for name in args.models.split(","):
        sec, trainable = step_seconds(name, splits, batches, args.steps)
        ref = sec if name == "stid" else ref
        minutes = sec * per_pass / 60
        ratio = f"{sec / ref:8.1f}" if ref else f"{'-':>8}"
        print(f"{name:<26}{trainable:>11,}{sec:>9.3f}{args.batch_size / sec:>11.1f}{minutes:>10.1f}{ratio}  "
              f"{'yes' if minutes <= 30 else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
