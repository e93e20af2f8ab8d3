"""Category accuracy: does a reconstruction show the same kind of thing as the seen image?

A twin's scenes are made of labelled objects (face, body, animal, food, vehicle, place, ...;
twin v1: face, body, word, building, ...). The twin's ground truth stores, per image, the share
of the image each category covers (``ground_truth/stimuli.npz``, ``category_coverage``). An
image's **category is its dominant one: the category covering the largest area** (images no
category covers are left out). The labels are ground truth for evaluation only: nothing the
decoder or a baseline sees.

A classifier (scikit-learn's multinomial logistic regression on standardised features) learns
category from the evaluation network's features of the twin's TRAINING images
(:data:`NETWORK`'s ``late`` layer: EfficientNet-Lite2's 1280-d global average, the offline
evaluation network, never the decoder's Lite0). It is then applied to each method's
reconstructions, to the oracle's and to the seen test images themselves. A method's **category
accuracy** is the share of its reconstructions classified as their seen image's category. The
seen images' own accuracy is the ceiling the classifier allows; **chance** is what always naming
the most common training category scores on the same test images.

The fitted classifier is cached as ``OUT/categories/classifier.npz`` (plain arrays, no pickle)
under a key of the dataset, the network and the training images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainit_core.benchmark.cache import result_key
from brainit_core.benchmark.twin import category_coverage
from brainit_core.fileio import save_npz

COLUMN = "Category acc."
NETWORK, LAYER = "lite2", "late"
N_TRAIN = 1500  # training images the classifier learns from (evenly drawn from the training splits)
C_GRID = (0.01, 0.1, 1.0)  # inverse regularisation strengths tried on a held-out fifth
DEFINITION = ("category = the one covering the largest area of the image (twin ground truth); accuracy = share of "
              "reconstructions a logistic regression on EfficientNet-Lite2 late features, fitted on the twin's training "
              "images, names with their seen image's category; chance = always naming the most common training category")


def dominant_categories(coverage: np.ndarray) -> np.ndarray:
    """Per image, the index of the category covering the largest area; -1 when none covers it."""
    coverage = np.asarray(coverage)
    out = coverage.argmax(1).astype(np.int64)
    out[coverage.max(1) <= 0] = -1
    return out


@dataclass
class CategoryClassifier:
    """A fitted linear classifier on standardised features (everything a plain array).

    Attributes
    ----------
    names : list of str
        Every category of the dataset (labels index it).
    mean, scale : numpy.ndarray
        (D,) standardisation.
    coef, intercept : numpy.ndarray
        (K, D) and (K,) over the K categories seen in training, ``classes`` (K,) their indices.
    c : float
        The chosen inverse regularisation strength.
    heldout_accuracy : float
        Accuracy on the held-out fifth of the training images used to choose ``c``.
    n_train : int
    majority : int
        The most common training category (chance = always naming it).
    """

    names: list
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    c: float
    heldout_accuracy: float
    n_train: int
    majority: int

    def predict(self, features) -> np.ndarray:
        """Category index per row of ``features`` (N, D)."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return self.classes[np.argmax(z @ self.coef.T + self.intercept, axis=1)]

    def accuracy(self, features, labels) -> float:
        """Share of rows with a label (>= 0) classified as it."""
        labels = np.asarray(labels)
        keep = labels >= 0
        if not keep.any():
            return float("nan")
        return float((self.predict(np.asarray(features)[keep]) == labels[keep]).mean())

    def chance(self, labels) -> float:
        """Accuracy of always naming :attr:`majority` on ``labels`` (those >= 0)."""
        labels = np.asarray(labels)
        labels = labels[labels >= 0]
        return float((labels == self.majority).mean()) if len(labels) else float("nan")

    def save(self, path, key: str) -> None:
        save_npz(path, compressed=False, names=np.array(self.names), mean=self.mean, scale=self.scale,
                 coef=self.coef, intercept=self.intercept, classes=self.classes,
                 scalars=np.array([self.c, self.heldout_accuracy, self.n_train, self.majority], np.float64),
                 key=np.array(key))

    @classmethod
    def load(cls, path, key: str) -> "CategoryClassifier | None":
        """The classifier saved at ``path`` under ``key``; None when absent, unreadable or of another key."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) != key:
                    return None
                c, acc, n, major = z["scalars"]
                return cls([str(n_) for n_ in z["names"]], z["mean"], z["scale"], z["coef"], z["intercept"],
                           z["classes"].astype(np.int64), float(c), float(acc), int(n), int(major))
        except (OSError, KeyError, ValueError):
            return None


def fit_classifier(features, labels, names, seed: int = 0, c_grid=C_GRID) -> CategoryClassifier:
    """Fit the classifier: choose C on a held-out fifth, then refit on every image.

    Parameters
    ----------
    features : numpy.ndarray
        (N, D) evaluation-network features of the training images.
    labels : numpy.ndarray
        (N,) category indices (all >= 0).
    names : list of str
    seed : int
        Which fifth is held out.

    Raises
    ------
    ValueError
        With fewer than two categories or fewer than 10 images.
    """
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(features, np.float64), np.asarray(labels, np.int64)
    if len(x) < 10 or len(np.unique(y)) < 2:
        raise ValueError(f"the category classifier needs >= 10 images of >= 2 categories, got {len(x)} images of "
                         f"{len(np.unique(y))}")
    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    z = (x - mean) / scale
    order = np.random.default_rng(seed).permutation(len(z))
    held, fit = order[:len(z) // 5], order[len(z) // 5:]
    best = (-1.0, c_grid[0])
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=2000).fit(z[fit], y[fit])
        best = max(best, (float((model.predict(z[held]) == y[held]).mean()), c))
    model = LogisticRegression(C=best[1], max_iter=2000).fit(z, y)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # binary: one score for classes_[1]; argmax over (0, score) is the same decision
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    counts = np.bincount(y, minlength=len(names))
    return CategoryClassifier(list(names), mean, scale, coef.astype(np.float64), intercept.astype(np.float64),
                              model.classes_.astype(np.int64), float(best[1]), best[0], len(y), int(counts.argmax()))


def training_images(ds, labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` image ids from every subject's training split (sorted), each with a category."""
    ids = np.unique(np.concatenate([ds.subject(s).split_image_ids("train") for s in ds.subjects]))
    ids = ids[(ids < len(labels)) & (labels[np.minimum(ids, len(labels) - 1)] >= 0)]
    if len(ids) > n:
        ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
    return ids


class CategoryScorer:
    """Category accuracy for one benchmark: labels, the fitted (or cached) classifier, the features.

    Build it with :func:`category_scorer`, which returns None (and a note) when the dataset has no
    category labels.
    """

    def __init__(self, ds, evaluator, out, labels: np.ndarray, names: list, n_train: int = N_TRAIN):
        self.ds, self.evaluator, self.labels, self.names = ds, evaluator, labels, list(names)
        self.path = Path(out) / "categories" / "classifier.npz"
        self.train_ids = training_images(ds, labels, n_train)
        self.key = result_key("categories", NETWORK, LAYER, str(ds.path), ds.content_id,
                              [int(i) for i in self.train_ids], list(C_GRID))
        self._clf: CategoryClassifier | None = None

    @property
    def classifier(self) -> CategoryClassifier:
        """Fitted on first use, or read from ``OUT/categories/classifier.npz``."""
        if self._clf is None:
            self._clf = CategoryClassifier.load(self.path, self.key)
        if self._clf is None:
            feats = self.features(self.ds.images(self.train_ids), "category training images")
            self._clf = fit_classifier(feats, self.labels[self.train_ids], self.names)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._clf.save(self.path, self.key)
        return self._clf

    def features(self, images, name: str = "images") -> np.ndarray:
        from brainit_core.metrics.networks import image_features

        ext = self.evaluator.extractor(NETWORK)
        if ext is None:
            raise RuntimeError(f"the {NETWORK} evaluation network is not available")
        return image_features(ext, images, self.evaluator.batch_size, self.evaluator.device, name)[LAYER]

    def score(self, ids, features: np.ndarray) -> float:
        """Category accuracy of images with ``features`` (the :data:`LAYER` of :data:`NETWORK`) showing ``ids``."""
        return self.classifier.accuracy(features, self.labels[np.asarray(ids)])

    def summary(self, ids, truth_features: np.ndarray) -> dict:
        """What the report prints beside the column: the seen images' accuracy, chance, the classifier."""
        clf = self.classifier
        lab = self.labels[np.asarray(ids)]
        return {"column": COLUMN, "definition": DEFINITION, "categories": self.names,
                "network": f"{NETWORK} {LAYER}", "n_classifier_images": clf.n_train, "C": clf.c,
                "classifier_heldout_accuracy": clf.heldout_accuracy,
                "ground_truth": self.score(ids, truth_features), "chance": clf.chance(lab),
                "chance_uniform": 1.0 / len(clf.classes), "most_common": self.names[clf.majority],
                "n_labelled": int((lab >= 0).sum()), "n_images": len(lab)}


def category_scorer(ds, evaluator, out, n_train: int = N_TRAIN, notes: list | None = None) -> CategoryScorer | None:
    """A :class:`CategoryScorer` when ``ds`` carries category labels (a twin); else None and a note."""
    found = category_coverage(ds)
    if found is None:
        if notes is not None:
            notes.append(f"category accuracy skipped: {ds.path} has no per-image category labels (a twin's "
                         "ground_truth/stimuli.npz carries them)")
        return None
    coverage, names = found
    return CategoryScorer(ds, evaluator, out, dominant_categories(coverage), names, n_train)
