"""The benchmark: Brain-IT against its ablations, two baselines and oracles, through the same generators.

Methods (rows of the table), each decoded by the SAME generators (``BrainITPipeline``):

========================  ===================================================================
``brainit_fused``         Brain-IT, both branches fused (BIT features -> inverter -> fusion)
``brainit_low_level``     the low-level branch alone (the inverted image)
``brainit_semantic``      the semantic branch alone (diffusion from pure noise)
``ridge``                 ridge regression betas -> semantic tokens and low-level maps, fused
``global_embedding``      MLP betas -> one global semantic vector (broadcast to every token)
                          and a blurry image (its low-level pyramid is inverted), fused
``oracle``                the true features of the seen image, fused
``oracle_noiseless``      twin only: the noiseless responses through BIT, fused
========================  ===================================================================

Everything is cached under ``OUT/cache/<subject>/<method>.{npz,json}`` (images, seconds per
image, scores) with a key made of the checkpoints, the image ids and the settings, and baselines
under ``OUT/baselines/<subject>/``: a second call with the same settings only reads them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from brainit_core.checkpoint import json_default
from brainit_core.errors import BrainITError
from brainit_core.progress import report, track

log = logging.getLogger(__name__)

METHODS = ("brainit_fused", "brainit_low_level", "brainit_semantic", "ridge", "global_embedding", "oracle", "oracle_noiseless")
LABELS = {
    "brainit_fused": "Brain-IT (fused)", "brainit_low_level": "low-level only", "brainit_semantic": "semantic only",
    "ridge": "ridge (Brain-Diffuser style)", "global_embedding": "global embedding (MindEye style)",
    "oracle": "oracle (true features)", "oracle_noiseless": "oracle-noiseless (twin, BIT)",
}
BASELINES = ("ridge", "global_embedding")
RUN_FREE = BASELINES + ("oracle",)  # methods whose images do not depend on the BIT run
SHARED = "_shared"  # cache folder of what does not depend on the subject (the oracle)
TRANSFER_AMOUNTS = ("15", "60", "all")
RESULTS_VERSION = 1
SSIM_TARGET = 0.8
CONTRA_TARGET = 0.8
# columns that score semantic content (fusion claim: fused vs semantic only)
SEMANTIC_COLUMNS = ("Incep", "CLIP", "Eff", "SwAV", "Lite2-late (2-way)", "Lite2 dist", "Lite1-late (2-way)",
                    "Lite1 dist")
# the paper's ablation (method.md section 5, NSD): SSIM of low-level only / semantic only / fused
PAPER_FUSION_SSIM = {"low_level": 0.505, "semantic": 0.431, "fused": 0.486}


# ---------------------------------------------------------------------------------------------
# small helpers


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=json_default))
    tmp.replace(path)


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


class _Cache:
    """``OUT/cache/<subject>/<method>.npz`` (images, attention) + ``.json`` (key, timing, scores)."""

    def __init__(self, out: Path):
        self.root = out / "cache"

    def _paths(self, subject: str, method: str) -> tuple[Path, Path]:
        d = self.root / subject
        return d / f"{method}.npz", d / f"{method}.json"

    def get(self, subject: str, method: str, key: str):
        npz, js = self._paths(subject, method)
        meta = _read_json(js)
        if meta is None or meta.get("key") != key or not npz.exists():
            return None
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays, meta

    def put(self, subject: str, method: str, key: str, arrays: dict, meta: dict) -> dict:
        npz, js = self._paths(subject, method)
        npz.parent.mkdir(parents=True, exist_ok=True)
        tmp = npz.with_name(npz.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(npz)
        meta = {**meta, "key": key}
        _write_json(js, meta)
        return meta

    def update_meta(self, subject: str, method: str, meta: dict) -> None:
        _write_json(self._paths(subject, method)[1], meta)


class _Evaluator:
    """The metric table (``brainit_core.metrics``' columns) with each network built once and the
    ground truth's features computed once per subject."""

    def __init__(self, networks="auto", weights=None, device="cpu", batch_size: int = 32):
        from brainit_core.metrics.networks import select_networks

        self.networks = select_networks(networks)
        self.weights, self.device, self.batch_size = weights, device, batch_size
        self._extractors: dict = {}
        self._truth: dict = {}

    def _extractor(self, name: str):
        from brainit_core.errors import MissingWeightsError
        from brainit_core.metrics.networks import build_extractor

        if name not in self._extractors:
            try:
                self._extractors[name] = build_extractor(name, self.weights, self.device)
            except MissingWeightsError:
                self._extractors[name] = None
        return self._extractors[name]

    def _features(self, extractor, images, name: str) -> dict[str, np.ndarray]:
        from brainit_core.metrics.networks import image_features

        return image_features(extractor, images, self.batch_size, self.device, name)

    def columns(self) -> list:
        from brainit_core.metrics.networks import COLUMNS

        return [c for c in COLUMNS if c.network is None or c.network in self.networks]

    def score(self, truth_key: str, truth: np.ndarray, recon: np.ndarray) -> dict:
        from brainit_core.metrics import pixcorr, ssim
        from brainit_core.metrics.networks import UNAVAILABLE, score_columns

        scores = {"PixCorr": pixcorr(truth, recon), "SSIM": ssim(truth, recon)}
        for name in self.networks:
            cols = [c for c in self.columns() if c.network == name]
            ext = self._extractor(name) if len(truth) >= 2 else None
            if ext is None:
                scores.update({c.name: UNAVAILABLE for c in cols})
                continue
            if (truth_key, name) not in self._truth:
                self._truth[(truth_key, name)] = self._features(ext, truth, "ground truth")
            fake = self._features(ext, recon, "reconstructions")
            scores.update({k: float(v) for k, v in score_columns(cols, self._truth[(truth_key, name)], fake).items()})
        return {c.name: scores[c.name] for c in self.columns()}


def parse_transfer_runs(items) -> dict[str, str]:
    """``["15=DIR", "60=DIR", "all=DIR"]`` -> ``{"15": DIR, ...}``."""
    out = {}
    for item in items or []:
        amount, sep, path = str(item).partition("=")
        amount = amount.strip().lower().removesuffix("min")
        if not sep or amount not in TRANSFER_AMOUNTS or not path:
            raise BrainITError(f"--transfer-runs expects AMOUNT=DIR with AMOUNT in 15/60/all, got {item!r}")
        out[amount] = path
    return out


# ---------------------------------------------------------------------------------------------
# the benchmark


class _Bench:
    def __init__(self, data, run, generators, out, limit, networks, weights, device, seed, batch_size, recon_kw):
        from brainit_core.data import load_dataset
        from brainit_core.models.run import BrainITRun
        from brainit_core.reconstruction import BrainITPipeline, Generators
        from brainit_core.utils import resolve_device

        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.ds = data if hasattr(data, "subject") else load_dataset(Path(data).expanduser())
        self.run = run if hasattr(run, "predict") else BrainITRun.load(run, device=self.device)
        self.gens = (generators if hasattr(generators, "unet")
                     else Generators.load(Path(generators).expanduser(), device=self.device, space=self.run.space))
        self.pipe = BrainITPipeline(self.run, self.gens)
        self.out = Path(out).expanduser()
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache = _Cache(self.out)
        self.limit, self.seed, self.batch_size, self.recon_kw = limit, seed, batch_size, recon_kw
        self.evaluator = _Evaluator(networks, weights, self.device)
        self.twin_dir = Path(self.ds.path) if (Path(self.ds.path) / "ground_truth" / "twin.json").exists() else None
        self.preset = (getattr(self.run, "config", None) or {}).get("preset", "ci")
        self.base = {"run": getattr(self.run, "checkpoint_sha256", None), "generators": self.gens.sha256,
                     "recon": recon_kw, "seed": seed, "version": RESULTS_VERSION}

    # -- data ------------------------------------------------------------------------------------
    def test_set(self, subject: str):
        sd = self.ds.subject(subject)
        betas, ids = sd.averaged("test")
        if self.limit:
            betas, ids = betas[:self.limit], ids[:self.limit]
        if len(ids) < 2:
            raise BrainITError(f"{subject}: {len(ids)} test images; the benchmark needs at least 2")
        return betas, ids

    def seeds(self, ids) -> list[int]:
        return [self.seed + int(i) for i in ids]

    def truth(self, ids) -> np.ndarray:
        return self.ds.images(ids)

    # -- generation --------------------------------------------------------------------------------
    def _generate(self, semantic, lowlevel, ids, desc, branches=("low_level", "semantic"), semantic_only=False):
        """from_features in batches; returns {kind: uint8 images} and seconds per stage (summed)."""
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

    def _bit(self, run, betas, subject, ids, desc):
        """BIT features (timed) + attention summaries, then fused / low-level / semantic images."""
        from brainit_core.models.bit import BITPrediction  # noqa: F401 (documents the type)

        t0 = time.perf_counter()
        sem, low, xatt, tok, clusters = [], [], 0.0, 0.0, None
        for s in range(0, len(betas), self.batch_size):
            with torch.no_grad():
                p = run.predict(betas[s:s + self.batch_size], subject, return_attention=True)
            sem.append(p.semantic.float().cpu())
            low.append([m.float().cpu() for m in p.lowlevel])
            if p.cross_attention is not None and "lowlevel" in p.cross_attention:
                xatt = xatt + p.cross_attention["lowlevel"].float().sum(0).cpu().numpy()
                lt = p.tokenizer_attention["lowlevel"]
                tok = tok + lt.float().sum(0).cpu().numpy()
                clusters = p.cluster_of_voxel.cpu().numpy()
        t_feat = time.perf_counter() - t0
        semantic = torch.cat(sem)
        lowlevel = [torch.cat([b[l] for b in low]) for l in range(len(low[0]))]
        images, timing = self._generate(semantic, lowlevel, ids, desc, semantic_only=True)
        attention = None
        if clusters is not None:
            attention = {"cross_lowlevel": np.asarray(xatt) / len(betas), "tokenizer_lowlevel": np.asarray(tok) / len(betas),
                         "clusters": clusters.astype(np.int64)}
        return images, timing, t_feat, attention

    # -- methods -------------------------------------------------------------------------------------
    @staticmethod
    def cache_slot(subject: str, method: str) -> str:
        """The oracle decodes the images' own features: one cache entry serves every subject with the
        same test images (the key holds the image ids), so it is made and scored once."""
        return SHARED if method == "oracle" else subject

    def method_key(self, slot: str, method: str, ids) -> str:
        """Cache key of one method's images. The baselines and the oracle do not use the BIT run: their
        key holds the feature space instead of the run's checksum, so a new or further-trained run
        reuses their images and scores."""
        base = self.base
        if method in RUN_FREE:
            base = {**{k: v for k, v in base.items() if k != "run"}, "space": self.run.space.describe(),
                    "space_key": self.run.space.cache_key()}
        return _key(base, slot, method, [int(i) for i in ids])

    def method_images(self, subject: str, method: str, betas, ids) -> tuple[np.ndarray, dict]:
        """Images of one method for one subject (cached). Returns (uint8 images, meta)."""
        slot = self.cache_slot(subject, method)
        key = self.method_key(slot, method, ids)
        hit = self.cache.get(slot, method, key)
        if hit is not None:
            return hit[0]["images"], hit[1]
        n = len(ids)
        if method.startswith("transfer_"):  # a transferred run (self.run) on the held-out subject
            images, timing, t_feat, _ = self._bit(self.run, betas, subject, ids, f"{subject}: {method}")
            sec = (t_feat + timing.get("low_level", 0.0) + timing.get("fusion", 0.0)) / n
            meta = self.cache.put(subject, method, key, {"images": images["fused"]},
                                  {"method": method, "seconds_per_image": sec, "n": n})
            return images["fused"], meta
        if method in ("brainit_fused", "brainit_low_level", "brainit_semantic"):
            images, timing, t_feat, att = self._bit(self.run, betas, subject, ids, f"{subject}: Brain-IT")
            parts = {"brainit_fused": ("fused", ["low_level", "fusion"]), "brainit_low_level": ("low_level", ["low_level"]),
                     "brainit_semantic": ("semantic", ["semantic"])}
            result = None
            for m, (kind, stages) in parts.items():
                sec = (t_feat + sum(timing.get(s, 0.0) for s in stages)) / n
                arrays = {"images": images[kind]}
                if att is not None and m == "brainit_fused":
                    arrays.update(att)
                meta = self.cache.put(subject, m, self.method_key(subject, m, ids), arrays,
                                      {"method": m, "seconds_per_image": sec, "n": n})
                if m == method:
                    result = (images[kind], meta)
            return result
        # baselines are fitted (or loaded) before the clock starts: seconds per image are decoding only
        decoder = self.ridge(subject) if method == "ridge" else (
            self.global_embedding(subject) if method == "global_embedding" else None)
        t0 = time.perf_counter()
        if method == "oracle":
            from brainit_core.features import extract_features

            fs = extract_features(self.ds, ids, self.run.space)
            semantic = torch.as_tensor(fs.semantic.astype(np.float32))
            lowlevel = [torch.as_tensor(m.astype(np.float32)) for m in fs.lowlevel]
        elif method == "ridge":
            pred = decoder.predict(betas)
            semantic = torch.as_tensor(pred["semantic"])
            lowlevel = [torch.as_tensor(pred[f"low{l}"]) for l in range(len(self.run.space.lowlevel_specs))]
        elif method == "global_embedding":
            from brainit_core.reconstruction._common import image_size_of

            pred = decoder.predict(betas, image_size=image_size_of(self.run.space))
            semantic = torch.as_tensor(pred["semantic"])
            with torch.no_grad():
                lowlevel = [m.float().cpu() for m in self.run.space.lowlevel_maps(
                    torch.as_tensor(pred["image"]).to(self.device))]
        elif method == "oracle_noiseless":
            nl = self.noiseless(subject, ids)
            images, timing, t_feat, _ = self._bit(self.run, nl, subject, ids, f"{subject}: oracle-noiseless")
            sec = (t_feat + timing.get("low_level", 0.0) + timing.get("fusion", 0.0)) / n
            meta = self.cache.put(subject, method, key, {"images": images["fused"]},
                                  {"method": method, "seconds_per_image": sec, "n": n})
            return images["fused"], meta
        else:
            raise ValueError(f"unknown method {method!r}")
        t_feat = time.perf_counter() - t0
        images, timing = self._generate(semantic, lowlevel, ids, f"{subject}: {method}")
        sec = (t_feat + timing.get("low_level", 0.0) + timing.get("fusion", 0.0)) / n
        meta = self.cache.put(slot, method, key, {"images": images["fused"]},
                              {"method": method, "seconds_per_image": sec, "n": n,
                               "note": "baseline fit time excluded" if method in BASELINES else None})
        return images["fused"], meta

    def scored(self, subject: str, method: str, betas, ids, truth_key: str | None = None) -> dict:
        images, meta = self.method_images(subject, method, betas, ids)
        cols = [c.name for c in self.evaluator.columns()]
        if meta.get("scores") is None or set(meta["scores"]) != set(cols):
            meta["scores"] = self.evaluator.score(truth_key or subject, self.truth(ids), images)
            self.cache.update_meta(self.cache_slot(subject, method), method, meta)
        return meta

    # -- baselines -----------------------------------------------------------------------------------
    def _train_split(self, subject: str):
        from brainit_core.features import extract_features

        betas, ids = self.ds.subject(subject).averaged("train")
        fs = extract_features(self.ds, ids, self.run.space)
        return betas, ids, fs

    def ridge(self, subject: str):
        from brainit_core.baselines import RidgeFeatureDecoder
        from brainit_core.checkpoint import checkpoint_exists

        path = self.out / "baselines" / subject / "ridge"
        key = _key("ridge", self.run.space.describe(), subject, str(self.ds.path))
        if checkpoint_exists(path) and (_read_json(path.with_suffix(".key")) or {}).get("key") == key:
            return RidgeFeatureDecoder.load(path)
        report(0.0, f"{subject}: fitting ridge")
        betas, _, fs = self._train_split(subject)
        targets = {"semantic": fs.semantic.astype(np.float32)}
        targets.update({f"low{l}": m.astype(np.float32) for l, m in enumerate(fs.lowlevel)})
        t = time.perf_counter()
        dec = RidgeFeatureDecoder().fit(betas, targets)
        dec.save(path)
        _write_json(path.with_suffix(".key"), {"key": key, "fit_seconds": time.perf_counter() - t})
        return dec

    def global_embedding(self, subject: str):
        from brainit_core.baselines import GlobalEmbeddingConfig, GlobalEmbeddingDecoder
        from brainit_core.checkpoint import checkpoint_exists

        path = self.out / "baselines" / subject / "global_embedding"
        preset = self.preset if self.preset in ("ci", "demo", "full") else "demo"
        key = _key("global", self.run.space.describe(), subject, str(self.ds.path), preset)
        if checkpoint_exists(path) and (_read_json(path.with_suffix(".key")) or {}).get("key") == key:
            return GlobalEmbeddingDecoder.load(path, device=str(self.device))
        report(0.0, f"{subject}: fitting the global-embedding MLP")
        betas, ids, fs = self._train_split(subject)
        t = time.perf_counter()
        dec = GlobalEmbeddingDecoder(GlobalEmbeddingConfig.preset(preset), device=str(self.device))
        dec.fit(betas, fs.semantic.astype(np.float32), self.ds.images(ids))
        dec.save(path)
        _write_json(path.with_suffix(".key"), {"key": key, "fit_seconds": time.perf_counter() - t})
        return dec

    # -- twin --------------------------------------------------------------------------------------
    def ground_truth(self, subject: str):
        from brainit_core.data.twin import load_ground_truth

        return load_ground_truth(self.twin_dir, subject)["subject"]

    def vertex_order(self, subject: str, gt) -> np.ndarray:
        """Rows of the ground-truth arrays in the dataset's vertex order."""
        sd = self.ds.subject(subject)
        if np.array_equal(gt["vertices"], sd.vertices) and np.array_equal(gt["hemispheres"], sd.hemispheres):
            return np.arange(len(sd.vertices))
        lookup = {(int(h), int(v)): i for i, (h, v) in enumerate(zip(gt["hemispheres"], gt["vertices"]))}
        try:
            return np.array([lookup[(int(h), int(v))] for h, v in zip(sd.hemispheres, sd.vertices)])
        except KeyError as exc:
            raise BrainITError(f"{self.twin_dir}: ground truth of {subject} lacks vertex {exc}") from exc

    def noiseless(self, subject: str, ids) -> np.ndarray:
        gt = self.ground_truth(subject)
        test_ids = np.unique(self.ds.subject(subject).split_image_ids("test"))
        rows = np.searchsorted(test_ids, ids)
        if len(gt["noiseless_test"]) != len(test_ids) or not np.array_equal(test_ids[rows], ids):
            raise BrainITError(f"{self.twin_dir}: noiseless test responses of {subject} do not match its test images")
        return gt["noiseless_test"][rows][:, self.vertex_order(subject, gt)].astype(np.float32)

    # -- attention -----------------------------------------------------------------------------------
    def attention(self, subject: str, ids) -> dict | None:
        from brainit_core.analysis.attention import IMAGE_DEG, contralaterality, prf_agreement

        hit = self.cache.get(subject, "brainit_fused", self.method_key(subject, "brainit_fused", ids))
        if hit is None or "cross_lowlevel" not in hit[0]:
            return None
        a = hit[0]
        grids = [tuple(s.grid) for s in self.run.space.lowlevel_specs]
        hemis = self.ds.subject(subject).hemispheres
        out = {"contralaterality": contralaterality(a["cross_lowlevel"], grids, a["clusters"], hemis,
                                                    a["tokenizer_lowlevel"], target=CONTRA_TARGET)}
        if self.twin_dir is not None:
            gt = self.ground_truth(subject)
            order = self.vertex_order(subject, gt)
            out["prf_agreement"] = prf_agreement(a["cross_lowlevel"], grids, a["clusters"], a["tokenizer_lowlevel"],
                                                 gt["x"][order], gt["y"][order], gt["area_names"][order],
                                                 image_deg=IMAGE_DEG)
        return out


def _mean_scores(per_subject: dict) -> dict:
    cols: dict[str, list] = {}
    for scores in per_subject.values():
        for c, v in scores.items():
            cols.setdefault(c, []).append(v)
    return {c: (float(np.mean(v)) if all(_finite(x) for x in v) else "unavailable") for c, v in cols.items()}


def run_benchmark(data, run, generators, out, subjects=None, limit: int | None = None,
                  transfer_runs: dict | None = None, transfer: bool = False, heldout: str | None = None,
                  networks="auto", weights=None, device="auto", seed: int = 0, batch_size: int = 8,
                  mode: str | None = None, steps: int | None = None, plots: bool = True) -> dict:
    """Run the whole benchmark and write ``results.json``, ``results.md`` and PNG plots to ``out``.

    Parameters
    ----------
    data : str, PathLike or Dataset
        The dataset (a twin adds the oracle-noiseless row and the pRF checks).
    run : str, PathLike or BrainITRun
        The trained run (decodes ``subjects``).
    generators : str, PathLike or Generators
        The generators every method is decoded with.
    out : str or PathLike
        Output directory (also the cache: rerunning with the same settings only reads it).
    subjects : list of str, optional
        Default: the run's subjects that are in the dataset and not held out.
    limit : int, optional
        Only the first N test images of each subject.
    transfer_runs : dict, optional
        ``{"15": DIR, "60": DIR, "all": DIR}``: runs transferred to the held-out subject.
    transfer : bool
        Train missing transfer runs under ``out/transfer/`` with :func:`transfer_subject`.
    heldout : str, optional
        The transfer subject (default: the dataset's first held-out subject).
    networks : str or list
        Metric networks (``"auto"``: every column, unavailable ones say so; ``"offline"``:
        PixCorr, SSIM and the bundled Lite1/Lite2 columns).
    weights : str or PathLike, optional
        Where protocol network weights are looked for first.
    device : str
    seed : int
        Image i uses seed + its image id, in every method.
    batch_size : int
    mode, steps : optional
        Reconstruction overrides (default: the generators' settings).
    plots : bool

    Returns
    -------
    dict
        What ``results.json`` holds (see ``docs/benchmark.md``).
    """
    t_start = time.perf_counter()
    recon_kw = {k: v for k, v in {"mode": mode, "steps": steps}.items() if v is not None}
    b = _Bench(data, run, generators, out, limit, networks, weights, device, seed, batch_size, recon_kw)
    ds, notes = b.ds, []
    if subjects is None:
        subjects = [s for s in b.run.subjects if s in ds.subjects and s not in ds.heldout_subjects]
    unknown = [s for s in subjects if s not in b.run.subjects or s not in ds.subjects]
    if unknown:
        raise BrainITError(f"subjects {unknown} are not decodable by {getattr(b.run, 'path', 'the run')} on "
                           f"{ds.path} (run subjects: {b.run.subjects}; dataset subjects: {ds.subjects})")
    if not subjects:
        raise BrainITError(f"no subject of the run {b.run.subjects} is in the dataset {ds.path}")
    methods = [m for m in METHODS if m != "oracle_noiseless" or b.twin_dir is not None]
    if b.twin_dir is None:
        notes.append("not a twin dataset: the oracle-noiseless row and the pRF / category-patch checks are skipped")

    scores: dict = {m: {} for m in methods}
    seconds: dict = {m: {} for m in methods}
    attention: dict = {}
    n_images = {}
    work = [(s, m) for s in subjects for m in methods]
    for s, m in track(work, desc="benchmark: subjects x methods"):
        betas, ids = b.test_set(s)
        n_images[s] = len(ids)
        meta = b.scored(s, m, betas, ids)
        scores[m][s], seconds[m][s] = meta["scores"], meta["seconds_per_image"]
    for s in subjects:
        _, ids = b.test_set(s)
        att = b.attention(s, ids)
        if att is not None:
            attention[s] = att
    for m in methods:
        scores[m]["mean"] = _mean_scores({s: scores[m][s] for s in subjects})
        seconds[m]["mean"] = float(np.mean([seconds[m][s] for s in subjects]))

    results = {
        "version": RESULTS_VERSION,
        "dataset": str(ds.path), "run": str(getattr(b.run, "path", "")), "generators": str(getattr(b.gens, "path", "")),
        "run_sha256": getattr(b.run, "checkpoint_sha256", None), "generators_sha256": b.gens.sha256,
        "is_twin": b.twin_dir is not None, "subjects": list(subjects), "n_images": n_images,
        "methods": methods, "method_labels": {m: LABELS[m] for m in methods},
        "columns": _columns(b.evaluator, weights),
        "settings": {"limit": limit, "seed": seed, "networks": networks, "device": str(b.device),
                     "batch_size": batch_size, "reconstruction": {**b.gens.reconstruction.__dict__, **recon_kw},
                     "torch_threads": torch.get_num_threads()},
        "scores": scores, "seconds_per_image": seconds, "attention": attention,
        "notes": notes,
    }
    results["attention_summary"] = _attention_summary(attention)
    results["transfer"] = _transfer(b, transfer_runs, transfer, heldout, notes)
    results["claims"] = compute_claims(results)
    results["wall_seconds"] = time.perf_counter() - t_start
    # compact views the app's Benchmark page reads
    results["mean"] = {m: {c: v for c, v in scores[m]["mean"].items() if _finite(v)} for m in methods}
    results["setup"] = {"data": results["dataset"], "run": results["run"], "generators": results["generators"],
                        "subjects": list(subjects), "n_images": int(min(n_images.values())), "seed": seed,
                        "networks": networks, "twin": results["is_twin"], "run_sha256": results["run_sha256"],
                        "generators_sha256": results["generators_sha256"], "not_covered": list(notes),
                        "wall_seconds": results["wall_seconds"]}
    out = b.out
    _write_json(out / "results.json", results)
    (out / "results.md").write_text(results_markdown(results))
    if plots:
        from brainit_core.benchmark.plots import make_plots

        results["plots"] = [str(p) for p in make_plots(results, out)]
        _write_json(out / "results.json", results)
        (out / "results.md").write_text(results_markdown(results))
    return results


def _columns(evaluator: _Evaluator, weights) -> dict:
    from brainit_core.metrics import describe_columns

    desc = describe_columns(weights)
    return {c.name: {"higher_is_better": c.higher_is_better, "network": desc[c.name]["network"],
                     "protocol": desc[c.name]["protocol"], "metric": c.metric}
            for c in evaluator.columns()}


def _attention_summary(attention: dict) -> dict:
    if not attention:
        return {}
    contra = [a["contralaterality"] for a in attention.values()]
    out = {"contralaterality_index": _nanmean([c["index"] for c in contra]),
           "contralaterality_signed_mean": _nanmean([c["signed_mean"] for c in contra]),
           "contralaterality_weighted": _nanmean([c["weighted"] for c in contra]),
           "contralaterality_lateralised": _nanmean([c.get("index_lateralised") for c in contra])}
    prf = [a["prf_agreement"] for a in attention.values() if "prf_agreement" in a]
    if prf:
        for k in ("voxel_r_x", "voxel_r_y", "token_r_x", "token_r_y"):
            out[f"prf_{k}"] = _nanmean([p[k] for p in prf])
    return out


def _nanmean(values) -> float:
    v = np.asarray([x for x in values if _finite(x)], dtype=np.float64)
    return float(v.mean()) if len(v) else float("nan")


# ---------------------------------------------------------------------------------------------
# transfer curve


def _transfer(b: _Bench, transfer_runs, train: bool, heldout, notes) -> dict:
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline

    transfer_runs = dict(transfer_runs or {})
    heldout = heldout or (b.ds.heldout_subjects[0] if b.ds.heldout_subjects else None)
    if heldout is None:
        notes.append("transfer curve skipped: the dataset has no held-out subject")
        return {"skipped": "no held-out subject"}
    if not transfer_runs and not train:
        notes.append("transfer curve skipped: pass --transfer-runs 15=DIR 60=DIR all=DIR or --transfer")
        return {"skipped": "no transfer runs given", "subject": heldout}
    if train:
        from brainit_core.models.transfer import transfer_subject

        for amount in TRANSFER_AMOUNTS:
            if amount not in transfer_runs:
                dest = b.out / "transfer" / (f"{amount}min" if amount != "all" else "all")
                minutes = "all" if amount == "all" else int(amount)
                report(0.0, f"transfer {heldout}: {amount} min")
                transfer_runs[amount] = str(transfer_subject(b.ds, heldout, minutes, b.run.path, dest,
                                                             device=str(b.device), resume=True))
    betas, ids = b.test_set(heldout)
    curve, seconds, runs = {}, {}, {}
    main_pipe, main_run = b.pipe, b.run
    try:
        for amount in [a for a in TRANSFER_AMOUNTS if a in transfer_runs]:
            r = BrainITRun.load(transfer_runs[amount], device=b.device)
            if heldout not in r.subjects:
                raise BrainITError(f"{transfer_runs[amount]} does not decode {heldout} (subjects {r.subjects})")
            b.run, b.pipe = r, BrainITPipeline(r, b.gens)
            b.base = {**b.base, "run": r.checkpoint_sha256}
            meta = b.scored(heldout, f"transfer_{amount}", betas, ids, truth_key=heldout)
            curve[amount], seconds[amount] = meta["scores"], meta["seconds_per_image"]
            runs[amount] = {"path": str(transfer_runs[amount]), "sha256": r.checkpoint_sha256,
                            "n_trials": (r.config.get("transfer") or {}).get("n_trials")}
    finally:
        b.run, b.pipe = main_run, main_pipe
        b.base = {**b.base, "run": getattr(main_run, "checkpoint_sha256", None)}
    base_scores = {}
    for m in BASELINES:
        meta = b.scored(heldout, m, betas, ids, truth_key=heldout)
        base_scores[m] = meta["scores"]
        seconds[m] = meta["seconds_per_image"]
    return {"subject": heldout, "amounts": list(curve), "runs": runs, "scores": curve,
            "baselines": base_scores, "seconds_per_image": seconds, "n_images": len(ids),
            "note": "baselines are fitted on the held-out subject's full training data"}



# ---------------------------------------------------------------------------------------------
# claims


def _better(a, b, higher: bool):
    if not (_finite(a) and _finite(b)):
        return None, None
    margin = (a - b) if higher else (b - a)
    return bool(margin > 0), float(margin)


def layout_share_kept(fused, low_level, semantic) -> float:
    """``(fused - semantic) / (low_level - semantic)``: the share of the low-level branch's advantage
    over semantic-only that fusion keeps (NaN when undefined or when low-level is not ahead)."""
    if not all(_finite(v) for v in (fused, low_level, semantic)) or low_level <= semantic:
        return float("nan")
    return float((fused - semantic) / (low_level - semantic))


def compute_claims(results: dict) -> dict:
    """The four claims (plus the two reported targets) from a results dict."""
    cols = results["columns"]
    mean = {m: results["scores"][m]["mean"] for m in results["methods"]}
    claims: dict = {}

    # 1. Brain-IT beats both baselines on every metric
    per_metric = {}
    for c, info in cols.items():
        rows = {}
        for base in BASELINES:
            ok, margin = _better(mean["brainit_fused"].get(c), mean[base].get(c), info["higher_is_better"])
            rows[base] = {"beats": ok, "margin": margin}
        oks = [r["beats"] for r in rows.values()]
        per_metric[c] = {**rows, "beats_both": None if None in oks else all(oks)}
    decided = [v["beats_both"] for v in per_metric.values() if v["beats_both"] is not None]
    claims["beats_baselines"] = {"per_metric": per_metric, "all": bool(decided) and all(decided),
                                 "n_metrics": len(decided), "n_won": int(sum(decided)),
                                 "margin": "Brain-IT minus baseline, sign flipped for distances (positive = better)"}

    # 2. fusion
    fusion = {"ssim": {}, "semantic": {}}
    for c in ("SSIM", "PixCorr"):
        ok, margin = _better(mean["brainit_fused"].get(c), mean["brainit_low_level"].get(c), True)
        fusion["ssim" if c == "SSIM" else "pixcorr"] = {"fused": mean["brainit_fused"].get(c),
                                                        "brainit_low_level": mean["brainit_low_level"].get(c),
                                                        "fused_better": ok, "margin": margin}
    for c in SEMANTIC_COLUMNS:
        if c in cols:
            ok, margin = _better(mean["brainit_fused"].get(c), mean["brainit_semantic"].get(c), cols[c]["higher_is_better"])
            if ok is not None:
                fusion["semantic"][c] = {"fused": mean["brainit_fused"][c], "brainit_semantic": mean["brainit_semantic"][c],
                                         "fused_better": ok, "margin": margin}
    sem_ok = [v["fused_better"] for v in fusion["semantic"].values()]
    fusion["semantic_all"] = bool(sem_ok) and all(sem_ok)
    # how much of the low-level branch's layout advantage over semantic-only the fused images keep
    # (1 = all of it, 0 = none), next to the same share in the paper's own ablation
    for c in ("SSIM", "PixCorr"):
        fusion["ssim" if c == "SSIM" else "pixcorr"]["share_kept"] = layout_share_kept(
            mean["brainit_fused"].get(c), mean["brainit_low_level"].get(c), mean["brainit_semantic"].get(c))
    fusion["ssim"]["paper_share_kept"] = layout_share_kept(**PAPER_FUSION_SSIM)
    claims["fusion"] = fusion

    # 3. transfer: 60 min vs baselines on full data
    tr = results.get("transfer") or {}
    if "60" in (tr.get("scores") or {}):
        per = {}
        for c, info in cols.items():
            rows = {base: dict(zip(("beats", "margin"), _better(tr["scores"]["60"].get(c),
                                                                 tr["baselines"][base].get(c),
                                                                 info["higher_is_better"])))
                    for base in BASELINES}
            oks = [r["beats"] for r in rows.values()]
            per[c] = {**rows, "beats_both": None if None in oks else all(oks)}
        decided = [v["beats_both"] for v in per.values() if v["beats_both"] is not None]
        claims["transfer_60min"] = {"subject": tr["subject"], "per_metric": per,
                                    "all": bool(decided) and all(decided), "n_won": int(sum(decided)),
                                    "n_metrics": len(decided)}
    else:
        claims["transfer_60min"] = {"skipped": tr.get("skipped", "no 60-minute transfer run")}

    # 4. contralaterality
    summ = results.get("attention_summary") or {}
    idx = summ.get("contralaterality_index", float("nan"))
    claims["contralaterality"] = {
        "mean_index": idx, "signed_mean": summ.get("contralaterality_signed_mean"),
        "weighted": summ.get("contralaterality_weighted"), "lateralised": summ.get("contralaterality_lateralised"),
        "per_subject": {s: a["contralaterality"]["index"] for s, a in results.get("attention", {}).items()},
        "target": CONTRA_TARGET, "pass": bool(_finite(idx) and idx >= CONTRA_TARGET),
        "ratio": float(idx / CONTRA_TARGET) if _finite(idx) else float("nan")}
    if "prf_voxel_r_x" in summ:
        claims["contralaterality"]["prf_agreement"] = {k[4:]: v for k, v in summ.items() if k.startswith("prf_")}

    # targets
    f, o = mean["brainit_fused"].get("SSIM"), mean["oracle"].get("SSIM")
    ratio = float(f / o) if _finite(f) and _finite(o) and o != 0 else float("nan")
    claims["targets"] = {
        "fused_ssim_vs_oracle": {"fused": f, "oracle": o, "ratio": ratio, "target": SSIM_TARGET,
                                 "pass": bool(_finite(ratio) and ratio >= SSIM_TARGET)},
        "contralaterality": {"index": idx, "target": CONTRA_TARGET,
                             "pass": claims["contralaterality"]["pass"],
                             "ratio": claims["contralaterality"]["ratio"]},
    }
    return claims


# ---------------------------------------------------------------------------------------------
# markdown


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:.3f}" if math.isfinite(v) else "nan"
    return str(v)


def _table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def results_markdown(results: dict) -> str:
    """``results.md``: the tables and the claims."""
    cols = list(results["columns"])
    arrows = [f"{c} {'↑' if results['columns'][c]['higher_is_better'] else '↓'}" for c in cols]
    md = ["# Benchmark", "",
          f"Dataset `{results['dataset']}`, run `{results['run']}`, generators `{results['generators']}`; "
          f"subjects {', '.join(results['subjects'])}; test images per subject {results['n_images']}; "
          f"wall time {results.get('wall_seconds', float('nan')):.0f} s.", ""]
    if any(not results["columns"][c]["protocol"] for c in cols):
        md += ["Lite1/Lite2 columns are this project's offline substitutes (not comparable with published "
               "numbers).", ""]
    md += ["## Mean over subjects", "",
           _table(["method", *arrows, "s / image"],
                  [[results["method_labels"][m], *[results["scores"][m]["mean"].get(c) for c in cols],
                    results["seconds_per_image"][m]["mean"]] for m in results["methods"]]), ""]
    for s in results["subjects"]:
        md += [f"## {s}", "",
               _table(["method", *arrows, "s / image"],
                      [[results["method_labels"][m], *[results["scores"][m][s].get(c) for c in cols],
                        results["seconds_per_image"][m][s]] for m in results["methods"]]), ""]
    tr = results.get("transfer") or {}
    md += ["## Transfer", ""]
    if tr.get("scores"):
        rows = [[f"Brain-IT, {a} min" if a != "all" else "Brain-IT, all data",
                 *[tr["scores"][a].get(c) for c in cols], tr["seconds_per_image"][a]] for a in tr["amounts"]]
        rows += [[f"{LABELS[m]}, all data", *[tr["baselines"][m].get(c) for c in cols], tr["seconds_per_image"][m]]
                 for m in BASELINES]
        md += [f"Held-out subject {tr['subject']} ({tr['n_images']} test images).", "",
               _table(["method", *arrows, "s / image"], rows), ""]
    else:
        md += [f"Skipped: {tr.get('skipped')}.", ""]
    c = results["claims"]
    md += ["## Claims", "", "### 1. Brain-IT beats both baselines on every metric", "",
           f"{c['beats_baselines']['n_won']} of {c['beats_baselines']['n_metrics']} metrics "
           f"({'all' if c['beats_baselines']['all'] else 'not all'}); margin = Brain-IT minus baseline "
           "(sign flipped for distances, positive = better).", "",
           _table(["metric", "beats both", "margin vs ridge", "margin vs global"],
                  [[m, v["beats_both"], v["ridge"]["margin"], v["global_embedding"]["margin"]]
                   for m, v in c["beats_baselines"]["per_metric"].items()]), "",
           "### 2. Fusion", ""]
    f = c["fusion"]
    md += [_table(["score", "fused", "single branch", "fused better", "margin"],
                  [["SSIM (vs low-level only)", f["ssim"]["fused"], f["ssim"]["brainit_low_level"],
                    f["ssim"]["fused_better"], f["ssim"]["margin"]],
                   ["PixCorr (vs low-level only)", f["pixcorr"]["fused"], f["pixcorr"]["brainit_low_level"],
                    f["pixcorr"]["fused_better"], f["pixcorr"]["margin"]]]
                  + [[f"{k} (vs semantic only)", v["fused"], v["brainit_semantic"], v["fused_better"], v["margin"]]
                     for k, v in f["semantic"].items()]), ""]
    if "share_kept" in f["ssim"]:
        md += [f"Share of the low-level branch's advantage over semantic-only that the fused images keep: "
               f"SSIM {_fmt(f['ssim']['share_kept'])}, PixCorr {_fmt(f['pixcorr']['share_kept'])} (the paper's "
               f"ablation on NSD: SSIM {_fmt(f['ssim']['paper_share_kept'])}, from .486 fused, .505 low-level "
               "only, .431 semantic only).", ""]
    t = c["transfer_60min"]
    md += ["### 3. Transfer: 60 minutes vs baselines on all data", ""]
    if "skipped" in t:
        md += [f"Skipped: {t['skipped']}.", ""]
    else:
        md += [f"{t['n_won']} of {t['n_metrics']} metrics.", "",
               _table(["metric", "beats both", "margin vs ridge", "margin vs global"],
                      [[m, v["beats_both"], v["ridge"]["margin"], v["global_embedding"]["margin"]]
                       for m, v in t["per_metric"].items()]), ""]
    k = c["contralaterality"]
    md += ["### 4. Contralaterality", "",
           f"Mean index {_fmt(k['mean_index'])} (fraction of the brain tokens with any hemisphere imbalance whose low-level "
           f"cross-attention centroid lies in the contralateral hemifield); signed mean "
           f"{_fmt(k['signed_mean'])}; weighted by hemisphere balance {_fmt(k.get('weighted'))}; over the "
           f"lateralised tokens only (>= 75 % of their voxels' weight in one hemisphere) "
           f"{_fmt(k.get('lateralised'))}; per subject "
           + ", ".join(f"{s} {_fmt(v)}" for s, v in k["per_subject"].items()) + ". NaN: no token's centroid "
           "lies >= 1e-3 off the vertical meridian (near-uniform cross-attention).", ""]
    if "prf_agreement" in k:
        md += ["Twin pRF agreement (correlation of pRF position with the attention centroid of the token a "
               "vertex feeds): " + ", ".join(f"{n} {_fmt(v)}" for n, v in k["prf_agreement"].items()) + ".", ""]
    tg = c["targets"]
    md += ["### Targets (reported, not asserted)", "",
           _table(["target", "value", "threshold", "ratio", "pass"],
                  [["fused SSIM / oracle SSIM", tg["fused_ssim_vs_oracle"]["ratio"], SSIM_TARGET,
                    tg["fused_ssim_vs_oracle"]["ratio"], tg["fused_ssim_vs_oracle"]["pass"]],
                   ["mean contralaterality", tg["contralaterality"]["index"], CONTRA_TARGET,
                    tg["contralaterality"]["ratio"], tg["contralaterality"]["pass"]]]), ""]
    if results.get("notes"):
        md += ["## Notes", ""] + [f"- {n}" for n in results["notes"]] + [""]
    for p in results.get("plots", []):
        md += [f"![{Path(p).stem}]({Path(p).name})"]
    return "\n".join(md) + "\n"


def refresh_report(out_dir) -> dict:
    """Recompute the claims and ``results.md`` from ``out_dir/results.json`` (after a change to how
    claims are judged or reported); nothing is reconstructed or scored again. Returns the results."""
    out = Path(out_dir).expanduser()
    res = _read_json(out / "results.json")
    if res is None:
        raise BrainITError(f"{out / 'results.json'} not found or unreadable: nothing to refresh")
    res["claims"] = compute_claims(res)
    _write_json(out / "results.json", res)
    (out / "results.md").write_text(results_markdown(res))
    return res


def load_results(out_dir) -> dict:
    """Read a benchmark's ``results.json`` (for the app's Benchmark page).

    Returns
    -------
    dict
        The results, with ``plots`` as absolute paths of the PNGs present and ``markdown`` the
        text of ``results.md``.

    Raises
    ------
    BrainITError
        When ``out_dir`` holds no finished benchmark.
    """
    out = Path(out_dir).expanduser()
    res = _read_json(out / "results.json")
    if res is None:
        raise BrainITError(f"{out / 'results.json'} not found or unreadable: run `python -m brainit_core benchmark "
                           f"... --out {out}` first")
    res["plots"] = [str(out / Path(p).name) for p in res.get("plots", []) if (out / Path(p).name).exists()]
    md = out / "results.md"
    res["markdown"] = md.read_text() if md.exists() else ""
    return res
