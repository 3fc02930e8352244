"""`stcast pretrain factost`: FactoST-v2 stage I (UTP), resumable."""

from __future__ import annotations

from pathlib import Path

from stcast.cli.common import (
    PLACEMENT_FLAGS,
    check_writable,
    data_args,
    non_negative_int,
    placement_args,
    positive_float,
    positive_int,
    unit_fraction,
)
from stcast.errors import StcastError


def cmd_pretrain(args) -> int:
    from stcast.pretrain.utp import UTPRun, pretrain

    check_writable(args.out)  # before the pretraining, not after it
    _keep_earlier_run(args)
    check_writable(Path(args.out).with_suffix(".json"), "--out (its .json record)")
    model = {"variant": args.variant, "max_context": args.context, "min_context": args.min_context,
             "max_horizon": args.horizon,
             "use_prope": not args.no_prope, "use_gate": not args.no_gate}
    run = UTPRun(out=args.out, steps=args.steps, minutes=args.minutes, batch_size=args.batch_size, lr=args.lr,
                 seed=args.seed, num_synthetic=args.synthetic, random_mask=not args.no_random_mask,
                 quantile_loss=not args.no_quantile_loss, resume=args.resume, model=model,
                 augment=not args.no_augment, p_mix=args.p_mix, synthetic_len=args.synthetic_len,
                 **{k: getattr(args, k) for k in PLACEMENT_FLAGS[:-1] if getattr(args, k) is not None})
    pretrain(run, args.data_dir)
    return 0


def _keep_earlier_run(args) -> None:
    """A rerun that forgot --resume never replaces hours of pretraining: a checkpoint or run state at --out is an
    error naming the ways on, unless --overwrite says to start over."""
    if args.resume or args.overwrite:  # (both at once is refused in check_no_clobber)
        return
    out = Path(args.out)
    held = [p for p in (out, out.with_suffix(".state.pt")) if p.is_file()]
    if held:
        raise StcastError(f"--out {out}: {' and '.join(p.name for p in held)} already exist{'s' * (len(held) == 1)} "
                          "(an earlier pretraining run?); pass --resume to continue that run, --overwrite to start "
                          "over and replace it, or choose another --out")


def register(sub) -> None:
    sp = sub.add_parser("pretrain", help="stage-I pretraining of a foundation backbone (FactoST-v2 UTP)")
    sp.add_argument("method", choices=["factost"])
    sp.add_argument("--out", default="results/pretrain/factost-utp.pt")
    sp.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps (also sets the LR schedule)")
    sp.add_argument("--minutes", type=positive_float, default=None, help="wall-clock budget; stops early when reached")
    sp.add_argument("--batch-size", type=positive_int, default=64)
    sp.add_argument("--lr", type=positive_float, default=5e-4)
    sp.add_argument("--seed", type=non_negative_int, default=0)
    sp.add_argument("--variant", default="tiny", help="minuscule, tiny, small, base (Table VI)")
    sp.add_argument("--context", type=positive_int, default=256, help="L_max in steps")
    sp.add_argument("--min-context", type=positive_int, default=32,
                    help="L_min in steps: the shortest context pretraining shows (12 for 12-step downstream inputs)")
    sp.add_argument("--horizon", type=positive_int, default=96, help="H_max in steps")
    sp.add_argument("--synthetic", type=non_negative_int, default=1000, help="KernelSynth series in the corpus")
    sp.add_argument("--synthetic-len", type=positive_int, default=None,
                    help="KernelSynth series length (default: context + horizon); drawn once, cached beside --out")
    sp.add_argument("--p-mix", type=unit_fraction, default=0.5, help="share of TSMixup windows per batch")
    sp.add_argument("--no-augment", action="store_true", help="no TSMixup and no random scaling (the first recipe)")
    sp.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    sp.add_argument("--overwrite", action="store_true", help="start over where an earlier run left <out> or its state")
    for flag in ("no-prope", "no-gate", "no-random-mask", "no-quantile-loss"):
        sp.add_argument(f"--{flag}", action="store_true", help="UTP ablation (Table X)")
    placement_args(sp)
    data_args(sp)
    sp.set_defaults(func=cmd_pretrain)
