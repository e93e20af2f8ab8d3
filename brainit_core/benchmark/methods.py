"""The benchmark's methods: one :class:`Method` entry each, in :data:`REGISTRY`.

Every method is decoded by the same generators. A method declares its row label, whether its
images depend on the BIT run (its cache key), its cache slot, which image of its production it is
(and so which timed stages count), and a ``produce`` function. ``produce(bench, subject, betas,
ids, name)`` returns a :class:`Output`: images per kind (``fused``, ``low_level``, ``semantic``)
and the seconds spent per stage (``features`` plus the generators' ``low_level``, ``fusion``,
``semantic``). Most methods produce features and let :func:`decoded` time and decode them; methods
sharing a ``group`` (the three Brain-IT rows) come from one production, cached together.

Adding a method = adding one :class:`Method` to ``_ENTRIES`` (and, for a new kind of features, a
small function for it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from brainit_core.benchmark.baselines import fit_or_load_global_embedding, fit_or_load_ridge
from brainit_core.benchmark.cache import SHARED
from brainit_core.benchmark.twin import noiseless_responses

TRANSFER_AMOUNTS = ("15", "60", "all")
# timed generator stages that make each kind of image (the BIT features or the method's own
# features are always counted)
STAGES = {"fused": ("low_level", "fusion"), "low_level": ("low_level",), "semantic": ("semantic",)}


@dataclass
class Output:
    """What one production makes.

    Attributes
    ----------
    images : dict of str -> numpy.ndarray
        uint8 (N, H, W, 3) per kind (``fused``, ``low_level``, ``semantic``).
    timing : dict of str -> float
        Seconds per stage, summed over the images (``features`` and the generators' stages).
    attention : dict, optional
        BIT attention summaries (``cross_lowlevel``, ``tokenizer_lowlevel``, ``clusters``).
    """

    images: dict
    timing: dict = field(default_factory=dict)
    attention: dict | None = None


@dataclass(frozen=True)
class Method:
    """One row of the benchmark.

    Attributes
    ----------
    name, label : str
        Key in results and cache; row label in tables and plots.
    produce : callable
        ``produce(bench, subject, betas, ids, name) -> Output``.
    run_dependent : bool
        Whether the images depend on the BIT run: False keys the cache by the feature space
        instead of the run's checksum, so a new run reuses them.
    shared : bool
        One cache entry (slot :data:`~brainit_core.benchmark.cache.SHARED`) serves every subject
        with the same test images (the key holds the image ids).
    image : str
        Which image kind of the production is this method's (``fused``, ``low_level``,
        ``semantic``); its timed stages are :data:`STAGES` of it.
    group : str, optional
        Methods of one group come from one production and are cached together.
    keeps_attention : bool
        Its cache entry also holds the production's attention summaries.
    baseline : bool
        A baseline Brain-IT must beat (the claims).
    twin_only : bool
        Only on a twin dataset.
    in_table : bool
        A row of the main table (False: the transfer curve's runs, and the stage-2 rows, which are
        added only when a stage 2 is given).
    stage2 : bool
        Decoded with the stage-2 run and generators (``benchmark --stage2 OUT``) instead of the
        benchmark's own: its rows beside ``brainit_fused`` / ``brainit_semantic`` are before vs after.
    subset : bool
        Decoded on the first ``dip_images`` test images only (the DIP rows: slow).
    note : str, optional
        Stored with its cache entry.
    """

    name: str
    label: str
    produce: Callable
    run_dependent: bool = True
    shared: bool = False
    image: str = "fused"
    group: str | None = None
    keeps_attention: bool = False
    baseline: bool = False
    twin_only: bool = False
    in_table: bool = True
    stage2: bool = False
    subset: bool = False
    note: str | None = None

    def slot(self, subject: str) -> str:
        """The cache folder of this method's images for ``subject``."""
        return SHARED if self.shared else subject

    def seconds_per_image(self, timing: dict, n: int) -> float:
        """Seconds per image: the features plus the generator stages of its image kind."""
        return (timing.get("features", 0.0) + sum(timing.get(s, 0.0) for s in STAGES[self.image])) / n


# ---------------------------------------------------------------------------------------------
# productions


def decoded(features: Callable, prepare: Callable | None = None) -> Callable:
    """A ``produce`` function from a feature function.

    Parameters
    ----------
    features : callable
        ``features(bench, prepared, subject, betas, ids) -> (semantic, lowlevel)``: a float tensor
        (N, T, D) and a list of float tensors, one per low-level map. Timed.
    prepare : callable, optional
        ``prepare(bench, subject)`` run before the clock starts (e.g. fitting a baseline: seconds
        per image are decoding only); its result is passed to ``features``.
    """
    def produce(bench, subject: str, betas, ids, name: str) -> Output:
        prepared = prepare(bench, subject) if prepare is not None else None
        t0 = time.perf_counter()
        semantic, lowlevel = features(bench, prepared, subject, betas, ids)
        t_feat = time.perf_counter() - t0
        images, timing = bench.generate(semantic, lowlevel, ids, f"{subject}: {name}")
        return Output(images, {**timing, "features": t_feat})

    return produce


def _oracle_features(bench, prepared, subject, betas, ids):
    from brainit_core.features import extract_features

    fs = extract_features(bench.ds, ids, bench.run.space)
    return (torch.as_tensor(fs.semantic.astype(np.float32)),
            [torch.as_tensor(m.astype(np.float32)) for m in fs.lowlevel])


def _ridge(bench, subject):
    return fit_or_load_ridge(bench.out, bench.ds, bench.run.space, subject)


def _ridge_features(bench, decoder, subject, betas, ids):
    pred = decoder.predict(betas)
    return (torch.as_tensor(pred["semantic"]),
            [torch.as_tensor(pred[f"low{l}"]) for l in range(len(bench.run.space.lowlevel_specs))])


def _global_embedding(bench, subject):
    return fit_or_load_global_embedding(bench.out, bench.ds, bench.run.space, subject, bench.preset, bench.device)


def _global_embedding_features(bench, decoder, subject, betas, ids):
    from brainit_core.reconstruction.images import image_size_of

    pred = decoder.predict(betas, image_size=image_size_of(bench.run.space))
    with torch.no_grad():
        lowlevel = [m.float().cpu() for m in bench.run.space.lowlevel_maps(
            torch.as_tensor(pred["image"]).to(bench.device))]
    return torch.as_tensor(pred["semantic"]), lowlevel


def _brainit(bench, subject, betas, ids, name) -> Output:
    return bench.bit(betas, subject, ids, f"{subject}: Brain-IT")


def _transferred(bench, subject, betas, ids, name) -> Output:
    # bench.run is the transferred run here (see run._transfer); the row is the fused image only
    return bench.bit(betas, subject, ids, f"{subject}: {name}", semantic_only=False)


def _stage2(bench, subject, betas, ids, name) -> Output:
    # bench.run and bench.gens are the stage-2 ones here (Bench.images swaps them for stage-2 methods)
    return bench.bit(betas, subject, ids, f"{subject}: stage 2")


def _dip(bench, subject, betas, ids, name) -> Output:
    return bench.dip(betas, subject, ids, f"{subject}: DIP")


def _inverter_on_subset(bench, subject, betas, ids, name) -> Output:
    # the inverter's images of the DIP row's images (the first of the full set, cached once)
    all_betas, all_ids = bench.test_set(subject)
    images, meta = bench.images(subject, "brainit_low_level", all_betas, all_ids)
    if not np.array_equal(all_ids[:len(ids)], ids):
        raise ValueError(f"{name}: {subject}'s subset is not the first {len(ids)} test images")
    return Output({"low_level": images[:len(ids)]}, {"low_level": meta["seconds_per_image"] * len(ids)})


def _oracle_noiseless(bench, subject, betas, ids, name) -> Output:
    responses = noiseless_responses(bench.ds, bench.twin_dir, subject, ids)
    return bench.bit(responses, subject, ids, f"{subject}: oracle-noiseless", semantic_only=False)


# ---------------------------------------------------------------------------------------------
# the registry (table rows in this order)


_ENTRIES = (
    Method("brainit_fused", "Brain-IT (fused)", _brainit, group="brainit", keeps_attention=True),
    Method("brainit_low_level", "low-level only", _brainit, image="low_level", group="brainit"),
    Method("brainit_semantic", "semantic only", _brainit, image="semantic", group="brainit"),
    Method("ridge", "ridge (Brain-Diffuser style)", decoded(_ridge_features, _ridge), run_dependent=False,
           baseline=True, note="baseline fit time excluded"),
    Method("global_embedding", "global embedding (MindEye style)",
           decoded(_global_embedding_features, _global_embedding), run_dependent=False, baseline=True,
           note="baseline fit time excluded"),
    Method("oracle", "oracle (true features)", decoded(_oracle_features), run_dependent=False, shared=True),
    Method("oracle_noiseless", "oracle-noiseless (twin, BIT)", _oracle_noiseless, twin_only=True),
    Method("brainit_dip", "low-level only, DIP (the paper's)", _dip, image="low_level", subset=True,
           note="Deep Image Prior, demo preset, on BIT's low-level features"),
    Method("brainit_low_level_subset", "low-level only, inverter (the DIP row's images)", _inverter_on_subset,
           image="low_level", subset=True, note="the brainit_low_level images of the DIP row's test images"),
    *(Method(f"transfer_{a}", f"Brain-IT, {a} min" if a != "all" else "Brain-IT, all data", _transferred,
             in_table=False) for a in TRANSFER_AMOUNTS),
    Method("stage2_fused", "Brain-IT stage 2 (fused)", _stage2, group="stage2", in_table=False, stage2=True),
    Method("stage2_semantic", "stage 2, semantic only", _stage2, image="semantic", group="stage2", in_table=False,
           stage2=True),
)
REGISTRY: dict[str, Method] = {m.name: m for m in _ENTRIES}

METHODS = tuple(m.name for m in _ENTRIES if m.in_table)
LABELS = {m.name: m.label for m in _ENTRIES}
BASELINES = tuple(m.name for m in _ENTRIES if m.baseline)
RUN_FREE = tuple(m.name for m in _ENTRIES if not m.run_dependent)
STAGE2 = tuple(m.name for m in _ENTRIES if m.stage2)


def get_method(name: str) -> Method:
    """The registered method ``name``.

    Raises
    ------
    ValueError
        When no method has that name.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(REGISTRY)}") from None


def group_of(method: Method) -> list[Method]:
    """The methods produced together with ``method`` (itself first)."""
    if method.group is None:
        return [method]
    return [method] + [m for m in REGISTRY.values() if m.group == method.group and m is not method]


def table_methods(is_twin: bool, stage2: bool = False, dip: bool = True) -> list[str]:
    """The main table's rows for a dataset (twin-only rows only on a twin; the stage-2 rows when a
    stage 2 is given; the DIP rows unless ``dip`` is False)."""
    rows = [m for m in METHODS if (is_twin or not REGISTRY[m].twin_only) and (dip or not REGISTRY[m].subset)]
    return rows + (list(STAGE2) if stage2 else [])
