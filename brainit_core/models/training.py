"""Training a Brain-IT run: features -> encoder -> V2C -> synthetic fMRI -> BIT (both heads).

Every stage writes its output atomically into the run directory (:mod:`brainit_core.runs` owns the
layout) and is recorded in ``run.json`` when done, so ``train_run`` can be killed at any moment and
started again: finished stages are skipped and each BIT head resumes from its last epoch
(:mod:`brainit_core.models.head_training`). The samples BIT reads are assembled by
:mod:`brainit_core.models.bit_data`; the final checkpoint is written by :mod:`brainit_core.models.bit_io`.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from brainit_core import distributed
from brainit_core.errors import BrainITError, CheckpointError
from brainit_core.fileio import save_npy
from brainit_core.models import encoder as enc
from brainit_core.models.encoder_training import train_encoder
from brainit_core.models.bit import BITConfig, BrainITModel, config_dict
from brainit_core.models.memory import count_parameters, estimate_memory
from brainit_core.models.bit_data import build_bit_data, channel_stats, load_run_features, needed_image_ids
from brainit_core.models.bit_io import save_bit
from brainit_core.models.head_training import HEADS, train_head, train_heads
from brainit_core.models.v2c import V2C
from brainit_core.progress import report, track
from brainit_core.runs import RunDirectory, RunStages, new_run_record
from brainit_core.viz.curves import plot_curves

log = logging.getLogger(__name__)


def describe_memory(model: BrainITModel, config: BITConfig, n_voxels: int, amp: bool) -> list[str]:
    """Human-readable memory estimate of training each head (see :func:`estimate_memory`)."""
    lines = []
    for head in HEADS:
        net = model.heads[head]
        contrastive = 0
        if head == "semantic":
            nq, batch, n_out = model.semantic_spec.n_tokens, config.semantic_batch, model.semantic_spec.dim
        else:
            counts = config.samples_per_layer(model.lowlevel_specs)
            nq, batch = sum(counts), config.lowlevel_batch
            n_out = max(s.dim for s in model.lowlevel_specs)
            contrastive = batch * max(counts)
        est = estimate_memory(config, count_parameters(net), nq, batch, min(n_voxels, config.voxels_per_sample), n_out,
                              amp, contrastive)
        lines.append(f"BIT {head}: {count_parameters(net) / 1e6:.2f} M parameters "
                     f"({count_parameters(net, False) / 1e6:.2f} M without voxel embeddings); "
                     f"memory estimate {est['total'] / 2**30:.2f} GiB (params {est['params'] / 2**30:.2f}, "
                     f"activations {est['activations'] / 2**30:.2f}; batch {batch}, {nq} queries"
                     f"{', AMP' if amp else ''})")
    return lines


def extend_heads(record: dict, head_epochs: dict) -> None:
    """Raise a head's epoch count in ``record`` so that a resumed run trains it further.

    The head continues from its last per-epoch state (``bit_<head>_state``) up to the new total; the
    finished stage is reopened, and ``record["extended"][head]`` keeps the first epoch count and the
    seconds of every earlier training of that head.
    """
    for head, epochs in head_epochs.items():
        if head not in HEADS:
            raise BrainITError(f"unknown BIT head {head!r}; heads are {list(HEADS)}")
        key = f"{head}_epochs"
        old = int(record["bit_config"][key])
        if int(epochs) < old:
            raise BrainITError(f"{head} head: {epochs} epochs is fewer than the {old} it was trained for")
        if int(epochs) == old:
            continue
        record["bit_config"][key] = int(epochs)
        done = record.setdefault("stages", {}).pop(f"bit-{head}", None)
        record["stages"].pop("bit", None)
        if done is not None:
            before = record.setdefault("extended", {}).get(head, {})
            record["extended"][head] = {"from_epochs": before.get("from_epochs", old), "to_epochs": int(epochs),
                                        "earlier_seconds": round(before.get("earlier_seconds", 0.0)
                                                                 + done["seconds"], 2)}


def config_as_dict(cfg) -> dict:
    from dataclasses import asdict, is_dataclass

    return asdict(cfg) if is_dataclass(cfg) else dict(cfg or {})


def train_run(data, preset: str = "demo", out=None, device: str = "auto", space_name: str = "lite0",
              bit_config: BITConfig | None = None, encoder_config=None, resume: bool = True,
              head_epochs: dict | None = None, backbone_options: dict | None = None) -> Path:
    """Train a complete Brain-IT run (resumable; see the module docstring for the layout).

    Parameters
    ----------
    data : str or PathLike or Dataset
        A canonical dataset directory.
    preset : {"ci", "demo", "full"}
        Sizes of the feature space, encoder and BIT.
    out : str or PathLike
        The run directory.
    device : str
        ``"auto"`` picks CUDA when available (mixed precision for BIT on CUDA).
    space_name : str
        Feature space (``"lite0"`` offline default).
    bit_config, encoder_config : optional
        Override the presets' configs (``encoder_config.backbone`` names the encoder's backbone).
    backbone_options : dict, optional
        Options of the encoder's backbone (e.g. ``{"weights": path}`` for DINOv2's local file).
    resume : bool
        Continue an existing run directory (otherwise it must be empty or absent).

    Returns
    -------
    Path of the run directory.
    """
    from brainit_core.data import load_dataset
    from brainit_core.features import get_feature_space

    dataset = data if hasattr(data, "subject") else load_dataset(data)
    run = RunDirectory(out)
    run_dir = run.path
    dev = distributed.setup(device)
    if not run.is_empty() and not resume:
        raise BrainITError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    distributed.barrier()  # every process has looked at the run directory before rank 0 writes into it
    run_dir.mkdir(parents=True, exist_ok=True)
    config = bit_config or BITConfig.preset(preset)
    enc_config = encoder_config or enc.EncoderConfig.preset(preset)
    subjects = dataset.training_subjects
    record = run.read_record() or new_run_record(preset, dataset.path, {"name": space_name, "preset": preset},
                                                 subjects, config_dict(config), config_as_dict(enc_config))
    if record.get("preset") != preset:
        raise CheckpointError(f"{run_dir / 'run.json'} was made with --preset {record.get('preset')}, not {preset}")
    if record.get("subjects") != subjects:
        raise CheckpointError(f"{run_dir / 'run.json'} was made for subjects {record.get('subjects')}, "
                              f"the dataset has {subjects}")
    extend_heads(record, head_epochs or {})
    config = BITConfig.from_dict(record["bit_config"])
    enc_config = enc.EncoderConfig(**record["encoder_config"]) if record.get("encoder_config") else enc_config
    run.save_record(record)
    enc_config.backbone = run.encoder_backbone  # a run recorded without it read the decoder's space
    stages = RunStages(run, record)
    space = get_feature_space(space_name, preset=preset, device=dev)

    # 1. features of every image needed
    ids, unl = needed_image_ids(dataset, subjects, config.max_unlabeled)
    t0 = time.time()
    features = load_run_features(dataset, space, np.concatenate([ids, unl]), dev)
    if not stages.done("features"):
        stages.finish("features", time.time() - t0, n_images=len(features), n_unlabeled=len(unl))
    report(0.1, "features ready")

    # 2. image-to-fMRI encoder, on its own backbone (not the decoder's space; features/backbones.py)
    t0 = time.time()
    encoder = None
    backbone = None
    if not (stages.done("encoder") and stages.done("synthetic")):
        backbone = enc.encoder_backbone(enc_config, preset, dev, decoder_space=space, **(backbone_options or {}))
    if not stages.done("encoder"):
        encoder = train_encoder(dataset, backbone, enc_config, run_dir / "encoder", subjects=subjects, device=dev)
        stages.finish("encoder", time.time() - t0, backbone=backbone.name)
    report(0.3, "encoder ready")

    # 3. V2C: GMM over all subjects' normalised encoder voxel embeddings (fitted by rank 0)
    t0 = time.time()
    if not stages.done("v2c"):
        if distributed.is_main():
            encoder = encoder if encoder is not None else enc.load_encoder(run.encoder_path, device=dev)
            embeddings = {s: encoder.voxel_embeddings(s).detach().cpu().numpy() for s in subjects}
            V2C(n_clusters=config.n_clusters, covariance_type=config.v2c_covariance,
                seed=config.seed).fit(embeddings).save(run.v2c_path)
        distributed.barrier()
        v2c = V2C.load(run.v2c_path)
        sizes = np.bincount(np.concatenate(list(v2c.labels_.values())), minlength=config.n_clusters)
        stages.finish("v2c", time.time() - t0, empty_clusters=int((sizes == 0).sum()))
    v2c = V2C.load(run.v2c_path)
    report(0.35, "V2C ready")

    # 4. synthetic fMRI of the unlabeled images for every training subject (shared by the processes)
    t0 = time.time()
    syn_dir = run_dir / "synthetic"
    if not stages.done("synthetic"):
        encoder = encoder if encoder is not None else enc.load_encoder(run.encoder_path, device=dev)
        if len(unl):
            fs_unl = load_run_features(dataset, backbone, unl, dev)
            for s in track(subjects, desc="synthetic fMRI"):
                if not (syn_dir / f"{s}.npy").exists():
                    enc.write_synthetic(syn_dir / f"{s}.npy", encoder, fs_unl, s)
        save_npy(syn_dir / "ids.npy", unl)
        distributed.barrier()
        stages.finish("synthetic", time.time() - t0, n=len(unl))
    synthetic = {s: np.load(syn_dir / f"{s}.npy", mmap_mode="r") for s in subjects if (syn_dir / f"{s}.npy").exists()}
    syn_ids = np.load(syn_dir / "ids.npy")
    del encoder
    report(0.4, "synthetic fMRI ready")

    # 5. BIT, one head after the other
    bit_data = build_bit_data(dataset, features, subjects, config.betas, synthetic, syn_ids)
    model = BrainITModel(config, space.semantic_spec, space.lowlevel_specs)
    for s in subjects:
        model.add_subject(s, dataset.subject(s).n_vertices, v2c.labels_[s])
        pool = bit_data.real[s]
        model.set_input_stats(s, pool.betas.mean(0), pool.betas.std(0))
    train_rows = np.unique(np.concatenate([bit_data.real[s].rows for s in subjects]))
    model.set_target_stats(*channel_stats(features, train_rows))
    model.to(dev)
    amp = config.amp and dev.type == "cuda"
    for line in describe_memory(model, config, max(dataset.subject(s).n_vertices for s in subjects), amp):
        log.info(line)
    curves = train_heads(model, stages, run_dir, lambda head: train_head(model, head, bit_data, config, run_dir, dev),
                         seeds={h: config.seed + k for k, h in enumerate(HEADS)})

    # 6. the final checkpoint
    t0 = time.time()
    save_bit(run.bit_path, model, record, meta={"curves_file": "curves.json"})
    stages.finish("bit", time.time() - t0, total_seconds=stages.total_seconds())
    if distributed.is_main():
        plot_curves(curves, run_dir / "curves.png")
    distributed.barrier()
    return run_dir
