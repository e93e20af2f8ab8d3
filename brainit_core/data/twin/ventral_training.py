"""Training the twin's ventral network on fresh composites of the stimulus library (resumable).

Step ``t`` renders composites ``t * batch .. (t + 1) * batch - 1`` of the training seed at
``render_size`` (so no composite is seen twice), augments them (a random resized crop of 40-100%
of the area and aspect 3/4-4/3, a horizontal flip, brightness, contrast and saturation jitter, a
grey image one time in ten, a mild blur one time in five, pixel noise) with a generator seeded by
(seed, t) alone, and takes one AdamW step on

    BCE(map logits, fraction of each map cell covered by each category's mask)
    + label_weight * BCE(label-head logits, the category covers >= 0.3% of the crop).

A run may start from another network's weights (``init``: a training folder's ``state`` or a
``ventral`` checkpoint; a fine-tune with a fresh optimiser and its own schedule; the file's sha256
is recorded). The training state (network, optimiser, step, loss history) is saved as ``DIR/state.{safetensors,json}``
every ``checkpoint_every`` steps and when a time budget ends; running again continues from it with
the same result as an uninterrupted run. When all steps are done the network is written as
``DIR/ventral.{safetensors,json}`` (float16) and scored on held-out composites into ``DIR/quality.json``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brainit_core.checkpoint import (TrainingState, checkpoint_paths, load_checkpoint, read_checkpoint_record,
                                     save_checkpoint)
from brainit_core.data.twin.ventral import (HELDOUT_SEED, VentralConfig, VentralNet, evaluate_ventral, load_ventral,
                                            n_parameters, weights)
from brainit_core.errors import BrainITError, CheckpointError, check_loss
from brainit_core.fileio import check_output_dir, read_json, write_json
from brainit_core.locks import FileLock, lock_path_for

MARKER = "train.json"
LABEL_MIN_FRACTION = 0.003
CHECK_N = 64  # quality.json also records the AUC on the first CHECK_N held-out composites (a quick re-check)


def augment(images: np.ndarray, masks: np.ndarray, config: VentralConfig, rng: np.random.Generator):
    """Random resized crops, flips and colour jitter of a rendered batch.

    Parameters
    ----------
    images : uint8 (B, R, R, 3)
    masks : bool (B, 9, R, R)
    config : VentralConfig
    rng : numpy.random.Generator

    Returns
    -------
    x : float32 tensor (B, 3, size, size) in [0, 1]
    target : float32 tensor (B, 9, h, w): fraction of each map cell covered by each category
    labels : float32 tensor (B, 9)
    """
    b, r = images.shape[0], images.shape[1]
    s, h = config.size, -(-config.size // 8)
    img = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    msk = torch.from_numpy(masks).float()
    xs, ts, ls = [], [], []
    for i in range(b):
        area = rng.uniform(config.min_scale, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw = min(r, max(8, round(r * math.sqrt(area * aspect))))
        ch = min(r, max(8, round(r * math.sqrt(area / aspect))))
        x0, y0 = int(rng.integers(0, r - cw + 1)), int(rng.integers(0, r - ch + 1))
        crop = img[i:i + 1, :, y0:y0 + ch, x0:x0 + cw]
        mcrop = msk[i:i + 1, :, y0:y0 + ch, x0:x0 + cw]
        x = F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        t = F.interpolate(mcrop, size=(h, h), mode="area")
        if rng.random() < 0.5:
            x, t = x.flip(-1), t.flip(-1)
        xs.append(x)
        ts.append(t)
        ls.append((mcrop.mean(dim=(2, 3)) >= LABEL_MIN_FRACTION).float())
    x, target, labels = torch.cat(xs), torch.cat(ts), torch.cat(ls)
    bright = torch.from_numpy(rng.uniform(0.7, 1.3, (b, 1, 1, 1))).float()
    contrast = torch.from_numpy(rng.uniform(0.7, 1.3, (b, 1, 1, 1))).float()
    sat = rng.uniform(0.5, 1.5, b)
    sat[rng.random(b) < 0.1] = 0.0
    grey = x.mean(dim=1, keepdim=True)
    x = grey + torch.from_numpy(sat).float()[:, None, None, None] * (x - grey)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean * bright
    blur = torch.from_numpy(rng.random(b) < 0.2)[:, None, None, None]
    x = torch.where(blur, F.avg_pool2d(x, 3, 1, 1, count_include_pad=False), x)
    noise = torch.from_numpy(rng.standard_normal(x.shape) * rng.uniform(0, 0.03, (b, 1, 1, 1))).float()
    return (x + noise).clamp(0.0, 1.0), target, labels


def learning_rate(config: VentralConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 2% of ``lr`` at ``steps``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    p = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def category_weights(config: VentralConfig) -> torch.Tensor:
    """Per-category loss weights, (9,), summing to 1: ``focus_weight`` for the ``focus`` categories, 1 for the
    rest (all equal without a focus: the plain mean BCE)."""
    from brainit_core.data.twin.taxonomy import CATEGORIES

    unknown = sorted(set(config.focus) - set(CATEGORIES))
    if unknown:
        raise BrainITError(f"ventral config: unknown focus categories {unknown}; choose from {list(CATEGORIES)}")
    w = torch.tensor([config.focus_weight if c in config.focus else 1.0 for c in CATEGORIES])
    return w / w.sum()


def train_step(net: VentralNet, opt, library, cache, config: VentralConfig, seed: int, step: int) -> float:
    """Render, augment and learn from batch ``step``; returns the loss."""
    from brainit_core.data.twin.scenes import render_scenes

    s = render_scenes(library, config.batch, seed=seed, size=config.render_size, start=step * config.batch,
                      cache=cache)
    x, target, labels = augment(s.images, s.category_masks, config, np.random.default_rng([seed, step, 0x7E17]))
    for g in opt.param_groups:
        g["lr"] = learning_rate(config, step)
    net.train()
    logits, emb = net(x)
    w = category_weights(config)
    loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(0, 2, 3)) * w).sum() \
        + config.label_weight * (F.binary_cross_entropy_with_logits(net.labels(emb), labels, reduction="none")
                                 .mean(0) * w).sum()
    value = check_loss(float(loss.detach()), f"ventral network, step {step}", "state.json of the training folder")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return value


def initial_weights(path) -> tuple[dict, str]:
    """Network weights (float32) of a training ``state`` or a ``ventral`` checkpoint at ``path``, and its sha256."""
    tensors, _, meta = load_checkpoint(path)
    if meta.get("kind") not in ("ventral", "ventral-state"):
        raise CheckpointError(f"{checkpoint_paths(path)[1]}: not a ventral network or training state "
                              f"(kind {meta.get('kind')!r}); --init takes DIR/state or DIR/ventral")
    if meta.get("kind") == "ventral-state":  # TrainingState's "model/" prefix (states before it: "net.")
        prefix = "model/" if any(k.startswith("model/") for k in tensors) else "net."
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}, read_checkpoint_record(path)["sha256"]


def _start(out: Path, config: VentralConfig, seed: int, library, init: dict | None = None) -> None:
    """Check or write ``out/train.json``: a continued run must have the same config, seed, library and init."""
    record = {"kind": "ventral-training", "config": config.to_json(), "seed": int(seed),
              "library_version": library.version}
    if init is not None:
        record["init"] = init
    if check_output_dir(out, "a ventral network training folder", marker=MARKER):
        old = read_json(out / MARKER)
        if not isinstance(old, dict) or old.get("kind") != "ventral-training":
            raise BrainITError(f"{out / MARKER} is not a ventral training record; choose a new or empty folder")
        for key in ("config", "seed", "library_version", "init"):
            if old.get(key) != record.get(key):
                raise BrainITError(f"{out / MARKER} was started with another {key} ({old.get(key)!r}, now "
                                   f"{record.get(key)!r}); continue it with the same settings or use a new folder")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, record)


def train_ventral(out, config: VentralConfig | None = None, seed: int = 0, library=None,
                  max_seconds: float | None = None, max_steps: int | None = None, log=None, init=None) -> dict:
    """Train (or continue training) the ventral network in the folder ``out``.

    Parameters
    ----------
    out : str or PathLike
        A new or empty folder, or one this function wrote before (it then continues from its state).
    config : VentralConfig, optional
        Default the ``demo`` preset.
    seed : int
        Initialisation and training-scene seed (not :data:`HELDOUT_SEED`).
    library : LibraryIndex, optional
        Default :func:`brainit_core.data.twin.library.load_library`.
    max_seconds : float, optional
        Stop (saving the state) after this many seconds of this call; run again to continue.
    max_steps : int, optional
        Stop (saving the state) after this many steps of this call.
    log : callable, optional
        ``log(str)`` for progress lines (the command passes ``print``).
    init : str or PathLike, optional
        Start from these weights (``DIR/state`` of another training or a ``ventral`` checkpoint stem)
        instead of a random initialisation: a fine-tune with a fresh optimiser and this config's schedule.

    Returns
    -------
    dict
        ``step``, ``steps``, ``done``, ``elapsed_s`` and, when done, ``quality`` (also ``out/quality.json``).
    """
    from brainit_core.data.twin.library import load_library
    from brainit_core.data.twin.sprites import SpriteCache

    config = config or VentralConfig.preset("demo")
    if seed < 0 or seed == HELDOUT_SEED:
        raise BrainITError(f"ventral training seed must be >= 0 and not the held-out seed {HELDOUT_SEED}, got {seed}")
    log = log or (lambda text: None)
    library = library or load_library()
    out = Path(out).expanduser()
    start_weights, init_record = None, None
    if init is not None:
        start_weights, digest = initial_weights(init)
        init_record = {"path": str(Path(init).expanduser().resolve()), "sha256": digest}
    with FileLock(lock_path_for(out), what=f"ventral training folder {out}"):
        _start(out, config, seed, library, init_record)
        torch.manual_seed(seed)
        net = VentralNet(config)
        if start_weights is not None:
            try:
                net.load_state_dict(start_weights)
            except RuntimeError as exc:
                raise CheckpointError(f"{init}: its weights do not fit this config's network ({exc})") from exc
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        state = TrainingState(out / "state")
        step, meta = 0, {"history": [], "elapsed_s": 0.0}
        if state.exists():
            step, saved = state.load(net, opt)
            meta = {"history": saved.get("history", []), "elapsed_s": float(saved.get("elapsed_s", 0.0))}
            log(f"continuing from step {step} of {config.steps} ({out / 'state.json'})")
        else:
            log(f"training a ventral network of {n_parameters(net):,} parameters for {config.steps} steps "
                f"of {config.batch} composites" + (f", starting from {init}" if init is not None else ""))
        cache = SpriteCache(library, max_side=max(256, 2 * config.render_size))
        t0, done_now, losses = time.time(), 0, []
        base_elapsed = meta["elapsed_s"]
        while step < config.steps:
            if (max_steps is not None and done_now >= max_steps) or \
                    (max_seconds is not None and time.time() - t0 >= max_seconds):
                break
            losses.append(train_step(net, opt, library, cache, config, seed, step))
            step, done_now = step + 1, done_now + 1
            if step % 10 == 0 or step == config.steps:
                meta["history"].append([step, float(np.mean(losses))])
                rate = done_now / max(time.time() - t0, 1e-9)
                log(f"step {step}/{config.steps}  loss {np.mean(losses):.4f}  {rate * 60:.0f} steps/min")
                losses = []
            if step % config.checkpoint_every == 0 or step == config.steps:
                meta["elapsed_s"] = base_elapsed + time.time() - t0
                state.save(step, net, opt, config.to_json(), extra={**meta, "kind": "ventral-state"})
        meta["elapsed_s"] = base_elapsed + time.time() - t0
        if done_now:
            state.save(step, net, opt, config.to_json(), extra={**meta, "kind": "ventral-state"})
        result = {"step": step, "steps": config.steps, "done": step >= config.steps, "elapsed_s": meta["elapsed_s"]}
        if not result["done"]:
            log(f"stopped at step {step} of {config.steps}; run the same command again to continue")
            return result
        quality = read_json(out / "quality.json") if (out / "quality.json").is_file() and not done_now else None
        if quality is None:
            save_checkpoint(out / "ventral", weights(net), config.to_json(),
                            {"kind": "ventral", "seed": seed, "steps": step, "library_version": library.version,
                             "parameters": n_parameters(net), "init": init_record})
            log(f"scoring {config.eval_n} held-out composites (seed {HELDOUT_SEED})")
            trained = load_ventral(out / "ventral")
            quality = evaluate_ventral(trained, library, n=config.eval_n, cache=cache)
            check = evaluate_ventral(trained, library, n=min(CHECK_N, config.eval_n), cache=cache)
            quality[f"check_{CHECK_N}"] = {k: v["auc"] for k, v in check["categories"].items()}
            quality.update(train_seconds=round(meta["elapsed_s"], 1), steps=step, composites=step * config.batch,
                           parameters=n_parameters(net), train_seed=seed, config=config.to_json(), init=init_record)
            write_json(out / "quality.json", quality)
        result["quality"] = quality
        return result
