"""The default results table fits the console: no line wider than it, no cell cut; every column with --wide."""

import io

import pytest

from stcast.bench.tables import compact_columns, fit_table, print_results, table_columns
from stcast.config import TrainConfig
from stcast.engine.experiment import Experiment


def _row(model, mae, **kw):
    row = {"dataset": "los-loop", "model": model, "task": "forecast", "mae@3": mae - 0.6, "rmse@3": 6.1,
           "mape@3": 0.088, "mae@6": mae, "rmse@6": 7.4, "mape@6": 0.11, "mae@12": mae + 0.9, "rmse@12": 9.2,
           "mape@12": 0.15, "mae": mae, "rmse": 7.43, "mape": 0.107, "crps": 2.457, "crps_norm": 0.04,
           "coverage80": 0.773, "coverage98": 0.95, "trainable_params": 117100, "head_params": 2711,
           "total_params": 120000, "epochs": 21, "passes": 21.0, "test_windows": 1000, "s_per_epoch": 7.4,
           "train_s": 155.2, "infer_ms_per_batch": 113.0}
    row.update(kw)
    return row


DEMO = [_row("ha", 5.341, trainable_params=0, epochs=None), _row("last-value", 4.388, trainable_params=0),
        _row("seasonal-naive", 5.137, trainable_params=0), _row("dlinear", 4.211, trainable_params=312),
        _row("stid", 3.510), _row("ust-sllm", 4.073, trainable_params=21_671_992, train_s=95.0),
        _row("factost-zero-shot", 4.370, head_params=0, trainable_params=1_234_567, train_s=0.0),
        _row("ust-sllm-w/o-guidance-identity", 4.2)]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_no_line_wider_than_the_console_and_no_cell_cut(width):
    text = fit_table(DEMO, [3, 6, 12], width)
    lines = text.splitlines()
    assert max(map(len, lines)) <= width
    body = {ln.split()[0]: ln.split() for ln in lines[2:] if ln and not ln.startswith("(")}
    assert set(body) == {r["model"] for r in DEMO}  # every model name whole
    assert "3.510" in body["stid"] and "4.370" in body["factost-zero-shot"]  # the pooled MAE always shown
    assert "21.7M" in body["ust-sllm"] or "params" not in lines[0]
    assert "0" in body["ha"]  # a model that learns nothing shows 0 trainable parameters


def test_narrow_consoles_leave_columns_out_by_name_and_wide_ones_keep_them():
    narrow, wide = fit_table(DEMO, [3, 6, 12], 80), fit_table(DEMO, [3, 6, 12], 200)
    assert "not shown at 80 columns" in narrow and "--wide" in narrow
    assert "not shown" not in wide
    assert wide.splitlines()[0].split() == ["model", "mae@3", "mae@6", "mae@12", "mae", "rmse", "crps", "cov80",
                                            "params", "head", "train"]
    assert "77.3%" in wide and "2711" in wide and "155s" in wide


def test_a_pipe_gets_100_columns_and_wide_every_column():
    out = io.StringIO()
    print_results(DEMO, [3, 6, 12], out)
    assert max(map(len, out.getvalue().splitlines())) <= 100
    full = io.StringIO()
    print_results(DEMO, [3, 6, 12], full, wide=True)
    header = full.getvalue().splitlines()[0].split()
    assert header == table_columns(DEMO, [3, 6, 12]) and "infer_ms_per_batch" in header and "head_params" in header


def test_several_datasets_get_a_block_each():
    rows = DEMO[:2] + [dict(r, dataset="metr-la") for r in DEMO[3:5]]
    text = fit_table(rows, [3, 6, 12], 100)
    assert text.splitlines()[0] == "los-loop" and "metr-la" in text.splitlines()
    assert compact_columns(rows, [12])[:3] == ["model", "mae@12", "mae"]


def test_a_statistical_model_with_an_interval_head_reports_no_epochs_and_the_head_apart(los_small):
    row = Experiment("ha", los_small, train=TrainConfig(epochs=1, max_batches_per_epoch=2, progress=False),
                     quantiles=(0.1, 0.5, 0.9)).run().row()
    assert row["trainable_params"] == 0 and row["head_params"] > 0
    assert row["epochs"] is None and row["passes"] is None
    stid = Experiment("stid", los_small, train=TrainConfig(epochs=1, max_batches_per_epoch=2, progress=False),
                      quantiles=(0.1, 0.5, 0.9)).run().row()
    assert stid["trainable_params"] > 0 and stid["head_params"] == row["head_params"] and stid["epochs"] == 1
