"""The benchmark end to end on a tiny twin: complete results whose scores are the metrics table of
the cached images, a cached rerun, and another run re-decoding only the run-bound rows.

No quality thresholds: the tiny run and random generators only exercise the plumbing.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from brainit_core.benchmark import load_results, run_benchmark
from brainit_core.benchmark.methods import BASELINES, METHODS, REGISTRY

SUBJECTS = ("twin01", "twin02")
LIMIT = 4
DIP = 2  # the DIP rows' images (the ci preset here: the demo preset's 200 steps are for real runs)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.factories import build_app_data

    return build_app_data(tmp_path_factory.mktemp("bench"), seed=7)  # the benchmark works on a twin of any seed


def test_benchmark_end_to_end_complete_results_cached_rerun(tiny, tmp_path, capsys, monkeypatch):
    from brainit_core.benchmark import bench as bench_module
    from brainit_core.benchmark.categories import CategoryClassifier, dominant_categories
    from brainit_core.cli import main
    from brainit_core.data import load_dataset
    from brainit_core.metrics import Evaluator, evaluate_reconstructions
    from brainit_core.metrics.networks import image_features
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.transfer import transfer_subject

    # one transfer run for the held-out subject, given by path for every amount (transfer itself is
    # tested in tests/models; here only its plumbing into the curve)
    trun = transfer_subject(tiny.dataset, "twin03", "all", tiny.run, tmp_path / "t-all", device="cpu")
    monkeypatch.setattr(bench_module, "DIP_PRESET", "ci")
    out = tmp_path / "bench"
    argv = ["benchmark", "--data", str(tiny.dataset), "--run", str(tiny.run), "--generators",
            str(tiny.generators), "--out", str(out), "--limit", str(LIMIT), "--threads", "1", "--device", "cpu",
            "--networks", "lite2", "--transfer-runs", f"15={trun}", f"60={trun}", f"all={trun}",
            "--dip-images", str(DIP), "--category-train", "40"]
    assert main(argv) == 0
    assert "## Claims" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    cols = list(res["columns"])
    assert cols == ["PixCorr", "SSIM", "Lite2-early (2-way)", "Lite2-late (2-way)", "Lite2 dist", "Category acc."]
    assert res["methods"] == list(METHODS) and res["is_twin"] is True
    assert res["subjects"] == list(SUBJECTS) and res["n_images"] == {s: LIMIT for s in SUBJECTS}

    # every score is the metrics table of the cached images against the seen images, and the category
    # accuracy the cached classifier gives them (fitted on training images only)
    ds = load_dataset(tiny.dataset)
    clf = CategoryClassifier.load(out / "categories" / "classifier.npz",
                                  str(np.load(out / "categories" / "classifier.npz")["key"]))
    assert clf.n_train == 40
    ext = Evaluator("lite2", device="cpu").extractor("lite2")
    for s in SUBJECTS:
        all_ids = ds.subject(s).averaged("test")[1][:LIMIT]
        for m in METHODS:
            ids = all_ids[:DIP] if REGISTRY[m].subset else all_ids
            truth = ds.images(ids)
            with np.load(out / "cache" / REGISTRY[m].slot(s) / f"{m}.npz") as z:
                images = z["images"]
            assert len(images) == len(truth) and images.dtype == np.uint8
            table = evaluate_reconstructions(truth, images, networks="lite2", device="cpu")
            scores = dict(res["scores"][m][s])
            category = scores.pop("Category acc.")
            assert scores == pytest.approx(table, rel=1e-6, abs=1e-9), (m, s)
            labels = dominant_categories(np.load(tiny.dataset / "ground_truth" / "stimuli.npz")["category_coverage"])[ids]
            feats = image_features(ext, images)["late"][labels >= 0]
            assert category == pytest.approx(float(np.mean(clf.predict(feats) == labels[labels >= 0]))), (m, s)
            assert res["seconds_per_image"][m][s] > 0
    # the DIP rows: DIP images per subject, said in the label, the report and results["dip"]; the inverter
    # row beside it holds the inverter's images of the same test images
    assert res["method_images"]["brainit_dip"] == res["method_images"]["brainit_low_level_subset"] == DIP
    assert res["method_images"]["brainit_fused"] == LIMIT
    assert res["method_labels"]["brainit_dip"].endswith(f", {DIP} images")
    assert res["dip"]["n_images"] == DIP and res["dip"]["preset"] == "ci" and res["dip"]["seconds_per_image"] > 0
    with np.load(out / "cache" / "twin01" / "brainit_low_level.npz") as a, \
            np.load(out / "cache" / "twin01" / "brainit_low_level_subset.npz") as b, \
            np.load(out / "cache" / "twin01" / "brainit_dip.npz") as d:
        assert np.array_equal(a["images"][:DIP], b["images"]) and not np.array_equal(b["images"], d["images"])
    # category accuracy: chance, the seen images' own score, the classifier, in results and the report
    cat = res["categories"]
    assert cat["column"] == "Category acc." and set(cat["ground_truth"]) == {*SUBJECTS, "mean"}
    test_labels = dominant_categories(np.load(tiny.dataset / "ground_truth" / "stimuli.npz")["category_coverage"])[
        ds.subject("twin01").averaged("test")[1][:LIMIT]]
    test_labels = test_labels[test_labels >= 0]
    assert cat["chance"]["twin01"] == pytest.approx(float(np.mean(test_labels == clf.majority)))
    assert cat["most_common"] == cat["categories"][clf.majority] and cat["n_classifier_images"] == 40
    assert "Category acc." in res["claims"]["beats_baselines"]["per_metric"]
    for m in METHODS:
        for c in cols:
            assert res["scores"][m]["mean"][c] == pytest.approx(np.mean([res["scores"][m][s][c] for s in SUBJECTS]))
    # the three Brain-IT rows are different images of one production
    with np.load(out / "cache" / "twin01" / "brainit_fused.npz") as f, \
            np.load(out / "cache" / "twin01" / "brainit_semantic.npz") as g:
        assert not np.array_equal(f["images"], g["images"]) and "cross_lowlevel" in f.files
    # the oracle's true features do not depend on the subject: made once, shared
    assert res["scores"]["oracle"]["twin01"] == res["scores"]["oracle"]["twin02"]
    assert (out / "cache" / "_shared" / "oracle.npz").is_file()
    assert not any((out / "cache" / s / "oracle.npz").exists() for s in ("twin01", "twin02", "twin03"))

    # transfer curve: three amounts from the same run give the same scores, equal to the table of its images
    tr = res["transfer"]
    assert tr["subject"] == "twin03" and tr["amounts"] == ["15", "60", "all"]
    assert tr["scores"]["15"] == tr["scores"]["60"] == tr["scores"]["all"]
    ids3 = ds.subject("twin03").averaged("test")[1][:LIMIT]
    ev = Evaluator("lite2", device="cpu")
    for name, scores in [("transfer_60", tr["scores"]["60"]), *[(m, tr["baselines"][m]) for m in BASELINES]]:
        with np.load(out / "cache" / "twin03" / f"{name}.npz") as z:
            table = ev.score(ds.images(ids3), z["images"], truth_key="twin03")
            assert {c: v for c, v in scores.items() if c != "Category acc."} == pytest.approx(table, rel=1e-6)

    # claims follow the scores
    c = res["claims"]
    fused, ridge = res["scores"]["brainit_fused"]["mean"], res["scores"]["ridge"]["mean"]
    for col in cols:
        margin = fused[col] - ridge[col] if res["columns"][col]["higher_is_better"] else ridge[col] - fused[col]
        assert c["beats_baselines"]["per_metric"][col]["ridge"]["margin"] == pytest.approx(margin)
    assert c["targets"]["fused_ssim_vs_oracle"]["ratio"] == pytest.approx(
        fused["SSIM"] / res["scores"]["oracle"]["mean"]["SSIM"])
    run = BrainITRun.load(tiny.run, device="cpu")
    for s in SUBJECTS:
        contra = res["attention"][s]["contralaterality"]
        assert contra["n_tokens"] == run.model.config.n_clusters == len(contra["per_token"])
        assert "V1" in res["attention"][s]["prf_agreement"]["per_area"]
    assert c["contralaterality"]["per_subject"] == {s: res["attention"][s]["contralaterality"]["index"]
                                                    for s in SUBJECTS}

    # files: markdown, plots, the app's view
    md = (out / "results.md").read_text()
    assert f"| Brain-IT (fused) | {fused['PixCorr']:.3f} | {fused['SSIM']:.3f} |" in md
    assert "## Category accuracy" in md and f"| chance (always '{cat['most_common']}') | {cat['chance']['mean']:.3f} |" in md
    assert f"on the first {DIP} test images of each subject" in md
    for name in ("scores.png", "timing.png", "transfer.png", "contralaterality.png"):
        assert (out / name).stat().st_size > 1000, name
    loaded = load_results(out)
    assert loaded["mean"]["ridge"]["SSIM"] == ridge["SSIM"]
    assert loaded["setup"]["n_images"] == LIMIT and len(loaded["plots"]) == 4 and loaded["markdown"] == md

    # benchmark-report re-judges the claims from results.json alone (e.g. results written by older code)
    stale = {k: v for k, v in res.items() if k != "claims"}
    (out / "results.json").write_text(json.dumps(stale))
    (out / "results.md").write_text("old")
    assert main(["benchmark-report", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["claims"] == json.loads(json.dumps(c))
    assert (out / "results.md").read_text() == md

    # a second call reads every reconstruction and baseline from the cache
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix in (".npz", ".safetensors")}
    again = run_benchmark(tiny.dataset, tiny.run, tiny.generators, out, limit=LIMIT, device="cpu", networks="lite2",
                          transfer_runs={"15": trun, "60": trun, "all": trun}, dip_images=DIP, category_train=40)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["scores"] == res["scores"]

    # another BIT run (here the transfer run, which holds the same two subjects and more) decodes its own
    # images again; the baselines and the oracle do not depend on it and are read from the cache
    other = run_benchmark(tiny.dataset, trun, tiny.generators, out, subjects=list(SUBJECTS), limit=LIMIT,
                          device="cpu", networks="lite2", dip_images=DIP, category_train=40)
    changed = {p.relative_to(out).as_posix() for p, t in stamps.items() if p.stat().st_mtime_ns != t}
    run_bound = {f"cache/{s}/{m}.npz" for s in SUBJECTS for m in METHODS if REGISTRY[m].run_dependent}
    assert changed == run_bound
    for m in ("ridge", "global_embedding", "oracle"):
        assert other["scores"][m] == res["scores"][m]


def test_benchmark_on_non_twin_data_skips_twin_parts(tmp_path):
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.training import train_run
    from tests.factories import make_run_dataset
    from tests.factories import build_tiny_generators

    ds = make_run_dataset(tmp_path / "data")
    train_run(ds, preset="ci", out=tmp_path / "run", device="cpu")
    gens = build_tiny_generators(BrainITRun.load(tmp_path / "run", device="cpu").space)
    res = run_benchmark(ds, tmp_path / "run", gens, tmp_path / "out", limit=3, device="cpu", networks=[],
                        dip_images=0)
    assert res["is_twin"] is False
    assert res["methods"] == [m for m in METHODS if m != "oracle_noiseless" and not REGISTRY[m].subset]
    assert any("not a twin" in n for n in res["notes"]) and "skipped" in res["transfer"]
    assert any("category accuracy skipped" in n for n in res["notes"]) and "categories" not in res
    assert "dip" not in res
    assert "prf_agreement" not in res["attention"]["sub01"]
    assert set(res["columns"]) == {"PixCorr", "SSIM"}
    assert "skipped" in res["claims"]["transfer_60min"]
