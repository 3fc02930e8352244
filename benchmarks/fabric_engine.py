"""The training engine on Lightning Fabric: its per-step overhead, and 1 process x 2 threads vs 2 processes x 1
thread on this CPU.

    .venv/bin/python benchmarks/fabric_engine.py [--models stid,ust-sllm] [--steps 30] [--rounds 3] [--dataset los-loop]

Part 1, overhead (this process, 2 threads): the same model, batches and optimiser stepped by (a) the loop stcast
had before Fabric (forward, loss, backward, clip_grad_norm_, Adam) and (b) `Trainer._step` through Fabric's
wrappers (fabric.setup, fabric.backward, fabric.clip_gradients). Rounds alternate a/b so that the machine's
drift hits both; prints the median ms per step and the ratio b / a (the issue asks <= 1.05).

Part 2, placement: `stcast train` as users run it, 2 epochs of `--max-batches` global batches of 32, once with
`--threads 2 --devices 1` and once with `--devices 2` (gloo, 1 thread each); the second epoch's seconds from
the CSV log give global steps per second.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from stcast.config import TrainConfig
from stcast.data.registry import load_dataset
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.engine.trainer import Trainer
from stcast.models.registry import build_model


def plain_step(model, opt, params, batch, scaler) -> float:
    """The pre-Fabric loop's step, verbatim in effect."""
    loss = task_loss(model(batch), batch, scaler, "forecast")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    opt.step()
    return loss.item()


def overhead(name: str, splits, steps: int, rounds: int) -> tuple[float, float]:
    batches = [b for _, b in zip(range(steps), splits.train.batches(32, shuffle=True, seed=0))]
    torch.manual_seed(0)
    plain_model = build_model(name, splits.spec)
    plain_model.fit_statistics(splits.train)
    pparams = [p for p in plain_model.parameters() if p.requires_grad]
    popt = torch.optim.Adam(pparams, lr=1e-4)
    torch.manual_seed(0)
    fab_model = build_model(name, splits.spec)
    fab_model.fit_statistics(splits.train)
    trainer = Trainer(fab_model, TrainConfig(progress=False, lr=1e-4))
    fparams = [p for p in fab_model.parameters() if p.requires_grad]
    module, fopt = trainer.fabric.setup(fab_model, torch.optim.Adam(fparams, lr=1e-4))
    plain_model.train()
    module.train()
    plain_step(plain_model, popt, pparams, batches[0], splits.scaler)  # warm-up
    trainer._step(module, fopt, batches[0], splits.scaler, 0)
    a, b = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        for batch in batches:
            plain_step(plain_model, popt, pparams, batch, splits.scaler)
        a.append((time.perf_counter() - t) / len(batches))
        t = time.perf_counter()
        for batch in batches:
            trainer._step(module, fopt, batch, splits.scaler, 0)
        b.append((time.perf_counter() - t) / len(batches))
    return statistics.median(a), statistics.median(b)


def placement_run(name: str, dataset: str, devices: int, max_batches: int, workdir: Path) -> float:
    log = workdir / f"{name}-{devices}.csv"
    cmd = [sys.executable, "-m", "stcast.cli"] + (["--threads", "2"] if devices == 1 else []) + [
        "train", "--model", name, "--dataset", dataset, "--epochs", "2", "--batch-size", "32",
        "--devices", str(devices), "--accelerator", "cpu", "--strategy", "ddp" if devices > 1 else "auto",
        "--set", f"train.max_batches_per_epoch={max_batches}", "--set", "train.patience=99",
        "--log-csv", str(log)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "2" if devices == 1 else "1"
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    rows = list(csv.DictReader(open(log)))
    return max_batches / float(rows[-1]["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="stid,ust-sllm")
    ap.add_argument("--dataset", default="los-loop")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batches", type=int, default=30)
    ap.add_argument("--skip-placement", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    splits = prepare_windows(load_dataset(args.dataset), "forecast", 12, 12)
    models = args.models.split(",")
    print(f"{args.dataset}: {splits.spec.num_nodes} nodes, 12 -> 12, batch 32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("\n| model | pre-Fabric loop ms/step | Fabric loop ms/step | ratio |\n|---|---|---|---|")
    for name in models:
        a, b = overhead(name, splits, args.steps, args.rounds)
        print(f"| {name} | {a * 1000:.1f} | {b * 1000:.1f} | {b / a:.3f} |", flush=True)
    if args.skip_placement:
        return
    print("\n| model | 1 process x 2 threads (steps/s) | 2 processes x 1 thread (steps/s) | ratio |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            one = placement_run(name, args.dataset, 1, args.max_batches, Path(tmp))
            two = placement_run(name, args.dataset, 2, args.max_batches, Path(tmp))
            print(f"| {name} | {one:.2f} | {two:.2f} | {two / one:.2f} |", flush=True)


if __name__ == "__main__":
    main()
