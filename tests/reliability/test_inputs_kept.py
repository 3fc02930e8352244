"""Round five: nothing a user hands us is lost. An output path that is one of the command's own input files (the
table, its graph, the model file, a part to merge), under any name (`sub/../table.csv`, a link), or two outputs on
one path, is an error before any work, and the input's bytes are unchanged."""

import os

import numpy as np
import pandas as pd
import pytest

from stcast.cli import main


@pytest.fixture()
def files(tmp_path, los):
    wide = pd.DataFrame(los.values[:400, :4, 0].copy(), columns=["a", "b", "c", "d"])
    wide.insert(0, "time", pd.DatetimeIndex(los.timestamps[:400]))
    table = tmp_path / "table.csv"
    wide.to_csv(table, index=False)
    graph = tmp_path / "graph.npy"
    np.save(graph, np.ones((4, 4)))
    model = tmp_path / "model.pt"
    assert main(["train", "--dataset", str(table), "--model", "last-value", "--out", str(model)]) == 0
    return table, graph, model


def _kept(path, run, capsys, message):
    before = path.read_bytes()
    assert main(run) == 2
    assert message in capsys.readouterr().err
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["same", "dotdot", "link"])
@pytest.mark.parametrize("command", ["forecast", "impute", "train"])
def test_an_output_onto_the_input_table_is_refused(files, command, name, capsys, tmp_path):
    table, _, model = files
    out = {"same": str(table), "dotdot": str(tmp_path / "not-made-yet" / ".." / "table.csv"),
           "link": str(tmp_path / "link.csv")}[name]
    if name == "link":
        os.symlink(table, out)
    run = {"forecast": ["forecast", "--model-file", str(model), "--dataset", str(table), "--out", out],
           "impute": ["impute", "--dataset", str(table), "--out", out],
           "train": ["train", "--dataset", str(table), "--model", "stid", "--epochs", "1", "--out", out]}[command]
    _kept(table, run, capsys, f"is the file given as --dataset {table}")
    assert not (tmp_path / "not-made-yet").exists()


def test_outputs_onto_the_graph_the_model_or_a_part_are_refused(files, capsys, tmp_path):
    table, graph, model = files
    _kept(graph, ["train", "--dataset", str(table), "--adjacency", str(graph), "--model", "stid", "--out",
                  str(graph)], capsys, "--adjacency")
    _kept(model, ["train", "--dataset", str(table), "--init-from", str(model), "--out", str(model)], capsys,
          "--init-from")
    _kept(model, ["forecast", "--model-file", str(model), "--dataset", str(table), "--out", str(model)], capsys,
          "--model-file")
    part = tmp_path / "part.csv"
    part.write_text("dataset,model,mae\nx,stid,1.0\n")
    _kept(part, ["merge", str(part), "--out", str(part)], capsys, "given as parts")


def test_two_outputs_on_one_path_are_refused_and_resume_still_reads_its_checkpoint(files, capsys, tmp_path):
    table, *_ = files
    out = tmp_path / "m.pt"
    assert main(["train", "--dataset", str(table), "--model", "stid", "--epochs", "1", "--out", str(out),
                 "--checkpoint", str(out)]) == 2
    assert "--out and --checkpoint are the same file" in capsys.readouterr().err and not out.exists()
    ck = tmp_path / "ck.pt"
    args = ["train", "--dataset", str(table), "--model", "stid", "--out", str(out), "--checkpoint", str(ck)]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0  # --checkpoint is read and written by design
    assert out.exists() and ck.exists()


def test_tables_are_written_whole_and_nothing_else_is_left(files, tmp_path):
    """forecast/impute write beside the output and move it over (a kill mid-write keeps the old file whole); a
    .csv.gz is still gzip, and no temporary file stays behind."""
    table, _, model = files
    out = tmp_path / "out" / "fc.csv.gz"
    assert main(["forecast", "--model-file", str(model), "--dataset", str(table), "--out", str(out)]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b" and len(pd.read_csv(out)) == 12 * 4
    assert main(["impute", "--dataset", str(table), "--out", str(out)]) == 0  # replaces the old file
    assert len(pd.read_csv(out)) > 12 * 4 and os.listdir(out.parent) == ["fc.csv.gz"]


def test_a_pretraining_rerun_never_replaces_the_earlier_checkpoint_unasked(tmp_path, capsys):
    out = tmp_path / "utp.pt"
    for held in (out, out.with_suffix(".state.pt")):  # a finished run's checkpoint; a stopped run's state
        held.write_bytes(b"hours of pretraining")
        _kept(held, ["pretrain", "factost", "--out", str(out), "--steps", "1"], capsys,
              f"{held.name} already exists (an earlier pretraining run?); pass --resume")
        held.unlink()
    out.write_bytes(b"x")
    _kept(out, ["pretrain", "factost", "--out", str(out), "--resume", "--overwrite"], capsys, "give one of them")


def test_a_training_rerun_never_starts_over_on_a_stopped_runs_checkpoint_unasked(files, capsys, tmp_path):
    table, *_ = files
    ck = tmp_path / "ck.pt"
    run = ["train", "--dataset", str(table), "--model", "stid", "--epochs", "1", "--checkpoint", str(ck)]
    assert main(run) == 0
    _kept(ck, run, capsys, f"--checkpoint {ck} holds an earlier run's training state; pass --resume")
    _kept(ck, [*run, "--resume", "--overwrite"], capsys, "give one of them")
    import torch

    assert main([*run[:-4], "--epochs", "2", "--checkpoint", str(ck), "--resume"]) == 0  # continued: 2 epochs
    assert torch.load(ck, weights_only=True)["epoch"] == 1  # the last finished epoch, counted from 0
    assert main([*run, "--overwrite"]) == 0  # asked for: started over, one epoch
    assert torch.load(ck, weights_only=True)["epoch"] == 0


def test_imputation_hands_observed_readings_back_exactly_as_given(tmp_path, los):
    """Models work in float32, which rounds a reading written 62.66666667 (Los-loop's own CSV holds such values);
    `impute` and `Imputer.transform` return every observed entry exactly as the table gave it, and only the
    missing ones filled. A table float32 holds exactly keeps no second copy."""
    from stcast import Imputer
    from stcast.data.user_tables import load_user_table

    # readings with 8 decimals, as averaging loggers write them (pandas' CSV parser is exact to ~15 digits; a
    # machine-written 17-digit float may come back one unit in the last place off)
    wide = pd.DataFrame(np.round(los.values[:300, :3, 0].astype(np.float64) / 3.0, 8), columns=["a", "b", "c"])
    wide.iloc[4, 1] = 55.123456789
    wide.iloc[10:14, 2] = np.nan
    wide.insert(0, "time", pd.DatetimeIndex(los.timestamps[:300]))
    table, out = tmp_path / "t.csv", tmp_path / "filled.csv"
    wide.to_csv(table, index=False)
    given = pd.read_csv(table).iloc[:, 1:].to_numpy()
    assert (given.astype(np.float32) != given)[np.isfinite(given)].any()  # float32 would round this table
    assert main(["impute", "--dataset", str(table), "--method", "interpolate", "--out", str(out)]) == 0
    back = pd.read_csv(out).iloc[:, 1:].to_numpy()
    seen = np.isfinite(given)
    assert np.array_equal(back[seen], given[seen]) and np.isfinite(back).all()
    long = wide.melt(id_vars="time", var_name="unique_id", value_name="y").rename(columns={"time": "ds"})
    res = Imputer("interpolate", window=24).fit(long).transform(long).merge(long, on=["unique_id", "ds"],
                                                                            suffixes=("", "_in"))
    kept = res[~res.y_imputed]
    assert len(kept) == seen.sum() and (kept.y == kept.y_in).all()
    assert "exact_values" not in load_user_table(table).extra  # training and forecasting keep no second copy
    plain = tmp_path / "plain.csv"
    wide.assign(a=1.5, b=2.25, c=3.0).to_csv(plain, index=False)
    assert "exact_values" not in load_user_table(plain, keep_exact=True).extra


def test_an_imputed_table_comes_back_laid_out_as_it_was_given(tmp_path, los):
    """A wide table back as wide under its own time column's name; a long one as long with its own column names
    and an `imputed` flag; time-zone-aware timestamps (read as UTC) back as UTC with their offset, not shifted
    clock times without one."""
    wide = pd.DataFrame(los.values[:200, :3, 0].copy(), columns=["a", "b", "c"])
    wide.iloc[20:23, 1] = np.nan
    times = pd.DatetimeIndex(los.timestamps[:200])
    wide.insert(0, "Zeit", times)
    src, out = tmp_path / "w.csv", tmp_path / "w_out.csv"
    wide.to_csv(src, index=False)
    assert main(["impute", "--dataset", str(src), "--method", "interpolate", "--out", str(out)]) == 0
    back = pd.read_csv(out)
    assert list(back.columns) == ["Zeit", "a", "b", "c"] and back["b"].notna().all()
    assert (pd.to_datetime(back["Zeit"]) == times).all()

    long = wide.melt(id_vars="Zeit", var_name="sensor", value_name="speed").dropna()
    long["Zeit"] = long["Zeit"].dt.tz_localize("America/Los_Angeles")
    src = tmp_path / "l.csv"
    long.to_csv(src, index=False)
    assert main(["impute", "--dataset", str(src), "--layout", "long", "--node-col", "sensor", "--value-col",
                 "speed", "--method", "interpolate", "--out", str(out)]) == 0
    back = pd.read_csv(out)
    assert list(back.columns) == ["Zeit", "sensor", "speed", "imputed"] and len(back) == 200 * 3
    assert back["imputed"].sum() == 3 and back["speed"].notna().all()
    assert back["Zeit"].str.endswith("+00:00").all()  # UTC, said
    first = pd.to_datetime(back["Zeit"]).min()
    assert first == long["Zeit"].min()  # the same instant as the input's first reading


def test_forecasts_of_a_table_with_utc_offsets_carry_their_offset(tmp_path, los):
    wide = pd.DataFrame(los.values[:300, :3, 0].copy(), columns=["a", "b", "c"])
    wide.insert(0, "time", pd.DatetimeIndex(los.timestamps[:300]).tz_localize("America/Los_Angeles"))
    src, model, out = tmp_path / "t.csv", tmp_path / "m.pt", tmp_path / "fc.csv"
    wide.to_csv(src, index=False)
    assert main(["train", "--dataset", str(src), "--model", "last-value", "--out", str(model)]) == 0
    assert main(["forecast", "--model-file", str(model), "--dataset", str(src), "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    assert fc["timestamp"].str.endswith("+00:00").all()
    assert pd.to_datetime(fc["timestamp"]).min() == wide["time"].max() + pd.Timedelta(minutes=5)  # the next step


def test_the_python_api_hands_times_with_utc_offsets_back_with_their_offset(tmp_path, los):
    """Imputer.transform, Forecaster.predict and cross_validation, and a Forecaster saved and loaded: a frame
    whose `ds` carries offsets gets UTC times back that merge with its own (naive times would not)."""
    from stcast import Forecaster, Imputer

    wide = pd.DataFrame(los.values[:300, :3, 0].copy(), columns=["a", "b", "c"])
    wide.iloc[5:8, 1] = np.nan
    wide.insert(0, "ds", pd.DatetimeIndex(los.timestamps[:300]).tz_localize("America/Los_Angeles"))
    long = wide.melt(id_vars="ds", var_name="unique_id", value_name="y")
    filled = Imputer("interpolate", window=24).fit(long).transform(long)
    merged = filled.merge(long, on=["unique_id", "ds"], suffixes=("", "_in"))
    assert len(merged) == len(long) and merged.y_imputed.sum() == 3
    fc = Forecaster("last-value").fit(long.dropna())
    nxt = long.ds.max() + pd.Timedelta(minutes=5)
    assert str(fc.predict().ds.dt.tz) == "UTC" and fc.predict().ds.min() == nxt
    assert fc.cross_validation(long.dropna(), n_windows=2).y.notna().all()  # the actuals merged by time
    fc.save(tmp_path / "fc.pt")
    assert Forecaster.load(tmp_path / "fc.pt").predict().ds.min() == nxt


def test_a_registered_datasets_name_is_no_file_to_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a model file named like the dataset, in a folder without such a file: allowed
    assert main(["train", "--dataset", "los-loop", "--model", "last-value", "--out", "los-loop"]) == 0
    assert (tmp_path / "los-loop").is_file()  # (a second run would read that file as its table, and refuse)
