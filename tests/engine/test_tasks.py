import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.data.scaler import StandardScaler
from stcast.data.transforms import cluster_nodes
from stcast.engine.experiment import Experiment
from stcast.engine.splits import prepare_windows
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


def test_zero_shot_needs_matching_nodes_and_then_evaluates_without_updates(los_small):
    west, east = los_small.subset_nodes(np.arange(12)), los_small.subset_nodes(np.arange(12, 20))
    exp = Experiment("stid", west, input_len=12, horizon=12, split="7:1:2",
                     train=TrainConfig(epochs=1, progress=False))
    exp.run()
    with pytest.raises(StcastError, match="N=12.*N=8.*cluster both"):
        exp.evaluate_zero_shot(east)
    src, tgt = cluster_nodes(west, 4, by="profile"), cluster_nodes(east, 4, by="profile")
    exp = Experiment("stid", src, input_len=12, horizon=12, split="7:1:2", train=TrainConfig(epochs=1, progress=False))
    exp.run()
    before = {k: v.clone() for k, v in exp.model.state_dict().items()}
    res = exp.evaluate_zero_shot(tgt)
    assert np.isfinite(res.metrics["mae"]) and res.dataset.endswith("->los-loop")
    assert res.epochs == exp.result.epochs == 1 and res.seconds_per_epoch > 0  # the source run's training
    assert all(torch.equal(v, exp.model.state_dict()[k]) for k, v in before.items())  # nothing updated


def test_multitask_scores_the_forecast_on_unhidden_inputs_and_the_reconstruction_on_hidden_ones(los_small):
    """Eq. 15 measured as a user reads it: the forecast columns come from the plain forecast windows (every
    observed input shown), impute_mae from the same windows with inputs hidden; one model, two scores."""
    s = prepare_windows(los_small, "multitask", 12, 12, missing_kw={"r_min": 0.5, "r_max": 0.6})
    clean = s.test.without_hiding()
    b_hid, b_clean = s.test.gather(s.test.starts[:8], torch.Generator().manual_seed(0)), clean.gather(
        clean.starts[:8])
    assert b_clean.eval_mask is None and b_clean.x_target is None
    assert b_clean.x_mask.sum() > b_hid.x_mask.sum() > 0  # the clean copy shows what the other hides
    assert s.test.hide is not None  # the original is not changed

    from stcast.engine.scoring import evaluate
    from stcast.models.base import STModel

    class Oracle(STModel):  # the forecast is the last shown input; the reconstruction is x_target + 1 std
        name = "oracle"
        tasks = ("forecast", "multitask")

        def forward(self, batch):
            last = batch.x[:, -1:].expand(-1, 12, -1, -1)
            imputed = s.scaler.transform(batch.x_target) + 1.0 if batch.x_target is not None else None
            return Prediction(last, imputed=imputed)

    model = Oracle(s.spec)
    imp = evaluate(model, s.test, output="imputed")
    assert imp["mae"] == pytest.approx(float(s.scaler.std[0]), rel=1e-4)  # exactly the 1-std error, hidden only
    fc_clean, fc_hidden = evaluate(model, clean)["mae"], evaluate(model, s.test)["mae"]
    assert fc_clean < fc_hidden  # hiding half the inputs (zeros) hurts last-value: the clean set is used
    with pytest.raises(StcastError, match="multi-task windows"):
        evaluate(model, clean, output="imputed")
    with pytest.raises(StcastError, match="output="):
        evaluate(model, s.test, output="both")
    both = evaluate(model, s.test, also_imputed=True)  # one pass: the same figures as the two separate ones
    assert both["impute_mae"] == pytest.approx(imp["mae"]) and both["impute_rmse"] == pytest.approx(imp["rmse"])
    assert both["mae"] == pytest.approx(fc_hidden)
    with pytest.raises(StcastError, match="multi-task windows"):
        evaluate(model, clean, also_imputed=True)
