"""What each branch contributes: low-level only, semantic only and fused, over a sweep of strengths.

On images the generators never saw (library scenes of a held-out seed, a dataset's test images,
or photographs), the features come from

- ``"true"``: the images' own features (the oracle: what the generators can do at best);
- ``"simulated"``: the true features degraded the way a regression's predictions are (shrunk
  toward the mean, Gaussian noise, a blur of the low-level maps: :func:`simulate_tokens` and
  :func:`~brainit_core.reconstruction.benchmark.simulate_prediction`);
- ``"bit"``: what a trained BIT run predicts from a subject's repeat-averaged test betas
  for the same images (:func:`predicted_features`), i.e. what the app and the benchmark decode.

Every set is scored with the evaluation table (:class:`~brainit_core.metrics.Evaluator`: PixCorr,
SSIM and the identification columns). ``kept`` is the share of the low-level branch's SSIM
advantage over semantic-only that fusion keeps: ``(fused - semantic) / (low - semantic)`` (the
paper's ablation: 0.74).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from brainit_core.progress import track
from brainit_core.reconstruction.benchmark import simulate_prediction
from brainit_core.reconstruction.images import image_size_of, resize_to, to_float_images, to_uint8

SOURCES = ("true", "simulated")  # the defaults; "bit" needs a run's features
DEFAULT_STRENGTHS = (0.25, 0.4, 0.5, 0.6, 24 / 38, 0.75, 0.9)


def simulate_tokens(tokens: torch.Tensor, unet, shrink: float = 0.6, noise: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Semantic tokens degraded like a regression's predictions, in the UNet's standardised units."""
    gen = torch.Generator().manual_seed(seed)
    cond = unet.conditioner
    z = cond.standardize(tokens) * shrink + noise * torch.randn(tokens.shape, generator=gen).to(tokens.device)
    return z * cond.std + cond.mean


def photographs(size: int) -> tuple[list[str], np.ndarray]:
    """The colour photographs scikit-image ships (never used for training), centre-cropped square."""
    from PIL import Image
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
             "retina", "colorwheel", "logo", "motorcycle_left", "coins"]
    out, kept = [], []
    for name in names:
        try:
            im = np.asarray(getattr(data, name)())
        except Exception:  # some need pooch downloads; offline they are skipped
            continue
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, -1)
        im = im[..., :3]
        h, w = im.shape[:2]
        s = min(h, w)
        im = im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        out.append(np.asarray(Image.fromarray(im.astype(np.uint8)).resize((size, size), Image.BICUBIC)))
        kept.append(name)
    return kept, np.stack(out)


def predicted_features(run, dataset, subject: str, device=None, n: int | None = None) -> tuple[np.ndarray, torch.Tensor, list]:
    """BIT's prediction from ``subject``'s repeat-averaged test betas: ``(image_ids, semantic, lowlevel)``,
    in feature units, on ``device`` (the order of the subject's test images; the first ``n`` when given)."""
    betas, ids = dataset.subject(subject).averaged("test")
    betas, ids = betas[:n], ids[:n]
    sem, low = [], []
    for i in range(0, len(betas), 32):
        with torch.no_grad():
            pred = run.predict(torch.as_tensor(np.asarray(betas[i:i + 32], np.float32)), subject,
                               return_attention=False)
        sem.append(pred.semantic.to(device))
        low.append([m.to(device) for m in pred.lowlevel])
    return np.asarray(ids), torch.cat(sem), [torch.cat(ms) for ms in zip(*low)]


def branch_images(generators, truth: torch.Tensor, source: str, strengths, seed: int = 0, batch: int = 8,
                  steps: int | None = None, predicted=None) -> dict[str, np.ndarray]:
    """uint8 images of every branch for one feature source: ``low-level``, ``semantic only``, ``fused s=...``.

    ``predicted``: ``(semantic, lowlevel)`` in feature units, one row per image of ``truth`` (source
    ``"bit"``)."""
    from brainit_core.reconstruction.pipeline import BrainITPipeline

    g = generators
    space = g.space
    device = truth.device
    pipe = BrainITPipeline(None, g, device)
    out: dict[str, list] = {}
    for i in track(range(0, len(truth), batch), desc=f"branches ({source})"):
        x = truth[i:i + batch]
        if source == "bit":
            if predicted is None:
                raise ValueError("source 'bit' needs predicted=(semantic, lowlevel)")
            sem, maps = predicted[0][i:i + batch], [m[i:i + batch] for m in predicted[1]]
        else:
            with torch.no_grad():
                maps, sem = space.lowlevel_maps(x), space.semantic_tokens(x)
        if source == "simulated":
            maps = simulate_prediction(maps, g.inverter, seed=seed + i)
            sem = simulate_tokens(sem, g.unet, seed=seed + i)
        elif source not in ("true", "bit"):
            raise ValueError(f"unknown feature source {source!r} (one of {SOURCES + ('bit',)})")
        seeds = [seed + i + b for b in range(len(x))]
        low = pipe.from_features(sem, maps, branches=("low_level",), seed=seeds).low_level
        out.setdefault("low-level", []).append(low)
        out.setdefault("semantic only", []).append(
            pipe.from_features(sem, None, branches=("semantic",), seed=seeds, steps=steps).semantic)
        for s in strengths:
            fused = pipe.from_features(sem, maps, seed=seeds, fusion_strength=float(s), steps=steps).fused
            out.setdefault(f"fused s={s:.3f}", []).append(fused)
    return {k: np.concatenate(v) for k, v in out.items()}


def branch_study(generators, images: np.ndarray, sources=SOURCES, strengths=DEFAULT_STRENGTHS, seed: int = 0,
                 networks="offline", device=None, batch: int = 8, steps: int | None = None,
                 images_out: dict | None = None, predicted=None) -> dict:
    """Score each branch and fusion strength on ``images`` (uint8 (N, H, W, 3), N >= 2).

    ``predicted``: ``(semantic, lowlevel)`` for the source ``"bit"`` (:func:`predicted_features`).

    Returns ``{"setup": {...}, source: {row: {column: value, "seconds": s}}, "kept": {source: {strength: share}}}``.
    """
    from brainit_core.metrics.evaluator import Evaluator

    g = generators
    g.require("inverter")
    g.require("unet")
    device = device or next(g.unet.parameters()).device
    size = image_size_of(g.space)
    truth = resize_to(to_float_images(images), size).to(device).clamp(0, 1)
    evaluator = Evaluator(networks=networks, device=device)
    result: dict = {"setup": {"n_images": len(images), "image_size": size, "strengths": [float(s) for s in strengths],
                              "steps": steps or g.reconstruction.fusion_steps, "seed": seed,
                              "generators_sha256": g.sha256, "torch_threads": torch.get_num_threads()}}
    if images_out is not None:
        images_out["truth"] = to_uint8(truth)
    kept: dict = {}
    for source in sources:
        t0 = time.time()
        sets = branch_images(g, truth, source, strengths, seed=seed, batch=batch, steps=steps, predicted=predicted)
        result["setup"][f"seconds_{source}"] = round(time.time() - t0, 1)
        rows = {}
        for name, imgs in sets.items():
            rows[name] = {k: (float(v) if not isinstance(v, str) else v)
                          for k, v in evaluator.score(truth.cpu(), imgs, truth_key=("branches", len(images))).items()}
            if images_out is not None:
                images_out[(source, name)] = imgs
        result[source] = rows
        low, sem = rows["low-level"]["SSIM"], rows["semantic only"]["SSIM"]
        kept[source] = {name.split("=")[1]: (r["SSIM"] - sem) / (low - sem) if abs(low - sem) > 1e-6 else float("nan")
                        for name, r in rows.items() if name.startswith("fused")}
    result["kept"] = kept
    return result


def format_study(result: dict) -> str:
    """A markdown table per source: rows = branches, columns = the evaluation table, plus ``kept``."""
    lines = []
    for source in (k for k in result if k not in ("setup", "kept")):
        rows = result[source]
        first = next(iter(rows.values()))
        cols = [c for c, v in first.items() if not isinstance(v, str)]
        lines += [f"**{source} features** ({result['setup']['n_images']} images)", "",
                  "| branch | " + " | ".join(cols) + " | kept |", "|---" * (len(cols) + 2) + "|"]
        for name, r in rows.items():
            share = result["kept"][source].get(name.split("=")[1]) if name.startswith("fused") else None
            cells = [f"{r[c]:.3f}" for c in cols] + ["" if share is None else f"{share:.2f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
