"""A small training loop of our own (not Lightning): early stopping on validation MAE, best-checkpoint
restore, resume, seeds, gradient clipping, progress and a CSV log.

Why not Lightning: our batches are gathered by index (no DataLoader workers), every model shares one
loss path, and the loop is ~150 lines we can read top-down; Lightning would add a heavy dependency and
per-step overhead that matters for the statistical baselines and CPU runs.
"""

from __future__ import annotations

import copy
import csv
import difflib
import math
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from stcast.data.windows import WindowSet
from stcast.engine.tasks import Task, quantiles_in_units, target_and_mask, task_loss
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
    optimizer: str = "adam"  # adam, or adamw (decoupled weight decay, as the U-STS-LLM paper trains)
    # learning rate per epoch: constant; multistep (x lr_gamma at each of `milestones`, BasicTS's STID recipe
    # [1, 50, 80] x 0.5); cosine (to 0 over `epochs`). `warmup_epochs` ramps linearly first (any schedule).
    lr_schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.5
    warmup_epochs: int = 0
    checkpoint: str | None = None  # path: saved every epoch, restored with resume=True
    resume: bool = False
    log_csv: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        check_settings(self, _TRAIN_RULES, "training setting")

    @classmethod
    def from_dict(cls, raw: dict | None, source: str = "train") -> TrainConfig:
        """Build from a YAML/`--set` mapping: unknown keys are errors with a did-you-mean."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise StcastError(f"{source}: expected a mapping of training settings, got {type(raw).__name__}")
        known = [f.name for f in fields(cls)]
        for key in raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=2)
                hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(known)}"
                raise StcastError(f"{source}: unknown training setting {key!r}{hint}")
        return cls(**raw)


# setting -> (type, check, what the check asks for); None is allowed only for the optional ones
_TRAIN_RULES = {
    "epochs": (int, lambda v: v >= 0, "an integer >= 0 (0 = score the model as built: zero-shot)"),
    "patience": (int, lambda v: v >= 1, "an integer >= 1 (epochs without improvement before stopping)"),
    "lr": (float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "weight_decay": (float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "eval_batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "clip_grad": (float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0 (0 = no clipping)"),
    "seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "device": (str, lambda v: v.split(":")[0] in ("cpu", "cuda", "mps"), "cpu, cuda or cuda:N"),
    "max_minutes": (float, lambda v: math.isfinite(v) and v > 0, "a number of minutes > 0, or null"),
    "max_batches_per_epoch": (int, lambda v: v >= 1, "an integer >= 1, or null"),
    "alpha": (float, lambda v: 0 <= v <= 1, "a weight in [0, 1]"),
    "loss": (str, lambda v: v in ("mae", "pinball"), "mae or pinball"),
    "optimizer": (str, lambda v: v in ("adam", "adamw"), "adam or adamw"),
    "lr_schedule": (str, lambda v: v in ("constant", "multistep", "cosine"), "constant, multistep or cosine"),
    "milestones": ((list, tuple), lambda v: all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in v),
                   "a list of epochs >= 1"),
    "lr_gamma": (float, lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    "warmup_epochs": (int, lambda v: v >= 0, "an integer >= 0"),
    "checkpoint": (str, lambda v: bool(v), "a file path, or null"),
    "resume": (bool, lambda v: True, "true or false"),
    "log_csv": (str, lambda v: bool(v), "a file path, or null"),
    "progress": (bool, lambda v: True, "true or false"),
}
_OPTIONAL = {"max_minutes", "max_batches_per_epoch", "checkpoint", "log_csv"}


def _has_type(v, typ) -> bool:
    """isinstance, except that a bool is not a number and an int is a float."""
    if typ is float:
        typ = int | float
    if typ in (int, int | float) and isinstance(v, bool):
        return False
    return isinstance(v, typ)


def check_settings(obj, rules: dict, what: str) -> None:
    """Type and range checks of a settings dataclass; ints are accepted where floats are asked for.
    A wrong value is an error naming the setting, never silently changed."""
    for name, (typ, ok, asks) in rules.items():
        v = getattr(obj, name)
        if v is None and name in _OPTIONAL:
            continue
        if not _has_type(v, typ) or not ok(v):
            raise StcastError(f"{what} {name}={v!r} is invalid: expected {asks}")
        if typ is float:
            setattr(obj, name, float(v))


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """The learning-rate multiplier of epoch `epoch` (0-based): a pure function of the epoch, so a resumed
    run follows the same schedule with no scheduler state to save."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.lr_schedule == "multistep":
        return cfg.lr_gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.lr_schedule == "cosine":
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))
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
        if cfg.epochs == 0:
            warnings.warn(f"epochs=0: {self.model.name} is not trained; it is scored as built (zero-shot or "
                          "pretrained weights)", stacklevel=2)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        start_epoch, best, best_state, bad = 0, math.inf, None, 0
        if cfg.resume and not cfg.checkpoint:
            raise StcastError("resume needs a checkpoint path (--checkpoint PATH): nothing to resume from")
        if cfg.checkpoint:
            Path(cfg.checkpoint + ".tmp").unlink(missing_ok=True)  # a write killed midway: never a stray .tmp
        if cfg.resume and not Path(cfg.checkpoint).exists():
            warnings.warn(f"checkpoint {cfg.checkpoint} does not exist yet: training starts from scratch "
                          "(it is written at the end of every epoch)", stacklevel=2)
        elif cfg.resume:
            state = self._load_checkpoint(opt)
            start_epoch, best, bad = state["epoch"] + 1, state["best_val"], state["bad_epochs"]
            best_state = state["best_model"]
            self.history = [dict(zip(state["history_keys"], row, strict=False)) for row in state["history"]]
            set_rng_state(state["rng"])  # dropout and every other draw continue exactly where they were
            if state.get("stopped"):  # it had already stopped early: resuming must not train further
                start_epoch = cfg.epochs
        self._start_log()
        t0 = time.time()
        for epoch in range(start_epoch, cfg.epochs):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg, epoch)
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
            val_mae = self._validate(val, total / max(n, 1))
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
            stop = bad >= cfg.patience
            if cfg.checkpoint:
                self._save(opt, epoch, best, bad, best_state, stop)
            if stop:
                break
            if cfg.max_minutes is not None and time.time() - t0 > cfg.max_minutes * 60:
                break
        if cfg.progress and sys.stderr.isatty():
            print(file=sys.stderr)
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return self

    def _load_checkpoint(self, opt) -> dict:
        path = self.cfg.checkpoint
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise StcastError(f"checkpoint {path} is not a readable training checkpoint "
                              f"({type(e).__name__}: {first})") from e
        need = {"model", "optimizer", "epoch", "best_val", "bad_epochs", "best_model", "history_keys", "history",
                "rng"}
        if not isinstance(state, dict) or need - set(state):
            missing = sorted(need - set(state)) if isinstance(state, dict) else "everything"
            raise StcastError(f"checkpoint {path} lacks {missing}: it was not written by this version of "
                              "stcast's trainer; drop --resume to start from scratch")
        if state.get("model_name", self.model.name) != self.model.name:
            raise StcastError(f"checkpoint {path} was written while training {state['model_name']!r}, not "
                              f"{self.model.name!r}")
        try:
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0][:300]
            raise StcastError(f"checkpoint {path} does not fit this {self.model.name} model (another dataset "
                              f"shape or hyper-parameters?): {first}") from e
        return state

    def _start_log(self) -> None:
        """A fresh log, or on resume the checkpoint's epochs: every epoch appears exactly once."""
        if not self.cfg.log_csv:
            return
        path = Path(self.cfg.log_csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        for row in self.history:
            self._log(row)

    def _log(self, row: dict) -> None:
        if not self.cfg.log_csv:
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
        m = evaluate(self.model, val, self.cfg.eval_batch_size, self.device, task=self.task)
        if m["count"] == 0:
            if not getattr(self, "_said_empty_val", False):
                warnings.warn("the validation split has no observed target to score: early stopping and the "
                              "best epoch follow the training loss instead", stacklevel=3)
                self._said_empty_val = True
            return train_loss
        return m["mae"]

    def _save(self, opt, epoch, best, bad, best_state, stopped: bool = False) -> None:
        path = Path(self.cfg.checkpoint)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.history[0]) if self.history else []
        state = {"model": self.model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                 "best_val": best, "bad_epochs": bad, "best_model": best_state,
                 "history_keys": keys, "history": [[r[k] for k in keys] for r in self.history],
                 "rng": rng_state(), "model_name": self.model.name, "stopped": stopped,
                 "config": {k: v for k, v in asdict(self.cfg).items() if v is not None}}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # atomic: a crash mid-save never leaves a truncated checkpoint


@torch.no_grad()
def evaluate(model: STModel, windows: WindowSet, batch_size: int = 64, device="cpu", task: str = "forecast",
             steps=(3, 6, 12), collect: bool = False):
    """Metrics in original units over a split. With `collect`, also returns the predictions (B, H, N, C)."""
    model.eval()
    score_task = Task.parse(task).scored.value
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
