"""Betas -> images: the Brain-IT reconstruction pipeline.

``BrainITPipeline(run, generators)(betas, subject)`` predicts both feature sets with BIT, inverts
the low-level pyramid (amortised inverter in ``"fast"`` mode, Deep Image Prior in ``"dip"`` mode
as in the paper) and fuses it with semantic diffusion. Either branch can be switched off:
semantic only is diffusion from pure noise, low-level only is the inverted image.
:meth:`BrainITPipeline.from_features` runs the same generators on any features (baselines,
the oracle that uses true features).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from brainit_core.errors import CheckpointError, DataFormatError
from brainit_core.reconstruction.images import image_size_of, to_uint8
from brainit_core.reconstruction.diffusion import SAMPLERS, as_seeds

BRANCHES = ("low_level", "semantic")
MODES = ("fast", "dip")


@dataclass
class ReconstructionOutput:
    """What one pipeline call returns.

    Attributes
    ----------
    low_level : ndarray, uint8, (B, H, W, 3), or None
        The low-level branch's image (inverter, DIP or both).
    semantic : ndarray, uint8, (B, H, W, 3), or None
        Semantic-only generation from pure noise (when the low-level branch is off, or when
        asked for with ``semantic_only=True``).
    fused : ndarray, uint8, (B, H, W, 3), or None
        Both branches fused (when both are on).
    attention : dict or None
        ``clusters`` (V,), ``tokenizer`` {head: (B, V)} and ``cross`` {head: (B, n_queries,
        n_brain_tokens)} as numpy arrays, when the run returned them: each head's
        (``"semantic"``, ``"lowlevel"``) own tokenizer weights and cross-attention, same keys.
    timing : dict
        Seconds per stage (``features``, ``low_level``, ``semantic``/``fusion``), ``total`` and
        ``per_image``.
    meta : dict
        Settings used (branches, mode, seeds, steps, ...), checkpoint hashes, device.
    """

    low_level: np.ndarray | None = None
    semantic: np.ndarray | None = None
    fused: np.ndarray | None = None
    attention: dict | None = None
    timing: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def images(self) -> np.ndarray:
        """The final reconstruction: fused, else semantic, else low-level."""
        for x in (self.fused, self.semantic, self.low_level):
            if x is not None:
                return x
        raise ValueError("no branch produced images")


class BrainITPipeline:
    """Reconstruct seen images from betas with a trained run and trained generators.

    Parameters
    ----------
    run : BrainITRun or None
        A trained run (``BrainITRun.load``); ``None`` allows only :meth:`from_features`.
    generators : Generators
    device : torch.device, optional
        Where the generators run (default: the generators' device).

    Examples
    --------
    >>> pipe = BrainITPipeline(BrainITRun.load(run_dir), Generators.load(gen_dir))
    >>> out = pipe(betas, "twin01", mode="fast", seed=0)
    >>> out.fused.shape   # (B, 128, 128, 3)
    """

    def __init__(self, run, generators, device=None):
        self.run = run
        self.generators = generators
        self.device = device or _module_device(generators)
        if run is not None:
            _check_compatible(run.space, generators.space)

    # ----------------------------------------------------------------------------------------
    def __call__(self, betas, subject: str, branches=BRANCHES, mode: str | None = None,
                 fusion_strength: float | None = None, guidance_scale: float | None = None, steps: int | None = None,
                 seed=0, refine_steps: int | None = None, dip_steps: int | None = None, sampler: str | None = None,
                 semantic_only: bool = False, return_attention: bool = True) -> ReconstructionOutput:
        """Reconstruct images from betas.

        Parameters
        ----------
        betas : ndarray or Tensor, float32, (B, V)
            The subject's betas (all vertices, dataset order), ideally repeat-averaged.
        subject : str
            A subject of the run.
        branches : tuple of str
            Any non-empty subset of ``("low_level", "semantic")``.
        mode : str
            ``"fast"`` (inverter) or ``"dip"`` (Deep Image Prior); default from the generators.
        fusion_strength : float
            Fraction of the fusion schedule re-run (official 24/38); 0 returns the low-level
            image through the autoencoder, 1 ignores it.
        guidance_scale : float
            Classifier-free guidance of the semantic diffusion.
        steps : int
            Diffusion schedule length: of fusion (official 38) when both branches are on, of
            generation otherwise.
        seed : int or list of int
            One seed per image (``s`` means ``s, s + 1, ...``); results are reproducible.
        refine_steps : int
            Fast mode: DIP refinement steps started from the inverter's image.
        dip_steps : int
            DIP mode: optimisation steps (default from the generators' DIP config).
        sampler : str
            ``"dpm"`` or ``"ddim"``.
        semantic_only : bool
            Also return semantic-only generations when both branches are on.
        return_attention : bool
            Ask the run for tokenizer and cross-attention maps.
        """
        t0 = time.perf_counter()
        # 1. check inputs
        if self.run is None:
            raise ValueError("this pipeline has no BIT run; use from_features(...)")
        x = torch.as_tensor(np.asarray(betas, dtype=np.float32)) if not torch.is_tensor(betas) else betas.float()
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[0] == 0:
            raise DataFormatError(f"betas must be (B, V) with B >= 1, got {tuple(x.shape)}")
        # 2. voxels -> brain tokens -> features (BIT's two heads)
        pred = self.run.predict(x, subject, return_attention=return_attention)
        t_features = time.perf_counter() - t0
        # 3-5. features -> images
        out = self.from_features(pred.semantic, pred.lowlevel, branches=branches, mode=mode,
                                 fusion_strength=fusion_strength, guidance_scale=guidance_scale, steps=steps,
                                 seed=seed, refine_steps=refine_steps, dip_steps=dip_steps, sampler=sampler,
                                 semantic_only=semantic_only)
        # 6. attention maps and bookkeeping
        out.attention = _attention(pred) if return_attention else None
        out.timing = {"features": t_features, **out.timing}
        out.timing["total"] = time.perf_counter() - t0
        out.timing["per_image"] = out.timing["total"] / x.shape[0]
        out.meta.update({"subject": subject, "run_sha256": getattr(self.run, "checkpoint_sha256", None)})
        return out

    # ----------------------------------------------------------------------------------------
    def from_features(self, semantic, lowlevel, branches=BRANCHES, mode: str | None = None,
                      fusion_strength: float | None = None, guidance_scale: float | None = None,
                      steps: int | None = None, seed=0, refine_steps: int | None = None,
                      dip_steps: int | None = None, sampler: str | None = None,
                      semantic_only: bool = False) -> ReconstructionOutput:
        """Generate images from features (predicted, true or a baseline's), in feature units.

        Parameters
        ----------
        semantic : Tensor or ndarray (B, N_sem, D_sem), or None when the semantic branch is off
        lowlevel : list of Tensor or ndarray [(B, C_l, h_l, w_l)], or None when the low-level branch is off
        Other parameters as in :meth:`__call__`.
        """
        from brainit_core.reconstruction.autoencoder import decode_latents
        from brainit_core.reconstruction.diffusion import generate_latents
        from brainit_core.reconstruction.dip import invert_dip
        from brainit_core.reconstruction.fusion import fuse

        t0 = time.perf_counter()
        g = self.generators
        d = g.reconstruction
        # 1. check inputs and fill defaults
        branches = tuple(branches)
        if not branches or any(b not in BRANCHES for b in branches):
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {branches}")
        low_on, sem_on = "low_level" in branches, "semantic" in branches
        mode = mode or d.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        sampler = sampler or d.sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        guidance_scale = d.guidance_scale if guidance_scale is None else float(guidance_scale)
        fusion_strength = d.fusion_strength if fusion_strength is None else float(fusion_strength)
        refine_steps = d.refine_steps if refine_steps is None else int(refine_steps)
        dip_cfg = d.dip_config()
        dip_steps = dip_cfg.steps if dip_steps is None else int(dip_steps)
        if sem_on:
            g.require_semantic()
            sem = self._tensor(semantic, "semantic")
            B = sem.shape[0]
            _check_shape(sem, (g.space.semantic_spec.n_tokens, g.space.semantic_spec.dim), "semantic")
        if low_on:
            if lowlevel is None:
                raise ValueError("the low_level branch needs lowlevel features")
            low = [self._tensor(m, f"lowlevel[{i}]") for i, m in enumerate(lowlevel)]
            if len(low) != len(g.space.lowlevel_specs):
                raise DataFormatError(f"{len(low)} low-level maps, the feature space has {len(g.space.lowlevel_specs)}")
            for i, (m, s) in enumerate(zip(low, g.space.lowlevel_specs)):
                _check_shape(m, (s.dim, *s.grid), f"lowlevel[{i}]")
            B = low[0].shape[0]
            if mode == "fast":
                g.require("inverter")
        if sem_on and low_on and sem.shape[0] != B:
            raise DataFormatError(f"semantic has {sem.shape[0]} images, lowlevel {B}")
        seeds = as_seeds(seed, B)
        if steps is None:
            steps = d.fusion_steps if (low_on and sem_on) else d.generation_steps
        timing, out = {}, ReconstructionOutput()

        # 2. low-level branch: pyramid -> image (inverter, DIP, or inverter + DIP refinement)
        low_img = None
        if low_on:
            t = time.perf_counter()
            with torch.no_grad():
                init = g.inverter(low) if mode == "fast" else None
            if mode == "dip":
                low_img = invert_dip(low, g.space, dip_cfg, seeds=seeds, steps=dip_steps)
            elif refine_steps > 0:
                low_img = invert_dip(low, g.space, dip_cfg, seeds=seeds, init=init, steps=refine_steps,
                                     desc="DIP refinement")
            else:
                low_img = init
            out.low_level = to_uint8(low_img)
            timing["low_level"] = time.perf_counter() - t

        # 3. semantic branch alone: diffusion from pure noise
        if sem_on and (not low_on or semantic_only):
            t = time.perf_counter()
            n_gen = steps if not low_on else d.generation_steps
            with torch.no_grad():
                if g.sdxl is not None:  # a full-size SDXL set
                    out.semantic = to_uint8(g.sdxl(sem, seeds=seeds, steps=n_gen, guidance_scale=guidance_scale,
                                                   sampler=sampler))
                else:
                    lat = generate_latents(g.unet, g.scheduler_config, sem, seeds, n_gen, guidance_scale, sampler)
                    out.semantic = to_uint8(decode_latents(g.autoencoder, lat))
            timing["semantic"] = time.perf_counter() - t

        # 4. fusion: encode the low-level image, noise it part-way, denoise with semantic conditioning
        if sem_on and low_on:
            t = time.perf_counter()
            if g.sdxl is not None:
                fused = g.sdxl(sem, low_level=low_img, seeds=seeds, strength=fusion_strength, steps=steps,
                               guidance_scale=guidance_scale, sampler=sampler)
            else:
                fused = fuse(g.autoencoder, g.unet, g.scheduler_config, low_img, sem, seeds, fusion_strength, steps,
                             guidance_scale, sampler, detail=d.fusion_detail)
            out.fused = to_uint8(fused)
            timing["fusion"] = time.perf_counter() - t

        # 5. bookkeeping
        timing["total"] = time.perf_counter() - t0
        timing["per_image"] = timing["total"] / B
        out.timing = timing
        out.meta = {
            "branches": list(branches), "mode": mode if low_on else None, "seeds": seeds,
            "steps": int(steps) if sem_on else None, "fusion_strength": fusion_strength if (sem_on and low_on) else None,
            "guidance_scale": guidance_scale if sem_on else None, "sampler": sampler if sem_on else None,
            "refine_steps": refine_steps if (low_on and mode == "fast") else None,
            "dip_steps": dip_steps if (low_on and mode == "dip") else None,
            "image_size": image_size_of(g.space), "generators_kind": g.kind, "generators_sha256": g.sha256,
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
        }
        return out

    def _tensor(self, x, name: str) -> torch.Tensor:
        if x is None:
            raise ValueError(f"{name} features are needed for the requested branches")
        t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
        t = t.to(self.device).float()
        if not torch.isfinite(t).all():
            raise DataFormatError(f"{name} features contain NaN or inf")
        return t


def _check_shape(t: torch.Tensor, expected: tuple, name: str) -> None:
    if tuple(t.shape[1:]) != tuple(expected):
        raise DataFormatError(f"{name} features have shape {tuple(t.shape)}, the generators expect (B, "
                              f"{', '.join(str(e) for e in expected)})")


def _module_device(generators) -> torch.device:
    if getattr(generators, "sdxl", None) is not None:
        return generators.sdxl.device
    for name in ("unet", "inverter", "autoencoder"):
        m = getattr(generators, name)
        if m is not None:
            return next(m.parameters()).device
    return torch.device("cpu")


def _check_compatible(run_space, gen_space) -> None:
    from brainit_core.reconstruction.generators import space_signature

    if space_signature(run_space.describe()) != space_signature(gen_space.describe()):
        raise CheckpointError(f"the run predicts {run_space.describe()} but the generators were trained for "
                              f"{gen_space.describe()}; train generators for the run's feature space")


def _attention(pred) -> dict | None:
    """Each head's tokenizer attention next to its own cross-attention (numpy), or None."""
    if getattr(pred, "tokenizer_attention", None) is None:
        return None

    def np_(t):
        return t.detach().float().cpu().numpy() if torch.is_tensor(t) else t

    cross = getattr(pred, "cross_attention", None) or {}
    heads = [h for h in pred.tokenizer_attention if h in cross]
    return {"clusters": np_(pred.cluster_of_voxel), "tokenizer": {h: np_(pred.tokenizer_attention[h]) for h in heads},
            "cross": {h: np_(cross[h]) for h in heads}}
