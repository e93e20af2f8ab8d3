"""Category accuracy: the dominant category, the classifier (beats chance where categories are
separable, cached as plain arrays), and the skip on data without labels."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.benchmark import categories as C


def test_dominant_category_is_the_largest_area_and_uncovered_images_have_none():
    cov = np.array([[0.1, 0.3, 0.0], [0.5, 0.2, 0.2], [0.0, 0.0, 0.0]])
    assert C.dominant_categories(cov).tolist() == [1, 0, -1]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_classifier_learns_separable_features_and_round_trips_without_pickle(tmp_path, n_classes):
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (n_classes, 20))
    y = rng.integers(0, n_classes, 200)
    x = centres[y] + rng.normal(0, 1, (200, 20))
    names = [f"c{k}" for k in range(n_classes)]
    clf = C.fit_classifier(x[:150], y[:150], names)
    chance = clf.chance(y[150:])
    assert clf.accuracy(x[150:], y[150:]) > 0.9 > chance
    assert clf.heldout_accuracy > 0.9 and clf.c in C.C_GRID and clf.n_train == 150
    # shuffled training labels: nothing to learn, new images are named right about as often as by chance
    noise = C.fit_classifier(x[:150], rng.permutation(y[:150]), names)
    assert noise.accuracy(x[150:], y[150:]) < 0.75
    clf.save(tmp_path / "c.npz", key="k1")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:  # plain arrays only
        assert "coef" in z.files
    back = C.CategoryClassifier.load(tmp_path / "c.npz", "k1")
    assert np.array_equal(back.predict(x), clf.predict(x)) and back.names == names
    assert C.CategoryClassifier.load(tmp_path / "c.npz", "another key") is None
    assert C.CategoryClassifier.load(tmp_path / "absent.npz", "k1") is None
    # a label of -1 (no category) is left out of accuracy and chance
    assert clf.accuracy(x[150:], np.r_[y[150:-1], -1]) == clf.accuracy(x[150:-1], y[150:-1])


def test_classifier_refuses_too_little_data():
    with pytest.raises(ValueError, match=">= 2 categories"):
        C.fit_classifier(np.zeros((20, 3)), np.zeros(20, int), ["a", "b"])


@pytest.mark.slow  # real Lite2 on 48 images (35 s on a loaded CPU); the end-to-end benchmark test covers the path
def test_scorer_on_separable_twin_labels_beats_chance_and_caches_the_classifier(tmp_path, monkeypatch):
    from brainit_core.metrics import Evaluator
    from tests.factories import make_category_dataset

    ds, labels = make_category_dataset(tmp_path / "data")
    ev = Evaluator("lite2", device="cpu")
    scorer = C.category_scorer(ds, ev, tmp_path / "out", notes=[])
    assert scorer.names == ["red", "green", "blue"]
    train = np.concatenate([ds.subject(s).split_image_ids("train") for s in ds.subjects])
    assert set(scorer.train_ids) <= set(train.tolist())  # training images only, never a test image
    test_ids = ds.subject("sub01").split_image_ids("test")
    assert not set(scorer.train_ids) & set(test_ids.tolist())
    truth = scorer.features(ds.images(test_ids))
    summary = scorer.summary(test_ids, truth)
    assert summary["ground_truth"] == 1.0 > summary["chance"] and summary["chance_uniform"] == pytest.approx(1 / 3)
    # wrong colours: a reconstruction showing the next category is never classified as the seen one
    seen = ds.images(test_ids)
    swapped = np.array([seen[np.flatnonzero(labels[test_ids] == (labels[i] + 1) % 3)[0]] for i in test_ids])
    assert scorer.score(test_ids, scorer.features(swapped)) == 0.0
    assert (tmp_path / "out" / "categories" / "classifier.npz").is_file()

    # a second scorer of the same dataset reads the classifier instead of fitting it
    monkeypatch.setattr(C, "fit_classifier", lambda *a, **k: pytest.fail("refitted"))
    again = C.category_scorer(ds, ev, tmp_path / "out")
    assert np.array_equal(again.classifier.predict(truth), scorer.classifier.predict(truth))


def test_data_without_labels_skips_the_column_with_a_note(tiny_dataset, tmp_path):
    notes = []
    assert C.category_scorer(tiny_dataset, None, tmp_path, notes=notes) is None
    assert len(notes) == 1 and "category accuracy skipped" in notes[0] and "labels" in notes[0]
