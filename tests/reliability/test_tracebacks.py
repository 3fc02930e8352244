"""Class 5: user errors end as `stcast: error: ...` naming the input, never a traceback."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from stcast.cli import main
from stcast.engine.checkpoint import load_model
from stcast.errors import StcastError


def test_a_long_table_with_its_own_column_names(tmp_path, own_frame, capsys):
    long = own_frame.melt(id_vars="time", var_name="sensor", value_name="speed")
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    assert main(["train", "--model", "last-value", "--dataset", str(path)]) == 2
    assert "--layout long --node-col NAME --value-col NAME" in capsys.readouterr().err
    assert main(["train", "--model", "last-value", "--dataset", str(path), "--layout", "long", "--node-col",
                 "sensor", "--value-col", "speed"]) == 0
    assert main(["train", "--model", "last-value", "--dataset", str(path), "--layout", "long", "--node-col",
                 "sensor", "--value-col", "flow"]) == 2
    assert "missing ['flow']" in capsys.readouterr().err


@pytest.mark.parametrize("text,outcome", [
    ("0,1\n1,zero\n", "row 2, column 2"),
    ("a,b\n0,1\n1,0\n", None),  # a header row of node ids: recognised
    ("id,a,b\na,0,1\nb,1,0\n", None),  # header and index column
    ("", "is empty"),
])
def test_adjacency_csvs(tmp_path, text, outcome):
    from stcast.data.user_tables import load_adjacency_file

    path = tmp_path / "adj.csv"
    path.write_text(text)
    if outcome is None:
        assert load_adjacency_file(path, 2).tolist() == [[0, 1], [1, 0]]
    else:
        with pytest.raises(StcastError, match=outcome):
            load_adjacency_file(path, 2)


@pytest.mark.parametrize("setting,says", [("train.lr=abc", "lr='abc' is invalid"),
                                          ("train.batch_size=0", "batch_size=0 is invalid"),
                                          ("train.lr=.nan", "lr=nan is invalid"),
                                          ("train.epochs=[1]", "epochs=[1] is invalid"),
                                          ("model_kw.stid.embed_dim=-4", "bad hyper-parameters for 'stid'"),
                                          ("model_kw.stid.embed_dim=abc", "bad hyper-parameters for 'stid'")])
def test_wrong_types_and_ranges_in_set(setting, says, own_csv, capsys):
    assert main(["train", "--model", "stid", "--dataset", str(own_csv), "--set", setting]) == 2
    assert says in capsys.readouterr().err


def test_impute_windows_of_zero_or_longer_than_the_series(tmp_path, own_csv, capsys):
    with pytest.raises(SystemExit):
        main(["impute", "--dataset", str(own_csv), "--window", "0", "--out", str(tmp_path / "f.csv")])
    assert main(["impute", "--dataset", str(own_csv), "--window", "100000", "--out", str(tmp_path / "f.csv")]) == 2
    assert "--window 100000 is longer than" in capsys.readouterr().err


@pytest.fixture()
def trained(tmp_path, own_csv):
    ck, out = tmp_path / "ck.pt", tmp_path / "m.pt"
    assert main(["train", "--model", "stid", "--dataset", str(own_csv), "--epochs", "1", "--checkpoint", str(ck),
                 "--out", str(out)]) == 0
    return ck, out


def test_a_checkpoint_from_another_model_or_shape(tmp_path, own_csv, own_frame, trained, capsys):
    ck, _ = trained
    assert main(["train", "--model", "dlinear", "--dataset", str(own_csv), "--checkpoint", str(ck), "--resume"]) == 2
    assert "written while training 'stid', not 'dlinear'" in capsys.readouterr().err
    wider = own_frame.assign(s8=own_frame.s0)
    path = tmp_path / "wider.csv"
    wider.to_csv(path, index=False)
    assert main(["train", "--model", "stid", "--dataset", str(path), "--checkpoint", str(ck), "--resume"]) == 2
    assert "does not fit this stid model" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["train", "--model", "stid", "--dataset", str(path), "--checkpoint", str(bad), "--resume"]) == 2
    assert "not a readable training checkpoint" in capsys.readouterr().err


def test_model_files_with_missing_keys_or_absurd_sizes_fail_before_allocating(tmp_path, trained):
    _, out = trained
    state = torch.load(out, weights_only=True)
    missing = dict(state)
    del missing["scaler"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(StcastError, match="entry 'scaler' is missing"):
        load_model(tmp_path / "missing.pt")
    absurd = dict(state, spec=dict(state["spec"], num_nodes=10**9))  # 10^9 x 32 floats = 128 GB if allocated
    torch.save(absurd, tmp_path / "absurd.pt")
    with pytest.raises(StcastError, match="stored settings build"):
        load_model(tmp_path / "absurd.pt")
    negative = dict(state, spec=dict(state["spec"], horizon=-3))
    torch.save(negative, tmp_path / "negative.pt")
    with pytest.raises(StcastError, match="spec.horizon=-3"):
        load_model(tmp_path / "negative.pt")
    hp = dict(state, hparams={"embed_dim": 10**7})
    torch.save(hp, tmp_path / "hp.pt")
    with pytest.raises(StcastError, match="stored settings build"):
        load_model(tmp_path / "hp.pt")


def test_an_unwritable_out_fails_before_training(tmp_path, own_csv, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["train", "--model", "stid", "--dataset", str(own_csv), "--out", str(blocker / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "epoch" not in err  # no training happened


def test_a_corrupt_or_missing_data_file_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage\x00\n\x01")
    assert main(["train", "--model", "stid", "--dataset", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert main(["train", "--model", "stid", "--dataset", str(tmp_path / "absent.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    pd.DataFrame({"t": ["x", "y", "z"], "a": [1, 2, 3]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["train", "--model", "stid", "--dataset", str(tmp_path / "t.csv")]) == 2
    assert "does not hold timestamps" in capsys.readouterr().err
