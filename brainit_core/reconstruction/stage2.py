"""Stage 2, the paper's joint training: BIT's semantic head and the generator fine-tuned with the diffusion loss.

Starting from a finished run (stage 1: each BIT head trained on its own feature loss) and trained
generators, every step takes a batch of (betas, seen image) pairs of the run's training subjects::

    betas ──BIT semantic head──► tokens (feature units) ──generator conditioning──► UNet ──► diffusion loss
    image ──frozen autoencoder / VAE──► latents ──────── noised ──────────────────────┘

and updates the semantic head and the generator's UNet (with its conditioner or projection)
together, so BIT's tokens may drift from the feature space toward what the generator reads best
(official ``train/train_decoder_stage2.py``: a ``CombinedDiffusionEngine`` with both models in one
AdamW at 1e-5, batch 8 x 2 GPUs x 4 accumulated = 64, 10 epochs of single trials with 15,000
sampled voxels; no other loss). An auxiliary weight keeps the stage-1 token regression (MSE on
standardised tokens) as a small extra term (``aux_weight``; 0 in ``full`` as officially).

The low-level head, the autoencoder / VAE and the inverter are not trained. Every draw of a step
(its samples, voxel subsets, noise, timesteps) depends on (seed, step) only, and the state is saved
every ``checkpoint_every`` steps (:class:`~brainit_core.reconstruction.train_state.StepLoop`), so an
interrupted run continues exactly where it stopped. Output layout::

    OUT/
      stage2.json     what was fine-tuned from what, with which settings (the folder's marker)
      run/            a complete run directory: run.json (+ "stage2"), bit.* (the fine-tuned semantic head),
                      encoder/, v2c.* copied
      generators/     the fine-tuned generators (generators.json + "stage2"); beside run/, so
                      ``reconstruct --run OUT/run`` and ``benchmark`` find them without --generators
      train/          stage2_state.*, stage2_loss.csv/png, cached latents, eval.json (before/after), timings
"""
from __future__ import annotations

import copy
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brainit_core import distributed
from brainit_core.errors import BrainITError
from brainit_core.fileio import check_output_dir, read_json, write_json
from brainit_core.models.bit_data import BITData, build_bit_data, make_groups, standardized_targets
from brainit_core.models.losses import semantic_loss
from brainit_core.reconstruction.stage2_generators import pair_latents, stage2_generator
from brainit_core.runs import RunDirectory

log = logging.getLogger(__name__)
MARKER = "stage2.json"


@dataclass
class Stage2Config:
    """Joint fine-tuning settings.

    Parameters
    ----------
    steps : int or None
        Optimiser steps; None: ``epochs`` passes over the training pairs.
    epochs : float
    batch_size : int
    lr_bit, lr_generator : float
        AdamW learning rates of BIT's semantic head and of the generator (official 1e-5 both).
    warmup : int
        Linear warm-up steps.
    aux_weight : float
        Weight of the stage-1 token MSE added to the diffusion loss (0: the official loss alone).
    ema_decay : float
        EMA of the fine-tuned weights (0: none; the EMA weights are what is saved).
    checkpoint_every : int
    eval_samples : int
        Validation (and training) pairs of the before/after diffusion loss (fixed noise and timesteps).
    betas : str or None
        ``"averaged"`` or ``"single"`` trials (None: as the run was trained; official: single trials).
    voxels_per_sample : int or None
        Voxels sampled per sample (None: as the run was trained; official 15,000).
    """

    steps: int | None = None
    epochs: float = 10.0
    batch_size: int = 64
    lr_bit: float = 1e-5
    lr_generator: float = 1e-5
    warmup: int = 0
    aux_weight: float = 0.0
    ema_decay: float = 0.0
    checkpoint_every: int = 250
    eval_samples: int = 256
    betas: str | None = None
    voxels_per_sample: int | None = None

    @classmethod
    def preset(cls, name: str) -> "Stage2Config":
        """``ci`` (seconds), ``demo`` (the demo run and generators: 3,000 steps, an estimated 30 min on an idle
        CPU core, docs/reconstruction.md), ``full`` (the official settings, GPU)."""
        if name == "ci":
            return cls(steps=12, batch_size=4, lr_bit=1e-3, lr_generator=1e-3, aux_weight=0.1, checkpoint_every=4,
                       eval_samples=8)
        if name == "demo":
            return cls(steps=3000, batch_size=16, lr_bit=5e-5, lr_generator=2e-5, warmup=50, aux_weight=0.1,
                       ema_decay=0.995, checkpoint_every=100, eval_samples=128)
        if name == "full":
            return cls(betas="single")
        raise ValueError(f"unknown preset {name!r} (ci, demo, full)")

    def total_steps(self, n_samples: int) -> int:
        return int(self.steps) if self.steps else max(1, math.ceil(self.epochs * n_samples / self.batch_size))


class JointModel(nn.Module):
    """What stage 2 optimises: BIT's semantic head and the generator's trainable module, as one module."""

    def __init__(self, head: nn.Module, generator: nn.Module):
        super().__init__()
        self.head = head
        self.generator = generator


def joint_optimizer(bit, generator, config: Stage2Config):
    """The joint module, AdamW (one group per model, its own learning rate), the warm-up schedule and the
    EMA copy (None when ``config.ema_decay`` is 0). BIT's low-level head is frozen."""
    bit.lowlevel.requires_grad_(False)
    joint = JointModel(bit.semantic, generator.module)
    ema = copy.deepcopy(joint).requires_grad_(False) if config.ema_decay > 0 else None
    optimizer = torch.optim.AdamW([{"params": list(bit.semantic.parameters()), "lr": config.lr_bit},
                                   {"params": list(generator.module.parameters()), "lr": config.lr_generator}],
                                  weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, config.warmup)))
    return joint, optimizer, sched, ema


def predict_tokens(bit, groups) -> tuple[torch.Tensor, torch.Tensor]:
    """BIT's semantic tokens for per-subject groups: (feature units, standardised), both (B, N, D), with gradients."""
    net = bit.semantic
    brain, _ = net.tokenize(groups)
    pred, _ = net.read_out(brain)
    mean, std = bit.target_stats("semantic")
    return pred[0].float() * std + mean, pred[0].float()


def joint_loss(bit, generator, data: BITData, latents: torch.Tensor, batch, n_voxels, aux_weight: float,
               tg: torch.Generator, device, shard=None) -> tuple[torch.Tensor, dict]:
    """Diffusion loss (+ ``aux_weight`` x token MSE) of one batch of ``(source, subject, index)`` samples.

    With a :class:`~brainit_core.distributed.Shard` of the batch (several processes) the loss is the
    mean over this process's samples, with every random number drawn for the whole batch and sliced.
    """
    groups, rows = make_groups(bit, data, batch, n_voxels, device, tg, shard)
    tokens, pred_std = predict_tokens(bit, groups)
    diffusion = generator.loss(latents[rows].to(device), tokens, tg, shard)
    parts = {"diffusion": float(diffusion.detach())}
    loss = diffusion
    if aux_weight > 0:
        tok = semantic_loss(pred_std, standardized_targets(bit, "semantic", data, rows, device)[0])
        loss = loss + aux_weight * tok
        parts["tokens"] = float(tok.detach())
    return loss, parts


@torch.no_grad()
def evaluate(bit, generator, data: BITData, latents, samples: list, seed: int, device, batch_size: int = 16) -> dict:
    """Mean diffusion loss and token MSE of ``samples`` (all voxels, noise fixed by ``seed``): comparable
    before and after fine-tuning. Several processes take turns by batch and sum the results."""
    modules = [bit.semantic, generator.module]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    with_tokens = data.features.semantic.size > 0  # targets loaded (not for the official loss at full size)
    total = {"diffusion": 0.0, "tokens": 0.0} if with_tokens else {"diffusion": 0.0}
    for k in range(0, len(samples), batch_size):
        if not distributed.my_turn(k // batch_size):
            continue
        chunk = samples[k:k + batch_size]
        _, parts = joint_loss(bit, generator, data, latents, chunk, None, 1.0 if with_tokens else 0.0,
                              torch.Generator().manual_seed(seed + k), device)
        for key in total:
            total[key] += parts[key] * len(chunk)
    for m, mode in zip(modules, modes):
        m.train(mode)
    sums = distributed.all_reduce_sum(list(total.values())).tolist()
    return {k: v / max(len(samples), 1) for k, v in zip(total, sums)}


def _spread(samples: list, n: int) -> list:
    """At most ``n`` samples, evenly spread (deterministic)."""
    if len(samples) <= n:
        return list(samples)
    return [samples[int(i)] for i in np.linspace(0, len(samples) - 1, n).round()]


def _settings(run: RunDirectory, gens, preset: str, config: Stage2Config, dataset) -> dict:
    return {"from_run": str(run.path.resolve()), "from_run_sha256": run.sha256, "generators": str(Path(gens.path).resolve()),
            "generators_sha256": gens.sha256, "generators_kind": gens.kind, "dataset": str(dataset),
            "preset": preset, "config": asdict(config)}


def _check_marker(out: Path, settings: dict) -> None:
    if not check_output_dir(out, "a stage-2 output folder", marker=MARKER):
        write_json(out / MARKER, settings)
        return
    have = read_json(out / MARKER, {})
    keys = ("from_run_sha256", "generators_sha256", "preset", "config")
    if any(have.get(k) != settings[k] for k in keys):
        diff = [k for k in keys if have.get(k) != settings[k]]
        raise BrainITError(f"{out / MARKER}: this folder holds a stage 2 of another run, generators or settings "
                           f"({', '.join(diff)} differ); choose another --out")


def write_run(out_run: Path, src: RunDirectory, bit, info: dict) -> None:
    """A complete run directory at ``out_run``: the source's encoder, V2C and curves copied, run.json with
    ``stage2``, and the fine-tuned BIT checkpoint written last (it marks the run finished)."""
    from brainit_core.models.bit_io import save_bit

    out_run.mkdir(parents=True, exist_ok=True)
    if (src.path / "encoder").is_dir():
        shutil.copytree(src.path / "encoder", out_run / "encoder", dirs_exist_ok=True)
    for name in ("v2c.npz", "v2c.json", "curves.json", "curves.png"):
        if (src.path / name).is_file():
            shutil.copy2(src.path / name, out_run / name)
    dest = RunDirectory(out_run)
    record = {**src.record, "stage2": info}
    dest.save_record(record)
    save_bit(dest.bit_path, bit, record, meta={"stage2_from_sha256": src.sha256})


def train_stage2(run_dir, generators_dir, out, preset: str = "demo", data=None, device=None, seed: int = 0,
                 config: Stage2Config | None = None, max_seconds: float | None = None) -> Path:
    """Fine-tune a run's semantic head with its generators (resumable); see the module docstring.

    Parameters
    ----------
    run_dir : path
        A finished run (stage 1).
    generators_dir : path
        Trained generators of the run's feature space (``offline`` or ``sdxl``).
    out : path
        New (or empty) folder, or this same stage 2 to continue.
    preset : str
        :class:`Stage2Config` preset (``config`` overrides it).
    data : path, optional
        The run's dataset (default: the one run.json records).
    max_seconds : float, optional
        Time budget of this call; the state is saved and a later call continues.

    Returns
    -------
    Path
        ``out`` (``out/run`` and ``out/generators`` once all steps are done).
    """
    from brainit_core.data import load_dataset
    from brainit_core.features import extract_features
    from brainit_core.features.cache import FeatureSet
    from brainit_core.locks import FileLock, lock_path_for
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction.generators import Generators
    from brainit_core.reconstruction.train_state import StepLoop

    device = distributed.setup(device or "auto")  # several processes (torchrun): join the group, cuda:LOCAL_RANK
    out = Path(out).expanduser()
    src = RunDirectory(run_dir)
    config = config or Stage2Config.preset(preset)
    data = data or src.dataset
    if not data or not Path(data).expanduser().is_dir():
        raise BrainITError(f"the run's dataset {data} is not there; pass --data DIR")
    run = BrainITRun.load(src.path, device=device)
    gens = Generators.load(generators_dir, device=device, space=run.space)
    settings = _settings(src, gens, preset, config, Path(data).expanduser().resolve())
    with distributed.on_main(FileLock(lock_path_for(out), what=f"stage-2 folder {out}")):  # rank 0 writes
        if distributed.is_main():
            _check_marker(out, settings)
        distributed.barrier()
        if RunDirectory(out / "run").is_complete and (out / "generators" / "generators.json").is_file():
            log.info("stage 2 in %s is finished; nothing to do", out)
            return out
        t0 = time.time()
        # 1. (betas, image) pairs of the run's training subjects; latents under the frozen encoder
        dataset = load_dataset(data)
        subjects = [s for s in src.training_subjects if s in dataset.subjects]
        if not subjects:
            raise BrainITError(f"none of the run's training subjects {src.training_subjects} is in {dataset.path}")
        ids = np.unique(np.concatenate([np.r_[dataset.subject(s).train_image_ids, dataset.subject(s).val_image_ids]
                                        for s in subjects]))
        if config.aux_weight > 0:  # the token targets (GBs for 256 bigG tokens, so only when the loss reads them)
            features = extract_features(dataset, ids, run.space, read_lowlevel=False)
        else:
            features = FeatureSet(ids, np.zeros((len(ids), 0, 0), np.float16), [])
        data_ = build_bit_data(dataset, features, subjects, config.betas or src.bit_config.get("betas", "averaged"))
        val_data = BITData(features, data_.val, {}, {})
        generator = stage2_generator(gens)
        train_dir = out / "train"
        latents = pair_latents(generator, dataset, features.ids, train_dir / f"latents_{gens.sha256[:12]}_{len(ids)}.npy")
        samples = [("real", s, i) for s in subjects for i in range(len(data_.real[s]))]
        steps = config.total_steps(len(samples))
        n_voxels = config.voxels_per_sample or src.bit_config.get("voxels_per_sample")
        # 2. the joint model: BIT's semantic head + the generator's trainable module
        bit = run.model
        joint, optimizer, sched, ema = joint_optimizer(bit, generator, config)
        loop = StepLoop("stage 2", joint, optimizer, sched, train_dir, "stage2", steps, config.checkpoint_every,
                        settings, ema=ema, ema_decay=config.ema_decay, batch_size=config.batch_size)
        start = loop.resume(device)
        eval_sets = {"val": (val_data, _spread([("real", s, i) for s in subjects for i in range(len(data_.val[s]))],
                                               config.eval_samples)),
                     "train": (data_, _spread(samples, config.eval_samples))}
        record = read_json(train_dir / "eval.json", {})
        if distributed.any_rank("before" not in record):
            if start:
                raise BrainITError(f"{train_dir / 'eval.json'} is missing: the stage 2 in {out} cannot report its "
                                   "before/after losses; start it again in a new folder")
            record["before"] = {k: evaluate(bit, generator, d, latents, s, seed, device) for k, (d, s) in eval_sets.items()}
            write_json(train_dir / "eval.json", record)

        # 3. the steps: every draw depends on (seed, step) only; each process takes its shard of the batch
        def loss_fn(step):
            rng = np.random.default_rng([seed, 2, step])
            tg = torch.Generator().manual_seed(int(rng.integers(2**62)))
            torch.manual_seed(int(rng.integers(2**62)))
            picks = rng.choice(len(samples), config.batch_size, replace=len(samples) < config.batch_size)
            return joint_loss(bit, generator, data_, latents, [samples[i] for i in picks], n_voxels,
                              config.aux_weight, tg, device, loop.shard)

        finished = loop.run(start, loss_fn, max_seconds)
        timings = read_json(train_dir / "timings.json", {})
        timings["stage2"] = timings.get("stage2", 0.0) + time.time() - t0
        write_json(train_dir / "timings.json", timings, sort_keys=False)
        if not finished:
            log.info("stage 2 paused after its time budget at step %d of %d; run the command again to continue",
                     loop.saved_step, steps)
            return out
        # 4. the fine-tuned weights (EMA when kept), before/after losses, the new run and generators
        if ema is not None:
            joint.load_state_dict(ema.state_dict())
        record["after"] = {k: evaluate(bit, generator, d, latents, s, seed, device) for k, (d, s) in eval_sets.items()}
        write_json(train_dir / "eval.json", record)
        info = {**settings, "steps": steps, "n_pairs": len(samples), "subjects": subjects,
                "seconds": round(timings["stage2"], 1), "eval": record}
        if distributed.is_main():
            generator.write(out / "generators", info)
            write_run(out / "run", src, bit, info)
        distributed.barrier()  # the other processes return once the results are on disk
    return out
