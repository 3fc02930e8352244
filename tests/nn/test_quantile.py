"""The quantile head: intervals for any model, never crossing, never changing the point forecast."""

import pytest
import torch

from stcast.cli import main
from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.registry import build_model
from stcast.nn.quantile import QuantileHead, check_levels


def test_quantiles_never_cross_and_the_median_is_the_point_forecast():
    head = QuantileHead((0.05, 0.1, 0.5, 0.8, 0.95), horizon=4, num_nodes=3, num_channels=1)
    torch.nn.init.normal_(head.mlp[2].weight, std=3.0)  # wild widths: still ordered
    point, x = torch.randn(5, 4, 3, 1) * 10, torch.randn(5, 12, 3, 1)
    q = head(point, x)
    assert q.shape == (5, 4, 3, 1, 5)
    assert torch.all(q.diff(dim=-1) > 0)
    assert torch.equal(q[..., 2], point)
    with pytest.raises(StcastError, match="increasing levels"):
        check_levels([0.9, 0.1])
    with pytest.raises(StcastError, match="increasing levels"):
        check_levels([0.0, 0.5])


@pytest.fixture(scope="module")
def splits(los_small):
    return prepare_windows(los_small, "forecast", 12, 12, quantiles=(0.1, 0.5, 0.9))


def test_the_head_leaves_the_model_and_its_point_forecast_unchanged(los_small, splits):
    plain = prepare_windows(los_small, "forecast", 12, 12)
    cfg = TrainConfig(epochs=2, max_batches_per_epoch=5, clip_grad=0, progress=False)  # clipping: a joint norm
    torch.manual_seed(0)
    a = build_model("stid", plain.spec)
    Trainer(a, cfg).fit(plain.train, plain.val)
    torch.manual_seed(0)
    b = build_model("stid", splits.spec)
    assert b.quantile_head is not None and a.quantile_head is None
    Trainer(b, cfg).fit(splits.train, splits.val)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k  # same init, same updates: the pinball never reaches it
    ma, mb = evaluate(a, plain.test), evaluate(b, splits.test)
    assert ma["mae"] == mb["mae"] and "crps" in mb and "coverage80" in mb and "crps" not in ma


def test_a_trained_head_covers_about_what_it_claims(splits):
    torch.manual_seed(0)
    m = build_model("dlinear", splits.spec)
    before = evaluate(m, splits.val)["coverage80"]
    Trainer(m, TrainConfig(epochs=6, lr=5e-3, progress=False)).fit(splits.train, splits.val)
    after = evaluate(m, splits.val)
    assert abs(after["coverage80"] - 0.8) < abs(before - 0.8) and 0.6 < after["coverage80"] < 0.95, (before, after)


def test_quantiles_from_the_command_line_and_their_errors(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--epochs", "1", "--quantiles",
                 "0.1,0.5,0.9", "--set", "train.max_batches_per_epoch=3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "crps" in printed and "cov80" in printed  # the fitted table; --wide spells coverage80 out
    from stcast.engine.checkpoint import load_model

    model, _, _ = load_model(out)
    assert model.quantile_head is not None and model.spec.quantiles == (0.1, 0.5, 0.9)
    with pytest.raises(SystemExit):
        main(["train", "--model", "dlinear", "--dataset", "los-loop", "--quantiles", "0.9,0.1"])
    assert "increasing levels" in capsys.readouterr().err
