"""The full-size SDXL generator set (``GEN_DIR`` with ``"kind": "sdxl"``): its layout, loading and stage 1.

Layout::

    GEN_DIR/
      generators.json                           kind "sdxl"; "sdxl": the SDXL directory ("path"), the adapter
                                                settings ("config"), a fine-tuned UNet ("unet", "unet_sha256");
                                                feature space, reconstruction defaults
      image_token_projection.{safetensors,json}  semantic tokens -> SDXL prompt and pooled embeddings
      inverter.{safetensors,json}               optional: the low-level branch's fast inverter (--inverter-from)
      unet/                                     optional: the SDXL UNet fine-tuned by ``stage2`` (diffusers layout)
      train/                                    projection_state.*, projection_loss.csv/png, latents, timings.json

The SDXL weights themselves stay in their own directory (never copied, never downloaded).
Stage 1 of the set (:func:`train_projection`, the ``train-sdxl-projection`` command) freezes the
SDXL UNet and VAE and trains only the projection, with the diffusion loss on (image latents, TRUE
semantic tokens of the image) pairs of the dataset's training + unlabeled images. This is how the
paper's generator is conditioned (MindEye2's unCLIP SDXL reads the 256 bigG tokens through its
own learned embedder); ``stage2`` then fine-tunes the UNet and the projection together with BIT.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from brainit_core.checkpoint import checkpoint_exists, copy_checkpoint, read_checkpoint_record, sha256_file
from brainit_core.errors import BrainITError, CheckpointError
from brainit_core.fileio import check_output_dir, read_json, write_json
from brainit_core.reconstruction.generators import ReconstructionConfig, write_generators_json
from brainit_core.reconstruction.sdxl import PROJECTION_NAME, ImageTokenProjection, SDXLAdapterConfig, SDXLReconstructor
from brainit_core.runs import generators_settings, generators_space

log = logging.getLogger(__name__)


@dataclass
class ProjectionConfig:
    """Training of the image-token projection (stage 1 of an SDXL set; AdamW, linear warm-up).

    Parameters
    ----------
    steps, batch_size, lr, warmup, checkpoint_every : int / float
    cond_dropout : float
        Share of samples trained with the unconditional (zero) embedding, for classifier-free guidance.
    """

    steps: int = 20000
    batch_size: int = 32
    lr: float = 1e-4
    warmup: int = 500
    cond_dropout: float = 0.1
    checkpoint_every: int = 500

    @classmethod
    def preset(cls, name: str) -> "ProjectionConfig":
        if name == "ci":
            return cls(steps=6, batch_size=2, lr=1e-3, warmup=1, checkpoint_every=3)
        if name == "demo":
            return cls(steps=2000, batch_size=8, warmup=100, checkpoint_every=100)
        if name == "full":
            return cls()
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")


def unet_dims(unet_dir) -> dict:
    """Cross-attention and pooled widths of an SDXL UNet, read from its ``config.json``."""
    path = Path(unet_dir) / "config.json"
    cfg = read_json(path)
    try:
        pooled = cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
        return {"cross_attention_dim": int(cfg["cross_attention_dim"]), "pooled_dim": int(pooled)}
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not an SDXL UNet config (no {exc}; addition_embed_type 'text_time' "
                              "expected)") from exc


def fingerprint(path: Path, settings: dict) -> str:
    """A digest of what an SDXL set's images depend on: the projection's sha256, the UNet (the sha256 of a
    fine-tune, else the config and weight-file sizes of the SDXL directory's), the VAE, the scheduler and
    the adapter settings. Hashing the multi-GB SDXL weights on every load is avoided on purpose."""
    sdxl = settings["sdxl"]
    source = Path(sdxl["path"]).expanduser()

    def folder(d: Path) -> dict:
        files = sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []
        return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest() if p.suffix == ".json" else p.stat().st_size)
                for p in files}

    parts = {"projection": read_checkpoint_record(path / PROJECTION_NAME)["sha256"],
             "unet": sdxl.get("unet_sha256") or folder(source / "unet"), "vae": folder(source / "vae"),
             "scheduler": folder(source / "scheduler"), "adapter": sdxl.get("config", {})}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load_sdxl_set(path, settings: dict, device) -> tuple[SDXLReconstructor | None, str | None]:
    """The set's :class:`SDXLReconstructor` and :func:`fingerprint`; ``(None, None)`` while its projection
    is not trained.

    Raises
    ------
    MissingWeightsError
        When the SDXL directory (or the set's fine-tuned ``unet/``) lacks files; the message lists them.
    """
    from brainit_core.reconstruction.sdxl import check_sdxl_directory

    path = Path(path).expanduser()
    sdxl = settings.get("sdxl") or {}
    if not sdxl.get("path"):
        raise CheckpointError(f"{path / 'generators.json'}: an SDXL set must name its SDXL directory ('sdxl' -> 'path')")
    unet_path = path / sdxl["unet"] if sdxl.get("unet") else None
    check_sdxl_directory(sdxl["path"], need_projection=False, need_unet=unet_path is None)
    if not checkpoint_exists(path / PROJECTION_NAME):
        return None, None
    config = SDXLAdapterConfig(**sdxl.get("config", {}))
    projection = ImageTokenProjection.load(path / PROJECTION_NAME, device=device)
    rec = SDXLReconstructor.from_pretrained(sdxl["path"], projection=projection, device=device, config=config,
                                            unet_path=unet_path)
    return rec, fingerprint(path, settings)


def create_sdxl_set(out, sdxl_dir, space, space_name: str, preset: str, adapter: SDXLAdapterConfig, dataset=None,
                    inverter_from=None) -> dict:
    """Start (or check and continue) the SDXL set ``out``; returns its settings.

    A new set records the SDXL directory, the adapter settings, the feature space and the
    reconstruction defaults (official guidance 5; ``fast`` mode when an inverter is copied from
    ``inverter_from``, a generators directory of the same feature space, else ``dip``).

    Raises
    ------
    BrainITError
        When ``out`` holds something else, or a set made for another SDXL directory or feature space.
    MissingWeightsError
        When ``sdxl_dir`` lacks files.
    """
    from brainit_core.reconstruction.sdxl import check_sdxl_directory

    out = Path(out).expanduser()
    check_sdxl_directory(sdxl_dir, need_projection=False)
    source = str(Path(sdxl_dir).expanduser().resolve())
    want = {"name": space_name, "preset": preset}
    if check_output_dir(out, "an SDXL generator set", marker="generators.json"):
        settings = generators_settings(out) or {}
        have = settings.get("sdxl") or {}
        if settings.get("kind") != "sdxl" or have.get("path") != source or settings.get("space") != want:
            raise BrainITError(f"{out / 'generators.json'} holds another set (kind {settings.get('kind', 'offline')}, "
                               f"SDXL {have.get('path')}, space {settings.get('space')}); not {source}, {want}: "
                               "choose another --out")
    else:
        recon = ReconstructionConfig.preset(preset)
        if preset != "ci":
            recon.guidance_scale, recon.fusion_steps, recon.generation_steps = 5.0, 38, 38
        recon.mode = "fast" if inverter_from else "dip"
        settings = {"kind": "sdxl", "preset": preset, "space": want, "space_description": space.describe(),
                    "sdxl": {"path": source, "config": asdict(adapter)}, "reconstruction": asdict(recon),
                    "dataset": str(dataset) if dataset else None}
        write_generators_json(out, settings)
    if inverter_from and not checkpoint_exists(out / "inverter"):
        if generators_space(inverter_from) != want:
            raise BrainITError(f"--inverter-from {inverter_from}: its generators were made for "
                               f"{generators_space(inverter_from)}, not {want}")
        copy_checkpoint(Path(inverter_from).expanduser() / "inverter", out / "inverter")
    return settings


def sdxl_latents(rec: SDXLReconstructor, images: np.ndarray, cache: Path, batch_size: int = 8) -> np.ndarray:
    """Scaled VAE latents of uint8 images at the adapter's size, cached in ``cache`` (named after the VAE,
    the size and the image count)."""
    from brainit_core.progress import track
    from brainit_core.reconstruction.images import to_float_images

    vae_cfg = hashlib.sha256(json.dumps(rec.vae.config, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = cache / f"sdxl_latents_{vae_cfg}_{rec.config.size}_{len(images)}.npy"
    if path.exists():
        return np.load(path)
    parts = [rec.encode(to_float_images(images[i:i + batch_size], rec.device)).float().cpu().numpy()
             for i in track(range(0, len(images), batch_size), desc="SDXL latents")]
    lat = np.concatenate(parts).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, lat)
    tmp.replace(path)
    return lat


def train_projection(data, sdxl_dir, out, preset: str = "demo", space_name: str = "bigg-vgg16bn",
                     adapter: SDXLAdapterConfig | None = None, device=None, seed: int = 0,
                     max_images: int | None = None, steps: int | None = None, max_seconds: float | None = None,
                     inverter_from=None, shared_cache: bool = True) -> Path:
    """Train (or resume) the SDXL set ``out``'s image-token projection with the SDXL UNet frozen.

    Parameters
    ----------
    data : path
        Canonical dataset (its training + unlabeled images; never test or validation images).
    sdxl_dir : path
        Local diffusers-format SDXL directory (``unet/``, ``vae/``, ``scheduler/``).
    out : path
        The SDXL set (``GEN_DIR``); created, or resumed when it already is this set.
    preset : str
        :class:`ProjectionConfig` preset and the feature space's preset.
    space_name : str
        The feature space whose semantic tokens condition the generator (the paper's ``bigg-vgg16bn``).
    adapter : SDXLAdapterConfig, optional
        Image size and dtype (default 768 px, float32).
    steps, max_seconds, max_images, seed, shared_cache :
        Step count override, time budget of this call (the state is saved; call again), image cap,
        seed, where the semantic tokens are cached (see :func:`~brainit_core.reconstruction.training.semantic_tokens`).

    Returns
    -------
    Path
        ``out`` (``out/image_token_projection.*`` once all steps are done).
    """
    from brainit_core.data import load_dataset
    from brainit_core.features import get_feature_space
    from brainit_core.locks import FileLock, lock_path_for
    from brainit_core.reconstruction.images import generator_images
    from brainit_core.reconstruction.train_state import StepLoop
    from brainit_core.reconstruction.training import semantic_tokens
    from brainit_core.utils import resolve_device

    device = device if isinstance(device, torch.device) else resolve_device(device or "auto")
    out = Path(out).expanduser()
    adapter = adapter or SDXLAdapterConfig()
    config = ProjectionConfig.preset(preset)
    if steps is not None:
        config.steps = int(steps)
    dataset = load_dataset(data)
    space = get_feature_space(space_name, preset=preset, device=device)
    with FileLock(lock_path_for(out), what=f"SDXL set {out}"):
        create_sdxl_set(out, sdxl_dir, space, space_name, preset, adapter, dataset.path, inverter_from)
        if checkpoint_exists(out / PROJECTION_NAME):
            log.info("%s is trained; nothing to do", out / PROJECTION_NAME)
            return out
        t0 = time.time()
        train_dir = out / "train"
        dims = unet_dims(Path(sdxl_dir).expanduser() / "unet")
        torch.manual_seed(seed)
        projection = ImageTokenProjection(space.semantic_spec.dim, dims["cross_attention_dim"], dims["pooled_dim"])
        rec = SDXLReconstructor.from_pretrained(sdxl_dir, projection=projection, device=device, config=adapter)
        rec.projection.float()
        rec.unet.requires_grad_(False)
        if device.type == "cuda":
            rec.unet.enable_gradient_checkpointing()
        ids, images = generator_images(dataset, max_images=max_images, seed=seed)
        lat = torch.from_numpy(sdxl_latents(rec, images, train_dir))
        tok = torch.from_numpy(semantic_tokens(dataset, ids, space, train_dir, shared_cache=shared_cache))
        del images
        optimizer = torch.optim.AdamW(rec.projection.parameters(), lr=config.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup)))
        loop = StepLoop("SDXL projection", rec.projection, optimizer, sched, train_dir, "projection", config.steps,
                        config.checkpoint_every, {"projection": asdict(config), "adapter": asdict(adapter)})
        start = loop.resume(device)

        def loss_fn(step):  # every draw depends on (seed, step) only: a resumed run repeats an uninterrupted one
            rows = np.random.default_rng([seed, step]).choice(len(lat), config.batch_size,
                                                             replace=len(lat) < config.batch_size)
            gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
            loss = rec.loss(lat[rows], tok[rows].to(device), gen, config.cond_dropout)
            return loss, {"mse": loss.item()}

        finished = loop.run(start, loss_fn, max_seconds)
        timings = read_json(train_dir / "timings.json", {})
        timings["projection"] = timings.get("projection", 0.0) + time.time() - t0
        write_json(train_dir / "timings.json", timings, sort_keys=False)
        if finished:
            rec.projection.save(out / PROJECTION_NAME)
        else:
            log.info("the projection paused after its time budget; run the command again to continue")
    return out


def unet_sha256(unet_dir) -> str:
    """sha256 of a saved UNet's weight file (recorded once, when ``stage2`` writes a fine-tune)."""
    from brainit_core.runs import SDXL_WEIGHT_NAMES

    for name in SDXL_WEIGHT_NAMES:
        if (Path(unet_dir) / name).is_file():
            return sha256_file(Path(unet_dir) / name)
    raise CheckpointError(f"{unet_dir}: no UNet weights ({SDXL_WEIGHT_NAMES[0]})")
