"""One way to score a model: metrics in original units over a window set (`evaluate`), a trained model's test
figures for its task (`score_test`), and a saved or transferred model on a dataset (`score_saved`: windows ->
attach -> score, used by `stcast evaluate` and zero-shot transfer alike)."""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch

from stcast.data.core import SpatioTemporalData
from stcast.data.scaler import StandardScaler
from stcast.data.windows import WindowSet
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import quantiles_in_units, target_and_mask
from stcast.errors import StcastError
from stcast.metrics import MetricAccumulator, ProbabilisticAccumulator
from stcast.models.base import STModel
from stcast.task import Task


@torch.no_grad()
def evaluate(model: STModel, windows: WindowSet, batch_size: int = 64, device="cpu", task: str = "forecast",
             steps=(3, 6, 12), collect: bool = False, fabric=None, module=None, output: str = "point",
             also_imputed: bool = False):
    """Metrics in original units over a split. With `collect`, also returns the predictions (B, H, N, C).
    `output="imputed"` scores a multi-task model's reconstructed input window (U-STS-LLM eq. 16) on the
    entries its windows hide, instead of the forecast; `also_imputed=True` scores both from the same forwards
    (`impute_mae`, `impute_rmse` beside the forecast's figures).

    In a distributed run (`fabric` with several processes) each rank scores its share of every batch and the
    sums and counts are added up: the figures equal one process's. Where sharding would change what is
    scored (inputs hidden at random: the draws follow the batch stream) or every rank must run the same
    forwards (FSDP, `module` is the sharded model), every rank scores everything instead."""
    model.eval()
    score_task = Task.parse(task).scored
    rank, world = (fabric.global_rank, fabric.world_size) if fabric is not None else (0, 1)
    fsdp = fabric is not None and "FSDP" in type(fabric.strategy).__name__
    random_hiding = windows.hide is not None and not windows.protocol_eval
    if collect or fsdp or random_hiding:
        rank, world = 0, 1
    net = module if fsdp and module is not None else model
    autocast = fabric.autocast() if fabric is not None else nullcontext()
    if output not in ("point", "imputed"):
        raise StcastError(f"output={output!r}; use 'point' or 'imputed'")
    if (output == "imputed" or also_imputed) and (windows.hide is None or windows.task is not Task.FORECAST):
        asked = "also_imputed=True" if also_imputed else "output='imputed'"
        raise StcastError(f"{asked} needs multi-task windows (forecast windows that hide input entries)")
    out_len = windows.input_len if score_task is Task.IMPUTE or output == "imputed" else windows.horizon
    intervals = output == "point" and not model.quantiles_untrained
    acc = MetricAccumulator(out_len)
    imp_acc = MetricAccumulator(windows.input_len) if also_imputed and output == "point" else None
    prob = ProbabilisticAccumulator()
    preds, truths, masks, bands = [], [], [], []
    levels = None
    for batch in windows.batches(batch_size, shuffle=False, seed=12345, rank=rank, world=world):
        batch = batch.to(device)
        with autocast:
            pred = net(batch)
        if output == "imputed":
            if pred.imputed is None:
                raise StcastError(f"{model.name} returns no imputed window: train it with task 'multitask'")
            point, y, mask = windows.scaler.inverse(pred.imputed.float()), batch.x_target, batch.eval_mask
        else:
            point = windows.scaler.inverse(pred.point.float())
            y, mask = target_and_mask(batch, score_task)
            if imp_acc is not None:
                if pred.imputed is None:
                    raise StcastError(f"{model.name} returns no imputed window: train it with task 'multitask'")
                imp_acc.update(windows.scaler.inverse(pred.imputed.float()), batch.x_target, batch.eval_mask)
        acc.update(point, y, mask)
        if intervals and pred.quantiles is not None and pred.levels is not None:
            levels = pred.levels
            prob.update(quantiles_in_units(pred, windows.scaler).float(), y, pred.levels, mask)
        if collect:
            preds.append(point.cpu())
            truths.append(y.cpu())
            masks.append(mask.cpu())
            # the interval nearest 10-90 %, for plots
            if intervals and pred.quantiles is not None and pred.levels is not None:
                q = quantiles_in_units(pred, windows.scaler).float()
                lo, hi = _band_levels(pred.levels)
                bands.append(torch.stack([q[..., lo], q[..., hi]], -1).cpu())
    if world > 1:
        def all_sum(t):
            return fabric.all_reduce(t.to(device), reduce_op="sum")

        acc.reduce(all_sum)
        if imp_acc is not None:
            imp_acc.reduce(all_sum)
        levels = fabric.broadcast(None if levels is None else [float(v) for v in levels], src=0)
        if levels is not None:
            prob.reduce(all_sum, levels)
    result = acc.summary(steps)
    result.update(prob.summary())
    if imp_acc is not None:
        imputed = imp_acc.summary(())
        result.update(impute_mae=imputed["mae"], impute_rmse=imputed["rmse"])
    if collect:
        result["pred"], result["truth"], result["mask"] = torch.cat(preds), torch.cat(truths), torch.cat(masks)
        if bands and len(bands) == len(preds):
            lo, hi = _band_levels(levels)
            result["band"], result["band_levels"] = torch.cat(bands), (float(levels[lo]), float(levels[hi]))
    return result


def _band_levels(levels) -> tuple[int, int]:
    """Indices of the levels nearest 0.1 and 0.9: the band a forecast plot draws."""
    lv = [float(v) for v in levels]
    return (min(range(len(lv)), key=lambda i: abs(lv[i] - 0.1)), min(range(len(lv)), key=lambda i: abs(lv[i] - 0.9)))


def score_test(model, test: WindowSet, task: str, batch_size: int = 64, device="cpu", steps=(3, 6, 12),
               collect: bool = False, fabric=None, module=None) -> tuple[dict, float]:
    """A trained model's test metrics for its task, and the seconds the scored predictions took. Multi-task
    (U-STS-LLM eq. 15): the forecast is scored on the plain forecast windows (every observed input shown, so the
    row compares with forecast-only rows), `impute_mae` / `impute_rmse` on the same windows with inputs hidden, and
    `hidden_mae` the forecast from those hidden inputs."""
    multitask = Task.parse(task) is Task.MULTITASK
    t0 = time.time()
    metrics = evaluate(model, test.without_hiding() if multitask else test, batch_size, device,
                       task=Task.parse(task).scored, steps=steps, collect=collect, fabric=fabric, module=module)
    seconds = time.time() - t0
    if multitask:  # one pass over the hidden-input windows: the imputation and the forecast from them
        hid = evaluate(model, test.hiding_from_both_paths(), batch_size, device, task=Task.FORECAST, steps=(),
                       fabric=fabric, module=module, also_imputed=True)
        metrics.update({"impute_mae": hid["impute_mae"], "impute_rmse": hid["impute_rmse"], "hidden_mae": hid["mae"]})
    return metrics, seconds


def score_saved(model: STModel, scaler: StandardScaler | None, data: SpatioTemporalData, record: dict,
                steps=(3, 6, 12), batch_size: int = 64, device="cpu", refit_statistics: bool = False,
                fabric=None, module=None, collect: bool = False) -> tuple[dict, float, int]:
    """A trained model scored on `data`'s test split: windows -> attach -> score. Returns (metrics, seconds of
    the scored predictions, test windows).

    `record` says how the windows are cut: task, split, protocol, missing, missing_kw, eval_stride (a model file's
    protocol record, or a zero-shot run's settings). `scaler` is the model's own (fitted on its training data);
    None scales the data with statistics of its own training part (zero-shot transfer: no test label is used,
    nothing is learned). `refit_statistics` refits a statistical model (no trainable weights) on the training part.
    `collect` adds the predictions (pred, truth, mask, band) and the test windows' `starts` (pictures)."""
    task = Task.parse(record.get("task", "forecast"))
    test = saved_test_windows(model, scaler, data, record, refit_statistics)
    metrics, seconds = score_test(model, test, task, batch_size, device, steps=steps, fabric=fabric, module=module,
                                  collect=collect)
    if collect:
        metrics["starts"] = test.starts
    return metrics, seconds, len(test)


def saved_test_windows(model: STModel, scaler: StandardScaler | None, data: SpatioTemporalData, record: dict,
                       refit_statistics: bool = False) -> WindowSet:
    """The test windows `record` describes, scaled with `scaler` (None: the data's own training statistics), with
    the model attached to `data` (and a statistical model refitted on the training part when asked)."""
    task = Task.parse(record.get("task", "forecast"))
    spec = model.spec
    # a model that reads a longer lookback than its protocol's window (`context_len`) is scored on the protocol's
    # targets: the record keeps the protocol's input length (absent in older model files: the same as the model's)
    protocol_len = record.get("protocol_input_len") or spec.input_len
    context = spec.input_len if spec.input_len > protocol_len and task is not Task.IMPUTE else None
    splits = prepare_windows(data, task, protocol_len if context else spec.input_len, spec.horizon,
                             record.get("split") or "7:1:2",
                             protocol=record.get("protocol"), missing=record.get("missing") or "point",
                             missing_kw=record.get("missing_kw"), eval_stride=record.get("eval_stride", 1),
                             context_len=context)
    test = splits.test
    if scaler is not None:
        test.scaler = scaler
    if refit_statistics and not any(p.requires_grad for p in model.parameters()):
        model.fit_statistics(splits.train)
    model.attach(data, test.scaler)
    return test
