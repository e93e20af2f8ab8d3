"""The digital twin: a simulated NSD-style experiment on fsaverage5 with a known encoding model."""
from brainit_core.data.twin.experiment import TwinConfig, build_twin, load_ground_truth
from brainit_core.data.twin.respond import respond
from brainit_core.data.twin.validation import validate_twin

__all__ = ["TwinConfig", "build_twin", "load_ground_truth", "respond", "validate_twin"]
