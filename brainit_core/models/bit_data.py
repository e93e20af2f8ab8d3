"""What BIT training reads: per-subject pools of betas and the feature rows of their images.

Real samples are a subject's training betas (repeat-averaged or single trials), validation samples its
repeat-averaged validation betas, synthetic samples the encoder's predicted fMRI for unlabeled images.
:func:`epoch_samples` draws one epoch's shuffled mix and :func:`make_groups` turns a batch of it into
the per-subject groups the Brain Tokenizer reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from brainit_core.data.dataset import BETA_BLOCK_ROWS
from brainit_core.features.base import maps_to_tokens
from brainit_core.models.bit import BrainITModel


@dataclass
class SamplePool:
    """Betas of one subject and the feature rows of their images.

    Attributes
    ----------
    betas : ndarray, shape (n, V)
        Raw betas (float32 real or float16 synthetic), standardised at batch time.
    rows : ndarray, int64, shape (n,)
        Row of each sample's image in :attr:`BITData.features`.
    """

    betas: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class BITData:
    """Everything BIT training reads, in memory.

    Attributes
    ----------
    features : FeatureSet
        Features of every image used (train, val and unlabeled), any order.
    real, val, synthetic : dict of str -> SamplePool
        Per subject; ``synthetic`` may be empty.
    """

    features: object
    real: dict
    val: dict
    synthetic: dict

    def semantic_targets(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.features.semantic[rows].astype(np.float32))  # (b, N, D)

    def lowlevel_targets(self, rows: np.ndarray) -> list[torch.Tensor]:
        return [maps_to_tokens(torch.from_numpy(m[rows].astype(np.float32))) for m in self.features.lowlevel]


#: Single trials of one subject up to this size are held in memory by :class:`TrialRows` (bytes).
TRIALS_IN_MEMORY_BYTES = 2 * 1024 ** 3


class TrialRows:
    """A subject's samples read from its file a batch at a time: ``pool[idx]`` is (len(idx), V) float32.

    ``head`` rows (e.g. repeat averages) are kept in memory and come first, then the single trials
    ``trials`` (row numbers in the subject's file), read only when indexed: training on single trials
    holds a batch of them, not all of them (NSD: 30,000 trials x 40,000 vertices, 4.8 GB a subject).
    Trials that fit in :data:`TRIALS_IN_MEMORY_BYTES` (the twin's demo: 9,600 x 4,838, 186 MB) are read
    once, ``BETA_BLOCK_ROWS`` at a time, and served from memory: reading a batch from the file costs
    about 40 ms per 64 trials, a tenth of an encoder step on one CPU thread.
    """

    def __init__(self, subject_data, trials: np.ndarray, head: np.ndarray | None = None):
        self.subject_data = subject_data
        self.trials = np.asarray(trials, dtype=np.int64)
        self.head = np.zeros((0, subject_data.n_vertices), np.float32) if head is None else head
        self._loaded = None
        if len(self.trials) * subject_data.n_vertices * 4 <= TRIALS_IN_MEMORY_BYTES:
            self._loaded = np.empty((len(self.trials), subject_data.n_vertices), np.float32)
            for start in range(0, len(self.trials), BETA_BLOCK_ROWS):
                block = self.trials[start:start + BETA_BLOCK_ROWS]
                self._loaded[start:start + len(block)] = subject_data.betas_for_trials(block)

    def __len__(self) -> int:
        return len(self.head) + len(self.trials)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.subject_data.n_vertices

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, slice):
            return self[np.arange(len(self))[idx]]
        if np.ndim(idx) == 0:
            return self[np.array([idx])][0]
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"sample index out of range for {len(self)} samples")
        idx = idx % max(len(self), 1)
        out = np.empty((len(idx), self.subject_data.n_vertices), np.float32)
        in_head = idx < len(self.head)
        out[in_head] = self.head[idx[in_head]]
        if not in_head.all():
            rows = idx[~in_head] - len(self.head)
            if self._loaded is not None:
                out[~in_head] = self._loaded[rows]
                return out
            uniq, inverse = np.unique(self.trials[rows], return_inverse=True)  # read in increasing order, once
            out[~in_head] = self.subject_data.betas_for_trials(uniq)[inverse]
        return out


def training_trial_rows(subject_data, image_ids: np.ndarray | None = None,
                        trials: np.ndarray | None = None) -> np.ndarray:
    """Sorted trial rows of ``image_ids`` (default: the training split), among ``trials`` when given."""
    ids = subject_data.train_image_ids if image_ids is None else np.asarray(image_ids)
    if trials is None:
        rows = np.concatenate([g for g in subject_data.trials_of(np.unique(ids))] or [np.zeros(0, np.int64)])
    else:
        rows = np.asarray(trials, dtype=np.int64)
        rows = rows[np.isin(subject_data.image_ids[rows], ids)]
    return np.sort(rows)


def subject_training_betas(subject_data, mode: str, image_ids: np.ndarray | None = None,
                           trials: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs of a subject.

    Parameters
    ----------
    subject_data : SubjectData
    mode : {"averaged", "single"}
        Repeat-averaged betas (one sample per image; the trials are read and summed
        ``BETA_BLOCK_ROWS`` at a time, so memory holds the averages, not the trials) or single trials.
    image_ids : ndarray, optional
        Restrict to these images (default: the subject's training split).
    trials : ndarray, optional
        Restrict to these trial rows (transfer with little data); averaging uses only them.

    Returns
    -------
    betas : ndarray, float32, shape (n, V)
    image_ids : ndarray, int64, shape (n,)
    """
    rows = training_trial_rows(subject_data, image_ids, trials)
    trial_ids = subject_data.image_ids[rows]
    if mode == "single":
        return subject_data.betas_for_trials(rows), trial_ids
    if mode != "averaged":
        raise ValueError(f"betas mode must be 'averaged' or 'single', got {mode!r}")
    uniq, inverse = np.unique(trial_ids, return_inverse=True)
    out = np.zeros((len(uniq), subject_data.n_vertices), np.float32)
    for start in range(0, len(rows), BETA_BLOCK_ROWS):
        block = subject_data.betas_for_trials(rows[start:start + BETA_BLOCK_ROWS])
        inv = inverse[start:start + BETA_BLOCK_ROWS]
        order = np.argsort(inv, kind="stable")
        firsts = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
        out[inv[order][firsts]] += np.add.reduceat(block[order], firsts, axis=0)
    out /= np.maximum(np.bincount(inverse, minlength=len(uniq)), 1)[:, None]
    return out, uniq


def channel_stats(features, rows: np.ndarray, chunk: int = 256) -> tuple[tuple, list]:
    """Per-channel (mean, std) of semantic tokens and of each low-level layer over ``rows``."""
    def stats(arr, axis_c):
        s = s2 = 0.0
        n = 0
        for start in range(0, len(rows), chunk):
            x = arr[np.sort(rows[start:start + chunk])].astype(np.float64)
            x = np.moveaxis(x, axis_c, -1).reshape(-1, x.shape[axis_c])
            s = s + x.sum(0)
            s2 = s2 + (x ** 2).sum(0)
            n += len(x)
        mean = s / max(n, 1)
        return mean.astype(np.float32), np.sqrt(np.maximum(s2 / max(n, 1) - mean ** 2, 0)).astype(np.float32)

    sem = stats(features.semantic, 2)
    low = [stats(m, 1) for m in features.lowlevel]
    return sem, low


def needed_image_ids(dataset, subjects: Sequence[str], max_unlabeled: int | None) -> tuple[np.ndarray, np.ndarray]:
    """All train/val/test ids of ``subjects`` and the unlabeled ids (capped, first ones)."""
    ids = [np.concatenate([s.train_image_ids, s.val_image_ids, s.test_image_ids])
           for s in (dataset.subject(n) for n in subjects)]
    unl = dataset.image_set("unlabeled") if "unlabeled" in dataset.image_sets else np.zeros(0, np.int64)
    if max_unlabeled is not None:
        unl = unl[:max_unlabeled]
    return np.unique(np.concatenate(ids)), unl


def load_run_features(dataset, space, ids, device) -> object:
    from brainit_core.features import extract_features

    return extract_features(dataset, np.asarray(ids, dtype=np.int64), space, batch_size=32, device=device)


def build_bit_data(dataset, features, subjects: Sequence[str], mode: str, synthetic: dict | None = None,
                   synthetic_ids: np.ndarray | None = None, trials: dict | None = None,
                   val_trials: dict | None = None) -> BITData:
    """Collect real (train), validation and synthetic samples of ``subjects``.

    ``trials`` restricts a subject's training samples to those trial rows; ``val_trials`` validates a
    subject on those trials (averaged over repeats) instead of its val split (a transfer's held-out
    part of its budget)."""
    row_of = {int(i): r for r, i in enumerate(features.ids)}
    real, val, syn = {}, {}, {}
    for name in subjects:
        sd = dataset.subject(name)
        b, ids = subject_training_betas(sd, mode, trials=None if trials is None else trials.get(name))
        real[name] = SamplePool(b, np.array([row_of[int(i)] for i in ids], np.int64))
        held = None if val_trials is None else val_trials.get(name)
        vb, vids = sd.averaged("val") if held is None else subject_training_betas(sd, "averaged", trials=held)
        val[name] = SamplePool(vb, np.array([row_of[int(i)] for i in vids], np.int64))
        if synthetic is not None and name in synthetic:
            syn[name] = SamplePool(synthetic[name], np.array([row_of[int(i)] for i in synthetic_ids], np.int64))
    return BITData(features, real, val, syn)


def epoch_samples(data: BITData, synthetic_per_real: float, rng: np.random.Generator,
                  subjects: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """Shuffled (source, subject, index) triples: every real sample once, plus
    ``round(synthetic_per_real * n_real)`` synthetic ones, each an unlabeled image drawn at random
    and given a random subject among those with synthetic fMRI."""
    subjects = list(subjects or data.real)
    samples = [("real", s, i) for s in subjects for i in range(len(data.real[s]))]
    syn_subjects = [s for s in subjects if s in data.synthetic and len(data.synthetic[s])]
    n_syn = int(round(synthetic_per_real * len(samples))) if syn_subjects else 0
    if n_syn:
        subj = rng.integers(0, len(syn_subjects), n_syn)
        for k, s in enumerate(syn_subjects):
            picks = rng.integers(0, len(data.synthetic[s]), int((subj == k).sum()))
            samples += [("synthetic", s, int(i)) for i in picks]
    order = rng.permutation(len(samples))
    return [samples[i] for i in order]


def make_groups(model: BrainITModel, data: BITData, batch: list[tuple[str, str, int]], n_voxels: int | None,
                device, tg: torch.Generator | None, shard=None) -> tuple[list, np.ndarray]:
    """Turn a list of samples into per-subject groups for :meth:`BrainIT.tokenize`.

    Returns the groups ``[(subject, betas (b, N), voxel_idx (b, N) or None)]`` and the feature
    rows of the samples in group order. ``n_voxels=None`` keeps all voxels. With a
    :class:`~brainit_core.distributed.Shard` of the batch (positions in group order) only those
    samples are loaded, while the voxel subsets are drawn for the whole batch as in one process.
    """
    groups, rows = [], []
    start = 0
    for subject in dict.fromkeys(s for _, s, _ in batch):
        items = [(src, i) for src, s, i in batch if s == subject]
        lo, hi = (0, len(items)) if shard is None else (min(max(shard.lo - start, 0), len(items)),
                                                        min(max(shard.hi - start, 0), len(items)))
        start += len(items)
        V = data.real[subject].betas.shape[1] if subject in data.real else data.synthetic[subject].betas.shape[1]
        idx = None
        if n_voxels is not None and n_voxels < V:
            idx = torch.rand(len(items), V, generator=tg).argsort(1)[lo:hi, :n_voxels]  # (b, N), distinct
        items = items[lo:hi]
        if not items:
            continue
        betas = np.stack([(data.real if src == "real" else data.synthetic)[subject].betas[i] for src, i in items])
        rows += [(data.real if src == "real" else data.synthetic)[subject].rows[i] for src, i in items]
        x = torch.from_numpy(betas.astype(np.float32))  # (b, V)
        if idx is not None:
            x = torch.gather(x, 1, idx)
        x = x.to(device)
        idx = idx.to(device) if idx is not None else None
        groups.append((subject, model.standardize_betas(x, subject, idx), idx))
    return groups, np.asarray(rows, dtype=np.int64)


def standardized_targets(model: BrainITModel, head: str, data: BITData, rows: np.ndarray, device) -> list[torch.Tensor]:
    if head == "semantic":
        m, s = model.target_stats("semantic")
        return [(data.semantic_targets(rows).to(device) - m) / s]  # [(B, N, D)]
    out = []
    for l, t in enumerate(data.lowlevel_targets(rows)):
        m, s = model.target_stats(f"low{l}")
        out.append((t.to(device) - m) / s)  # (B, n_l, C_l)
    return out
