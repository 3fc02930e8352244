"""Stage I of FactoST-v2: Universal Temporal Pretraining (`stcast pretrain factost`).

Each step samples a batch of windows (context L_max + horizon H_max) from the corpus, masks a random prefix
of l_mask ~ U{0, ..., P_max - P_min} context patches (eq. 2; `random_mask=False` keeps the full context), and
minimises the pinball loss over the quantile levels (eq. 6; `quantile_loss=False`: L1 on the median only) on
the instance-normalised target. Adam with a warmup-stable-decay schedule (5 % warmup, last 20 % linear decay).
The budget is steps and/or minutes; a resumable state (model, optimiser, step, RNG) is written every
`save_every` steps and at the end, atomically.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from stcast.engine.trainer import rng_state, set_rng_state
from stcast.errors import StcastError
from stcast.models.factost_utp import UTPBackbone, UTPConfig
from stcast.pretrain.corpus import (
    EVALUATION_DATASETS,
    PRETRAINING_DATASETS,
    Corpus,
    augment,
    cached_kernelsynth,
    real_series,
)


@dataclass
class UTPRun:
    out: str = "results/pretrain/factost-utp.pt"
    steps: int = 2000
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0
    num_synthetic: int = 1000
    p_synthetic: float = 0.5
    datasets: tuple[str, ...] = PRETRAINING_DATASETS
    random_mask: bool = True
    quantile_loss: bool = True
    save_every: int = 200
    resume: bool = False
    # issue 31: TSMixup + random scaling (pretrain/corpus.py `augment`); KernelSynth series length (None: the
    # window) and where its chunks are cached (None: beside `out`)
    augment: bool = True
    p_mix: float = 0.5
    scale_aug: float = 10.0
    synthetic_len: int | None = None
    model: dict = field(default_factory=dict)  # UTPConfig fields (variant, max_context, use_prope, ...)
    # where it runs (Lightning Fabric, as `stcast train`); batch_size is the global batch over processes
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32"

    def recipe_key(self) -> str:
        """What a resumed run must share with the run it continues (the budget and placement may change)."""
        keep = {k: v for k, v in asdict(self).items() if k not in _PLACEMENT and k != "out"}
        return json.dumps(keep | {"resume": False, "steps": 0, "minutes": None}, default=list)


_PLACEMENT = ("accelerator", "devices", "num_nodes", "strategy", "precision")


def portable_path(arg: str) -> str:
    """A path as a record may keep it: relative to the working directory when inside it, else its file name."""
    p = Path(arg)
    if not p.is_absolute():
        return arg
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return f"<...>/{p.name}"


def portable_command(argv) -> str:
    """The command line as `stcast ...`, with no machine path in it (the program's and absolute arguments')."""
    return " ".join(["stcast"] + [portable_path(a) if a.startswith("/") else a for a in argv[1:]])


def wsd_lr(step: int, total: int, base: float) -> float:
    """Warmup-stable-decay: linear warmup over 5 %, flat, linear decay to 10 % over the last 20 %."""
    warm, decay_from = max(1, int(0.05 * total)), int(0.8 * total)
    if step < warm:
        return base * (step + 1) / warm
    if step < decay_from:
        return base
    return base * (1 - 0.9 * (step - decay_from) / max(1, total - decay_from))


def _silent(*args, **kwargs) -> None:
    """Ranks other than 0 say nothing (rank 0 speaks for the run)."""


def utp_loss(model: UTPBackbone, windows: torch.Tensor, rng: np.random.Generator, random_mask: bool = True,
             quantile_loss: bool = True) -> torch.Tensor:
    """windows (B, L_max + H_max), NaN = missing -> scalar loss on the normalised future."""
    cfg = model.cfg
    ctx, fut = windows[:, :cfg.max_context], windows[:, cfg.max_context:]
    cm, fm = torch.isfinite(ctx), torch.isfinite(fut)
    ctx, fut = torch.nan_to_num(ctx), torch.nan_to_num(fut)
    P, Pmin = cfg.ctx_patches, math.ceil(cfg.min_context / cfg.patch_len)
    if random_mask:
        l_mask = torch.from_numpy(rng.integers(0, P - Pmin + 1, size=windows.shape[0])).to(windows.device)
        hidden = torch.arange(cfg.max_context, device=windows.device)[None, :] < (l_mask * cfg.patch_len)[:, None]
        cm = cm & ~hidden  # statistics and tokens only from the effective context
    else:
        l_mask = None
    q, mean, std = model(ctx, cm, fut.shape[1], mask_patches=l_mask)
    y = (fut - mean) / std
    # a target is only as good as its context: too few observed steps or a flat context (std ~ 0) would
    # make the normalised target explode, so those samples drop out; the rest are clipped at +-20 sigma
    ok = (cm.sum(1, keepdim=True) >= cfg.min_context // 2) & (std > 1e-3 * (mean.abs() + 1))
    fm = fm & ok
    y = y.clamp(-20, 20)
    if quantile_loss:
        from stcast.metrics import pinball_loss

        return pinball_loss(q, y, cfg.quantiles, fm)
    med = q[..., model.median_index]
    return (torch.where(fm, med - y, 0.0).abs().sum()) / fm.sum().clamp(min=1)


def pretrain(run: UTPRun, data_dir=None, log=print) -> Path:
    from stcast.engine.distributed import check_global_batch, fabric_for, is_global_zero

    fabric = fabric_for(run)
    rank, world = fabric.global_rank, fabric.world_size
    check_global_batch(run.batch_size, world)
    if not is_global_zero():
        log = _silent
    cfg = UTPConfig(**run.model)
    out = Path(run.out)
    state_path = out.with_suffix(".state.pt")
    if is_global_zero():
        state_path.with_suffix(".tmp").unlink(missing_ok=True)  # a state write killed midway
    torch.manual_seed(run.seed)
    # one process draws as it always has; with several, each rank draws its own share of every batch
    rng = np.random.default_rng(run.seed if world == 1 else [run.seed, rank])
    model = UTPBackbone(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=run.lr)
    step, prior_minutes = 0, 0.0  # the minutes of the runs this one continues (the recipe's total)
    if run.resume:
        if not state_path.is_file():
            raise StcastError(f"nothing to resume: {state_path} does not exist")
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        if st["run"] != run.recipe_key():
            raise StcastError(f"{state_path} was written by a different recipe; resume with the same arguments")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        step = st["step"]
        prior_minutes = float(st.get("minutes", 0.0))
        if world == 1:
            rng.bit_generator.state = json.loads(st["rng"])
            if "torch_rng" in st:  # dropout and init draws continue exactly (states written since the reliability fix)
                set_rng_state(st["torch_rng"])
        else:  # rank 0's stream is the one saved: every rank starts a fresh stream of its own from this step
            rng = np.random.default_rng([run.seed, rank, step])
        log(f"resumed at step {step}")
    model, opt = fabric.setup(model, opt)
    log(f"FactoST UTP pretraining: {cfg.variant} ({sum(p.numel() for p in model.parameters()):,} parameters), "
        f"context {cfg.max_context}, horizon {cfg.max_horizon}, batch {run.batch_size}, {run.steps} steps"
        + (f" or {run.minutes} min" if run.minutes else "") + (f", {world} processes" if world > 1 else ""))
    real, sources = real_series(run.datasets, data_dir, log=log, with_sources=True) if run.datasets else ([], [])
    synth_len = run.synthetic_len or cfg.max_context + cfg.max_horizon
    synth = cached_kernelsynth(run.num_synthetic, synth_len, run.seed, out.parent / "kernelsynth-cache", log) \
        if run.num_synthetic else None
    corpus = Corpus.build(cfg.max_context, cfg.max_horizon, run.num_synthetic, real=real,
                          p_synthetic=run.p_synthetic, seed=run.seed, sources=sources,
                          min_len=cfg.min_context + cfg.patch_len, log=log, synthetic=synth)
    log(f"  corpus: {int(corpus.synthetic.sum())} KernelSynth + {int((~corpus.synthetic).sum())} real series, "
        f"{int(corpus.lengths.sum()):,} points")

    def save_state():
        tmp = state_path.with_suffix(".tmp")
        if is_global_zero():
            state_path.parent.mkdir(parents=True, exist_ok=True)
        fabric.save(tmp, {"model": model, "optimizer": opt, "step": step,
                          "minutes": prior_minutes + (time.time() - t0) / 60,
                          "rng": json.dumps(rng.bit_generator.state), "torch_rng": rng_state(),
                          "run": run.recipe_key()})
        fabric.barrier()
        if is_global_zero():
            tmp.replace(state_path)

    t0, running = time.time(), None
    model.train()
    while step < run.steps and (run.minutes is None or time.time() - t0 < run.minutes * 60):
        for g in opt.param_groups:
            g["lr"] = wsd_lr(step, run.steps, run.lr)
        w = corpus.sample(run.batch_size // world, cfg.min_context, cfg.max_horizon, rng)
        if run.augment:
            w = augment(w, cfg.max_context, rng, run.p_mix, scale=run.scale_aug)
        w = torch.from_numpy(w)
        loss = utp_loss(model, w.to(fabric.device), rng, run.random_mask, run.quantile_loss)
        if not torch.isfinite(loss):
            raise StcastError(f"UTP loss became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad()
        fabric.backward(loss)
        fabric.clip_gradients(model, opt, max_norm=1.0, error_if_nonfinite=False)
        opt.step()
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == run.steps:
            log(f"  step {step}/{run.steps}  loss {running:.4f}  {time.time() - t0:.0f}s")
        if step % run.save_every == 0:
            save_state()
    save_state()
    minutes = prior_minutes + (time.time() - t0) / 60
    recipe = {"command": portable_command(sys.argv), "run": {**asdict(run), "out": portable_path(run.out)},
              "steps_done": step, "minutes": round(minutes, 1), "hours": round(minutes / 60, 2),
              "final_loss": running,
              "corpus": {"synthetic_series": int(corpus.synthetic.sum()), "real_datasets": list(run.datasets),
                         "used": corpus.used, "never_used_evaluation_datasets": list(EVALUATION_DATASETS),
                         "points": int(corpus.lengths.sum())},
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    if not is_global_zero():
        return out
    fabric.strategy.get_module_state_dict(model)  # FSDP: the full weights are gathered on rank 0
    model = model.module if hasattr(model, "module") else model  # Fabric's wrapper -> the UTPBackbone
    model.save(out, extra=recipe)
    out.with_suffix(".json").write_text(json.dumps(recipe, indent=2, default=list) + "\n")
    log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and its recipe {out.with_suffix('.json')}")
    return out
