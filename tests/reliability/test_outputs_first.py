"""Round two, class 7: every output is checked before the work that produces it, the path named, no temporary
files left; class 10 in part: flags are never abbreviations."""

import pytest

from stcast import Forecaster
from stcast.cli import main
from stcast.errors import StcastError


def test_pretrain_refuses_a_directory_out_before_any_work(tmp_path, capsys):
    assert main(["pretrain", "factost", "--out", str(tmp_path), "--steps", "1"]) == 2
    assert f"--out {tmp_path} is a directory; give a file name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing pretrained


def test_a_picture_with_an_unknown_suffix_is_refused_before_drawing(tmp_path, capsys):
    out = tmp_path / "corr.xyz"
    assert main(["plot", "correlation", "--dataset", "los-loop", "--out", str(out)]) == 2
    assert "--out " + str(out) + ": pictures are written as .png, .pdf, .svg or .jpg; .xyz" in capsys.readouterr().err
    assert not out.exists()


def test_saving_a_model_where_it_cannot_be_written_names_the_path(tmp_path, los):
    import numpy as np
    import pandas as pd

    wide = pd.DataFrame(los.values[:300, :3, 0].copy(), columns=["a", "b", "c"])
    wide.insert(0, "ds", pd.DatetimeIndex(los.timestamps[:300]))
    fc = Forecaster("last-value", null_value=0.0).fit(wide)
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where a folder should be: cannot hold the model on any machine, root included
    with pytest.raises(StcastError, match=r"model file .*file/m.pt cannot be written"):
        fc.save(blocker / "m.pt")
    with pytest.raises(StcastError, match=r"model file .* is a directory"):
        fc.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] and np.isfinite(fc.predict()["last-value"]).all()


def test_flags_are_never_abbreviations(capsys):
    with pytest.raises(SystemExit) as done:  # argparse's own exit: status 2 and a usage line
        main(["train", "--model", "stid", "--dataset", "los-loop", "--device", "cuda"])
    assert done.value.code == 2 and "unrecognized arguments: --device cuda" in capsys.readouterr().err
