"""The training loop: ours, readable top-down, run on Lightning Fabric.

Fabric brings what users who outgrow one machine need (DDP/FSDP across GPUs and nodes, torchrun/SLURM launchers,
mixed precision, distributed-safe checkpoints) while the loop stays ours: early stopping on validation MAE,
best-checkpoint restore, resume with every RNG state, seeds, gradient clipping, a learning-rate schedule,
progress and a CSV log. Our batches are gathered by index (no DataLoader): each rank takes its share of every
global batch (`data.windows.shard`), and validation/test metrics are reduced as sums and counts, so N processes
at the same global batch train and score as one process does (tests/engine/test_distributed.py).
"""

from __future__ import annotations

import copy
import csv
import math
import os
import random
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from stcast.config import TrainConfig
from stcast.data.windows import WindowSet
from stcast.engine.distributed import (
    check_global_batch,
    fabric_for,
    is_global_zero,
    sync_buffers,
)
from stcast.engine.progress import Progress
from stcast.engine.scoring import evaluate
from stcast.engine.tasks import scored_count, task_loss
from stcast.errors import StcastError
from stcast.models.base import STModel
from stcast.task import Task


def plateau_reductions(val_maes, patience: int, threshold: float = 1e-4) -> int:
    """How many times ReduceLROnPlateau (mode min, relative threshold) has cut the rate after these epochs'
    validation MAEs: a cut when more than `patience` epochs in a row did not beat the best, then the count
    restarts."""
    best, bad, cuts = math.inf, 0, 0
    for v in val_maes:
        if v < best * (1 - threshold):
            best, bad = v, 0
        else:
            bad += 1
        if bad > patience:
            cuts, bad = cuts + 1, 0
    return cuts


def lr_factor(cfg: TrainConfig, epoch: int, val_maes=()) -> float:
    """The learning-rate multiplier of epoch `epoch` (0-based): a pure function of the epoch (and, for
    "plateau", of the validation MAEs of the epochs before it, kept in the history), so a resumed run follows
    the same schedule with no scheduler state to save."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.lr_schedule == "multistep":
        return cfg.lr_gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.lr_schedule == "cosine":
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))
    if cfg.lr_schedule == "plateau":
        return cfg.lr_gamma ** plateau_reductions(val_maes, cfg.plateau_patience)
    return 1.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG a training step may draw from (Python, NumPy, torch CPU and CUDA), as tensors only,
    so that a checkpoint holding it still loads with `weights_only=True`."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
             "numpy_meta": torch.tensor([pos, has_gauss], dtype=torch.int64), "numpy_gauss": float(gauss),
             "python": torch.tensor(py_state, dtype=torch.int64), "python_version": int(version),
             "python_gauss": py_gauss}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss = (int(v) for v in state["numpy_meta"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_gauss"])))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, model: STModel, config: TrainConfig | None = None, task: str = "forecast"):
        self.model, self.cfg, self.task = model, config or TrainConfig(), Task.parse(task)
        self.fabric = fabric_for(self.cfg)
        self.device = self.fabric.device
        self.rank, self.world = self.fabric.global_rank, self.fabric.world_size
        check_global_batch(self.cfg.batch_size, self.world)
        self.model.to(self.device)
        self.module = self.model  # the Fabric-wrapped model once fit() sets it up
        self.history: list[dict] = []
        self.epoch_seconds: list[float] = []
        self.windows_seen = 0  # training windows the optimiser steps saw (all ranks; kept across resume)
        self.resumed_seconds = 0.0  # training seconds spent before a resume (a row reports the whole)
        self.loggers = _extra_loggers(self.cfg, model.name) if is_global_zero() else []

    def _params(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def fit(self, train: WindowSet, val: WindowSet | None = None) -> Trainer:
        cfg, fabric = self.cfg, self.fabric
        seed_everything(cfg.seed)
        self.model.fit_statistics(train)
        params = self._params()
        if not params:  # a statistical model: nothing to optimise
            return self
        train = self.model.training_windows(train)  # a model's own sampling (FactoST's replay buffer)
        if cfg.epochs == 0:
            warnings.warn(f"epochs=0: {self.model.name} is not trained; it is scored as built (zero-shot or "
                          "pretrained weights)", stacklevel=2)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        module, opt = fabric.setup(self.model, opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay))
        self.module = module
        start_epoch, best, best_state, bad = 0, math.inf, None, 0
        spent = 0.0  # training seconds before this process (a resumed run keeps its wall-clock budget)
        if cfg.resume and not cfg.checkpoint:
            raise StcastError("resume needs a checkpoint path (--checkpoint PATH): nothing to resume from")
        if cfg.checkpoint and is_global_zero():
            Path(cfg.checkpoint + ".tmp").unlink(missing_ok=True)  # a write killed midway: never a stray .tmp
        if cfg.resume and not Path(cfg.checkpoint).exists():
            warnings.warn(f"checkpoint {cfg.checkpoint} does not exist yet: training starts from scratch "
                          "(it is written at the end of every epoch)", stacklevel=2)
        elif cfg.resume:
            state = self._load_checkpoint(module, opt)
            start_epoch, best, bad = state["epoch"] + 1, state["best_val"], state["bad_epochs"]
            best_state = state["best_model"]
            self.history = [dict(zip(state["history_keys"], row, strict=False)) for row in state["history"]]
            self.windows_seen = int(state.get("windows_seen", 0))  # older checkpoints: counted from here
            spent = self.resumed_seconds = float(state.get("train_seconds", 0.0))
            set_rng_state(state["rng"])  # dropout and every other draw continue exactly where they were
            if state.get("stopped"):  # it had already stopped early: resuming must not train further
                start_epoch = cfg.epochs
        self._start_log()
        t0 = self._t0 = time.time() - spent  # `max_minutes` counts the time before a resume too
        nb = math.ceil(len(train) / cfg.batch_size)
        if self.world > 1 and len(train) % cfg.batch_size and len(train) % cfg.batch_size < self.world:
            nb -= 1  # a last global batch smaller than the process count is dropped (WindowSet.batches even=True)
        if cfg.max_batches_per_epoch:
            nb = min(nb, cfg.max_batches_per_epoch)
        with Progress(self.model.name, cfg.epochs, cfg.progress and is_global_zero()) as progress:
            for epoch in range(start_epoch, cfg.epochs):
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * lr_factor(cfg, epoch, [r["val_mae"] for r in self.history
                                                                   if r.get("val_mae") is not None])
                module.train()
                te = time.time()
                total, n = 0.0, 0
                progress.start_epoch(epoch, nb)
                batches = train.batches(cfg.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch,
                                        rank=self.rank, world=self.world, even=True)
                for i, batch in enumerate(batches):
                    if i >= nb:
                        break
                    loss = self._step(module, opt, batch, train.scaler, epoch)
                    total += loss
                    n += 1
                    self.windows_seen += len(batch.x) * self.world
                    progress.step(total / n)
                    if cfg.cut_epoch and cfg.max_minutes is not None and n % 5 == 0 and fabric.broadcast(
                            time.time() - t0 > cfg.max_minutes * 60, src=0):
                        break  # every rank leaves after the same step (rank 0's clock)
                sync_buffers(fabric, self.model)
                self.epoch_seconds.append(time.time() - te)
                train_loss = total / max(n, 1)
                if self.world > 1:  # every rank reports (and may early-stop on) the same figure
                    train_loss = float(fabric.all_reduce(torch.tensor(train_loss, dtype=torch.float64),
                                                         reduce_op="mean"))
                val_mae = self._validate(val, train_loss)
                row = {"epoch": epoch + 1, "train_loss": train_loss, "val_mae": val_mae,
                       "seconds": self.epoch_seconds[-1]}
                self.history.append(row)
                progress.end_epoch(row)
                if val_mae < best - 1e-6:
                    best, bad = val_mae, 0
                    best_state = self._learned_state()
                else:
                    bad += 1
                self._log(row)
                stop = bad >= cfg.patience
                if cfg.checkpoint:
                    self._save(module, opt, epoch, best, bad, best_state, stop)
                if stop:
                    break
                out_of_time = cfg.max_minutes is not None and time.time() - t0 > cfg.max_minutes * 60
                if fabric.broadcast(out_of_time, src=0):  # rank 0's clock decides for all: no rank waits alone
                    break
        if best_state is not None:
            self._restore(best_state)
        for logger in self.loggers:
            logger.finalize("success")
        return self

    def _step(self, module, opt, batch, scaler, epoch: int) -> float:
        """One optimiser step on this rank's share of a global batch; returns the (local) loss."""
        batch = batch.to(self.device)
        pred = module(batch)
        loss = task_loss(pred, batch, scaler, self.task, self.cfg.alpha, self.cfg.loss)
        if (self.cfg.loss == "mae" and pred.quantiles is not None and not pred.quantile_loss and pred.scale is None
                and not self.model.quantiles_untrained):
            # the point loss trains the median head only (FactoST-v2 for point benchmarks): the other quantile
            # heads drift as the shared weights adapt, so the intervals are no longer the model's; evaluate()
            # stops scoring them (on METR-LA their 80 % interval covered 0.8 % of the truths after one pass)
            self.model.quantiles_untrained = True
            warnings.warn(f"{self.model.name}: loss 'mae' trains the point forecast only; its quantile heads are "
                          "not trained and its intervals are not scored (use loss 'pinball' for intervals)",
                          stacklevel=2)
        if not torch.isfinite(loss):
            raise StcastError(f"{self.model.name}: loss became {loss.item()} at epoch {epoch}; "
                              "lower the learning rate or check the inputs")
        scaled = loss
        if self.world > 1:
            # DDP averages gradients over ranks; weighting each rank's masked mean by its share of the global
            # count of scored entries makes that average the one-process gradient of the global masked mean
            local = scored_count(pred, batch, self.task).to(self.device)
            total = self.fabric.all_reduce(local.clone(), reduce_op="sum")
            scaled = loss * (local * self.world / total.clamp(min=1)).to(loss.dtype)
        opt.zero_grad(set_to_none=True)
        self.fabric.backward(scaled)
        if self.cfg.clip_grad:
            self.fabric.clip_gradients(module, opt, max_norm=self.cfg.clip_grad, error_if_nonfinite=False)
        opt.step()
        return loss.item()

    def _slim(self) -> bool:
        """Whether checkpoints hold only what training changes: a model with frozen weights (an LLM method's
        backbone, rebuilt from its files at construction) keeps its trainable parameters and buffers; a model
        sharded by FSDP always saves whole (its strategy gathers it)."""
        fsdp = "FSDP" in type(self.fabric.strategy).__name__
        return not fsdp and any(not p.requires_grad for p in self.model.parameters())

    def _learned_keys(self) -> set[str]:
        frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        return set(self.model.state_dict()) - frozen

    @property
    def best_epoch(self) -> int | None:
        """The epoch (1-based) whose weights `fit` restored: the first best validation MAE, by early stopping's
        own rule (better by more than 1e-6); None before any epoch."""
        best, epoch = math.inf, None
        for row in self.history:
            v = row.get("val_mae")
            if v is not None and v < best - 1e-6:
                best, epoch = v, row["epoch"]
        return epoch

    def _learned_state(self) -> dict:
        """A copy of the model's state to restore later (the best epoch): only what training changes when slim."""
        state = self.fabric.strategy.get_module_state_dict(self.model)
        if self._slim():
            keep = self._learned_keys()
            state = {k: v for k, v in state.items() if k in keep}
        return copy.deepcopy(state)

    def _restore(self, state: dict) -> None:
        if self._slim():
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            if unexpected or set(missing) & self._learned_keys():
                raise StcastError(f"{self.model.name}: a saved state does not fit this model (missing "
                                  f"{sorted(set(missing) & self._learned_keys())[:3]}, unexpected {unexpected[:3]})")
        else:
            self.fabric.strategy.load_module_state_dict(self.model, state)

    def _load_checkpoint(self, module, opt) -> dict:
        path = self.cfg.checkpoint
        try:  # read once, memory-mapped, to check what it is before anything is restored
            head = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise StcastError(f"checkpoint {path} is not a readable training checkpoint "
                              f"({type(e).__name__}: {first})") from e
        need = {"model", "optimizer", "epoch", "best_val", "bad_epochs", "best_model", "history_keys", "history",
                "rng"}
        if not isinstance(head, dict) or need - set(head):
            missing = sorted(need - set(head)) if isinstance(head, dict) else "everything"
            raise StcastError(f"checkpoint {path} lacks {missing}: it was not written by this version of "
                              "stcast's trainer; drop --resume to start from scratch")
        if head.get("model_name", self.model.name) != self.model.name:
            raise StcastError(f"checkpoint {path} was written while training {head['model_name']!r}, not "
                              f"{self.model.name!r}")
        slim = bool(head.get("slim", False))
        del head
        try:  # through Fabric: each strategy restores its own way (FSDP shards a full state dict)
            if slim:  # trainable weights, buffers, optimiser, RNG: the frozen backbone is already built from its files
                rest = torch.load(path, map_location=self.device, weights_only=True)
                self._restore(rest.pop("model"))
                opt.load_state_dict(rest.pop("optimizer"))
            else:
                rest = self.fabric.load(path, {"model": module, "optimizer": opt}, strict=True, weights_only=True)
        except (RuntimeError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0][:300]
            raise StcastError(f"checkpoint {path} does not fit this {self.model.name} model (another dataset "
                              f"shape or hyper-parameters?): {first}") from e
        return rest

    def _start_log(self) -> None:
        """A fresh log, or on resume the checkpoint's epochs: every epoch appears exactly once."""
        if not self.cfg.log_csv or not is_global_zero():
            return
        path = Path(self.cfg.log_csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        for row in self.history:
            self._log(row)

    def _log(self, row: dict) -> None:
        for logger in self.loggers:
            logger.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        if not self.cfg.log_csv or not is_global_zero():
            return
        path = Path(self.cfg.log_csv)
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def _validate(self, val, train_loss: float) -> float:
        """Validation MAE for early stopping; the training loss when there is no validation split or
        nothing in it can be scored (said once, never a silent NaN that would freeze early stopping)."""
        if val is None or not len(val):
            return train_loss
        m = evaluate(self.model, val, self.cfg.eval_batch_size, self.device, task=self.task, fabric=self.fabric,
                     module=self.module)
        if m["count"] == 0:
            if not getattr(self, "_said_empty_val", False):
                warnings.warn("the validation split has no observed target to score: early stopping and the "
                              "best epoch follow the training loss instead", stacklevel=3)
                self._said_empty_val = True
            return train_loss
        return m["mae"]

    def _save(self, module, opt, epoch, best, bad, best_state, stopped: bool = False) -> None:
        """Through Fabric (rank 0 writes; FSDP gathers a full state first), to a .tmp renamed over the
        checkpoint: a crash mid-save never leaves a truncated checkpoint."""
        path = Path(self.cfg.checkpoint)
        if is_global_zero():
            path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.history[0]) if self.history else []
        slim = self._slim()
        model_state = self._learned_state() if slim else module
        state = {"model": model_state, "optimizer": opt.state_dict() if slim else opt, "epoch": epoch, "slim": slim,
                 "best_val": best, "bad_epochs": bad, "best_model": best_state,
                 "history_keys": keys, "history": [[r[k] for k in keys] for r in self.history],
                 "rng": rng_state(), "model_name": self.model.name, "stopped": stopped,
                 "windows_seen": self.windows_seen, "train_seconds": time.time() - self._t0,
                 "config": {k: v for k, v in asdict(self.cfg).items() if v is not None}}
        tmp = path.with_suffix(path.suffix + ".tmp")
        self.fabric.save(tmp, state)
        self.fabric.barrier()
        if is_global_zero():
            os.replace(tmp, path)
        self.fabric.barrier()


def _extra_loggers(cfg: TrainConfig, name: str) -> list:
    """Fabric loggers beside the CSV log: TensorBoard when asked for (and installed)."""
    if cfg.logger != "tensorboard":
        return []
    from lightning_fabric.loggers import TensorBoardLogger

    try:
        return [TensorBoardLogger(root_dir=cfg.tb_dir, name=name)]
    except (ModuleNotFoundError, ImportError) as e:
        raise StcastError("logger 'tensorboard' needs tensorboard (pip install tensorboard) or tensorboardX") from e
