"""Benchmark grids (models x datasets), result tables and plots."""

from stcast.bench.runner import BenchConfig, BenchReport, run_benchmark

__all__ = ["BenchConfig", "BenchReport", "run_benchmark"]
