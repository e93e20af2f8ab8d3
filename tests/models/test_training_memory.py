"""Training reads a subject's single trials a block or a batch at a time, never all of them at once
(NSD: 30,000 trials x 40,000 vertices is 4.8 GB a subject; docs/app.md, "At NSD scale")."""
from __future__ import annotations

import numpy as np
import pytest

import brainit_core.models.bit_data as bit_data
from brainit_core.models.bit_data import TrialRows, subject_training_betas
from brainit_core.models.encoder import split_half_noise_ceiling
from brainit_core.models.encoder_training import training_samples
from tests.factories import make_tiny_dataset


def _record_reads(sd, monkeypatch) -> list:
    """Sizes of the reads of ``sd``'s betas; ``sd.betas`` (the whole subject) is refused."""
    sizes, read = [], sd.betas_for_trials

    def betas_for_trials(trials):
        sizes.append(len(trials))
        return read(trials)

    monkeypatch.setattr(sd, "betas_for_trials", betas_for_trials)
    monkeypatch.setattr(type(sd), "betas", property(lambda self: pytest.fail("read every trial of the subject")))
    return sizes


@pytest.fixture
def subject(tmp_path):
    return make_tiny_dataset(tmp_path / "d", n_train=10, repeats=3).subject("sub01")


def test_averaged_training_betas_are_summed_block_by_block(subject, monkeypatch):
    ref, ref_ids = subject.average_trials(np.unique(subject.train_image_ids))  # read before reads are refused
    sizes = _record_reads(subject, monkeypatch)
    monkeypatch.setattr(bit_data, "BETA_BLOCK_ROWS", 4)  # blocks split an image's repeats too
    avg, ids = subject_training_betas(subject, "averaged")
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(avg, ref, atol=1e-6)
    assert sum(sizes) == 3 * len(ids) and max(sizes) == 4


def test_trial_rows_read_only_the_batch(subject, monkeypatch):
    monkeypatch.setattr(bit_data, "TRIALS_IN_MEMORY_BYTES", 0)  # as a subject too large to hold
    everything = subject.betas_for_trials(np.arange(subject.n_trials))
    head = np.full((2, subject.n_vertices), 7.0, np.float32)
    trials = np.array([5, 1, 9, 3])
    sizes = _record_reads(subject, monkeypatch)
    pool = TrialRows(subject, trials, head=head)
    assert len(pool) == 6 and pool.shape == (6, subject.n_vertices) and sizes == []
    batch = pool[np.array([4, 0, 2, 4, 5])]  # a trial twice, a head row, unordered
    np.testing.assert_array_equal(batch, np.stack([everything[9], head[0], everything[5], everything[9], everything[3]]))
    assert sizes == [3]  # trials 3, 5, 9, each read once
    np.testing.assert_array_equal(pool[-1], everything[3])
    np.testing.assert_array_equal(pool[1:3], np.stack([head[1], everything[5]]))
    with pytest.raises(IndexError, match="out of range"):
        pool[np.array([6])]


def test_encoder_single_trials_are_read_per_batch(subject, monkeypatch):
    monkeypatch.setattr(bit_data, "TRIALS_IN_MEMORY_BYTES", 0)
    sizes = _record_reads(subject, monkeypatch)
    both, ids = training_samples(subject, "both")
    assert isinstance(both, TrialRows) and len(both) == len(ids) == 4 * len(np.unique(subject.train_image_ids))
    n_avg = len(np.unique(subject.train_image_ids))
    assert max(sizes) <= bit_data.BETA_BLOCK_ROWS // 4 * 3  # the averages, read image block by block
    sizes.clear()
    row = n_avg + np.flatnonzero(ids[n_avg:] == ids[0])
    np.testing.assert_allclose(both[row].mean(0), both[np.array([0])][0], rtol=1e-5, atol=1e-6)
    assert sizes == [3]


def test_noise_ceiling_reads_only_the_images_trials(subject, monkeypatch):
    ids = subject.test_image_ids
    groups = [np.sort(g) for g in subject.trials_of(ids)]
    b = subject.betas_for_trials(np.arange(subject.n_trials))
    a = np.stack([b[g[0]] for g in groups])
    rest = np.stack([b[g[1:]].mean(0) for g in groups])
    sizes = _record_reads(subject, monkeypatch)
    nc = split_half_noise_ceiling(subject, ids)
    assert sizes == [sum(len(g) for g in groups)] and nc.shape == (subject.n_vertices,)
    from brainit_core.models.encoder import pearson_per_voxel

    r = np.clip(pearson_per_voxel(a, rest), 0, None)
    rel = 2 * r / (1 + r)
    full = 1.5 * rel / (1 + 0.5 * rel)
    np.testing.assert_allclose(nc, np.sqrt(np.clip(full, 0, 1)), atol=1e-6)


def test_betas_for_trials_any_order_repeats_and_runs(subject):
    everything = subject.betas_for_trials(np.arange(subject.n_trials))
    np.testing.assert_array_equal(everything[:3], subject.betas_for_trials(np.array([0, 1, 2])))
    trials = np.array([7, 2, 3, 4, 7, 0, subject.n_trials - 1])  # unordered, a repeat, a run of three
    np.testing.assert_array_equal(subject.betas_for_trials(trials), everything[trials])
    assert subject.betas_for_trials(np.zeros(0, np.int64)).shape == (0, subject.n_vertices)
    assert "betas" not in subject.__dict__
    np.testing.assert_array_equal(everything, subject.betas)  # the whole subject, read in blocks


def test_trial_rows_that_fit_are_read_once_in_blocks(subject, monkeypatch):
    """A subject small enough to hold (the twin's) is read once, block by block, then served from memory."""
    everything = subject.betas_for_trials(np.arange(subject.n_trials))
    monkeypatch.setattr(bit_data, "BETA_BLOCK_ROWS", 3)
    sizes = _record_reads(subject, monkeypatch)
    trials = np.array([5, 1, 9, 3, 5])
    pool = TrialRows(subject, trials)
    assert sizes == [3, 2]  # blocks of 3 rows: (5, 1, 9), then (3, 5)
    np.testing.assert_array_equal(pool[np.array([4, 0, 2])], everything[[5, 5, 9]])
    assert sizes == [3, 2]  # nothing more read
