"""One experiment = dataset + task + protocol + model + training config -> metrics, timings, predictions."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from stcast.config import TrainConfig
from stcast.data.core import SpatioTemporalData
from stcast.data.missing import aqi36_labels, aqi36_split, make_missing
from stcast.data.registry import load_dataset
from stcast.data.scaler import StandardScaler
from stcast.data.windows import WindowSet, few_shot, split_starts
from stcast.engine.tasks import Task
from stcast.engine.trainer import Trainer, evaluate, seed_everything
from stcast.errors import StcastError
from stcast.models.base import ProblemSpec
from stcast.models.registry import build_model


@dataclass
class Splits:
    train: WindowSet
    val: WindowSet
    test: WindowSet
    scaler: StandardScaler
    spec: ProblemSpec


def prepare_windows(data: SpatioTemporalData, task: str = "forecast", input_len: int = 12, horizon: int = 12,
                    split="7:1:2", missing: str = "point", missing_kw: dict | None = None,
                    few_shot_fraction: float | None = None, protocol: str | None = None,
                    quantiles=(), eval_stride: int = 1) -> Splits:
    """Windows for train/val/test. Imputation windows have length `input_len` and hide entries with the
    chosen pattern (seeded); protocol='aqi36' uses the GRIN split and scores the simulated failures.
    `eval_stride` k > 1 keeps every k-th validation and test window (training is untouched): a cheaper,
    still evenly spread evaluation for ablations compared within one method; the published protocol is k = 1."""
    task = Task.parse(task)
    if isinstance(eval_stride, bool) or not isinstance(eval_stride, int | np.integer) or eval_stride < 1:
        raise StcastError(f"eval_stride must be an integer >= 1 (1 = every validation/test window); got "
                          f"{eval_stride!r}")
    if quantiles:
        from stcast.nn.quantile import check_levels

        quantiles = check_levels(quantiles)
    checks = [("input_len", input_len)] + ([("horizon", horizon)] if task != "impute" else [])  # impute: H = L
    for name, v in checks:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise StcastError(f"{name} must be an integer >= 1; got {v!r}")
    window_task = task.scored.value
    if window_task == "impute":
        horizon_eff = 0
    else:
        horizon_eff = horizon
    if protocol == "aqi36":
        if data.eval_mask is None:
            raise StcastError("protocol 'aqi36' needs the AQI-36 dataset (its simulated-failure mask)")
        starts = aqi36_split(data, input_len + horizon_eff)
        fit_steps = np.flatnonzero(aqi36_labels(data) == 0)  # the training months only (GRIN/CSDI)
    elif protocol is None:
        starts = split_starts(data.num_steps, input_len, horizon_eff, split)
        fit_steps = slice(0, int(starts["train"].max()) + input_len + horizon_eff)
    else:
        raise StcastError(f"unknown protocol {protocol!r}; known: aqi36")
    if few_shot_fraction is not None:
        starts["train"] = few_shot(starts["train"], few_shot_fraction)
    if eval_stride > 1:
        starts["val"], starts["test"] = starts["val"][::eval_stride], starts["test"][::eval_stride]
    scaler = StandardScaler().fit(data, steps=fit_steps)
    warn_unobserved_nodes(data, fit_steps)
    hide = make_missing(missing, **(missing_kw or {})) if task.hides_inputs else None
    sets = {k: WindowSet(data, v, input_len, horizon, scaler, window_task, hide=hide,
                         protocol_eval=(protocol == "aqi36" and k == "test" and window_task == "impute"),
                         fit_steps=fit_steps)
            for k, v in starts.items()}
    spec = ProblemSpec(num_nodes=data.num_nodes, num_channels=data.num_channels, input_len=input_len,
                       horizon=input_len if window_task == "impute" else horizon,
                       steps_per_day=data.meta.steps_per_day, task=task.value, quantiles=tuple(quantiles),
                       adjacency=data.adjacency)
    return Splits(sets["train"], sets["val"], sets["test"], scaler, spec)


def warn_unobserved_nodes(data: SpatioTemporalData, steps) -> None:
    """A node with no observation in the training steps is usable (it is scored where the truth is
    observed) but nothing can be learned about it: say so, naming the nodes."""
    if data.values.size > 5e8:  # a LargeST-size memmap: not scanned here
        return
    seen = np.asarray(data.observed(steps)).any(axis=(0, 2))
    if not seen.all():
        bad = np.flatnonzero(~seen)
        ids = [data.node_ids[i] if data.node_ids else str(i) for i in bad[:5]]
        warnings.warn(f"{data.meta.name}: {len(bad)} node(s) have no observed value in the training steps "
                      f"(e.g. {', '.join(map(str, ids))}); their forecasts fall back to what other nodes teach",
                      stacklevel=3)


def _param_counts(model) -> tuple[int, int]:
    """(trainable parameters, all parameters + buffers)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())


def score_test(model, test: WindowSet, task: str, batch_size: int = 64, device="cpu", steps=(3, 6, 12),
               collect: bool = False, fabric=None, module=None) -> tuple[dict, float]:
    """A trained model's test metrics for its task, and the seconds the scored predictions took. Multi-task
    (U-STS-LLM eq. 15): the forecast is scored on the plain forecast windows (every observed input shown, so the
    row compares with forecast-only rows), `impute_mae` / `impute_rmse` on the same windows with inputs hidden, and
    `hidden_mae` the forecast from those hidden inputs."""
    multitask = Task.parse(task) is Task.MULTITASK
    t0 = time.time()
    metrics = evaluate(model, test.without_hiding() if multitask else test, batch_size, device,
                       task=Task.parse(task).scored.value, steps=steps, collect=collect, fabric=fabric, module=module)
    seconds = time.time() - t0
    if multitask:  # one pass over the hidden-input windows: the imputation and the forecast from them
        hid = evaluate(model, test, batch_size, device, task="forecast", steps=(), fabric=fabric, module=module,
                       also_imputed=True)
        metrics.update({"impute_mae": hid["impute_mae"], "impute_rmse": hid["impute_rmse"], "hidden_mae": hid["mae"]})
    return metrics, seconds


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

    def row(self) -> dict:
        keep = {k: v for k, v in self.metrics.items() if not isinstance(v, torch.Tensor)}
        return {"model": self.model, "dataset": self.dataset, "task": self.task, **keep,
                "trainable_params": self.trainable_params, "total_params": self.total_params, "epochs": self.epochs,
                "passes": round(self.passes, 3), "test_windows": self.test_windows,
                "s_per_epoch": round(self.seconds_per_epoch, 2), "train_s": round(self.train_seconds, 1),
                "infer_ms_per_batch": round(self.infer_ms_per_batch, 1)}


class Experiment:
    def __init__(self, model: str, dataset: str | SpatioTemporalData, task: str = "forecast",
                 input_len: int | None = None, horizon: int | None = None, split=None, protocol=None,
                 missing: str = "point", missing_kw: dict | None = None, few_shot_fraction=None,
                 model_kw: dict | None = None, train: TrainConfig | None = None, data_dir=None, quantiles=(),
                 eval_stride: int = 1):
        self.data = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
        from stcast.data.registry import _REGISTRY

        info = _REGISTRY.get(self.data.meta.name)
        # `is None`, not `or`: an explicit 0 must reach validation, never silently become the default
        self.input_len = input_len if input_len is not None else (info.input_len if info else 12)
        self.horizon = horizon if horizon is not None else (info.horizon if info else 12)
        self.split = split if split is not None else (info.split if info else "7:1:2")
        self.protocol, self.missing, self.few_shot_fraction = protocol, missing, few_shot_fraction
        self.model_name, self.task, self.model_kw = model, task, model_kw or {}
        self.train_cfg = train or TrainConfig()
        self.missing_kw = dict(missing_kw or {})
        self.eval_stride = eval_stride
        self.splits = prepare_windows(self.data, task, self.input_len, self.horizon, self.split,
                                      missing=missing, missing_kw=missing_kw,
                                      few_shot_fraction=few_shot_fraction, protocol=protocol,
                                      quantiles=tuple(quantiles or ()), eval_stride=eval_stride)

    def protocol_record(self, source: str | None = None) -> dict:
        """How this model was trained, for its model file: `evaluate` reuses it (same split, protocol,
        missingness), so a model is never scored on windows it was trained on."""
        split = self.split if isinstance(self.split, str) else ":".join(f"{v:g}" for v in self.split)
        return {"split": split, "protocol": self.protocol, "missing": self.missing, "missing_kw": self.missing_kw,
                "few_shot": self.few_shot_fraction, "source": source or self.data.meta.name,
                "node_ids": list(self.data.node_ids) if self.data.node_ids else None}

    def run(self, collect: bool = False, steps=(3, 6, 12)) -> ExperimentResult:
        seed_everything(self.train_cfg.seed)
        model = build_model(self.model_name, self.splits.spec, **self.model_kw)
        trainer = Trainer(model, self.train_cfg, task=self.task)
        t0 = time.time()
        trainer.fit(self.splits.train, self.splits.val)
        train_s = time.time() - t0
        metrics, seconds = score_test(model, self.splits.test, self.task, self.train_cfg.eval_batch_size,
                                      trainer.device, steps=steps, collect=collect, fabric=trainer.fabric,
                                      module=trainer.module)
        n_batches = max(1, int(np.ceil(len(self.splits.test) / self.train_cfg.eval_batch_size)))
        infer = seconds / n_batches * 1000
        preds = {}
        if collect:
            preds = {"pred": metrics.pop("pred"), "truth": metrics.pop("truth"), "mask": metrics.pop("mask"),
                     "starts": self.splits.test.starts, "input_len": self.input_len}
            if "band" in metrics:
                preds["band"], preds["band_levels"] = metrics.pop("band"), metrics.pop("band_levels")
        trainable, total = _param_counts(model)
        spe = float(np.mean(trainer.epoch_seconds)) if trainer.epoch_seconds else 0.0
        self.model, self.trainer = model, trainer
        self.result = ExperimentResult(self.model_name, self.data.meta.name, self.task, metrics, trainable, total,
                                       train_s, spe, len(trainer.history), infer, preds,
                                       trainer.windows_seen / max(len(self.splits.train), 1), len(self.splits.test))
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
        tgt = prepare_windows(target, self.task, self.input_len, self.horizon, self.split,
                              eval_stride=self.eval_stride)
        model = self.model
        model.attach(target, tgt.scaler)
        metrics, seconds = score_test(model, tgt.test, self.task, self.train_cfg.eval_batch_size, self.trainer.device,
                                      steps=steps, fabric=self.trainer.fabric, module=self.trainer.module)
        n_batches = max(1, int(np.ceil(len(tgt.test) / self.train_cfg.eval_batch_size)))
        trainable, total = _param_counts(model)
        src_run = self.result  # the training figures are the source run's: nothing is trained on the target
        return ExperimentResult(self.model_name, f"{self.data.meta.name}->{target.meta.name}", self.task, metrics,
                                trainable, total, src_run.train_seconds, src_run.seconds_per_epoch, src_run.epochs,
                                seconds / n_batches * 1000, passes=src_run.passes, test_windows=len(tgt.test))
