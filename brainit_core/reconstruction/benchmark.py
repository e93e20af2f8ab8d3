"""Measure the generators: amortised inverter vs Deep Image Prior, and the cost of fusion.

On test images (never seen by the generators) the low-level pyramid comes from one of
- ``"true"``: the true features (the oracle: the best the inverter can do);
- ``"simulated"``: true features degraded the way regression predictions are (shrunk 0.6x
  toward the channel means, Gaussian noise 0.5 std, 3x3 blur), a stand-in until BIT runs exist;
- ``"bit"``: BIT's predictions from a run (``run`` and ``subject`` given).
Each low-level method is scored with the protocol's SSIM and PixCorr against the ground truth
and timed per image; fused fast-mode reconstruction (inverter + fusion diffusion) is timed too.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from brainit_core.progress import report
from brainit_core.reconstruction.images import image_size_of, resize_to, to_float_images, to_uint8
from brainit_core.metrics.pixel import pixcorr, ssim


def simulate_prediction(maps: list[torch.Tensor], inverter, shrink: float = 0.6, noise: float = 0.5,
                        seed: int = 0) -> list[torch.Tensor]:
    """Degrade true features like a regression's predictions (in the inverter's standardised units)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, m in enumerate(maps):
        mean = getattr(inverter, f"mean_{i}")[:, None, None]
        std = getattr(inverter, f"std_{i}")[:, None, None]
        z = (m - mean) / std * shrink + noise * torch.randn(m.shape, generator=gen).to(m.device)
        if m.shape[-1] >= 4:
            z = F.avg_pool2d(z, 3, 1, 1, count_include_pad=False)
        out.append(z * std + mean)
    return out


def benchmark(generators, dataset, n_images: int = 8, dip_steps: int = 200, refine_steps: int = 20,
              sources=("true", "simulated"), run=None, subject: str | None = None, fused_batch: int = 8,
              seed: int = 0, device=None, images_out: dict | None = None) -> dict:
    """Score and time the low-level methods and fused reconstruction.

    Parameters
    ----------
    generators : Generators
    dataset : Dataset
    n_images : int
        Test images used (the first ``n`` of the first subject's test split).
    dip_steps : int
        Steps of the plain DIP baseline (200 by default; the paper uses 1,800).
    refine_steps : int
        DIP refinement steps after the inverter (0 skips that method).
    sources : tuple of str
        Feature sources (``"true"``, ``"simulated"``, ``"bit"``).
    run, subject : BrainITRun and subject name, for ``"bit"``.
    fused_batch : int
        Batch size for timing fused reconstruction.
    images_out : dict, optional
        Filled with ``{"truth": uint8 (n, H, W, 3), (source, method): uint8 images}`` for a grid.

    Returns
    -------
    dict
        ``{source: {method: {"ssim", "pixcorr", "seconds_per_image"}}, "fused": {...}, "setup": {...}}``
    """
    from brainit_core.reconstruction.dip import invert_dip
    from brainit_core.reconstruction.pipeline import BrainITPipeline

    g = generators
    g.require("inverter")
    space = g.space
    device = device or next(g.inverter.parameters()).device
    subj = dataset.subject(subject or dataset.training_subjects[0])
    ids = np.unique(subj.test_image_ids)[:n_images]
    size = image_size_of(space)
    truth = resize_to(to_float_images(dataset.images(ids)), size).to(device)
    with torch.no_grad():
        true_maps = space.lowlevel_maps(truth)
        true_sem = space.semantic_tokens(truth)
    dip_cfg = g.reconstruction.dip_config()
    images = images_out if images_out is not None else {}
    images["truth"] = to_uint8(truth)
    results: dict = {"setup": {
        "n_images": len(ids), "image_ids": ids.tolist(), "image_size": size, "dip_steps": dip_steps,
        "dip_channels": dip_cfg.channels, "dip_lr": dip_cfg.lr, "refine_steps": refine_steps,
        "torch_threads": torch.get_num_threads(), "device": str(device), "generators_sha256": g.sha256,
    }}
    for si, source in enumerate(sources):
        if source == "true":
            maps, sem = true_maps, true_sem
        elif source == "simulated":
            maps, sem = simulate_prediction(true_maps, g.inverter, seed=seed), true_sem
        elif source == "bit":
            if run is None:
                raise ValueError("source 'bit' needs a run")
            betas, kept = subj.average_trials(ids)
            pred = run.predict(betas, subj.name)
            maps = [m.to(device).float() for m in pred.lowlevel]
            sem = pred.semantic.to(device).float()
        else:
            raise ValueError(f"unknown feature source {source!r}")
        res = {}
        report(si / len(sources), f"benchmark: {source} features")
        t = time.perf_counter()
        with torch.no_grad():
            inv = g.inverter(maps)
        res["inverter"] = _score(truth, inv, time.perf_counter() - t)
        images[(source, "inverter")] = to_uint8(inv)
        if refine_steps:
            t = time.perf_counter()
            ref = invert_dip(maps, space, dip_cfg, seeds=seed, init=inv, steps=refine_steps, desc="DIP refine")
            res[f"inverter+DIP-{refine_steps}"] = _score(truth, ref, time.perf_counter() - t)
            images[(source, f"inverter+DIP-{refine_steps}")] = to_uint8(ref)
        if dip_steps:
            t = time.perf_counter()
            dip = invert_dip(maps, space, dip_cfg, seeds=seed, steps=dip_steps, desc=f"DIP-{dip_steps}")
            res[f"DIP-{dip_steps}"] = _score(truth, dip, time.perf_counter() - t)
            images[(source, f"DIP-{dip_steps}")] = to_uint8(dip)
        if g.unet is not None and g.autoencoder is not None:
            pipe = BrainITPipeline(None, g, device)
            sem_b, maps_b = sem[:fused_batch], [m[:fused_batch] for m in maps]
            out = pipe.from_features(sem_b, maps_b, mode="fast", seed=seed)
            res["fused (fast)"] = {**_score(truth[:fused_batch], to_float_images(out.fused).to(device),
                                            out.timing["total"]), "timing": out.timing}
            images[(source, "fused (fast)")] = out.fused
            out = pipe.from_features(sem_b, None, branches=("semantic",), seed=seed)
            res["semantic only"] = {**_score(truth[:fused_batch], to_float_images(out.semantic).to(device),
                                             out.timing["total"]), "timing": out.timing}
            images[(source, "semantic only")] = out.semantic
        results[source] = res
    return results


def _score(truth: torch.Tensor, recon: torch.Tensor, seconds: float) -> dict:
    n = recon.shape[0]
    return {"ssim": ssim(truth[:n].cpu(), recon.cpu()), "pixcorr": pixcorr(truth[:n].cpu(), recon.cpu()),
            "seconds_per_image": seconds / n}


def format_table(results: dict) -> str:
    """Markdown table of a :func:`benchmark` result."""
    lines = ["| features | method | SSIM | PixCorr | s / image |", "|---|---|---|---|---|"]
    for source, res in results.items():
        if source == "setup":
            continue
        for method, r in res.items():
            lines.append(f"| {source} | {method} | {r['ssim']:.3f} | {r['pixcorr']:.3f} | {r['seconds_per_image']:.3f} |")
    return "\n".join(lines)


def save_grid(images: dict, path, max_images: int = 8) -> None:
    """One row per method (ground truth first), one column per image; labels on the left."""
    from PIL import Image, ImageDraw

    rows = [("ground truth", images["truth"])] + [(f"{k[0]}: {k[1]}", v) for k, v in images.items() if k != "truth"]
    n = min(max_images, len(images["truth"]))
    h, w = images["truth"].shape[1:3]
    label_w = 190
    canvas = Image.new("RGB", (label_w + n * w, len(rows) * h), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, imgs) in enumerate(rows):
        draw.text((4, r * h + h // 2 - 6), name, fill="black")
        for c in range(min(n, len(imgs))):
            canvas.paste(Image.fromarray(imgs[c]), (label_w + c * w, r * h))
    canvas.save(path)
