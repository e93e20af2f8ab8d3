"""Reconstruction: low-level inversion (DIP or amortised inverter), semantic diffusion, fusion.

Names are imported lazily so that ``import brainit_core.reconstruction`` (and the CLI's
``--help``) does not load diffusers.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "BrainITPipeline": "pipeline", "ReconstructionOutput": "pipeline",
    "Generators": "generators", "ReconstructionConfig": "generators",
    "DIPConfig": "dip", "invert_dip": "dip", "SkipUNet": "dip",
    "InverterConfig": "inverter", "FeatureInverter": "inverter", "train_inverter": "inverter",
    "AutoencoderConfig": "autoencoder", "build_autoencoder": "autoencoder", "train_autoencoder": "autoencoder",
    "encode_images": "autoencoder", "decode_latents": "autoencoder",
    "DiffusionConfig": "diffusion", "ConditionalUNet": "diffusion", "train_diffusion": "diffusion",
    "generate_latents": "diffusion", "make_scheduler": "diffusion",
    "fuse": "fusion", "OFFICIAL_STEPS": "fusion", "OFFICIAL_STRENGTH": "fusion",
    "train_generators": "training",
    "SDXLAdapterConfig": "sdxl", "SDXLReconstructor": "sdxl", "ImageTokenProjection": "sdxl",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
