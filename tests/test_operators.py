"""The operators' loop (README): new readings arrive; forecast from the end of the new table with a saved model,
and fine-tune the saved model on the new table (`--init-from`, `fit(warm_start=True)`), from the CLI and the API."""

import numpy as np
import pandas as pd
import pytest
import torch

from stcast import Forecaster
from stcast.cli import main
from stcast.engine.checkpoint import load_model


@pytest.fixture(scope="module")
def tables(los_small, tmp_path_factory):
    """Day 1 and a later, overlapping stretch of the same 20 sensors, as an operator's exports."""
    root = tmp_path_factory.mktemp("ops")
    frame = pd.DataFrame(np.asarray(los_small.values[:, :, 0]), columns=los_small.node_ids)
    frame.insert(0, "timestamp", los_small.timestamps)
    first, latest = root / "first.csv", root / "latest.csv"
    frame.iloc[:400].to_csv(first, index=False)
    frame.iloc[200:].to_csv(latest, index=False)
    return first, latest, frame


def test_forecast_from_the_end_of_a_new_table_and_fine_tune_on_it(tables, capsys):
    first, latest, frame = tables
    m = first.parent / "m.pt"
    assert main(["train", "--model", "stid", "--dataset", str(first), "--epochs", "2", "--null-value", "0",
                 "--out", str(m), "--set", "train.progress=false"]) == 0
    out = first.parent / "next.csv"
    assert main(["forecast", "--model-file", str(m), "--dataset", str(latest), "--null-value", "0",
                 "--out", str(out)]) == 0
    fc = pd.read_csv(out, parse_dates=["timestamp"])
    step = pd.Timedelta(minutes=5)
    assert fc["timestamp"].min() == frame["timestamp"].iloc[-1] + step  # the steps after the new table's end
    assert fc["timestamp"].max() == frame["timestamp"].iloc[-1] + 12 * step and len(fc) == 12 * 20

    same = first.parent / "same.pt"  # a warm start with no epochs is the saved model, bit for bit
    assert main(["train", "--init-from", str(m), "--dataset", str(latest), "--epochs", "0", "--null-value", "0",
                 "--out", str(same)]) == 0
    a, b = load_model(m), load_model(same)
    assert all(torch.equal(x, b[0].state_dict()[k]) for k, x in a[0].state_dict().items())
    assert np.array_equal(a[1].mean, b[1].mean)  # the saved model's scaler, not one fitted on the new table
    tuned = first.parent / "tuned.pt"
    assert main(["train", "--init-from", str(m), "--dataset", str(latest), "--epochs", "1", "--null-value", "0",
                 "--out", str(tuned), "--set", "train.progress=false"]) == 0
    c = load_model(tuned)
    moved = [k for k, x in a[0].state_dict().items() if not torch.equal(x, c[0].state_dict()[k])]
    assert moved and c[2]["model"] == "stid" and c[2]["hparams"] == a[2]["hparams"]
    capsys.readouterr()


def test_fine_tuning_refuses_other_sensors_models_and_hyper_parameters(tables, capsys):
    first, latest, frame = tables
    m = first.parent / "m2.pt"
    assert main(["train", "--model", "dlinear", "--dataset", str(first), "--epochs", "1", "--out", str(m)]) == 0
    fewer = first.parent / "fewer.csv"
    frame.drop(columns=[frame.columns[3]]).iloc[200:].to_csv(fewer, index=False)
    capsys.readouterr()
    assert main(["train", "--init-from", str(m), "--dataset", str(fewer), "--epochs", "1"]) == 2
    assert "the model was trained on 20 nodes" in capsys.readouterr().err
    assert main(["train", "--init-from", str(m), "--model", "stid", "--dataset", str(latest)]) == 2
    assert "holds a dlinear model, not stid" in capsys.readouterr().err
    assert main(["train", "--init-from", str(m), "--dataset", str(latest), "--set", "model_kw.kernel_size=5"]) == 2
    assert "keeps the saved model's hyper-parameters" in capsys.readouterr().err
    assert main(["train", "--dataset", str(latest)]) == 2
    assert "train needs --model NAME (or --init-from" in capsys.readouterr().err


def test_the_api_forecasts_new_frames_and_fine_tunes_with_warm_start(tables, tmp_path):
    first, latest, frame = tables
    long = lambda f: f.melt("timestamp", var_name="unique_id", value_name="y").rename(columns={"timestamp": "ds"})  # noqa: E731
    old, new = long(frame.iloc[:400]), long(frame.iloc[200:])
    fc = Forecaster("stid", train={"epochs": 1}, null_value=0).fit(old)
    fc.save(tmp_path / "f.pt")
    loaded = Forecaster.load(tmp_path / "f.pt")
    pred = loaded.predict(new)
    assert pred["ds"].min() == frame["timestamp"].iloc[-1] + pd.Timedelta(minutes=5)
    before = {k: v.clone() for k, v in loaded.model_.state_dict().items()}
    loaded.train = {"epochs": 0}
    loaded.fit(new, warm_start=True)  # no epochs: the loaded weights, unchanged
    assert all(torch.equal(v, loaded.model_.state_dict()[k]) for k, v in before.items())
    loaded.train = {"epochs": 1}
    loaded.fit(new, warm_start=True)
    assert any(not torch.equal(v, loaded.model_.state_dict()[k]) for k, v in before.items())
    with pytest.raises(Exception, match="call fit"):
        Forecaster("stid").fit(new, warm_start=True)
