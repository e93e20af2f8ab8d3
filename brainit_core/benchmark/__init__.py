"""The image-level benchmark: Brain-IT branches, baselines and oracles through the same generators.

:mod:`.run` runs it, :mod:`.methods` declares its rows, :mod:`.bench` decodes and scores them,
:mod:`.cache` keeps their images and scores, :mod:`.baselines` fits the baselines, :mod:`.twin`
reads a twin's ground truth, :mod:`.claims` judges the claims, :mod:`.report` writes and reads
the results.
"""
from brainit_core.benchmark.report import load_results
from brainit_core.benchmark.run import run_benchmark

__all__ = ["load_results", "run_benchmark"]
