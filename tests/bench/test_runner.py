"""Benchmark configs: zero-shot transfer and node clustering are wired through the runner."""

from pathlib import Path

import pytest

from stcast.bench.runner import run_benchmark
from stcast.config import BenchConfig
from stcast.errors import StcastError


def test_zero_shot_benchmark_with_clustering_runs_end_to_end():
    cfg = BenchConfig.from_dict({"models": ["ha", "dlinear"], "datasets": ["los-loop"], "transfer_to": "los-loop",
                                 "cluster": {"k": 8, "by": "profile"}, "input_len": 12, "horizon": 12,
                                 "train": {"epochs": 1, "progress": False}})
    report = run_benchmark(cfg, collect=False, log=lambda *a: None)
    rows = report.rows()
    assert [r["model"] for r in rows] == ["ha", "dlinear"]
    assert all(r["dataset"] == "los-loop->los-loop" and r["mae"] > 0 for r in rows)
    assert report.data["los-loop"].num_nodes == 8


def test_bad_transfer_configs():
    with pytest.raises(StcastError, match="cluster=.*expected a mapping with keys k, by, reduce, seed"):
        BenchConfig.from_dict({"cluster": {"k": 4, "colour": "red"}})
    with pytest.raises(StcastError, match="unknown dataset|not a known dataset|unknown"):
        BenchConfig.from_dict({"transfer_to": "atlantis"})


def test_variants_run_one_model_under_several_settings_with_their_own_labels():
    cfg = BenchConfig.from_dict({
        "models": ["stid", "stid-bare"], "datasets": ["los-loop"], "input_len": 12, "horizon": 12,
        "variants": {"stid-bare": {"model": "stid", "use_node": False, "use_tod": False, "few_shot": 0.1}},
        "model_kw": {"stid": {"use_dow": False}},
        "train": {"epochs": 1, "max_batches_per_epoch": 2, "progress": False},
        "model_train": {"stid-bare": {"lr": 0.01}}})
    assert cfg.model_kwargs("stid-bare") == {"use_dow": False, "use_node": False, "use_tod": False}
    assert cfg.train_config("stid-bare").lr == 0.01 and cfg.train_config("stid").lr != 0.01
    assert cfg.few_shot_of("stid-bare") == 0.1 and cfg.few_shot_of("stid") is None
    rows = run_benchmark(cfg, collect=False, log=lambda *a: None).rows()
    assert [r["model"] for r in rows] == ["stid", "stid-bare"]
    assert rows[1]["trainable_params"] < rows[0]["trainable_params"]  # the variant's switches took effect
    with pytest.raises(StcastError, match="variant 'x' needs a 'model'"):
        BenchConfig.from_dict({"models": ["x"], "variants": {"x": {"use_node": False}}})
    with pytest.raises(StcastError, match=r"steps \[24\] lie beyond the horizon \(12\)"):
        BenchConfig.from_dict({"models": ["stid"], "horizon": 12, "steps": [3, 24]})
    assert BenchConfig.from_dict({"models": ["stid"], "horizon": 6}).steps == [3, 6, 12]  # defaults: cut at run time
    with pytest.raises(StcastError, match="variants.x.model: unknown model 'atlantis'"):
        BenchConfig.from_dict({"models": ["x"], "variants": {"x": {"model": "atlantis"}}})


def test_tables_show_probabilistic_columns_only_when_a_model_has_them():
    from stcast.bench.tables import format_table, table_columns

    point = {"dataset": "d", "model": "stid", "mae": 1.0, "rmse": 2.0, "mape": 0.1}
    prob = {**point, "model": "factost", "crps": 0.8, "crps_norm": 0.05, "coverage80": 0.78, "coverage98": 0.97}
    assert "crps" not in table_columns([point], steps=())
    cols = table_columns([point, prob], steps=())
    assert cols[cols.index("mape") + 1:cols.index("mape") + 5] == ["crps", "crps_norm", "coverage80", "coverage98"]
    text = format_table([point, prob], cols)
    assert "78.00%" in text and "97.00%" in text  # coverage printed as a percentage


REPO = Path(__file__).parents[2]
CONFIGS = sorted((REPO / "src/stcast/configs").glob("*.yaml")) + sorted((REPO / "experiments").glob("*/*.yaml"))


def test_the_package_ships_the_demo_and_one_reference_config_per_method():
    shipped = {p.stem for p in (REPO / "src/stcast/configs").glob("*.yaml")}
    assert {"demo", "ust-sllm-los-loop", "st-link-los-loop", "st-vlm-los-loop", "factost-los-loop",
            "llm-ts-net-los-loop"} <= shipped and len(shipped) <= 8
    assert len(list((REPO / "experiments").glob("*/*.yaml"))) >= 20  # the records behind docs tables


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_benchmark_config_parses_and_names_known_models(path):
    cfg = BenchConfig.from_yaml(path)  # unknown keys, models, datasets or variants raise here
    assert cfg.models, f"{path.name} lists no models"
    for m in cfg.models:
        cfg.train_config(m)  # every override is a real TrainConfig field


def test_rows_are_written_as_they_finish(tmp_path, los_small, monkeypatch):
    """A crash in the third model keeps the first two rows on disk."""
    import stcast.bench.runner as runner
    monkeypatch.setattr(runner, "load_dataset", lambda name, data_dir=None: los_small)
    cfg = BenchConfig(models=["last-value", "ha", "stid"], datasets=["los-loop"], train={"epochs": 1})
    real_run = runner.Experiment.run

    def crash_on_stid(self, *a, **kw):
        if self.model_name == "stid":
            raise RuntimeError("killed")
        return real_run(self, *a, **kw)

    monkeypatch.setattr(runner.Experiment, "run", crash_on_stid)
    rows = tmp_path / "rows.csv"
    with pytest.raises(RuntimeError):
        run_benchmark(cfg, rows_csv=rows, log=lambda *a: None)
    import csv

    assert [r["model"] for r in csv.DictReader(open(rows))] == ["last-value", "ha"]


def test_the_winner_line_names_the_lowest_mae_and_its_margin():
    from stcast.bench.tables import winner_lines

    rows = [{"dataset": "a", "model": "last-value", "mae": 4.0}, {"dataset": "a", "model": "stid", "mae": 3.0},
            {"dataset": "a", "model": "broken", "mae": float("nan")}, {"dataset": "b", "model": "x", "mae": 2.0},
            {"dataset": "b", "model": "y", "mae": 2.5}]
    assert winner_lines(rows) == ["best on a: stid (pooled MAE 3.000), 25.0 % below last-value (4.000)",
                                  "best on b: x (pooled MAE 2.000), 20.0 % below y (2.500)"]


def test_eval_stride_thins_validation_and_test_only_and_is_recorded(tmp_path, los_small, monkeypatch):
    """eval_stride k keeps every k-th validation/test window (training untouched); the row says how many it scored."""
    import numpy as np

    import stcast.bench.runner as runner
    from stcast.engine.splits import prepare_windows

    full = prepare_windows(los_small, "forecast", 12, 12)
    thin = prepare_windows(los_small, "forecast", 12, 12, eval_stride=4)
    np.testing.assert_array_equal(thin.train.starts, full.train.starts)
    np.testing.assert_array_equal(thin.val.starts, full.val.starts[::4])
    np.testing.assert_array_equal(thin.test.starts, full.test.starts[::4])
    assert 1 < len(thin.test) < len(full.test)
    for bad in (0, -2, 1.5, True, "4"):
        with pytest.raises(StcastError, match="eval_stride"):
            prepare_windows(los_small, "forecast", 12, 12, eval_stride=bad)
        with pytest.raises(StcastError, match="eval_stride"):
            BenchConfig.from_dict({"eval_stride": bad})
    monkeypatch.setattr(runner, "load_dataset", lambda name, data_dir=None: los_small)
    cfg = BenchConfig(models=["last-value"], datasets=["los-loop"], eval_stride=4, train={"epochs": 1})
    row = run_benchmark(cfg, collect=False, log=lambda *a: None).rows()[0]
    assert row["test_windows"] == len(thin.test)


def test_context_len_per_variant_reaches_the_windows_and_the_row(los_small, monkeypatch):
    """A variant's `context_len` makes its model read a longer lookback; the row records it; bad values name the key."""
    import stcast.bench.runner as runner

    monkeypatch.setattr(runner, "load_dataset", lambda name, data_dir=None: los_small)
    cfg = BenchConfig.from_dict({
        "models": ["last-value", "lv-96"], "datasets": ["los-loop"], "input_len": 12, "horizon": 12,
        "variants": {"lv-96": {"model": "lookback-average", "context_len": 96}}, "train": {"epochs": 1}})
    assert cfg.context_len_of("lv-96") == 96 and cfg.context_len_of("last-value") is None
    assert cfg.model_kwargs("lv-96") == {}  # a window setting, not a hyper-parameter
    rows = run_benchmark(cfg, collect=False, log=lambda *a: None).rows()
    assert rows[1]["context_len"] == 96 and "context_len" not in rows[0]
    assert rows[0]["test_windows"] == rows[1]["test_windows"]  # the same targets
    for bad in (6, 0, 2.5, True):
        with pytest.raises(StcastError, match="context_len"):
            BenchConfig.from_dict({"input_len": 12, "models": ["x"], "variants": {"x": {"model": "last-value",
                                                                                        "context_len": bad}}})
    with pytest.raises(StcastError, match="context_len"):
        BenchConfig.from_dict({"input_len": 12, "context_len": 6})


def test_val_stride_thins_validation_only_per_variant_and_the_row_says_so(los_small, monkeypatch):
    """val_stride k: every k-th validation window for early stopping; the test set stays the protocol's."""
    import numpy as np

    import stcast.bench.runner as runner
    from stcast.engine.splits import prepare_windows

    full = prepare_windows(los_small, "forecast", 12, 12)
    thin = prepare_windows(los_small, "forecast", 12, 12, val_stride=4)
    np.testing.assert_array_equal(thin.train.starts, full.train.starts)
    np.testing.assert_array_equal(thin.val.starts, full.val.starts[::4])
    np.testing.assert_array_equal(thin.test.starts, full.test.starts)
    both = prepare_windows(los_small, "forecast", 12, 12, eval_stride=2, val_stride=8)
    np.testing.assert_array_equal(both.val.starts, full.val.starts[::8])
    np.testing.assert_array_equal(both.test.starts, full.test.starts[::2])
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(StcastError, match="val_stride"):
            prepare_windows(los_small, "forecast", 12, 12, val_stride=bad)
        with pytest.raises(StcastError, match="val_stride"):
            BenchConfig.from_dict({"val_stride": bad})
        with pytest.raises(StcastError, match="val_stride"):
            BenchConfig.from_dict({"models": ["x"], "variants": {"x": {"model": "stid", "val_stride": bad}}})
    monkeypatch.setattr(runner, "load_dataset", lambda name, data_dir=None: los_small)
    cfg = BenchConfig.from_dict({
        "models": ["dlinear", "dl-thin"], "datasets": ["los-loop"], "input_len": 12, "horizon": 12,
        "variants": {"dl-thin": {"model": "dlinear", "val_stride": 4}}, "train": {"epochs": 1}})
    assert cfg.val_stride_of("dl-thin") == 4 and cfg.val_stride_of("dlinear") is None
    assert cfg.model_kwargs("dl-thin") == {}  # a window setting, not a hyper-parameter
    rows = run_benchmark(cfg, collect=False, log=lambda *a: None).rows()
    assert "val_windows" not in rows[0] and rows[1]["val_windows"] == len(thin.val)
    assert rows[0]["test_windows"] == rows[1]["test_windows"] == len(full.test)
    assert rows[0]["best_epoch"] == rows[1]["best_epoch"] == 1  # one epoch: the kept weights are epoch 1's


def test_steps_beyond_a_datasets_own_horizon_are_an_error_and_the_defaults_are_cut_with_a_note():
    from stcast.bench.runner import _steps_within

    said = []
    asked = BenchConfig.from_dict({"models": ["last-value"], "steps": [3, 99]})  # horizon from the dataset: later
    with pytest.raises(StcastError, match=r"steps \[99\] lie beyond the horizon \(12\)"):
        _steps_within(asked, 12, said.append)
    default = BenchConfig.from_dict({"models": ["last-value"]})
    assert _steps_within(default, 12, said.append) == (3, 6, 12) and not said
    assert _steps_within(default, 4, said.append) == (3,) and "steps 3" in said[0]
    imputing = BenchConfig.from_dict({"models": ["interpolate"], "task": "impute", "steps": [3, 99]})
    assert _steps_within(imputing, 12, said.append) == (3, 99)  # imputation has no per-step columns


def test_a_shorter_horizon_gets_the_default_steps_it_has_with_one_note():
    said = []
    cfg = BenchConfig.from_dict({"models": ["last-value", "ha"], "datasets": ["los-loop"], "horizon": 6})
    rows = run_benchmark(cfg, collect=False, log=said.append).rows()
    assert all("mae@6" in r and "mae@3" in r and "mae@12" not in r for r in rows)
    assert sum("per-step columns at steps 3, 6" in s for s in said) == 1  # once per dataset, not per row
