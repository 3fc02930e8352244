"""A small training loop of our own (not Lightning): early stopping on validation MAE, best-checkpoint
restore, resume, seeds, gradient clipping, progress and a CSV log.

Why not Lightning: our batches are gathered by index (no DataLoader workers), every model shares one
loss path, and the loop is ~150 lines we can read top-down; Lightning would add a heavy dependency and
per-step overhead that matters for the statistical baselines and CPU runs.
"""

from __future__ import annotations

import copy
import csv
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from stcast.data.windows import WindowSet
from stcast.engine.tasks import quantiles_in_units, target_and_mask, task_loss
from stcast.errors import StcastError
from stcast.metrics import MetricAccumulator, ProbabilisticAccumulator
from stcast.models.base import STModel


@dataclass
class TrainConfig:
    epochs: int = 100
    patience: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    clip_grad: float = 5.0
    seed: int = 0
    device: str = "cpu"
    max_minutes: float | None = None  # wall-clock budget for training
    max_batches_per_epoch: int | None = None
    alpha: float = 0.5  # multi-task weight
    loss: str = "mae"  # mae (point), or pinball over the model's quantiles (probabilistic models)
    checkpoint: str | None = None  # path: saved every epoch, restored with resume=True
    resume: bool = False
    log_csv: str | None = None
    progress: bool = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, model: STModel, config: TrainConfig | None = None, task: str = "forecast"):
        self.model, self.cfg, self.task = model, config or TrainConfig(), task
        self.device = torch.device(self.cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise StcastError("device 'cuda' requested but no CUDA GPU is visible")
        self.model.to(self.device)
        self.history: list[dict] = []
        self.epoch_seconds: list[float] = []

    def _params(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def fit(self, train: WindowSet, val: WindowSet | None = None) -> Trainer:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.model.fit_statistics(train)
        params = self._params()
        if not params:  # a statistical model: nothing to optimise
            return self
        if getattr(self.model, "replay", None):  # FactoST-v2 CMR: mix a memory buffer into every batch
            from stcast.data.windows import ReplayWindows

            train = ReplayWindows(train, *self.model.replay)
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        start_epoch, best, best_state, bad = 0, math.inf, None, 0
        if cfg.resume and cfg.checkpoint and Path(cfg.checkpoint).exists():
            state = torch.load(cfg.checkpoint, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start_epoch, best, bad = state["epoch"] + 1, state["best_val"], state["bad_epochs"]
            best_state = state["best_model"]
            self.history = [dict(zip(state["history_keys"], row, strict=False)) for row in state["history"]]
        t0 = time.time()
        for epoch in range(start_epoch, cfg.epochs):
            self.model.train()
            te = time.time()
            total, n = 0.0, 0
            nb = math.ceil(len(train) / cfg.batch_size)
            if cfg.max_batches_per_epoch:
                nb = min(nb, cfg.max_batches_per_epoch)
            for i, batch in enumerate(train.batches(cfg.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch)):
                if i >= nb:
                    break
                batch = batch.to(self.device)
                loss = task_loss(self.model(batch), batch, train.scaler, self.task, cfg.alpha, cfg.loss)
                if not torch.isfinite(loss):
                    raise StcastError(f"{self.model.name}: loss became {loss.item()} at epoch {epoch}; "
                                      "lower the learning rate or check the inputs")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                opt.step()
                total += loss.item()
                n += 1
                if cfg.progress and sys.stderr.isatty():
                    print(f"\r  {self.model.name} epoch {epoch + 1}/{cfg.epochs} [{i + 1}/{nb}] "
                          f"loss {total / n:.4f}", end="", file=sys.stderr)
            self.epoch_seconds.append(time.time() - te)
            val_mae = evaluate(self.model, val, cfg.eval_batch_size, self.device, task=self.task)["mae"] \
                if val is not None and len(val) else total / max(n, 1)
            row = {"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_mae": val_mae,
                   "seconds": self.epoch_seconds[-1]}
            self.history.append(row)
            if cfg.progress:
                end = "\n" if not sys.stderr.isatty() else ""
                print(f"\r  {self.model.name} epoch {epoch + 1}: train {row['train_loss']:.4f} "
                      f"val MAE {val_mae:.4f} ({row['seconds']:.1f}s){end}", end=end, file=sys.stderr)
            if val_mae < best - 1e-6:
                best, bad = val_mae, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                bad += 1
            self._log(row)
            if cfg.checkpoint:
                self._save(opt, epoch, best, bad, best_state)
            if bad >= cfg.patience:
                break
            if cfg.max_minutes is not None and time.time() - t0 > cfg.max_minutes * 60:
                break
        if cfg.progress and sys.stderr.isatty():
            print(file=sys.stderr)
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self

    def _log(self, row: dict) -> None:
        if not self.cfg.log_csv:
            return
        path = Path(self.cfg.log_csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def _save(self, opt, epoch, best, bad, best_state) -> None:
        path = Path(self.cfg.checkpoint)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.history[0]) if self.history else []
        state = {"model": self.model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                 "best_val": best, "bad_epochs": bad, "best_model": best_state,
                 "history_keys": keys, "history": [[r[k] for k in keys] for r in self.history],
                 "config": {k: v for k, v in asdict(self.cfg).items() if v is not None}}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # atomic: a crash mid-save never leaves a truncated checkpoint


@torch.no_grad()
def evaluate(model: STModel, windows: WindowSet, batch_size: int = 64, device="cpu", task: str = "forecast",
             steps=(3, 6, 12), collect: bool = False):
    """Metrics in original units over a split. With `collect`, also returns the predictions (B, H, N, C)."""
    model.eval()
    score_task = "impute" if task == "impute" else "forecast"
    out_len = windows.input_len if score_task == "impute" else windows.horizon
    acc = MetricAccumulator(out_len)
    prob = ProbabilisticAccumulator()
    preds, truths, masks = [], [], []
    for batch in windows.batches(batch_size, shuffle=False, seed=12345):
        batch = batch.to(device)
        pred = model(batch)
        point = windows.scaler.inverse(pred.point)
        y, mask = target_and_mask(batch, score_task)
        acc.update(point, y, mask)
        if pred.quantiles is not None and pred.levels is not None:
            prob.update(quantiles_in_units(pred, windows.scaler), y, pred.levels, mask)
        if collect:
            preds.append(point.cpu())
            truths.append(y.cpu())
            masks.append(mask.cpu())
    result = acc.summary(steps)
    result.update(prob.summary())
    if collect:
        result["pred"], result["truth"], result["mask"] = torch.cat(preds), torch.cat(truths), torch.cat(masks)
    return result
