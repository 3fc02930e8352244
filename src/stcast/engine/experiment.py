"""One experiment = dataset + task + protocol + model + training config -> metrics, timings, predictions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from stcast.config import TrainConfig
from stcast.data.core import SpatioTemporalData
from stcast.data.registry import load_dataset
from stcast.engine.scoring import score_saved, score_test
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer, seed_everything
from stcast.errors import StcastError
from stcast.models.registry import build_model
from stcast.task import Task


def _param_counts(model) -> tuple[int, int, int]:
    """(the model's own trainable parameters, all parameters + buffers, the added quantile head's parameters).
    The head is counted apart: a statistical model with an interval head learns nothing of its own."""
    head = sum(p.numel() for p in model.quantile_head.parameters()) if model.quantile_head is not None else 0
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
    return trainable, sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()), head


@dataclass
class ExperimentResult:
    model: str
    dataset: str
    task: str
    metrics: dict
    trainable_params: int
    total_params: int
    train_seconds: float
    seconds_per_epoch: float
    epochs: int
    infer_ms_per_batch: float
    predictions: dict = field(default_factory=dict)
    passes: float = 0.0  # training windows seen / training windows: what an equal-time budget bought
    test_windows: int = 0  # the windows scored (fewer than the split's with eval_stride > 1)
    head_params: int = 0  # the added interval head (nn/quantile.py), trained beside the model
    context_len: int | None = None  # the lookback read, when longer than the protocol's input window
    val_windows: int | None = None  # the validation windows early stopping read, when val_stride thinned them
    best_epoch: int | None = None  # the epoch whose weights were kept (early stopping's best validation MAE)

    def row(self) -> dict:
        keep = {k: v for k, v in self.metrics.items() if not isinstance(v, torch.Tensor)}
        return {"model": self.model, "dataset": self.dataset, "task": Task.parse(self.task).value, **keep,
                "trainable_params": self.trainable_params, "head_params": self.head_params,
                "total_params": self.total_params,
                # a model that learns nothing of its own (HA, last value) made no epochs, whatever its head did
                "epochs": self.epochs if self.trainable_params else None,
                "best_epoch": self.best_epoch if self.trainable_params else None,
                "passes": round(self.passes, 3) if self.trainable_params else None, "test_windows": self.test_windows,
                "s_per_epoch": round(self.seconds_per_epoch, 2), "train_s": round(self.train_seconds, 1),
                "infer_ms_per_batch": round(self.infer_ms_per_batch, 1),
                **({"context_len": self.context_len} if self.context_len else {}),
                **({"val_windows": self.val_windows} if self.val_windows is not None else {})}


class Experiment:
    def __init__(self, model: str, dataset: str | SpatioTemporalData, task: str = "forecast",
                 input_len: int | None = None, horizon: int | None = None, split=None, protocol=None,
                 missing: str = "point", missing_kw: dict | None = None, few_shot_fraction=None,
                 model_kw: dict | None = None, train: TrainConfig | None = None, data_dir=None, quantiles=(),
                 eval_stride: int = 1, init_state: dict | None = None, scaler=None, context_len: int | None = None,
                 val_stride: int | None = None):
        """`init_state` (a saved model's state dict) warm-starts training: the model is built, given these weights,
        then trained on this data (an operator fine-tuning on new readings); `scaler` keeps the saved model's
        scaling instead of fitting one on this data's training part (the weights learned in that space).
        `context_len` reads a longer lookback scored on the protocol's targets; `val_stride` thins the validation
        windows only (engine/splits.py)."""
        self.data = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
        from stcast.data.registry import _REGISTRY

        info = _REGISTRY.get(self.data.meta.name)
        # `is None`, not `or`: an explicit 0 must reach validation, never silently become the default
        self.input_len = input_len if input_len is not None else (info.input_len if info else 12)
        self.horizon = horizon if horizon is not None else (info.horizon if info else 12)
        self.split = split if split is not None else (info.split if info else "7:1:2")
        self.protocol, self.missing, self.few_shot_fraction = protocol, missing, few_shot_fraction
        self.model_name, self.task, self.model_kw = model, Task.parse(task), model_kw or {}
        self.train_cfg = train or TrainConfig()
        self.missing_kw = dict(missing_kw or {})
        self.eval_stride, self.context_len, self.val_stride = eval_stride, context_len, val_stride
        self.splits = prepare_windows(self.data, task, self.input_len, self.horizon, self.split,
                                      missing=missing, missing_kw=missing_kw,
                                      few_shot_fraction=few_shot_fraction, protocol=protocol,
                                      quantiles=tuple(quantiles or ()), eval_stride=eval_stride,
                                      context_len=context_len, val_stride=val_stride)
        self.init_state = init_state
        if scaler is not None:
            self.splits.scaler = scaler
            for windows in (self.splits.train, self.splits.val, self.splits.test):
                windows.scaler = scaler

    def protocol_record(self, source: str | None = None) -> dict:
        """How this model was trained, for its model file: `evaluate` reuses it (same split, protocol,
        missingness), so a model is never scored on windows it was trained on."""
        split = self.split if isinstance(self.split, str) else ":".join(f"{v:g}" for v in self.split)
        return {"split": split, "protocol": self.protocol, "missing": self.missing, "missing_kw": self.missing_kw,
                "few_shot": self.few_shot_fraction, "source": source or self.data.meta.name,
                "protocol_input_len": self.input_len,
                "node_ids": list(self.data.node_ids) if self.data.node_ids else None}

    def run(self, collect: bool = False, steps=(3, 6, 12)) -> ExperimentResult:
        seed_everything(self.train_cfg.seed)
        model = build_model(self.model_name, self.splits.spec, **self.model_kw)
        if self.init_state is not None:
            try:
                model.load_state_dict(self.init_state)
            except RuntimeError as e:
                raise StcastError(f"the saved {self.model_name} weights do not fit a model built for this data "
                                  f"({str(e).splitlines()[0][:200]})") from e
        trainer = Trainer(model, self.train_cfg, task=self.task)
        t0 = time.time()
        trainer.fit(self.splits.train, self.splits.val)
        train_s = time.time() - t0 + trainer.resumed_seconds  # a resumed row: the time before the stop counts
        metrics, seconds = score_test(model, self.splits.test, self.task, self.train_cfg.eval_batch_size,
                                      trainer.device, steps=steps, collect=collect, fabric=trainer.fabric,
                                      module=trainer.module)
        n_batches = max(1, int(np.ceil(len(self.splits.test) / self.train_cfg.eval_batch_size)))
        infer = seconds / n_batches * 1000
        preds = {}
        if collect:
            preds = {"pred": metrics.pop("pred"), "truth": metrics.pop("truth"), "mask": metrics.pop("mask"),
                     "starts": self.splits.test.starts, "input_len": self.splits.spec.input_len}
            if "band" in metrics:
                preds["band"], preds["band_levels"] = metrics.pop("band"), metrics.pop("band_levels")
        trainable, total, head = _param_counts(model)
        spe = float(np.mean(trainer.epoch_seconds)) if trainer.epoch_seconds else 0.0
        self.model, self.trainer = model, trainer
        self.result = ExperimentResult(self.model_name, self.data.meta.name, self.task, metrics, trainable, total,
                                       train_s, spe, len(trainer.history), infer, preds,
                                       trainer.windows_seen / max(len(self.splits.train), 1), len(self.splits.test),
                                       head, self.context_len,
                                       len(self.splits.val) if self.val_stride is not None else None,
                                       trainer.best_epoch)
        return self.result

    def evaluate_zero_shot(self, target: SpatioTemporalData, steps=(3, 6, 12)) -> ExperimentResult:
        """The trained model on another dataset's test split, without any update (zero-shot transfer).

        The target's windows are z-scored with statistics of the target's own training part (no labels
        of the test part are used, nothing is learned); the node count must match the source's."""
        if not hasattr(self, "model"):
            raise StcastError("run() the experiment before evaluating it zero-shot")
        src = self.splits.spec
        if (target.num_nodes, target.num_channels) != (src.num_nodes, src.num_channels):
            raise StcastError(f"zero-shot from {self.data.meta.name} (N={src.num_nodes}, C={src.num_channels}) to "
                              f"{target.meta.name} (N={target.num_nodes}, C={target.num_channels}) needs the same "
                              "node and channel counts: cluster both to the same K nodes (BenchConfig.cluster, "
                              "stcast.data.transforms.cluster_nodes)")
        if target.meta.steps_per_day != src.steps_per_day:
            raise StcastError(f"zero-shot from {self.data.meta.name} ({src.steps_per_day} steps a day) to "
                              f"{target.meta.name} ({target.meta.steps_per_day} steps a day): calendar embeddings "
                              "need the same time step; resample one of them first")
        record = {"task": self.task, "split": self.split, "eval_stride": self.eval_stride,
                  "protocol_input_len": self.input_len}
        model = self.model
        metrics, seconds, n_test = score_saved(model, None, target, record, steps, self.train_cfg.eval_batch_size,
                                               self.trainer.device, fabric=self.trainer.fabric,
                                               module=self.trainer.module)
        n_batches = max(1, int(np.ceil(n_test / self.train_cfg.eval_batch_size)))
        trainable, total, head = _param_counts(model)
        src_run = self.result  # the training figures are the source run's: nothing is trained on the target
        return ExperimentResult(self.model_name, f"{self.data.meta.name}->{target.meta.name}", self.task, metrics,
                                trainable, total, src_run.train_seconds, src_run.seconds_per_epoch, src_run.epochs,
                                seconds / n_batches * 1000, passes=src_run.passes, test_windows=n_test,
                                head_params=head, context_len=self.context_len)
