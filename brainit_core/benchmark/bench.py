"""One benchmark session: the dataset, the BIT run, the generators, the cache and the evaluator.

:class:`Bench` gives the methods of :mod:`~brainit_core.benchmark.methods` what they decode with
(:meth:`Bench.generate`, :meth:`Bench.bit`), caches and scores their images
(:meth:`Bench.images`, :meth:`Bench.scored`) and reads the attention checks from the cache.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from brainit_core.benchmark.cache import ResultCache, method_key
from brainit_core.benchmark.categories import COLUMN as CATEGORY_COLUMN
from brainit_core.benchmark.categories import LAYER as CATEGORY_LAYER
from brainit_core.benchmark.categories import NETWORK as CATEGORY_NETWORK
from brainit_core.benchmark.categories import N_TRAIN, category_scorer
from brainit_core.benchmark.claims import CONTRA_TARGET
from brainit_core.benchmark.methods import Method, Output, get_method, group_of
from brainit_core.benchmark.twin import ground_truth, twin_dir_of, vertex_order
from brainit_core.errors import BrainITError
from brainit_core.metrics.evaluator import Evaluator
from brainit_core.progress import track

RESULTS_VERSION = 1
DIP_IMAGES = 4  # test images per subject of the DIP rows by default (demo preset: slow on CPU)
DIP_PRESET = "demo"


def channels_last(*owners) -> None:
    """Put the convolutional networks of generators and feature spaces (``unet``, ``autoencoder``,
    ``inverter``, a space's ``net``) in channels-last layout: the same images to float rounding
    (latents within 5e-6), and faster on CPU: the demo UNet's diffusion 1.26x (17.1 -> 13.5 s, 8 images
    x 6 steps, 1 thread; docs/benchmark.md)."""
    for owner in owners:
        for name in ("unet", "autoencoder", "inverter", "net"):
            module = getattr(owner, name, None)
            if isinstance(module, torch.nn.Module):
                module.to(memory_format=torch.channels_last)


class Bench:
    """Everything a benchmark run decodes and scores with.

    Parameters
    ----------
    data : str, PathLike or Dataset
    run : str, PathLike or BrainITRun
    generators : str, PathLike or Generators
    out : str or PathLike
        Output folder (holds the cache).
    limit : int or None
        Only the first N test images of each subject.
    networks, weights :
        The metric networks (see :class:`~brainit_core.metrics.evaluator.Evaluator`).
    device : str or torch.device
    seed : int
        Image i uses seed + its image id.
    batch_size : int
    recon_kw : dict
        Reconstruction overrides (``mode``, ``steps``).
    stage2 : str or PathLike, optional
        A ``stage2`` output folder (``OUT/run`` + ``OUT/generators``): the stage-2 methods decode with them.
    dip_images : int
        Test images per subject of the DIP rows (the first ones; 0: no DIP rows).
    categories : bool
        Score category accuracy when the dataset has category labels (:mod:`.categories`).
    category_train : int
        Training images the category classifier learns from.

    Attributes
    ----------
    notes : list of str
        What was skipped and why (the results' ``notes``).
    """

    def __init__(self, data, run, generators, out, limit, networks, weights, device, seed, batch_size, recon_kw,
                 stage2=None, dip_images: int = DIP_IMAGES, categories: bool = True, category_train: int = N_TRAIN):
        from brainit_core.data import load_dataset
        from brainit_core.models.run import BrainITRun
        from brainit_core.reconstruction import BrainITPipeline, Generators
        from brainit_core.utils import resolve_device

        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.ds = data if hasattr(data, "subject") else load_dataset(Path(data).expanduser())
        self.run = run if hasattr(run, "predict") else BrainITRun.load(run, device=self.device)
        self.gens = (generators if hasattr(generators, "unet")
                     else Generators.load(Path(generators).expanduser(), device=self.device, space=self.run.space))
        if self.device.type == "cpu":
            channels_last(self.gens, self.run.space, getattr(self.gens, "space", None))
        self.pipe = BrainITPipeline(self.run, self.gens)
        self.out = Path(out).expanduser()
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache = ResultCache(self.out)
        self.limit, self.seed, self.batch_size, self.recon_kw = limit, seed, batch_size, recon_kw
        self.evaluator = Evaluator(networks, weights, self.device)
        self.twin_dir = twin_dir_of(self.ds)
        self.notes: list[str] = []
        self.dip_images, self.dip_preset = int(dip_images), DIP_PRESET
        if 0 < self.dip_images < 2:
            raise BrainITError(f"dip_images must be 0 (no DIP rows) or >= 2 (two-way identification), got {dip_images}")
        self.categories = (category_scorer(self.ds, self.evaluator, self.out, category_train, self.notes)
                           if categories else None)
        self.preset = (getattr(self.run, "config", None) or {}).get("preset", "ci")
        self.base = {"run": getattr(self.run, "checkpoint_sha256", None), "generators": self.gens.sha256,
                     "recon": recon_kw, "seed": seed, "version": RESULTS_VERSION}
        self.stage2 = None
        if stage2 is not None:
            from brainit_core.runs import RunDirectory

            s2 = Path(stage2).expanduser()
            if not RunDirectory.is_run(s2 / "run") or not (s2 / "generators" / "generators.json").is_file():
                raise BrainITError(f"{s2} is not a finished stage 2 (expected run/ and generators/ written by "
                                   "`python -m brainit_core stage2`)")
            s2_run = BrainITRun.load(s2 / "run", device=self.device)
            self.stage2 = (s2_run, Generators.load(s2 / "generators", device=self.device, space=s2_run.space))
            if self.device.type == "cpu":
                channels_last(*self.stage2, s2_run.space)

    @contextmanager
    def using_run(self, run, generators=None):
        """Decode with another BIT run (a transferred one) and, optionally, other generators (a stage 2's)
        inside the block; the cache keys follow."""
        from brainit_core.reconstruction import BrainITPipeline

        saved = self.run, self.gens, self.pipe, self.base
        gens = generators if generators is not None else self.gens
        self.run, self.gens, self.pipe = run, gens, BrainITPipeline(run, gens)
        self.base = {**self.base, "run": run.checkpoint_sha256, "generators": gens.sha256}
        try:
            yield self
        finally:
            self.run, self.gens, self.pipe, self.base = saved

    # -- data ------------------------------------------------------------------------------------
    def test_set(self, subject: str):
        """Repeat-averaged test betas and image ids of ``subject`` (the first ``limit``)."""
        sd = self.ds.subject(subject)
        betas, ids = sd.averaged("test")
        if self.limit:
            betas, ids = betas[:self.limit], ids[:self.limit]
        if len(ids) < 2:
            raise BrainITError(f"{subject}: {len(ids)} test images; the benchmark needs at least 2")
        return betas, ids

    def seeds(self, ids) -> list[int]:
        """The seed of each image: ``seed`` + its image id."""
        return [self.seed + int(i) for i in ids]

    def truth(self, ids) -> np.ndarray:
        """The seen images, uint8 (N, H, W, 3)."""
        return self.ds.images(ids)

    @staticmethod
    def truth_key(ids) -> tuple:
        """Names the seen images ``ids`` for the evaluator: subjects sharing test images share their
        features (extracted once per network for the whole benchmark)."""
        return ("images", tuple(int(i) for i in ids))

    def subset(self, method: Method, betas, ids):
        """The test images ``method`` decodes: all, or the first :attr:`dip_images` for a subset row."""
        if not method.subset:
            return betas, ids
        return betas[:self.dip_images], ids[:self.dip_images]

    def column_names(self) -> list[str]:
        """Every score column: the evaluator's, then category accuracy when the dataset has labels."""
        cols = [c.name for c in self.evaluator.columns()]
        return cols + ([CATEGORY_COLUMN] if self.categories is not None else [])

    def category_summary(self, ids) -> dict | None:
        """The seen images' category accuracy, chance and the classifier (None without labels)."""
        if self.categories is None:
            return None
        truth = self.evaluator.truth_features(CATEGORY_NETWORK, self.truth(ids), self.truth_key(ids))
        return self.categories.summary(ids, truth[CATEGORY_LAYER])

    # -- decoding --------------------------------------------------------------------------------
    def generate(self, semantic, lowlevel, ids, desc, branches=("low_level", "semantic"), semantic_only=False):
        """``from_features`` in batches; returns ``{kind: uint8 images}`` and seconds per stage (summed)."""
        outs: dict[str, list] = {}
        timing: dict[str, float] = {}
        starts = range(0, len(ids), self.batch_size)
        for s in track(starts, desc=desc, total=len(starts)):
            sl = slice(s, s + self.batch_size)
            sem = None if semantic is None else semantic[sl]
            low = None if lowlevel is None else [m[sl] for m in lowlevel]
            o = self.pipe.from_features(sem, low, branches=branches, seed=self.seeds(ids[sl]),
                                        semantic_only=semantic_only, **self.recon_kw)
            for kind in ("fused", "low_level", "semantic"):
                if getattr(o, kind) is not None:
                    outs.setdefault(kind, []).append(getattr(o, kind))
            for k, v in o.timing.items():
                if k != "per_image":
                    timing[k] = timing.get(k, 0.0) + float(v)
        return {k: np.concatenate(v) for k, v in outs.items()}, timing

    def bit_features(self, betas, subject: str):
        """The run's BIT features of ``betas``: semantic (N, T, D), the low-level maps, the attention
        summaries (None without attention) and the seconds it took."""
        t0 = time.perf_counter()
        sem, low, xatt, tok, clusters = [], [], 0.0, 0.0, None
        for s in range(0, len(betas), self.batch_size):
            with torch.no_grad():
                p = self.run.predict(betas[s:s + self.batch_size], subject, return_attention=True)
            sem.append(p.semantic.float().cpu())
            low.append([m.float().cpu() for m in p.lowlevel])
            if p.cross_attention is not None and "lowlevel" in p.cross_attention:
                xatt = xatt + p.cross_attention["lowlevel"].float().sum(0).cpu().numpy()
                lt = p.tokenizer_attention["lowlevel"]
                tok = tok + lt.float().sum(0).cpu().numpy()
                clusters = p.cluster_of_voxel.cpu().numpy()
        semantic = torch.cat(sem)
        lowlevel = [torch.cat([b[l] for b in low]) for l in range(len(low[0]))]
        attention = None
        if clusters is not None:
            attention = {"cross_lowlevel": np.asarray(xatt) / len(betas), "tokenizer_lowlevel": np.asarray(tok) / len(betas),
                         "clusters": clusters.astype(np.int64)}
        return semantic, lowlevel, attention, time.perf_counter() - t0

    def bit(self, betas, subject: str, ids, desc: str, semantic_only: bool = True) -> Output:
        """The run's BIT features of ``betas`` (timed) and attention summaries, then the fused and
        low-level images and, with ``semantic_only``, the semantic-only images (a second diffusion
        from pure noise: only rows that keep them ask for it)."""
        semantic, lowlevel, attention, t_feat = self.bit_features(betas, subject)
        images, timing = self.generate(semantic, lowlevel, ids, desc, semantic_only=semantic_only)
        return Output(images, {**timing, "features": t_feat}, attention)

    def dip(self, betas, subject: str, ids, desc: str) -> Output:
        """The paper's low-level branch: Deep Image Prior (:attr:`dip_preset`, :data:`DIP_PRESET`, preset of
        :class:`~brainit_core.reconstruction.dip.DIPConfig`) on the run's predicted low-level maps."""
        from brainit_core.reconstruction.dip import DIPConfig, invert_dip
        from brainit_core.reconstruction.images import to_uint8

        _, lowlevel, _, t_feat = self.bit_features(betas, subject)
        config, images = DIPConfig.preset(self.dip_preset), []
        t0 = time.perf_counter()
        for s in track(range(0, len(ids), self.batch_size), desc=desc):
            low = [m[s:s + self.batch_size].to(self.device) for m in lowlevel]
            images.append(to_uint8(invert_dip(low, self.gens.space, config, seeds=self.seeds(ids[s:s + self.batch_size]))))
        return Output({"low_level": np.concatenate(images)}, {"features": t_feat, "low_level": time.perf_counter() - t0})

    # -- methods ---------------------------------------------------------------------------------
    def key(self, method: Method, slot: str, ids) -> str:
        """Cache key of ``method``'s images in ``slot`` (see :func:`~brainit_core.benchmark.cache.method_key`)."""
        base = {**self.base, "dip_preset": self.dip_preset} if method.subset else self.base
        return method_key(base, self.run.space, slot, method.name, ids, method.run_dependent)

    def images(self, subject: str, name: str, betas, ids) -> tuple[np.ndarray, dict]:
        """Images of method ``name`` for ``subject`` (cached). Returns (uint8 images, meta).

        A miss produces the method (and every method of its group, cached alongside). Stage-2 methods
        decode with the stage-2 run and generators.
        """
        method = get_method(name)
        if method.stage2 and self.stage2 is not None and self.run is not self.stage2[0]:
            with self.using_run(*self.stage2):
                return self.images(subject, name, betas, ids)
        if method.stage2 and self.stage2 is None:
            raise BrainITError(f"method {name} needs a stage 2 (benchmark --stage2 OUT)")
        slot = method.slot(subject)
        hit = self.cache.get(slot, name, self.key(method, slot, ids))
        if hit is not None:
            return hit[0]["images"], hit[1]
        n = len(ids)
        out = method.produce(self, subject, betas, ids, name)
        result = None
        for m in group_of(method):
            arrays = {"images": out.images[m.image]}
            if m.keeps_attention and out.attention is not None:
                arrays.update(out.attention)
            meta = {"method": m.name, "seconds_per_image": m.seconds_per_image(out.timing, n), "n": n}
            if m.note is not None:
                meta["note"] = m.note
            meta = self.cache.put(m.slot(subject), m.name, self.key(m, m.slot(subject), ids), arrays, meta)
            if m is method:
                result = (arrays["images"], meta)
        return result

    def scored(self, subject: str, name: str, betas, ids) -> dict:
        """The cache meta of method ``name`` for ``subject``, with its ``scores`` (computed once).

        A subset method (the DIP rows) is decoded and scored on its first :attr:`dip_images` images.
        The seen images' features are extracted once per network for every subject and method
        showing the same images (:meth:`truth_key`).
        """
        betas, ids = self.subset(get_method(name), betas, ids)
        images, meta = self.images(subject, name, betas, ids)
        if meta.get("scores") is None or set(meta["scores"]) != set(self.column_names()):
            feats: dict = {}
            scores = self.evaluator.score(self.truth(ids), images, truth_key=self.truth_key(ids), features=feats)
            if self.categories is not None:
                f = feats.get(CATEGORY_NETWORK, {}).get(CATEGORY_LAYER)
                f = self.categories.features(images, "reconstructions") if f is None else f
                scores[CATEGORY_COLUMN] = self.categories.score(ids, f)
            meta["scores"] = scores
            self.cache.update_meta(get_method(name).slot(subject), name, meta)
        return meta

    # -- attention -------------------------------------------------------------------------------
    def attention(self, subject: str, ids) -> dict | None:
        """Contralaterality (and, on a twin, pRF agreement) from the cached ``brainit_fused``
        attention summaries; None when they are absent."""
        from brainit_core.analysis.attention import IMAGE_DEG, contralaterality, prf_agreement

        method = get_method("brainit_fused")
        hit = self.cache.get(subject, method.name, self.key(method, subject, ids))
        if hit is None or "cross_lowlevel" not in hit[0]:
            return None
        a = hit[0]
        grids = [tuple(s.grid) for s in self.run.space.lowlevel_specs]
        hemis = self.ds.subject(subject).hemispheres
        out = {"contralaterality": contralaterality(a["cross_lowlevel"], grids, a["clusters"], hemis,
                                                    a["tokenizer_lowlevel"], target=CONTRA_TARGET)}
        if self.twin_dir is not None:
            gt = ground_truth(self.twin_dir, subject)
            order = vertex_order(self.ds, subject, gt, self.twin_dir)
            out["prf_agreement"] = prf_agreement(a["cross_lowlevel"], grids, a["clusters"], a["tokenizer_lowlevel"],
                                                 gt["x"][order], gt["y"][order], gt["area_names"][order],
                                                 image_deg=IMAGE_DEG)
        return out
