"""Stimulus geometry shared by the twin, the attention analysis and the figures."""

IMAGE_DEG = 8.4
"""Width (= height) of the shown image in degrees of visual angle, in NSD and in the twin."""
