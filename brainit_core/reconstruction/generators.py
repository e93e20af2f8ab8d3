"""The trained image generators as one bundle (``GEN_DIR/``).

Layout::

    GEN_DIR/
      generators.json                  feature space, preset, reconstruction defaults
      autoencoder.{safetensors,json}   AutoencoderKL (latent space of the semantic branch)
      inverter.{safetensors,json}      amortised low-level inverter (fast mode)
      unet.{safetensors,json}          conditional UNet + token conditioner (EMA weights)
      train/                           resumable states, loss curves (CSV + PNG), cached latents

A full-size set (``generators.json`` ``"kind": "sdxl"``, written by ``train-sdxl-projection``) has
no autoencoder or UNet of its own: it names a local diffusers-format SDXL directory and holds the
trained ``image_token_projection.{safetensors,json}`` (and, after ``stage2``, its own fine-tuned
``unet/``); its semantic branch is :class:`~brainit_core.reconstruction.sdxl.SDXLReconstructor`
(:attr:`Generators.sdxl`). The inverter, when present, serves the low-level branch of both kinds.

Components that are not trained yet load as ``None``; :meth:`Generators.require` names the
missing file and the command that makes it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from brainit_core.checkpoint import checkpoint_exists, read_checkpoint_record
from brainit_core.errors import CheckpointError
from brainit_core.fileio import write_json
from brainit_core.reconstruction.dip import DIPConfig
from brainit_core.reconstruction.fusion import OFFICIAL_STEPS, OFFICIAL_STRENGTH

COMPONENTS = ("autoencoder", "inverter", "unet")


@dataclass
class ReconstructionConfig:
    """Default reconstruction settings stored with the generators (each can be overridden per call).

    Parameters
    ----------
    mode : str
        ``"fast"`` (amortised inverter) or ``"dip"`` (Deep Image Prior, as in the paper).
    refine_steps : int
        DIP steps started from the inverter's image in fast mode (0: none).
    dip : dict
        :class:`DIPConfig` fields.
    sampler : str
        ``"dpm"`` or ``"ddim"``.
    generation_steps : int
        Steps of semantic-only generation (from pure noise; the demo uses 15 DPM-Solver++ steps to keep
        one click of the app under 2 s).
    fusion_steps : int
        Length of the fusion schedule (official 38; the demo uses 19: the same starting noise
        level, 12 DPM-Solver steps instead of 24, to stay under 1 s per image on a CPU).
    fusion_strength : float
        Fraction of the fusion schedule re-run (official 24/38).
    guidance_scale : float
    fusion_detail : float
        Weight of the autoencoder's loss on the low-level image added back to the fused image
        (:func:`~brainit_core.reconstruction.fusion.fuse`; 0 as in the official code, 1 in the demo, whose
        small autoencoder blurs).
    """

    mode: str = "fast"
    refine_steps: int = 0
    dip: dict = field(default_factory=lambda: asdict(DIPConfig.preset("demo")))
    sampler: str = "dpm"
    generation_steps: int = 25
    fusion_steps: int = OFFICIAL_STEPS
    fusion_strength: float = OFFICIAL_STRENGTH
    guidance_scale: float = 3.0
    fusion_detail: float = 0.0

    @classmethod
    def preset(cls, name: str) -> "ReconstructionConfig":
        if name == "ci":
            return cls(dip=asdict(DIPConfig.preset("ci")), generation_steps=6, fusion_steps=8, fusion_strength=0.5)
        if name == "demo":
            # strength 0.1: chosen from the sweep on held-out library scenes (docs/reconstruction.md)
            return cls(fusion_steps=19, generation_steps=15, fusion_detail=1.0, fusion_strength=0.1)
        if name == "full":
            return cls(mode="dip", dip=asdict(DIPConfig.preset("full")), guidance_scale=5.0)
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    def dip_config(self) -> DIPConfig:
        d = dict(self.dip)
        if d.get("layer_weights") is not None:
            d["layer_weights"] = tuple(d["layer_weights"])
        return DIPConfig(**d)


@dataclass
class Generators:
    """Everything that turns predicted features into images.

    Attributes
    ----------
    space : FeatureSpace
        The feature space the generators were trained for (frozen).
    autoencoder : diffusers.AutoencoderKL or None
    unet : ConditionalUNet or None
        Token conditioner + ``UNet2DConditionModel``.
    inverter : FeatureInverter or None
    sdxl : SDXLReconstructor or None
        The semantic branch of a full-size SDXL set (``kind == "sdxl"``; None before its projection
        is trained).
    scheduler_config : dict or None
        The training noise schedule (betas, prediction type); sampling schedulers are built from it.
    settings : dict
        ``preset``, ``space`` ({name, preset}) and ``reconstruction`` (:class:`ReconstructionConfig`).
    hashes : dict
        Component name -> sha256 of its safetensors file.
    path : Path or None
    """

    space: object
    autoencoder: object = None
    unet: object = None
    inverter: object = None
    sdxl: object = None
    scheduler_config: dict | None = None
    settings: dict = field(default_factory=dict)
    hashes: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def reconstruction(self) -> ReconstructionConfig:
        return ReconstructionConfig(**self.settings.get("reconstruction", {}))

    @property
    def kind(self) -> str:
        """``"sdxl"`` (a full-size SDXL set) or ``"offline"`` (the project's own autoencoder and UNet)."""
        return "sdxl" if self.settings.get("kind") == "sdxl" else "offline"

    @property
    def sha256(self) -> str:
        """One digest of every present component (identifies results in caches)."""
        parts = {k: self.hashes.get(k) for k in COMPONENTS}
        if self.kind == "sdxl":
            parts["sdxl"] = self.hashes.get("sdxl")
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def require(self, *names: str) -> None:
        """Raise :class:`CheckpointError` naming each missing component file."""
        missing = [n for n in names if getattr(self, n) is None]
        if not missing:
            return
        where = self.path or "the generators directory"
        if missing == ["sdxl"]:
            from brainit_core.runs import SDXL_PROJECTION

            raise CheckpointError(f"the SDXL set's projection {Path(where) / SDXL_PROJECTION}.safetensors is not "
                                  "trained yet; train it with `python -m brainit_core train-sdxl-projection "
                                  f"--sdxl SDXL_DIR --data DIR --out {where}`")
        files = ", ".join(f"{Path(where) / n}.safetensors" for n in missing)
        raise CheckpointError(f"generators {missing} not available ({files} not found); train them with "
                              f"`python -m brainit_core train-generators --data DIR --out {where}`")

    def require_semantic(self) -> None:
        """Raise :class:`CheckpointError` when the semantic branch cannot run (see :meth:`require`)."""
        self.require("sdxl") if self.kind == "sdxl" else self.require("autoencoder", "unet")

    @classmethod
    def load(cls, path, device=None, space=None) -> "Generators":
        """Load ``path`` (a ``GEN_DIR``); missing components are ``None``.

        Parameters
        ----------
        path : str or PathLike
        device : torch.device or str, optional
            Default ``"auto"``.
        space : FeatureSpace, optional
            Reuse an already built feature space (must describe the same pyramid and tokens).
        """
        import torch

        from brainit_core.features import get_feature_space
        from brainit_core.reconstruction.autoencoder import load_autoencoder
        from brainit_core.reconstruction.diffusion import load_conditional_unet
        from brainit_core.reconstruction.inverter import load_inverter
        from brainit_core.utils import resolve_device

        path = Path(path).expanduser()
        device = device if isinstance(device, torch.device) else resolve_device(device or "auto")
        meta_path = path / "generators.json"
        if not meta_path.exists():
            raise CheckpointError(f"{meta_path} not found: {path} is not a generators directory (make one with "
                                  "`python -m brainit_core train-generators`)")
        settings = json.loads(meta_path.read_text())
        if space is None:
            sp = settings["space"]
            space = get_feature_space(sp["name"], preset=sp["preset"], device=device)
        elif settings.get("space_description") and space_signature(space.describe()) != space_signature(settings["space_description"]):
            raise CheckpointError(f"{meta_path}: generators were trained for {settings['space_description']}, "
                                  f"not for {space.describe()}")
        gens = cls(space=space, settings=settings, path=path)
        loaders = {"autoencoder": load_autoencoder, "unet": load_conditional_unet, "inverter": load_inverter}
        for name in COMPONENTS:
            stem = path / name
            if checkpoint_exists(stem):
                setattr(gens, name, loaders[name](stem, device=device))
                gens.hashes[name] = read_checkpoint_record(stem)["sha256"]
        if gens.kind == "sdxl":
            from brainit_core.reconstruction.sdxl_set import load_sdxl_set

            gens.sdxl, gens.hashes["sdxl"] = load_sdxl_set(path, settings, device)
        if gens.unet is not None:
            gens.scheduler_config = gens.unet.config.scheduler_config()
        return gens

    def save(self, path) -> Path:
        """Write every present component (an SDXL set's projection) and ``generators.json`` into ``path``."""
        from brainit_core.reconstruction.autoencoder import save_autoencoder
        from brainit_core.reconstruction.diffusion import save_conditional_unet
        from brainit_core.reconstruction.inverter import save_inverter

        path = Path(path).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        savers = {"autoencoder": save_autoencoder, "unet": save_conditional_unet, "inverter": save_inverter}
        for name in COMPONENTS:
            module = getattr(self, name)
            if module is not None:
                savers[name](module, path / name)
                self.hashes[name] = read_checkpoint_record(path / name)["sha256"]
        if self.sdxl is not None:  # an SDXL set: its projection (the SDXL weights stay where generators.json says)
            from brainit_core.runs import SDXL_PROJECTION

            self.sdxl.projection.save(path / SDXL_PROJECTION)
        write_generators_json(path, {**self.settings, "space_description": self.space.describe()})
        self.path = path
        return path


def write_generators_json(path, settings: dict) -> None:
    """Write ``path/generators.json`` atomically."""
    write_json(Path(path) / "generators.json", settings, default=str)


def space_signature(description: dict) -> tuple:
    """The parts of a feature-space description that the generators depend on."""
    sem = description["semantic"]
    return (tuple(sem["grid"]), sem["dim"], tuple((tuple(s["grid"]), s["dim"]) for s in description["lowlevel"]))
