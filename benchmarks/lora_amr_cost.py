"""LoRA vs LoRA-AMR (LLM-TS Net) on a text LM: trainable parameters, activation memory, step time.

Each adapter is applied to q and v of the top `--tune` blocks of the same backbone (the rest frozen), then one
forward + backward over a batch of texts is measured: the bytes autograd saves for the backward pass
(`torch.autograd.graph.saved_tensors_hooks`, parameters excluded), and the median step time over `--repeats`
(after one warm-up), all in one process, rows interleaved round by round so drift hits every row alike.

    .venv/bin/python benchmarks/lora_amr_cost.py --backbone minilm-l6 --tune 6 --texts 64 --tokens 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stcast.nn.adapt import AdaptPolicy, adapt
from stcast.nn.backbones import load_backbone


def build(backbone: str, layers: int | None, tune: int, adapter: str, rank: int):
    torch.manual_seed(0)
    bb = load_backbone(backbone, layers)
    report = adapt(bb, AdaptPolicy(trainable_top=tune, attention=adapter, lora_rank=rank, lora_alpha=2 * rank,
                                   lora_targets=("q_proj", "v_proj"), train_norms=False, train_positions=False))
    if bb.embeddings is not None:
        bb.embeddings.requires_grad_(False)
    return bb, report


def step(bb, h):
    out = bb.stack(h)
    out.pow(2).mean().backward()


def saved_bytes(bb, h) -> int:
    params = {p.data_ptr() for p in bb.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.data_ptr() not in params:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = bb.stack(h)
    out.pow(2).mean().backward()
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--tune", type=int, default=6, help="top blocks adapted")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--texts", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    for adapter in ("frozen", "lora", "lora-amr", "full"):
        bb, report = build(args.backbone, args.layers, args.tune, adapter, args.rank)
        g = torch.Generator().manual_seed(1)
        h = torch.randn(args.texts, args.tokens, bb.hidden_size, generator=g, requires_grad=adapter == "frozen")
        rows[adapter] = {"bb": bb, "h": h, "trainable": report["trainable"], "saved": saved_bytes(bb, h), "t": []}
    for _ in range(args.repeats + 1):
        for r in rows.values():
            t0 = time.perf_counter()
            step(r["bb"], r["h"])
            r["t"].append(time.perf_counter() - t0)
    ref = rows["lora"]
    print(f"{args.backbone}, top {args.tune} blocks adapted (q, v; rank {args.rank}), {args.texts} texts x "
          f"{args.tokens} tokens, {args.threads} threads, median of {args.repeats}")
    print("| adapter | trainable | x LoRA | saved activations MB | x LoRA | s/step | x LoRA |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        t = statistics.median(r["t"][1:])
        t_ref = statistics.median(ref["t"][1:])
        label = "frozen (input grad only)" if name == "frozen" else name
        print(f"| {label} | {r['trainable']:,} | {r['trainable'] / ref['trainable']:.3f} | "
              f"{r['saved'] / 2**20:.1f} | {r['saved'] / ref['saved']:.3f} | {t:.3f} | {t / t_ref:.3f} |")


if __name__ == "__main__":
    main()
