"""Class 4: values are used as given or refused; never silently changed or ignored."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from stcast.cli import main
from stcast.config import TrainConfig
from stcast.data.windows import parse_split
from stcast.engine.experiment import Experiment
from stcast.errors import StcastError


@pytest.mark.parametrize("flag,value,says", [("--horizon", "0", "must be >= 1"), ("--input-len", "0", "must be >= 1"),
                                             ("--epochs", "-1", "must be >= 0"), ("--patience", "0", "must be >= 1"),
                                             ("--lr", "0", "finite number > 0"), ("--lr", "nan", "finite number > 0"),
                                             ("--batch-size", "0", "must be >= 1")])
def test_out_of_range_flags_are_refused(flag, value, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "stid", "--dataset", "los-loop", flag, value])
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_threads_zero_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--threads", "0", "models"])
    assert "--threads: must be >= 1" in capsys.readouterr().err


def test_zero_lengths_in_python_are_refused_not_defaulted(los_small):
    for kw in ({"horizon": 0}, {"input_len": 0}):
        with pytest.raises(StcastError, match="must be an integer >= 1; got 0"):
            Experiment("stid", los_small, **kw)


def test_epochs_zero_is_said_out_loud(los_small):
    exp = Experiment("stid", los_small, train=TrainConfig(epochs=0, progress=False))
    with pytest.warns(UserWarning, match="epochs=0: stid is not trained"):
        exp.run()


def test_splits_that_do_not_sum_to_a_whole_are_refused():
    assert parse_split("7:1:2") == pytest.approx((0.7, 0.1, 0.2))
    assert parse_split("0.6:0.2:0.2") == pytest.approx((0.6, 0.2, 0.2))
    assert parse_split("70:10:20") == pytest.approx((0.7, 0.1, 0.2))
    for bad in ("0.7:0.1:0.1", "7:1:1", "1:1", "a:b", "-1:1:10"):
        with pytest.raises(StcastError):
            parse_split(bad)


def test_unknown_config_keys_and_set_sections_are_errors(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    for body, says in (({"trian": {"epochs": 1}}, "unknown key 'trian'; did you mean train"),
                       ({"train": {"epoch": 1}}, "unknown training setting 'epoch'; did you mean epochs"),
                       ({"train": {"lr": "fast"}}, "lr='fast' is invalid")):
        cfg.write_text(yaml.safe_dump(body))
        assert main(["train", "--model", "stid", "--dataset", "los-loop", "--config", str(cfg)]) == 2
        assert says in capsys.readouterr().err
    assert main(["train", "--model", "stid", "--dataset", "los-loop", "--set", "trainn.lr=0.1"]) == 2
    assert "unknown key 'trainn'; did you mean train?" in capsys.readouterr().err
    assert main(["train", "--model", "stid", "--dataset", "los-loop", "--set", "model_kw.stid.embed_dimm=8"]) == 2
    assert "embed_dimm" in capsys.readouterr().err


def test_model_kw_keyed_by_model_name_works_in_train(tmp_path, own_csv, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--model", "stid", "--dataset", str(own_csv), "--epochs", "1",
                 "--set", "model_kw.stid.embed_dim=8", "--out", str(out)]) == 0
    from stcast.engine.checkpoint import load_model

    hp = load_model(out)[2]["hparams"]
    assert hp["embed_dim"] == 8 and hp["node_dim"] == 32  # the model file spells out its whole config


def test_resume_without_a_checkpoint_is_an_error_and_a_missing_one_a_warning(tmp_path, own_csv, capsys):
    assert main(["train", "--model", "dlinear", "--dataset", str(own_csv), "--epochs", "1", "--resume"]) == 2
    assert "resume needs a checkpoint path" in capsys.readouterr().err
    ck = tmp_path / "ck.pt"
    with pytest.warns(UserWarning, match="does not exist yet: training starts from scratch"):
        assert main(["train", "--model", "dlinear", "--dataset", str(own_csv), "--epochs", "1", "--resume",
                     "--checkpoint", str(ck)]) == 0
    assert ck.exists()


@pytest.mark.parametrize("command", ["forecast", "impute"])
def test_an_unknown_table_suffix_is_refused_before_any_work(tmp_path, own_csv, command, capsys):
    out = tmp_path / "f.xlsx"
    args = [command, "--dataset", str(own_csv), "--out", str(out)]
    if command == "forecast":
        args += ["--model-file", str(tmp_path / "absent.pt")]  # would fail later: the suffix is checked first
    assert main(args) == 2
    assert ".xlsx is not one of them" in capsys.readouterr().err and not out.exists()


def test_a_negative_adjacency_is_refused(tmp_path, own_csv, capsys):
    adj = np.eye(8, dtype=np.float32)
    adj[0, 1] = -0.5
    np.save(tmp_path / "adj.npy", adj)
    assert main(["train", "--model", "gwnet", "--dataset", str(own_csv), "--adjacency", str(tmp_path / "adj.npy"),
                 "--epochs", "1"]) == 2
    assert "1 negative weights" in capsys.readouterr().err


def test_a_node_never_observed_is_named(tmp_path, own_frame):
    df = own_frame.copy()
    df["s3"] = np.nan
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    from stcast.data.user_tables import load_user_table

    with pytest.warns(UserWarning, match=r"1 node\(s\) have no observed value at all \(e.g. s3\)"):
        load_user_table(path)


def test_zeros_that_look_like_gaps_are_pointed_out(tmp_path, own_frame, capsys):
    from stcast.data.user_tables import load_user_table

    df = own_frame.copy()
    df.iloc[::4, 1:] = 0.0  # a quarter of the readings are 0: dropped-out sensors, not standing traffic
    path = tmp_path / "zeros.csv"
    df.to_csv(path, index=False)
    with pytest.warns(UserWarning, match=r"25.0% of the observed cells are exactly 0 .* --null-value 0"):
        data = load_user_table(path)
    assert data.mask.all()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gaps = load_user_table(path, null_value=0.0)
    assert abs(gaps.mask.mean() - 0.75) < 0.01
    assert main(["datasets", "describe", str(path), "--null-value", "0"]) == 0
    assert "missing 25.0%, null value 0" in capsys.readouterr().out


def test_adjacency_for_a_registered_dataset_is_refused_not_ignored(tmp_path, capsys):
    """`--adjacency` reads a graph for a table of one's own; a registered dataset brings its own graph, and the
    flag was dropped without a word (train) or applied to no table (benchmark)."""
    np.save(tmp_path / "adj.npy", np.eye(207, dtype=np.float32))
    assert main(["train", "--model", "stid", "--dataset", "los-loop", "--adjacency", str(tmp_path / "adj.npy"),
                 "--epochs", "1"]) == 2
    assert "'los-loop' is a registered dataset with its own graph" in capsys.readouterr().err
    assert main(["benchmark", "--models", "ha", "--datasets", "los-loop", "--adjacency", str(tmp_path / "adj.npy"),
                 "--out-dir", str(tmp_path / "out")]) == 2
    assert "--adjacency: for tables of your own" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_shuffled_labelled_graph_trains_as_the_table_order(tmp_path, own_frame, los):
    """End to end through the CLI: a graph written with sensor ids in another order gives the model file the
    same adjacency as the graph in the table's order."""
    import pandas as pd
    import torch

    ids = list(own_frame.columns[1:])
    adj = los.adjacency[:8, :8].astype(np.float32) + np.triu(np.ones((8, 8), np.float32), 1) * 0.5  # directed
    own_frame.to_csv(tmp_path / "own.csv", index=False)
    p = np.array([3, 7, 0, 5, 1, 6, 2, 4])
    pd.DataFrame(adj[np.ix_(p, p)], index=[ids[i] for i in p], columns=[ids[i] for i in p]).to_csv(tmp_path / "g.csv")
    np.save(tmp_path / "g.npy", adj)
    outs = []
    for g in ("g.csv", "g.npy"):
        out = tmp_path / f"{g}.pt"
        assert main(["train", "--model", "gwnet", "--dataset", str(tmp_path / "own.csv"), "--adjacency",
                     str(tmp_path / g), "--epochs", "1", "--max-minutes", "0.05", "--out", str(out)]) == 0
        outs.append(torch.load(out, weights_only=True))
    sd = [o["state_dict"] if "state_dict" in o else o for o in outs]
    graph_keys = [k for k in sd[0] if "support" in k or "adj" in k]
    assert graph_keys, list(sd[0])[:20]
    for k in graph_keys:
        torch.testing.assert_close(sd[0][k], sd[1][k])


def test_a_model_files_graph_is_not_silently_preferred_to_the_one_given(tmp_path, own_frame, capsys):
    """`forecast`/`evaluate --adjacency` with a graph other than the model's: the model uses the graph it was
    trained with (its supports are part of the file), so the flag was ignored without a word."""
    own_frame.to_csv(tmp_path / "own.csv", index=False)
    ring = np.roll(np.eye(8, dtype=np.float32), 1, axis=1)
    np.save(tmp_path / "ring.npy", ring)
    np.save(tmp_path / "other.npy", ring.T)
    out = tmp_path / "m.pt"
    table = ["--dataset", str(tmp_path / "own.csv")]
    assert main(["train", "--model", "gwnet", *table, "--adjacency", str(tmp_path / "ring.npy"), "--epochs", "1",
                 "--max-minutes", "0.05", "--out", str(out)]) == 0
    capsys.readouterr()
    for cmd in (["forecast", "--out", str(tmp_path / "f.csv")], ["evaluate"]):
        assert main([cmd[0], "--model-file", str(out), *table, "--adjacency", str(tmp_path / "other.npy"),
                     *cmd[1:]]) == 2
        assert "trained with another graph (16 of its 64 entries differ)" in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()
    assert main(["forecast", "--model-file", str(out), *table, "--adjacency", str(tmp_path / "ring.npy"),
                 "--out", str(tmp_path / "f.csv")]) == 0
