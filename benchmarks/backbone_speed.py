"""Forward+backward tokens/s of our block stack vs transformers' implementation of the same model.

    .venv/bin/python benchmarks/backbone_speed.py [--layers 6] [--threads 2] [--repeats 2]

Both run SmolLM2-135M cut to the same number of layers, fp32, causal attention (transformers' Llama is
always causal), with the same frozen set (PFA: lower blocks frozen except norms, the top `--top` blocks'
attention trainable), on the token shapes the methods use. Runs alternate and the order flips every
repeat, so the machine's drift hits both. Reported: each side's best repeat and its ratio, and the median of
the paired ratios (the two runs of one repeat are back to back, so a pair shares the machine's state; the
median over pairs is the steadiest figure on a machine whose speed drifts).
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

SHAPES = ((32, 12), (32, 207), (64, 288), (8, 883))


def _pfa_hf(model, n_layers: int, top: int) -> None:
    for name, p in model.named_parameters():
        layer = int(name.split(".")[1]) if name.startswith("layers.") else None
        p.requires_grad_("norm" in name or (layer is not None and layer >= n_layers - top and "self_attn" in name))


def _step(fn, x) -> float:
    t = time.perf_counter()
    out = fn(x)
    out.float().pow(2).mean().backward()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--top", type=int, default=2, help="upper blocks whose attention trains (PFA)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--shapes", default=",".join(f"{b}x{s}" for b, s in SHAPES), help="BxS,BxS,...")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import transformers

    from stcast.nn.adapt import AdaptPolicy, adapt
    from stcast.nn.backbones import load_backbone
    from stcast.nn.gguf_cache import smollm2_dir

    ours = load_backbone("smollm2-135m", num_layers=args.layers, causal=True)
    adapt(ours, AdaptPolicy(trainable_top=args.top, attention="full"))
    theirs = transformers.LlamaModel.from_pretrained(str(smollm2_dir()), num_hidden_layers=args.layers,
                                                     dtype=torch.float32, attn_implementation="sdpa")
    _pfa_hf(theirs, args.layers, args.top)
    n_ours = sum(p.numel() for p in ours.stack.parameters() if p.requires_grad)
    n_theirs = sum(p.numel() for p in theirs.layers.parameters() if p.requires_grad) + theirs.norm.weight.numel()
    assert n_ours == n_theirs, (n_ours, n_theirs)  # the same frozen set
    run_ours = lambda x: ours(x)  # noqa: E731
    run_theirs = lambda x: theirs(inputs_embeds=x, use_cache=False).last_hidden_state  # noqa: E731
    print(f"SmolLM2-135M x {args.layers} layers, PFA top {args.top} attention trainable ({n_ours:,} params), "
          f"fp32, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"{'B x S':>10}{'tokens':>8}{'ours tok/s':>12}{'HF tok/s':>12}{'best ratio':>12}{'median paired':>15}")
    for shape in args.shapes.split(","):
        b, s = (int(v) for v in shape.split("x"))
        x = torch.randn(b, s, ours.hidden_size)
        best = {"ours": float("inf"), "hf": float("inf")}
        pairs = []
        _step(run_ours, x), _step(run_theirs, x)  # warm-up
        for r in range(args.repeats):  # alternate which runs first, so drift and allocator state hit both
            order = (("ours", run_ours), ("hf", run_theirs)) if r % 2 == 0 else (("hf", run_theirs), ("ours", run_ours))
            t = {}
            for key, fn in order:
                gc.collect()
                t[key] = _step(fn, x)
                best[key] = min(best[key], t[key])
            pairs.append(t["hf"] / t["ours"])
        tok = b * s
        pairs.sort()
        median = pairs[len(pairs) // 2] if len(pairs) % 2 else (pairs[len(pairs) // 2 - 1] + pairs[len(pairs) // 2]) / 2
        print(f"{shape:>10}{tok:>8}{tok / best['ours']:>12.0f}{tok / best['hf']:>12.0f}"
              f"{best['hf'] / best['ours']:>12.2f}{median:>15.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
