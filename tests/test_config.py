"""One config shape: model config dataclasses from constructors, key and type checks, shared by every command."""

import dataclasses
import pathlib

import pytest

from stcast import config
from stcast.cli import main
from stcast.cli.common import bundled_config
from stcast.errors import StcastError
from stcast.models.registry import get_model_class, model_names

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_model_declares_a_config_dataclass_with_its_defaults():
    for name in model_names():
        cls = config.model_config_class(get_model_class(name))
        assert dataclasses.is_dataclass(cls)
        cfg = cls()  # every hyper-parameter has a default
        assert isinstance(dataclasses.asdict(cfg), dict)
    stid = config.model_config_class(get_model_class("stid"))
    fields = {f.name: f for f in dataclasses.fields(stid)}
    assert fields["embed_dim"].default == 32 and fields["embed_dim"].type is int
    assert "spec" not in fields


@pytest.mark.parametrize("kw, says", [({"embed_dimm": 8}, "no hyper-parameter 'embed_dimm'; did you mean embed_dim"),
                                      ({"embed_dim": "abc"}, "embed_dim='abc' is not a int"),
                                      ({"embed_dim": 8.5}, "embed_dim=8.5"),
                                      ({"use_node": 1}, "use_node=1 is not a bool"),
                                      ({"dropout": True}, "dropout=True")])
def test_wrong_names_and_types_are_errors_before_any_data(kw, says):
    with pytest.raises(StcastError, match=says.replace("(", r"\(").replace("[", r"\[")):
        config.check_model_kw("stid", kw, "x.yaml")


def test_values_that_fit_their_annotation_pass_unchanged():
    kw = {"embed_dim": 16, "dropout": 0}  # an int where a float is asked for is a number
    assert config.check_model_kw("stid", kw, "x") is kw and kw["dropout"] == 0
    config.check_model_kw("factost", {"node_sample": None}, "x")  # Optional
    config.check_model_kw("factost", {"node_sample": 16}, "x")


def test_model_kw_is_keyed_by_model_with_flat_shorthand_for_the_one_trained():
    kw = config.split_model_kw({"stid": {"embed_dim": 8}, "dlinear": {"kernel_size": 5}, "dropout": 0.0}, "stid", "s")
    assert kw == {"embed_dim": 8, "dropout": 0.0}
    with pytest.raises(StcastError, match="dlinear has no hyper-parameter 'embed_dim'"):
        config.split_model_kw({"stid": {}, "dlinear": {"embed_dim": 3}}, "stid", "s")  # other sections checked too


def test_full_config_spells_out_every_default():
    full = config.full_model_config("stid", {"embed_dim": 8})
    assert full["embed_dim"] == 8 and full["num_layers"] == 3 and full["use_dow"] is True


def test_overrides_and_yaml_errors(tmp_path):
    raw = config.apply_overrides({}, ["train.lr=1e-3", "model_kw.stid.embed_dim=8", "name=x"])
    assert raw == {"train": {"lr": 1e-3}, "model_kw": {"stid": {"embed_dim": 8}}, "name": "x"}
    with pytest.raises(StcastError, match="key=value"):
        config.apply_overrides({}, ["lr"])
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(StcastError, match="not valid YAML"):
        config.read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(StcastError, match="mapping"):
        config.read_yaml(tmp_path / "list.yaml")


def test_a_top_level_training_setting_is_told_where_it_goes():
    with pytest.raises(StcastError, match=r"training settings go under train: \(did you mean train.epochs\?\)"):
        config.check_keys({"epochs": 3}, ["train", "models"], "c.yaml")


def test_train_reads_the_benchmark_config_shape(tmp_path, capsys):
    """The review's example: `stcast train --config demo.yaml --set model_kw.stid.embed_dim=...` works."""
    out = tmp_path / "m.pt"
    assert main(["train", "--model", "stid", "--dataset", "los-loop", "--config", str(bundled_config("demo")),
                 "--epochs", "1", "--set", "model_kw.stid.embed_dim=16", "--set", "train.max_batches_per_epoch=3",
                 "--out", str(out)]) == 0
    from stcast.engine.checkpoint import load_model

    assert load_model(out)[2]["hparams"]["embed_dim"] == 16
    assert main(["benchmark", "--models", "stid", "--set", "model_kw.stid.embed_dimm=8"]) == 2
    assert "stid has no hyper-parameter 'embed_dimm'; did you mean embed_dim" in capsys.readouterr().err
    assert main(["benchmark", "--models", "stid", "--set", "model_kw.stdi.embed_dim=8"]) == 2
    assert "model_kw.stdi: not a model name or variant label; did you mean stid" in capsys.readouterr().err


SHIPPED_CONFIGS = sorted((REPO_ROOT / "experiments").glob("**/*.yaml")) + sorted(
    (REPO_ROOT / "src" / "stcast" / "configs").glob("*.yaml"))


def test_there_are_shipped_configs_to_check():
    assert len(SHIPPED_CONFIGS) > 20 and any("converged" in p.name for p in SHIPPED_CONFIGS)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_shipped_config_passes_the_checks_a_run_makes_first(path):
    # a renamed hyper-parameter or model must not leave an experiment that fails hours into a resumed run
    cfg = config.BenchConfig.from_yaml(path)
    assert cfg.models and cfg.datasets


def test_train_uses_the_configs_protocol_and_says_when_a_flag_overrides_it(tmp_path, capsys):
    """A config's split / input_len / horizon / quantiles were silently replaced by train's defaults."""
    from stcast.engine.checkpoint import load_model

    cfg = tmp_path / "p.yaml"
    cfg.write_text("split: '6:2:2'\ninput_len: 6\nhorizon: 3\nquantiles: [0.1, 0.5, 0.9]\n"
                   "train: {epochs: 1, max_batches_per_epoch: 2}\n")
    out = tmp_path / "m.pt"
    assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--config", str(cfg), "--out",
                 str(out)]) == 0
    model, _, info = load_model(out)
    assert (model.spec.input_len, model.spec.horizon, tuple(model.spec.quantiles)) == (6, 3, (0.1, 0.5, 0.9))
    assert info["protocol"]["split"] == "6:2:2"
    with pytest.warns(UserWarning, match=r"p.yaml's split: 6:2:2 is not used: --split 7:1:2 overrides it"):
        assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--config", str(cfg), "--split",
                     "7:1:2", "--out", str(out)]) == 0
    assert load_model(out)[2]["protocol"]["split"] == "7:1:2"
    warm = tmp_path / "warm.yaml"  # a warm start: the saved model's window is fixed by its weights
    warm.write_text("input_len: 12\ntrain: {epochs: 1, max_batches_per_epoch: 2}\n")
    with pytest.warns(UserWarning, match=r"warm.yaml's input_len: 12 is not used: the saved model .*m.pt \(trained "
                                         r"with input_len 6\) fixes it"):
        assert main(["train", "--init-from", str(out), "--dataset", "los-loop", "--config", str(warm), "--out",
                     str(tmp_path / "w.pt")]) == 0
    assert load_model(tmp_path / "w.pt")[0].spec.input_len == 6
    cfg.write_text("split: '6:2:2:1'\n")
    assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--config", str(cfg)]) == 2
    assert "split '6:2:2:1'" in capsys.readouterr().err
    cfg.write_text("horizon: 0\n")
    assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--config", str(cfg)]) == 2
    assert "horizon=0 is invalid" in capsys.readouterr().err
    cfg.write_text("cluster: {k: 4}\n")
    assert main(["train", "--model", "dlinear", "--dataset", "los-loop", "--config", str(cfg)]) == 2
    assert "cluster shape(s) a benchmark table" in capsys.readouterr().err
    # refused before any data is read (a table that is not there is not even looked for)
    assert main(["train", "--model", "dlinear", "--dataset", str(tmp_path / "nope.csv"), "--config", str(cfg)]) == 2
    assert "cluster shape(s) a benchmark table" in capsys.readouterr().err


def test_a_width_of_zero_is_refused_when_the_model_is_built_not_in_its_first_step():
    from stcast.models.base import ProblemSpec
    from stcast.models.registry import build_model

    spec = ProblemSpec(8, 1, 12, 12, 288)
    with pytest.raises(StcastError, match=r"bad hyper-parameters for 'stid' \(embed_dim=0\): they leave layer "
                                          r"'.*' with no weights"):
        build_model("stid", spec, embed_dim=0)
    assert sum(p.numel() for p in build_model("stid", spec, embed_dim=1).parameters()) > 0
