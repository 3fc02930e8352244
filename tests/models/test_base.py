import pytest

from stcast.errors import StcastError
from stcast.models.base import ProblemSpec
from stcast.models.registry import build_model, model_names

SPEC = ProblemSpec(num_nodes=5, num_channels=1, input_len=12, horizon=12, steps_per_day=288)


def test_registry_lists_every_baseline():
    assert {"ha", "last-value", "seasonal-naive", "dlinear", "lstm", "stid", "gwnet", "mean-impute",
            "interpolate", "brits"} <= set(model_names())


def test_unknown_model_is_named_with_a_suggestion():
    with pytest.raises(StcastError, match="unknown model 'stdi'.*did you mean stid"):
        build_model("stdi", SPEC)


def test_unsupported_task_and_bad_hyperparameters():
    with pytest.raises(StcastError, match="does not support task 'forecast'"):
        build_model("brits", SPEC)
    with pytest.raises(StcastError, match="bad hyper-parameters for 'stid'"):
        build_model("stid", SPEC, no_such_option=3)
