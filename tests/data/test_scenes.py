"""COCO-like scenes composed from a tiny fake stimulus library: determinism, masks, labels, counts."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.data.twin.library import load_library
from brainit_core.data.twin.scenes import MAX_OBJECTS, plan_scene, render_plan, render_scenes, visible_alpha
from brainit_core.data.twin.sprites import SpriteCache, render_word
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.errors import BrainITError


@pytest.fixture
def library(fake_library):
    root, data = fake_library
    return load_library(root, data_dir=data)


def test_same_seed_same_scenes_other_seed_other_scenes(library):
    a = render_scenes(library, 12, seed=5, size=64)
    b = render_scenes(library, 12, seed=5, size=64, cache=SpriteCache(library, max_items=2))  # tiny cache: reloads
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.category_masks, b.category_masks)
    np.testing.assert_array_equal(a.visible_alpha, b.visible_alpha)
    assert a.objects == b.objects and a.library_version == library.version
    c = render_scenes(library, 12, seed=6, size=64)
    assert not np.array_equal(a.images, c.images)
    # scene i does not depend on the batch it is rendered in
    tail = render_scenes(library, 4, seed=5, size=64, start=8)
    np.testing.assert_array_equal(tail.images, a.images[8:])


def test_shapes_counts_and_labels(library):
    s = render_scenes(library, 40, seed=1, size=48)
    n, c = 40, len(CATEGORIES)
    assert s.images.shape == (n, 48, 48, 3) and s.images.dtype == np.uint8
    assert s.object_alpha.shape == s.visible_alpha.shape == (n, MAX_OBJECTS, 48, 48)
    assert s.category_masks.shape == (n, c, 48, 48) and s.labels.shape == (n, c)
    assert s.n_objects.min() >= 1 and s.n_objects.max() <= MAX_OBJECTS
    for i in range(n):
        k = s.n_objects[i]
        assert len(s.objects[i]) == k
        assert np.all(s.object_category[i, :k] >= 0) and np.all(s.object_category[i, k:] == -1)
        assert not s.object_alpha[i, k:].any()
        # labels are the masks' categories, and only categories of the scene's objects
        np.testing.assert_array_equal(s.labels[i], s.category_masks[i].any(axis=(1, 2)))
        assert set(np.flatnonzero(s.labels[i])) <= set(s.object_category[i, :k].tolist())
        for j in range(k):  # an object that shows at least half of a pixel has its category labelled
            if s.visible_alpha[i, j].max() >= 128:
                assert s.labels[i, s.object_category[i, j]]
        # the visible alpha never exceeds the object's own, and their sum is at most 1 per pixel
        assert np.all(s.visible_alpha[i] <= s.object_alpha[i])
        assert s.visible_alpha[i].astype(int).sum(0).max() <= 255 + MAX_OBJECTS
        # different categories' masks do not overlap (each pixel's visible alpha sums to at most 1)
        assert s.category_masks[i].sum(0).max() <= 1


def test_masks_are_where_the_objects_changed_the_background(library):
    size, seed = 64, 3
    s = render_scenes(library, 10, seed=seed, size=size)
    cache = SpriteCache(library)
    for i in range(10):
        plan = plan_scene(library, np.random.default_rng([seed, i]), size)
        plan["objects"] = []
        background, _, _ = render_plan(plan, cache, size)
        background = np.round(background * 255).astype(np.uint8)
        untouched = s.object_alpha[i].max(0) == 0
        np.testing.assert_array_equal(s.images[i][untouched], background[untouched])
        opaque = s.visible_alpha[i].max(0) == 255
        if opaque.sum() > 10:  # the fake sprites are bright colours on grey-brown photographs
            differs = np.abs(s.images[i].astype(int) - background.astype(int)).sum(-1) > 30
            assert differs[opaque].mean() > 0.8
        union = s.category_masks[i].any(0)
        assert np.all(union[opaque]) and not union[untouched].any()


def test_occlusion_keeps_what_is_in_front():
    alphas = np.zeros((2, 4, 4), np.float32)
    alphas[0, :, :3] = 1.0
    alphas[1, :, 2:] = 0.5
    vis = visible_alpha(alphas)
    np.testing.assert_allclose(vis[1], alphas[1])
    np.testing.assert_allclose(vis[0][:, 2], 0.5)  # half hidden behind the half-transparent object
    np.testing.assert_allclose(vis[0][:, :2], 1.0)


def test_categories_are_balanced_and_size_is_a_parameter(library):
    s = render_scenes(library, 240, seed=0, size=32)
    freq = s.labels.mean(0)
    assert freq.min() > 0.1, dict(zip(CATEGORIES, freq.round(2)))
    sizes = [max(o["box"][2] - o["box"][0], o["box"][3] - o["box"][1]) / 32 for objs in s.objects for o in objs]
    assert 0.15 < np.median(sizes) < 0.8  # neither all tiny nor all covering the image
    assert render_scenes(library, 2, seed=0, size=96).images.shape == (2, 96, 96, 3)
    with pytest.raises(BrainITError, match="size"):
        render_scenes(library, 2, seed=0, size=8)


def test_words_are_drawn_with_the_font(library):
    if library.font is None:
        pytest.skip("DejaVu Sans Bold is not installed on this machine")
    sprite = render_word("CAFE", 20, (0, 0, 0), (255, 255, 255), library.font_path())
    assert sprite.ndim == 3 and sprite.shape[2] == 4 and sprite.shape[1] > sprite.shape[0]
    s = render_scenes(library, 60, seed=2, size=64)
    drawn = [o for objs in s.objects for o in objs if o["text"]]
    assert drawn and all(o["category"] == "word" and o["item"] is None for o in drawn)
