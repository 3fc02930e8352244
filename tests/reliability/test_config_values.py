"""Round two, class 3: config values are checked all the way down, where they enter, with the key path named:
table options, variants, cross-field settings, duplicate keys, oversized files; nothing silently ignored."""

import numpy as np
import pandas as pd
import pytest
import yaml

from stcast.cli import main
from stcast.config import BenchConfig, TrainConfig, read_yaml
from stcast.errors import StcastError

TABLE = "roads.csv"


def _cfg(**over):
    return {"datasets": [TABLE], "models": ["last-value"], **over}


@pytest.mark.parametrize("opts, says", [
    ({"step_minutes": "five"}, "tables.roads.csv.step_minutes='five' is invalid: expected a whole number of minutes"),
    ({"step_minutes": 0}, "step_minutes=0 is invalid"),
    ({"null_value": "zero"}, "tables.roads.csv.null_value='zero' is invalid: expected a number"),
    ({"null_value": True}, "null_value=True is invalid"),
    ({"layout": "tall"}, "tables.roads.csv.layout='tall' is invalid: expected auto, wide or long"),
    ({"node_col": ["a", "b"]}, "tables.roads.csv.node_col=['a', 'b'] is invalid"),
    ({"colour": "red"}, "tables.roads.csv: unknown options ['colour']"),
])
def test_table_options_are_type_and_range_checked(opts, says):
    with pytest.raises(StcastError, match=says.replace("[", r"\[").replace("(", r"\(")):
        BenchConfig.from_dict(_cfg(tables={TABLE: opts}), "b.yaml")


def test_table_options_given_as_a_list_or_for_a_path_not_in_datasets_are_errors():
    with pytest.raises(StcastError, match=r"tables.roads.csv must be a mapping of reading options"):
        BenchConfig.from_dict(_cfg(tables={TABLE: ["layout", "long"]}), "b.yaml")
    with pytest.raises(StcastError, match=r"tables.other.csv: no such table in datasets \(roads.csv\)"):
        BenchConfig.from_dict(_cfg(tables={"other.csv": {"layout": "long"}}), "b.yaml")


def test_every_variant_is_checked_before_the_first_row_runs():
    cfg = _cfg(models=["last-value", "stid-10"], variants={"stid-10": {"model": "stid", "few_shot": "ten"}})
    with pytest.raises(StcastError, match=r"variants.stid-10.few_shot='ten' is invalid: expected a fraction"):
        BenchConfig.from_dict(cfg, "b.yaml")
    with pytest.raises(StcastError, match="few_shot=1.5"):
        BenchConfig.from_dict({**cfg, "variants": {"stid-10": {"model": "stid", "few_shot": 1.5}}}, "b.yaml")


def test_cut_epoch_without_a_time_budget_is_an_error():
    with pytest.raises(StcastError, match="cut_epoch=True needs max_minutes"):
        TrainConfig(cut_epoch=True)
    assert TrainConfig(cut_epoch=True, max_minutes=5).cut_epoch


def test_a_key_twice_in_a_yaml_file_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  epochs: 3\nmodels: [stid]\ntrain:\n  lr: 0.01\n")
    with pytest.raises(StcastError, match=r"the key 'train' appears twice in one mapping \(lines 1 and 4\)"):
        read_yaml(path)
    path.write_text("train:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(StcastError, match="'lr' appears twice"):
        read_yaml(path)


def test_an_oversized_config_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("models: [" + ", ".join(["stid"] * 400_000) + "]\n")
    with pytest.raises(StcastError, match=r"huge.yaml is \d+\.\d MB; a config is at most 1 MB"):
        read_yaml(path)


def test_a_tables_layout_is_not_overwritten_by_the_command_lines_default(tmp_path, los_small, capsys):
    wide = pd.DataFrame(np.asarray(los_small.values[:300, :4, 0]), columns=["a", "b", "c", "d"])
    wide.insert(0, "when", los_small.timestamps[:300])
    path = tmp_path / TABLE
    wide.melt("when", var_name="loop", value_name="mph").to_csv(path, index=False)
    cfg = tmp_path / "b.yaml"
    cfg.write_text(yaml.safe_dump({"datasets": [str(path)], "models": ["last-value"], "tables": {str(path): {
        "layout": "long", "time_col": "when", "node_col": "loop", "value_col": "mph"}}}))
    assert main(["benchmark", "--config", str(cfg), "--out-dir", str(tmp_path / "out")]) == 0
    assert "last-value" in capsys.readouterr().out


def test_an_empty_or_binary_config_file_is_refused_not_read_as_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(StcastError, match=r"config file .*empty.yaml sets nothing \(it is empty or only comments\)"):
        read_yaml(path)
    path.write_text("# models: [stid]\n")
    with pytest.raises(StcastError, match="sets nothing"):
        read_yaml(path)
    path.write_bytes(b"\x00\xff\xfe\x00" * 10)
    with pytest.raises(StcastError, match=r"empty.yaml is not UTF-8 text"):
        read_yaml(path)
    path.write_text("train: {}\n")  # an empty section is a setting, not an empty file
    assert read_yaml(path) == {"train": {}}


def test_a_seed_beyond_numpys_range_is_refused_before_training():
    assert TrainConfig(seed=2**32 - 1).seed == 2**32 - 1
    with pytest.raises(StcastError, match=r"seed=4294967296 is invalid: expected an integer in 0 .. 4294967295"):
        TrainConfig.from_dict({"seed": 2**32}, "--seed")


def test_a_row_listed_twice_is_refused_not_trained_twice():
    with pytest.raises(StcastError, match=r"b.yaml: models lists stid more than once"):
        BenchConfig.from_dict(_cfg(models=["stid", "last-value", "stid"]), "b.yaml")
    with pytest.raises(StcastError, match=r"datasets lists los-loop more than once"):
        BenchConfig.from_dict(_cfg(datasets=["los-loop", "los-loop"]), "b.yaml")
