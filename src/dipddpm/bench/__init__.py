"""Benchmark harness: every stopper on the same trajectories, classical and zero-shot baselines, reports."""

from .methods import DEFAULT_METHODS, METHODS
from .runner import BenchSpec, run_bench

__all__ = ["METHODS", "DEFAULT_METHODS", "BenchSpec", "run_bench"]
