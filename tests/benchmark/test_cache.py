"""The benchmark's result cache and its keys: hits, misses, and what a changed run invalidates."""
from __future__ import annotations

import numpy as np
from brainit_core.benchmark.cache import SHARED, ResultCache, method_key, result_key
from brainit_core.benchmark.methods import REGISTRY, RUN_FREE


class _Space:
    """A stand-in feature space: what the keys read of it."""

    def __init__(self, name="lite0"):
        self.name = name

    def describe(self):
        return {"name": self.name}

    def cache_key(self):
        return f"{self.name}_key"


BASE = {"run": "run-a", "generators": "gen-a", "recon": {}, "seed": 0, "version": 1}
IDS = [3, 5, 8]


def _keys(base=BASE, space=None, ids=IDS) -> dict:
    space = space or _Space()
    return {m.name: method_key(base, space, m.slot("sub01"), m.name, ids, m.run_dependent) for m in REGISTRY.values()}


def test_result_key_is_stable_and_sensitive():
    assert result_key({"a": 1, "b": 2}, "x") == result_key({"b": 2, "a": 1}, "x")  # dict order does not matter
    assert len(result_key("x")) == 24
    assert result_key("x", [1, 2]) != result_key("x", [2, 1])


def test_a_changed_run_invalidates_exactly_the_run_dependent_methods():
    before, after = _keys(), _keys({**BASE, "run": "run-b"})
    changed = {m for m in before if before[m] != after[m]}
    assert changed == {m for m, spec in REGISTRY.items() if spec.run_dependent}
    assert set(RUN_FREE) == {"ridge", "global_embedding", "oracle"} and not changed & set(RUN_FREE)
    assert {"brainit_fused", "brainit_low_level", "brainit_semantic", "oracle_noiseless", "transfer_60"} <= changed


def test_generators_space_and_images_change_every_key_they_enter():
    ref = _keys()
    gens = _keys({**BASE, "generators": "gen-b"})
    assert all(gens[m] != ref[m] for m in ref)
    space = _keys(space=_Space("lite1"))
    assert {m for m in ref if space[m] != ref[m]} == set(RUN_FREE)  # run-bound keys hold the run's checksum
    ids = _keys(ids=[3, 5, 9])
    assert all(ids[m] != ref[m] for m in ref)
    # np.int64 ids (as the dataset gives them) make the same key as ints
    assert _keys(ids=np.array(IDS)) == ref
    # every method has its own key within a slot
    assert len(set(ref.values())) == len(ref)


def test_cache_hit_miss_and_update(tmp_path):
    cache = ResultCache(tmp_path)
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    assert cache.get("sub01", "ridge", "k1") is None  # nothing yet
    meta = cache.put("sub01", "ridge", "k1", {"images": images}, {"seconds_per_image": 0.5})
    assert meta == {"seconds_per_image": 0.5, "key": "k1"}
    arrays, got = cache.get("sub01", "ridge", "k1")
    np.testing.assert_array_equal(arrays["images"], images)
    assert got == meta
    assert cache.get("sub01", "ridge", "k2") is None  # another key: a miss
    assert cache.get("sub02", "ridge", "k1") is None  # another slot: a miss
    cache.update_meta("sub01", "ridge", {**meta, "scores": {"SSIM": 0.25}})
    assert cache.get("sub01", "ridge", "k1")[1]["scores"] == {"SSIM": 0.25}
    npz, js = cache.paths("sub01", "ridge")
    assert npz == tmp_path / "cache" / "sub01" / "ridge.npz" and not list(npz.parent.glob("*.tmp*"))
    js.write_text("{not json")  # a malformed meta is a miss, not an error
    assert cache.get("sub01", "ridge", "k1") is None
    cache.put("sub01", "ridge", "k1", {"images": images}, {})
    npz.unlink()  # meta without its images: a miss
    assert cache.get("sub01", "ridge", "k1") is None


def test_only_the_oracle_is_shared_between_subjects():
    assert [m.name for m in REGISTRY.values() if m.slot("sub01") == SHARED] == ["oracle"]
    assert REGISTRY["ridge"].slot("sub01") == "sub01"
