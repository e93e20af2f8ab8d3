"""The method registry, and that a registered method is produced, cached and timed by its entry alone."""
from __future__ import annotations

import numpy as np
import pytest

from brainit_core.benchmark import methods as M
from brainit_core.benchmark.bench import Bench
from brainit_core.benchmark.cache import ResultCache

TABLE = ("brainit_fused", "brainit_low_level", "brainit_semantic", "ridge", "global_embedding", "oracle",
         "oracle_noiseless", "brainit_dip", "brainit_low_level_subset")
DIP_ROWS = ("brainit_dip", "brainit_low_level_subset")


def test_registry_declares_every_row_once_in_table_order():
    assert M.METHODS == TABLE
    assert list(M.REGISTRY) == [*TABLE, "transfer_15", "transfer_60", "transfer_all", "stage2_fused", "stage2_semantic"]
    assert M.STAGE2 == ("stage2_fused", "stage2_semantic")
    assert M.table_methods(is_twin=True, stage2=True) == [*TABLE, "stage2_fused", "stage2_semantic"]
    assert M.BASELINES == ("ridge", "global_embedding")
    assert M.LABELS["brainit_fused"] == "Brain-IT (fused)" and M.LABELS["ridge"] == "ridge (Brain-Diffuser style)"
    assert M.table_methods(is_twin=True) == list(TABLE)
    assert M.table_methods(is_twin=False) == [m for m in TABLE if m != "oracle_noiseless"]  # it needs a twin
    assert M.table_methods(is_twin=True, dip=False) == [m for m in TABLE if m not in DIP_ROWS]
    assert [m for m in TABLE if M.REGISTRY[m].subset] == list(DIP_ROWS)
    assert all(M.REGISTRY[m].image == "low_level" for m in DIP_ROWS)
    assert [m.name for m in M.group_of(M.REGISTRY["brainit_semantic"])] == [
        "brainit_semantic", "brainit_fused", "brainit_low_level"]
    assert M.group_of(M.REGISTRY["ridge"]) == [M.REGISTRY["ridge"]]
    assert [m for m in M.REGISTRY.values() if m.keeps_attention] == [M.REGISTRY["brainit_fused"]]
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        M.get_method("nope")


def test_seconds_per_image_count_the_stages_of_each_image_kind():
    timing = {"features": 1.0, "low_level": 2.0, "fusion": 4.0, "semantic": 8.0}
    assert M.REGISTRY["brainit_fused"].seconds_per_image(timing, 2) == 3.5  # (1 + 2 + 4) / 2
    assert M.REGISTRY["brainit_low_level"].seconds_per_image(timing, 2) == 1.5
    assert M.REGISTRY["brainit_semantic"].seconds_per_image(timing, 2) == 4.5
    assert M.REGISTRY["ridge"].seconds_per_image({"low_level": 2.0, "fusion": 4.0}, 3) == 2.0


class _Space:
    def describe(self):
        return {"name": "toy"}

    def cache_key(self):
        return "toy"


class _Run:
    space = _Space()


def _bench(tmp_path) -> Bench:
    """A Bench with only what caching needs (no dataset, run or generators)."""
    b = Bench.__new__(Bench)
    b.cache, b.run = ResultCache(tmp_path), _Run()
    b.base = {"run": "r1", "generators": "g", "recon": {}, "seed": 0, "version": 1}
    return b


def test_a_new_entry_is_all_a_method_needs(tmp_path, monkeypatch):
    calls = []
    images = np.full((2, 4, 4, 3), 7, np.uint8)

    def produce(bench, subject, betas, ids, name):
        calls.append((subject, name))
        return M.Output({"fused": images, "semantic": images + 1}, {"features": 1.0, "low_level": 1.0,
                                                                   "fusion": 2.0, "semantic": 5.0})

    toy = M.Method("toy", "toy method", produce, run_dependent=False, group="toys")
    toy_sem = M.Method("toy_semantic", "toy, semantic", produce, image="semantic", group="toys")
    monkeypatch.setitem(M.REGISTRY, "toy", toy)
    monkeypatch.setitem(M.REGISTRY, "toy_semantic", toy_sem)
    b = _bench(tmp_path)
    got, meta = b.images("sub01", "toy", None, [4, 9])
    np.testing.assert_array_equal(got, images)
    assert meta["seconds_per_image"] == 2.0 and meta["method"] == "toy"
    # its group sibling came from the same production and is cached too
    sem, meta_sem = b.images("sub01", "toy_semantic", None, [4, 9])
    np.testing.assert_array_equal(sem, images + 1)
    assert meta_sem["seconds_per_image"] == 3.0 and calls == [("sub01", "toy")]
    # a new run: the run-free method is read from the cache, the run-bound one is produced again
    b.base = {**b.base, "run": "r2"}
    b.images("sub01", "toy", None, [4, 9])
    assert calls == [("sub01", "toy")]
    b.images("sub01", "toy_semantic", None, [4, 9])
    assert calls == [("sub01", "toy"), ("sub01", "toy_semantic")]
    # other images: another key
    b.images("sub01", "toy", None, [4, 10])
    assert len(calls) == 3
