"""Class 2: anything fitted (scaler, HA / mean / interpolation statistics, U-STS-LLM's functional graph)
reads the training steps only. Values planted in the AQI-36 test months must change none of it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from stcast.data.missing import aqi36_labels
from stcast.data.registry import load_dataset
from stcast.engine.splits import prepare_windows
from stcast.models.registry import build_model


@pytest.fixture(scope="module")
def aqi():
    return load_dataset("aqi36")


def _planted(data):
    """The same dataset with every observed test-month value (the hidden ground truth included) and every
    validation value replaced by absurd numbers."""
    labels = aqi36_labels(data)
    out = copy.copy(data)
    values = np.array(data.values, copy=True)
    rng = np.random.default_rng(0)
    held_out = labels != 0
    values[held_out] = np.where(data.mask[held_out], rng.uniform(5e3, 1e4, values[held_out].shape), 0.0)
    out.values = values.astype(np.float32)
    return out


def _fitted(data):
    splits = prepare_windows(data, "impute", 36, 0, protocol="aqi36", missing_kw={"r_min": 0.1, "r_max": 0.3})
    stats = {"scaler_mean": splits.scaler.mean.copy(), "scaler_std": splits.scaler.std.copy()}
    for name in ("ha", "mean-impute", "interpolate"):
        model = build_model(name, splits.spec)
        model.fit_statistics(splits.train)
        for k, v in model.state_dict().items():
            stats[f"{name}.{k}"] = v.clone()
    return stats, splits


def test_planted_test_month_values_change_nothing_that_is_fitted(aqi):
    clean, splits = _fitted(aqi)
    planted, _ = _fitted(_planted(aqi))
    assert splits.train.fit_steps.size < 0.7 * aqi.num_steps  # really a subset: the training months
    for key in clean:
        a, b = (torch.as_tensor(np.asarray(clean[key])), torch.as_tensor(np.asarray(planted[key])))
        assert torch.equal(a, b), f"{key} changed when only validation/test months changed"


def test_the_planted_check_can_fail(aqi):
    """Control: planting in the training months does move the fitted statistics."""
    labels = aqi36_labels(aqi)
    moved = copy.copy(aqi)
    values = np.array(aqi.values, copy=True)
    values[labels == 0] += 50.0
    moved.values = values
    a, _ = _fitted(aqi)
    b, _ = _fitted(moved)
    assert not np.allclose(a["scaler_mean"], b["scaler_mean"])


def test_functional_graph_of_ust_sllm_reads_training_months_only(aqi):
    splits = prepare_windows(aqi, "impute", 36, 0, protocol="aqi36")
    planted = prepare_windows(_planted(aqi), "impute", 36, 0, protocol="aqi36")
    graphs = []
    for s in (splits, planted):
        torch.manual_seed(0)
        model = build_model("ust-sllm", s.spec, pretrained=False, num_layers=1, trainable_top=1, groups=8)
        model.fit_statistics(s.train)
        graphs.append(model.bias.A.clone())
    assert torch.equal(graphs[0], graphs[1])
