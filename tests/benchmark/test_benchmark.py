"""The benchmark end to end on a tiny twin (ci sizes): complete results, no quality thresholds."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from brainit_core.benchmark.run import METHODS, claims, run_benchmark


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.ui.conftest import build_app_data

    return build_app_data(tmp_path_factory.mktemp("bench"))


def test_benchmark_writes_complete_results_and_reuses_its_cache(tiny, tmp_path, capsys):
    from brainit_core.cli import main

    out = tmp_path / "bench"
    assert main(["benchmark", "--data", str(tiny.dataset), "--run", str(tiny.run), "--generators",
                 str(tiny.generators), "--out", str(out), "--limit", "4", "--threads", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["setup"]["n_images"] == 4 and res["setup"]["twin"] is True
    assert set(res["scores"]) == {"twin01", "twin02"}
    for subject, per in res["scores"].items():
        assert set(per) == set(METHODS)
        for method, cols in per.items():
            assert {"PixCorr", "SSIM"} <= set(cols)
            assert all(math.isfinite(v) for v in cols.values() if isinstance(v, float)), (subject, method)
            assert res["seconds_per_image"][subject][method] > 0
    assert set(res["claims"]) == {"1_beats_baselines", "2_fusion", "4_contralateral", "target_ssim_ratio"}
    assert (out / "results.md").read_text().startswith("| method |") and (out / "scores.png").stat().st_size > 0
    # the oracle does not depend on the subject; a second call reads every image from the cache
    assert res["scores"]["twin01"]["oracle"] == res["scores"]["twin02"]["oracle"]
    cached = {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()}
    again = run_benchmark(tiny.dataset, tiny.run, tiny.generators, out, limit=4)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cache").iterdir()} == cached
    assert again["mean"] == res["mean"]


def test_claims_follow_the_numbers():
    res = {"mean": {"brainit_fused": {"SSIM": 0.5, "PixCorr": 0.3, "Lite2 dist": 0.4},
                    "brainit_low_level": {"SSIM": 0.52}, "brainit_semantic": {"SSIM": 0.3, "Lite2 dist": 0.45},
                    "ridge": {"SSIM": 0.4, "PixCorr": 0.2, "Lite2 dist": 0.5}, "oracle": {"SSIM": 0.625}},
           "contralaterality": {"a": {"index": 0.5, "fraction": 0.9}, "b": {"index": 0.3, "fraction": np.nan}}}
    c = claims(res)
    assert c["1_beats_baselines"]["holds"] is True  # lower distance counts as better
    assert c["target_ssim_ratio"] == pytest.approx(0.8)
    assert c["4_contralateral"]["mean_index"] == pytest.approx(0.4)
    assert c["4_contralateral"]["mean_fraction"] == pytest.approx(0.9)
    res["mean"]["ridge"]["Lite2 dist"] = 0.3
    assert claims(res)["1_beats_baselines"]["holds"] is False
