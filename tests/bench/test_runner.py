"""Benchmark configs: zero-shot transfer and node clustering are wired through the runner."""

import pytest

from stcast.bench.runner import BenchConfig, run_benchmark
from stcast.errors import StcastError


def test_zero_shot_benchmark_with_clustering_runs_end_to_end():
    cfg = BenchConfig.from_dict({"models": ["ha", "dlinear"], "datasets": ["los-loop"], "transfer_to": "los-loop",
                                 "cluster": {"k": 8, "by": "profile"}, "input_len": 12, "horizon": 12,
                                 "train": {"epochs": 1, "progress": False}})
    report = run_benchmark(cfg, collect=False, log=lambda *a: None)
    rows = report.rows()
    assert [r["model"] for r in rows] == ["ha", "dlinear"]
    assert all(r["dataset"] == "los-loop->los-loop" and r["mae"] > 0 for r in rows)
    assert report.data["los-loop"].num_nodes == 8


def test_bad_transfer_configs():
    with pytest.raises(StcastError, match="cluster takes"):
        BenchConfig.from_dict({"cluster": {"k": 4, "colour": "red"}})
    with pytest.raises(StcastError, match="unknown dataset|not a known dataset|unknown"):
        BenchConfig.from_dict({"transfer_to": "atlantis"})
