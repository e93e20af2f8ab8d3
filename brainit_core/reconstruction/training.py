"""Training the generators on a dataset's images: autoencoder -> inverter -> semantic UNet.

Only images never used as reconstruction targets are used (every subject's training images
plus the ``unlabeled`` pool; test and validation images are excluded), with their TRUE features.
Each stage writes its final checkpoint into ``GEN_DIR`` and is skipped when that exists; an
interrupted stage resumes from ``GEN_DIR/train/<stage>_state`` (weights, optimizer moments,
EMA, step).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from brainit_core.checkpoint import checkpoint_exists, read_checkpoint_record
from brainit_core.progress import report, track
from brainit_core.stimulus import GENERATOR_SCENE_SEED
from brainit_core.reconstruction.images import generator_images, image_size_of, resize_to, to_float_images
from brainit_core.reconstruction.autoencoder import AutoencoderConfig, encode_images, load_autoencoder, train_autoencoder
from brainit_core.reconstruction.diffusion import DiffusionConfig, train_diffusion
from brainit_core.reconstruction.generators import ReconstructionConfig, write_generators_json
from brainit_core.reconstruction.inverter import InverterConfig, train_inverter
from brainit_core.fileio import read_json, save_npy, write_json

log = logging.getLogger(__name__)
STAGES = ("autoencoder", "inverter", "unet")


def generator_configs(space, preset: str) -> dict:
    """The three training configs of ``preset``, sized for ``space``."""
    size = image_size_of(space)
    ae = AutoencoderConfig.preset(preset)
    ae.image_size = size
    inv = InverterConfig.for_space(space, preset)
    dif = DiffusionConfig.preset(preset)
    dif.latent_size = ae.latent_size
    dif.latent_channels = ae.latent_channels
    dif.n_tokens = space.semantic_spec.n_tokens
    dif.token_dim = space.semantic_spec.dim
    return {"autoencoder": ae, "inverter": inv, "unet": dif}


def train_generators(data, out, preset: str = "demo", device=None, space_name: str = "lite0",
                     stages=STAGES, seed: int = 0, max_images: int | None = None, overrides: dict | None = None,
                     max_seconds: float | None = None, shared_cache: bool = True, scenes: int | None = None,
                     scene_seed: int = GENERATOR_SCENE_SEED, init_from=None,
                     init_stages=STAGES) -> Path:
    """Train every generator stage of ``preset`` on the dataset at ``data`` into ``out``.

    Parameters
    ----------
    data : path or None
        Canonical dataset directory; ``None`` with ``scenes``.
    out : path
        Generators directory (``GEN_DIR``); created, or resumed when it has content.
    preset : str
        ``ci`` / ``demo`` / ``full`` (model sizes and step counts).
    device : torch.device, optional
    space_name : str
        Feature space (``lite0``).
    stages : tuple of str
        Subset of ``("autoencoder", "inverter", "unet")``, trained in that order.
    seed : int
    max_images : int, optional
        Use at most this many training images (random subset).
    overrides : dict, optional
        ``{"autoencoder": {"steps": 100}, ...}``: config fields to change.
    max_seconds : float, optional
        Time budget of each stage in this call (the state is saved; call again to continue).
    shared_cache : bool
        Read/write semantic tokens in the dataset's feature cache (``<data>/features/``);
        ``False`` keeps them in ``out/train/`` and never writes into the dataset directory.
    scenes : int, optional
        Train on this many scenes composed from the twin's stimulus library instead of a dataset's
        images (:func:`scene_images`; their tokens are kept in ``out/train/``).
    scene_seed : int
        Seed of those scenes (default :data:`brainit_core.stimulus.GENERATOR_SCENE_SEED`).
    init_from : path, optional
        A generators directory whose finished components are where each stage starts (fine-tuning
        them on these images; a component of another design is refused with a clear error).
    init_stages : tuple of str
        The stages that start from ``init_from`` (the others start from scratch).

    Returns
    -------
    Path
        ``out``.
    """
    from brainit_core.data import load_dataset
    from brainit_core.features import get_feature_space
    from brainit_core.utils import resolve_device

    device = device if isinstance(device, torch.device) else resolve_device(device or "auto")
    out = Path(out).expanduser()
    if (data is None) == (scenes is None):
        raise ValueError("train_generators needs a dataset (data) or a number of library scenes (scenes), not both")
    dataset = load_dataset(data) if data is not None else None
    space = get_feature_space(space_name, preset=preset, device=device)
    configs = generator_configs(space, preset)
    for stage, fields in (overrides or {}).items():
        for k, v in fields.items():
            setattr(configs[stage], k, v)
    size = image_size_of(space)
    if dataset is not None:
        source = {"dataset": str(Path(data).resolve())}
        report(0.0, "reading training images")
        ids, images = generator_images(dataset, max_images=max_images, seed=seed)
    else:
        ids, images, source = scene_images(scenes, scene_seed, size)
    write_generators_json(out, {
        "preset": preset, "space": {"name": space_name, "preset": preset}, "space_description": space.describe(),
        "reconstruction": asdict(ReconstructionConfig.preset(preset)), **source,
        "train_configs": {k: asdict(v) for k, v in configs.items()},
        **({"init_from": str(Path(init_from).resolve()), "init_stages": list(init_stages)} if init_from else {}),
    })
    if images.shape[1] != size:
        images = _resize_uint8(images, size)
    log.info("generators: %d training images (%d px) from %s", len(ids), size, data or "library scenes")
    train_dir = out / "train"
    timings = read_json(train_dir / "timings.json", {})
    for stage in STAGES:
        if stage not in stages or checkpoint_exists(out / stage):
            continue
        t0 = time.time()
        init = start_weights(init_from, stage, device) if stage in init_stages else None
        if stage == "autoencoder":
            train_autoencoder(images, configs[stage], out / stage, train_dir, device, seed, max_seconds, init=init)
        elif stage == "inverter":
            train_inverter(images, space, configs[stage], out / stage, train_dir, device, seed, max_seconds, init=init)
        else:
            if not checkpoint_exists(out / "autoencoder"):
                raise RuntimeError(f"{out / 'autoencoder.safetensors'} is needed before the UNet stage")
            latents = cached_latents(out, images, device)
            tokens = (semantic_tokens(dataset, ids, space, train_dir, shared_cache=shared_cache) if dataset is not None
                      else image_tokens(images, space, train_dir / f"semantic_{space.cache_key()}_{source['scenes']['key']}.npy", device))
            train_diffusion(latents, tokens, configs[stage], out / stage, train_dir, device, seed, max_seconds,
                            init=init)
        timings[stage] = timings.get(stage, 0.0) + time.time() - t0
        timings["torch_threads"] = torch.get_num_threads()
        write_json(train_dir / "timings.json", timings, sort_keys=False)
        if not checkpoint_exists(out / stage):
            log.info("stage %s paused after its time budget; run the command again to continue", stage)
            break
    return out


def start_weights(init_from, stage: str, device) -> dict | None:
    """The finished ``stage`` weights of the generators at ``init_from`` (``None`` without one)."""
    from brainit_core.checkpoint import load_checkpoint
    from brainit_core.errors import CheckpointError

    if init_from is None:
        return None
    stem = Path(init_from) / stage
    if not checkpoint_exists(stem):
        raise CheckpointError(f"{stem}.safetensors not found: --init-from {init_from} has no finished {stage}")
    return load_checkpoint(stem, device=str(device))[0]


def scene_images(n: int, seed: int, size: int, batch: int = 500, cache: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` scenes of the twin's stimulus library (``seed``), their ids, and a record of where they came from.

    Rendered once and kept in ``$BRAINIT_DATA/library/scenes/<key>.npy`` (the key names the count,
    seed, size and library version), so resumed and parallel trainings read them back.
    """
    from brainit_core.data.twin.library import load_library
    from brainit_core.data.twin.scenes import render_scenes
    from brainit_core.utils import default_data_dir

    library = load_library()  # MissingLibraryError names the install command
    key = f"scenes{n}_seed{seed}_{size}px_{library.version}"
    record = {"scenes": {"n": int(n), "seed": int(seed), "size": int(size), "library_version": library.version,
                         "key": key}}
    path = default_data_dir() / "library" / "scenes" / f"{key}.npy"
    if cache and path.is_file():
        images = np.load(path, mmap_mode="r")
        if images.shape == (n, size, size, 3) and images.dtype == np.uint8:
            return np.arange(n), np.ascontiguousarray(images), record
        log.warning("%s has shape %s, not (%d, %d, %d, 3): rendering again", path, images.shape, n, size, size)
    images = np.empty((n, size, size, 3), np.uint8)
    for start in track(range(0, n, batch), desc="library scenes"):
        k = min(batch, n - start)
        images[start:start + k] = render_scenes(library, k, seed=seed, size=size, start=start).images
    if cache:
        save_npy(path, images)
    return np.arange(n), images, record


def image_tokens(images: np.ndarray, space, path: Path, device=None, batch_size: int = 64) -> np.ndarray:
    """TRUE semantic tokens (n, N, D) of in-memory images, cached at ``path``."""
    if path.exists():
        return np.load(path)
    parts = []
    with torch.no_grad():
        for i in track(range(0, len(images), batch_size), desc="semantic tokens"):
            parts.append(space.semantic_tokens(to_float_images(images[i:i + batch_size], device)).cpu().numpy())
    tokens = np.concatenate(parts).astype(np.float32)
    save_npy(path, tokens)
    return tokens


def cached_latents(out: Path, images: np.ndarray, device, batch_size: int = 32) -> np.ndarray:
    """Scaled posterior-mean latents of ``images`` under ``out/autoencoder``, cached per checkpoint hash."""
    sha = read_checkpoint_record(out / "autoencoder")["sha256"][:12]
    path = out / "train" / f"latents_{sha}_{len(images)}.npy"
    if path.exists():
        return np.load(path)
    ae = load_autoencoder(out / "autoencoder", device=device)
    parts = []
    with torch.no_grad():
        for i in track(range(0, len(images), batch_size), desc="latents"):
            parts.append(encode_images(ae, to_float_images(images[i:i + batch_size], device)).cpu().numpy())
    lat = np.concatenate(parts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, lat)
    tmp.replace(path)
    return lat


def semantic_tokens(dataset, ids: np.ndarray, space, train_dir: Path, shared_cache: bool = True) -> np.ndarray:
    """TRUE semantic tokens (n, N, D) of ``ids``.

    From the dataset's shared feature cache; a cache in use by another process raises
    :class:`~brainit_core.locks.LockedError` (never a silent in-memory fallback). With
    ``shared_cache=False`` they are computed in memory and kept in ``train_dir``, in a file named
    after the feature space and the dataset build.
    """
    from brainit_core.features import extract_features
    from brainit_core.features.cache import dataset_key

    if shared_cache:
        return extract_features(dataset, ids, space, read_lowlevel=False).semantic.astype(np.float32)
    own = Path(train_dir) / f"semantic_{space.cache_key()}_{dataset_key(dataset)}_{len(ids)}.npy"
    if own.exists():
        return np.load(own)
    tokens = extract_features(dataset, ids, space, cache=False).semantic.astype(np.float32)
    own.parent.mkdir(parents=True, exist_ok=True)
    np.save(own, tokens)
    return tokens


def _resize_uint8(images: np.ndarray, size: int, batch: int = 256) -> np.ndarray:
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i in range(0, len(images), batch):
        x = resize_to(to_float_images(images[i:i + batch]), size)
        out[i:i + batch] = x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


