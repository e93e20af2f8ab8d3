"""results.md from a hand-made results dict; refresh_report and load_results on disk."""
from __future__ import annotations

import json

import pytest

from brainit_core.benchmark import load_results
from brainit_core.benchmark.claims import compute_claims
from brainit_core.benchmark.report import refresh_report, results_markdown
from brainit_core.errors import BrainITError
from tests.benchmark.results_factory import make_results


def _with_claims() -> dict:
    res = make_results()
    res["claims"] = compute_claims(res)
    return res


def test_markdown_holds_the_numbers_and_the_verdicts():
    md = results_markdown(_with_claims())
    # mean table: label, the three columns with their arrows, seconds per image
    assert "| method | SSIM ↑ | Lite2-late (2-way) ↑ | Lite2 dist ↓ | s / image |" in md
    assert "| global embedding | 0.450 | 0.950 | 0.410 | 1.500 |" in md
    assert "| brainit fused | 0.500 | 0.900 | 0.400 | 1.000 |" in md  # the s1 table
    assert "Lite1/Lite2 columns are this project's offline substitutes" in md
    # transfer table: the 60-minute run and the baselines on all data
    assert "| Brain-IT, 60 min | 0.460 | 0.970 | 0.300 | 1.250 |" in md
    assert "| ridge (Brain-Diffuser style), all data | 0.400 | 0.800 | 0.500 | 0.500 |" in md
    # claim 1: 2 of 3, the failing metric with its negative margin
    assert "2 of 3 metrics (not all)" in md
    assert "| Lite2-late (2-way) | no | 0.100 | -0.050 |" in md
    assert "| SSIM (vs low-level only) | 0.500 | 0.520 | no | -0.020 |" in md
    assert "SSIM 0.909" in md  # share kept, 0.2 / 0.22
    assert "3 of 3 metrics." in md  # transfer
    assert "Mean index 0.600" in md and "s1 0.500, s2 0.700" in md
    assert "| mean contralaterality | 0.600 | 0.800 | 0.750 | no |" in md
    assert "- a note" in md


def test_markdown_says_what_was_skipped():
    res = make_results()
    res["transfer"] = {"skipped": "no transfer runs given"}
    res["claims"] = compute_claims(res)
    md = results_markdown(res)
    assert md.count("Skipped: no transfer runs given.") == 2  # the curve and claim 3


def test_refresh_report_recomputes_claims_and_markdown_from_results_json(tmp_path):
    res = _with_claims()
    expected_claims = json.loads(json.dumps(res["claims"]))
    stale = {**res, "claims": {"beats_baselines": "stale"}}
    (tmp_path / "results.json").write_text(json.dumps(stale))
    (tmp_path / "results.md").write_text("old")
    out = refresh_report(tmp_path)
    written = json.loads((tmp_path / "results.json").read_text())
    assert json.dumps(written["claims"], sort_keys=True) == json.dumps(expected_claims, sort_keys=True)
    assert out["claims"]["beats_baselines"]["n_won"] == 2
    assert (tmp_path / "results.md").read_text() == results_markdown(res)
    assert {k: v for k, v in written.items() if k != "claims"} == json.loads(
        json.dumps({k: v for k, v in res.items() if k != "claims"}))  # nothing else changed


def test_load_results_adds_present_plots_and_markdown(tmp_path):
    res = {**_with_claims(), "plots": [str(tmp_path / "elsewhere" / "scores.png"), "timing.png"]}
    (tmp_path / "results.json").write_text(json.dumps(res))
    (tmp_path / "scores.png").write_bytes(b"png")
    (tmp_path / "results.md").write_text("# md")
    got = load_results(tmp_path)
    assert got["plots"] == [str(tmp_path / "scores.png")]  # timing.png is absent
    assert got["markdown"] == "# md" and got["scores"] == json.loads(json.dumps(res["scores"]))


@pytest.mark.parametrize("fn", [load_results, refresh_report])
def test_missing_or_malformed_results_say_so(tmp_path, fn):
    with pytest.raises(BrainITError, match="results.json not found or unreadable"):
        fn(tmp_path)
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(BrainITError, match="not found or unreadable"):
        fn(tmp_path)
