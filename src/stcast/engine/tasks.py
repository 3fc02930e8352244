"""Task losses: forecasting, imputation (hidden entries only) and their weighted sum (multi-task).

All losses are masked MAE in original units (the BasicTS convention; or the pinball loss over a probabilistic
model's quantiles with loss="pinball"), plus any auxiliary losses the model returns.
"""

from __future__ import annotations

import torch

from stcast.data.batch import Batch
from stcast.errors import StcastError
from stcast.metrics import laplace_nll, masked_mae, pinball_loss, valid_mask
from stcast.models.base import Prediction
from stcast.task import Task


def scored_count(pred: Prediction, batch: Batch, task: str) -> torch.Tensor:
    """How many target entries the main loss term averages over (a float tensor). Distributed training weights
    each rank's loss by its share of the global count, so DDP's gradient mean is the one-process gradient."""
    y, mask = target_and_mask(batch, Task.parse(task).scored)
    if pred.node_index is not None:
        y, mask = y[:, :, pred.node_index], mask[:, :, pred.node_index]
    return valid_mask(y, mask).sum().to(torch.float64)


def target_and_mask(batch: Batch, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """What the point prediction is scored against: future steps (forecast) or the hidden-and-observed
    entries of the window (impute)."""
    if Task.parse(task) is Task.IMPUTE:
        return batch.y, batch.eval_mask
    return batch.y, batch.y_mask


def quantiles_in_units(pred: Prediction, scaler) -> torch.Tensor:
    """(B, H, N, C, Q) quantiles back in original units."""
    return scaler.inverse(pred.quantiles.movedim(-1, 0)).movedim(0, -1)


def task_loss(pred: Prediction, batch: Batch, scaler, task: str, alpha: float = 0.5,
              loss: str = "mae") -> torch.Tensor:
    task = Task.parse(task)
    if loss not in ("mae", "pinball"):
        raise StcastError(f"unknown loss {loss!r}; use 'mae' or 'pinball'")
    if pred.own_loss is not None:  # the library's objective, as its own fit() would train (models/baselines)
        aux = list(pred.aux_losses.values())
        return pred.own_loss + sum(aux) if aux else pred.own_loss
    y, mask = target_and_mask(batch, task.scored)
    if pred.node_index is not None:  # a model trained on a node subset this step: score those nodes only
        y, mask = y[:, :, pred.node_index], mask[:, :, pred.node_index]
    if loss == "pinball":
        if pred.quantiles is None or pred.levels is None:
            raise StcastError("loss 'pinball' needs a model that predicts quantiles")
        out = pinball_loss(quantiles_in_units(pred, scaler), y, pred.levels, valid_mask(y, mask))
    elif pred.scale is not None:  # uncertainty-weighted (Laplace NLL, in units)
        out = laplace_nll(scaler.inverse(pred.point), scaler.inverse(pred.point + pred.scale) -
                          scaler.inverse(pred.point), y, valid_mask(y, mask))
    else:
        out = masked_mae(scaler.inverse(pred.point), y, mask)
        if pred.quantile_loss and pred.quantiles is not None:  # an added quantile head learns its intervals
            out = out + pinball_loss(quantiles_in_units(pred, scaler), y, pred.levels, valid_mask(y, mask))
    if task is Task.MULTITASK:  # U-STS-LLM eqs. 15-16: alpha L_pred + (1 - alpha) L_imp
        if pred.imputed is None or batch.x_target is None:
            raise StcastError("multitask needs a model that returns an imputed window and windows with "
                              "hidden inputs (a missingness pattern)")
        x_target, hidden = batch.x_target, batch.eval_mask
        if pred.node_index is not None:
            x_target, hidden = x_target[:, :, pred.node_index], hidden[:, :, pred.node_index]
        out = alpha * out + (1 - alpha) * masked_mae(scaler.inverse(pred.imputed), x_target, hidden)
    aux = list(pred.aux_losses.values())
    return out + sum(aux) if aux else out
