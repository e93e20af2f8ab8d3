"""The claims, judged from a hand-made results dict with known winners and losers."""
from __future__ import annotations

import math

import pytest

from brainit_core.benchmark.claims import compute_claims, layout_share_kept
from tests.benchmark.results_factory import make_results


def test_beats_baselines_fails_on_the_metric_a_baseline_wins():
    c = compute_claims(make_results())["beats_baselines"]
    per = c["per_metric"]
    assert per["SSIM"]["beats_both"] is True and per["SSIM"]["ridge"]["margin"] == pytest.approx(0.1)
    # a lower distance counts as better: 0.4 vs 0.41 wins by 0.01
    assert per["Lite2 dist"]["beats_both"] is True
    assert per["Lite2 dist"]["global_embedding"]["margin"] == pytest.approx(0.01)
    # global embedding's 0.95 beats Brain-IT's 0.9 on Lite2-late: the claim fails there, by -0.05
    assert per["Lite2-late (2-way)"]["ridge"]["beats"] is True
    assert per["Lite2-late (2-way)"]["global_embedding"] == {"beats": False, "margin": pytest.approx(-0.05)}
    assert per["Lite2-late (2-way)"]["beats_both"] is False
    assert (c["all"], c["n_won"], c["n_metrics"]) == (False, 2, 3)


def test_beats_baselines_holds_when_brainit_wins_everywhere_and_skips_unavailable_columns():
    res = make_results()
    res["scores"]["brainit_fused"]["mean"]["Lite2-late (2-way)"] = 0.96
    res["scores"]["ridge"]["mean"]["SSIM"] = "unavailable"
    c = compute_claims(res)["beats_baselines"]
    assert c["per_metric"]["SSIM"]["beats_both"] is None and c["per_metric"]["SSIM"]["ridge"]["beats"] is None
    assert (c["all"], c["n_won"], c["n_metrics"]) == (True, 2, 2)


def test_fusion_claim_and_layout_share():
    f = compute_claims(make_results())["fusion"]
    assert f["ssim"]["fused_better"] is False and f["ssim"]["margin"] == pytest.approx(-0.02)
    assert f["ssim"]["share_kept"] == pytest.approx(0.2 / 0.22)  # fused 0.5 between 0.3 and 0.52
    assert f["ssim"]["paper_share_kept"] == pytest.approx((0.486 - 0.431) / (0.505 - 0.431))
    assert f["pixcorr"]["fused"] is None and math.isnan(f["pixcorr"]["share_kept"])  # no PixCorr column
    assert set(f["semantic"]) == {"Lite2-late (2-way)", "Lite2 dist"}
    assert f["semantic"]["Lite2-late (2-way)"]["fused_better"] is True
    assert f["semantic"]["Lite2 dist"]["margin"] == pytest.approx(0.05)
    assert f["semantic_all"] is True
    assert math.isnan(layout_share_kept(0.5, 0.3, 0.4))  # low-level not ahead: undefined
    assert math.isnan(layout_share_kept(0.5, "unavailable", 0.3))


def test_transfer_claim_is_judged_against_the_baselines_on_all_data():
    t = compute_claims(make_results())["transfer_60min"]
    assert t["subject"] == "s3" and t["all"] is True and (t["n_won"], t["n_metrics"]) == (3, 3)
    assert t["per_metric"]["Lite2 dist"]["global_embedding"]["margin"] == pytest.approx(0.11)
    res = make_results()
    res["transfer"]["scores"]["60"]["SSIM"] = 0.42  # between ridge (0.4) and global (0.45)
    t = compute_claims(res)["transfer_60min"]
    assert t["all"] is False and t["per_metric"]["SSIM"]["ridge"]["beats"] is True
    assert t["per_metric"]["SSIM"]["beats_both"] is False
    res["transfer"] = {"skipped": "no transfer runs given"}
    assert compute_claims(res)["transfer_60min"] == {"skipped": "no transfer runs given"}


def test_contralaterality_and_targets():
    c = compute_claims(make_results())
    k = c["contralaterality"]
    assert k["mean_index"] == 0.6 and k["per_subject"] == {"s1": 0.5, "s2": 0.7}
    assert k["pass"] is False and k["ratio"] == pytest.approx(0.75)  # 0.6 < 0.8
    tg = c["targets"]
    assert tg["fused_ssim_vs_oracle"]["ratio"] == pytest.approx(0.8) and tg["fused_ssim_vs_oracle"]["pass"] is True
    assert tg["contralaterality"]["pass"] is False
    res = make_results()
    res["attention_summary"]["contralaterality_index"] = 0.9
    res["scores"]["oracle"]["mean"]["SSIM"] = 0.7  # 0.5 / 0.7 < 0.8
    c = compute_claims(res)
    assert c["contralaterality"]["pass"] is True and c["targets"]["contralaterality"]["pass"] is True
    assert c["targets"]["fused_ssim_vs_oracle"]["pass"] is False
    res["attention_summary"] = {}
    k = compute_claims(res)["contralaterality"]
    assert math.isnan(k["mean_index"]) and k["pass"] is False
