"""Shared fixtures: real data only (the Los-loop sample bundled with the package)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from stcast.data.registry import load_dataset, shared_data_dir

torch.set_num_threads(int(os.environ.get("STCAST_TEST_THREADS", "2")))
# tests never contact the Hugging Face hub (CI has no network): tests of the download path mock it
os.environ.setdefault("STCAST_OFFLINE", "1")


@pytest.fixture(scope="session")
def los():
    return load_dataset("los-loop")


@pytest.fixture(scope="session")
def los_small(los):
    """The first 2 days x 20 sensors of Los-loop: real values, fast to train on."""
    return los.subset_nodes(np.arange(20)).__class__(
        values=los.values[:576, :20], timestamps=los.timestamps[:576], meta=los.meta,
        mask=los.observed(slice(0, 576))[:, :20], adjacency=los.adjacency[:20, :20],
        node_ids=los.node_ids[:20])


@pytest.fixture(scope="session")
def splits(los_small):
    """Forecasting windows 12 -> 12 of `los_small`, 7:1:2 (read-only: shared by every test that asks)."""
    from stcast.engine.splits import prepare_windows

    return prepare_windows(los_small, "forecast", 12, 12)


@pytest.fixture(scope="session")
def shared():
    path = shared_data_dir()
    if path is None:
        pytest.fail("../shared/data not found: the tests run on the real data beside the project")
    return path


class CountingWriter:
    """A description writer that counts the texts it was asked for (no language model)."""

    def __init__(self, key="counting-v1"):
        self.key, self.calls = key, 0

    def write(self, questions):
        self.calls += len(questions)
        return [f"text {len(q.prompt)}" for q in questions]


@pytest.fixture
def counting_writer():
    """The class of a writer that counts what it writes (descriptions tests)."""
    return CountingWriter
