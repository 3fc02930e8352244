"""Benchmark grids (models x datasets), result tables and plots."""

from stcast.bench.runner import BenchReport, run_benchmark
from stcast.config import BenchConfig

__all__ = ["BenchConfig", "BenchReport", "run_benchmark"]
