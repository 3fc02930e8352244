import pytest
import torch

from stcast.data.windows import StandardScaler
from stcast.engine.experiment import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.errors import StcastError
from stcast.models.base import Prediction


def test_imputation_loss_only_sees_hidden_entries(los):
    s = prepare_windows(los, "impute", 24, 0, missing_kw={"r_min": 0.5, "r_max": 0.6})
    b = s.train.gather(s.train.starts[:4])
    y_scaled = s.scaler.transform(b.y)
    pred = y_scaled.clone()
    pred[~b.eval_mask] += 100.0  # huge errors everywhere that is not scored
    assert task_loss(Prediction(pred), b, s.scaler, "impute").item() == pytest.approx(0.0, abs=1e-3)
    pred = y_scaled.clone()
    pred[b.eval_mask] += 1.0  # one std on every hidden entry -> loss = std in original units
    assert task_loss(Prediction(pred), b, s.scaler, "impute").item() == pytest.approx(float(s.scaler.std[0]),
                                                                                       rel=1e-3)


def test_multitask_is_alpha_weighted(los):
    s = prepare_windows(los, "multitask", 12, 12, missing_kw={"r_min": 0.5, "r_max": 0.6})
    b = s.train.gather(s.train.starts[:4])
    sc = s.scaler
    fut = sc.transform(b.y) + 2.0  # forecast error 2 std
    imp = sc.transform(b.x_target) + 1.0  # imputation error 1 std
    std = float(sc.std[0])
    for alpha in (0.0, 0.3, 1.0):
        loss = task_loss(Prediction(fut, imputed=imp), b, sc, "multitask", alpha).item()
        assert loss == pytest.approx(alpha * 2 * std + (1 - alpha) * std, rel=1e-3)
    with pytest.raises(StcastError, match="imputed window"):
        task_loss(Prediction(fut), b, sc, "multitask")


def test_auxiliary_losses_are_added(los):
    s = prepare_windows(los, "forecast", 12, 12)
    b = s.train.gather(s.train.starts[:2])
    p = Prediction(s.scaler.transform(b.y), aux_losses={"balance": torch.tensor(0.25)})
    assert task_loss(p, b, s.scaler, "forecast").item() == pytest.approx(0.25, abs=1e-4)
    with pytest.raises(StcastError, match="unknown task"):
        task_loss(p, b, StandardScaler(s.scaler.mean, s.scaler.std), "classify")
