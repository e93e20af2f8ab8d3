"""The image-level benchmark: Brain-IT branches, baselines and oracles through the same generators."""
from brainit_core.benchmark.run import load_results, run_benchmark

__all__ = ["load_results", "run_benchmark"]
