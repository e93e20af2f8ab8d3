"""Stimulus geometry shared by the twin, the attention analysis and the figures."""

IMAGE_DEG = 8.4
"""Width (= height) of the shown image in degrees of visual angle, in NSD and in the twin."""

# Seed of the library scenes the generators train on (``train-generators --scenes``). Twin builds
# draw their images with their own seeds (0 by default); keep it out of the range they use.
GENERATOR_SCENE_SEED = 7919
# Seed of the held-out library scenes the generators are scored on (``generator-branches --scenes``).
HELDOUT_SCENE_SEED = 7920
