"""Round two, class 1: a model file remembers how its table was read (--null-value, --layout, the columns, the
step) and evaluate / forecast / plot read the table the same way; a flag that differs is used with a warning
naming both values."""

import numpy as np
import pandas as pd
import pytest

from stcast.cli import main
from stcast.engine.checkpoint import load_model


@pytest.fixture(scope="module")
def long_table(los_small, tmp_path_factory):
    """A long export (time, sensor, speed) in which 0 means 'no reading', as loop detectors write it."""
    path = tmp_path_factory.mktemp("reading") / "export.csv"
    values = np.asarray(los_small.values[:, :, 0]).copy()
    values[np.random.default_rng(0).random(values.shape) < 0.1] = 0.0
    wide = pd.DataFrame(values, columns=los_small.node_ids)
    wide.insert(0, "time", los_small.timestamps)
    wide.melt("time", var_name="sensor", value_name="speed").to_csv(path, index=False)
    return path


FLAGS = ["--layout", "long", "--time-col", "time", "--node-col", "sensor", "--value-col", "speed", "--null-value", "0"]


def _mae(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["model"])
    return lines[header + 2].split()[lines[header].split().index("mae")]


def test_evaluate_and_forecast_read_the_table_as_training_did(long_table, capsys):
    model = long_table.parent / "m.pt"
    assert main(["train", "--model", "stid", "--dataset", str(long_table), "--epochs", "1", *FLAGS,
                 "--out", str(model)]) == 0
    trained = _mae(capsys.readouterr().out)
    _, _, info = load_model(model)
    assert info["protocol"]["reading"] == {"layout": "long", "time_col": "time", "node_col": "sensor",
                                           "value_col": "speed", "null_value": 0.0}
    assert main(["evaluate", "--model-file", str(model)]) == 0  # no flags: the recorded ones
    assert _mae(capsys.readouterr().out) == trained
    a, b = long_table.parent / "a.csv", long_table.parent / "b.csv"
    assert main(["forecast", "--model-file", str(model), "--out", str(a)]) == 0
    assert main(["forecast", "--model-file", str(model), "--dataset", str(long_table), *FLAGS, "--out", str(b)]) == 0
    assert a.read_text() == b.read_text()


def test_a_flag_that_differs_from_the_recorded_one_is_used_and_named(long_table, capsys):
    model = long_table.parent / "m2.pt"
    assert main(["train", "--model", "dlinear", "--dataset", str(long_table), "--epochs", "1", *FLAGS,
                 "--out", str(model)]) == 0
    trained = _mae(capsys.readouterr().out)
    with pytest.warns(UserWarning, match=r"--null-value 5.0 differs from the 0.0 the model was trained with"):
        assert main(["evaluate", "--model-file", str(model), "--null-value", "5"]) == 0
    assert _mae(capsys.readouterr().out) != trained  # the zeros are now readings: another figure, said
