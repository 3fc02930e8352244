"""Class 3: a split with nothing to score says so (NaN and a message), never 0.000; `evaluate` scores the
split the model was trained with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stcast.cli import main
from stcast.metrics import MetricAccumulator, nothing_scored


def test_nothing_to_score_is_nan_not_zero():
    acc = MetricAccumulator(3)
    acc.update(torch.ones(2, 3, 4, 1), torch.zeros(2, 3, 4, 1), torch.zeros(2, 3, 4, 1, dtype=torch.bool))
    m = acc.summary((1, 3))
    assert all(math.isnan(m[k]) for k in ("mae", "rmse", "mape", "mae@1", "rmse@3", "mae_stepavg"))
    assert m["count"] == 0 and "nothing could be scored" in nothing_scored(m)


def test_all_zero_targets_give_nan_mape_but_real_mae():
    acc = MetricAccumulator(2)
    acc.update(torch.ones(1, 2, 3, 1), torch.zeros(1, 2, 3, 1))
    m = acc.summary((1,))
    assert m["mae"] == 1.0 and math.isnan(m["mape"]) and "MAPE could not be scored" in nothing_scored(m)


def test_one_empty_step_does_not_hide_the_others():
    acc = MetricAccumulator(2)
    mask = torch.tensor([True, False]).view(1, 2, 1, 1).expand(1, 2, 3, 1)
    acc.update(torch.full((1, 2, 3, 1), 2.0), torch.ones(1, 2, 3, 1), mask)
    m = acc.summary((1, 2))
    assert m["mae@1"] == 1.0 and math.isnan(m["mae@2"]) and m["mae"] == 1.0 and m["mae_stepavg"] == 1.0


def test_cli_says_when_the_test_part_is_all_missing(tmp_path, own_frame, capsys):
    df = own_frame.copy()
    df.iloc[-200:, 1:] = np.nan  # the whole test part (20 % of 864 steps) is missing
    path = tmp_path / "gappy.csv"
    df.to_csv(path, index=False)
    assert main(["train", "--model", "last-value", "--dataset", str(path)]) == 0
    cap = capsys.readouterr()
    assert "nan" in cap.out and "nothing could be scored" in cap.err


def _mae(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header = lines.index(next(ln for ln in lines if ln.split()[:1] == ["model"]))  # the fitted table
    cols, row = lines[header].split(), lines[header + 2].split()
    return row[cols.index("mae")]


def test_evaluate_uses_the_split_the_model_was_trained_with(tmp_path, own_csv, capsys):
    model = tmp_path / "stid.pt"
    assert main(["train", "--model", "stid", "--dataset", str(own_csv), "--epochs", "1", "--split", "9:0:1",
                 "--out", str(model)]) == 0
    trained = _mae(capsys.readouterr().out)
    assert main(["evaluate", "--model-file", str(model)]) == 0  # the dataset path is remembered too
    assert _mae(capsys.readouterr().out) == trained
    with pytest.warns(UserWarning, match="trained with split 9:0:1; evaluating with 7:1:2"):
        assert main(["evaluate", "--model-file", str(model), "--split", "7:1:2"]) == 0
    assert _mae(capsys.readouterr().out) != trained


def test_a_table_with_reordered_or_other_sensors_is_refused(tmp_path, own_frame, own_csv, capsys):
    model = tmp_path / "m.pt"
    assert main(["train", "--model", "dlinear", "--dataset", str(own_csv), "--epochs", "1", "--out", str(model)]) == 0
    swapped = own_frame[["time", "s1", "s0", *[f"s{i}" for i in range(2, 8)]]]
    path = tmp_path / "swapped.csv"
    swapped.to_csv(path, index=False)
    assert main(["forecast", "--model-file", str(model), "--dataset", str(path), "--out", str(tmp_path / "f.csv")]) == 2
    assert "in another order" in capsys.readouterr().err
    renamed = own_frame.rename(columns={"s7": "x7"})
    renamed.to_csv(path, index=False)
    assert main(["evaluate", "--model-file", str(model), "--dataset", str(path)]) == 2
    assert "x7 is new" in capsys.readouterr().err
    coarse = own_frame.iloc[::2].reset_index(drop=True)  # 10-minute steps
    coarse.to_csv(path, index=False)
    assert main(["evaluate", "--model-file", str(model), "--dataset", str(path)]) == 2
    assert "288 steps a day" in capsys.readouterr().err
