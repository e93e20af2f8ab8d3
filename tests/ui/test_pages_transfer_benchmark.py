"""Transfer lab and Benchmark pages under AppTest, on the tiny twin (twin03 held out)."""
from __future__ import annotations

from tests.ui.helpers import button, errors, open_app, texts


def test_transfer_lab_runs_scores_and_draws_the_curve(app_env):
    import numpy as np

    from brainit_core.data import load_dataset
    from brainit_core.models import transfer as tr
    from brainit_core.runs import RunDirectory

    sd = load_dataset(app_env.dataset).subject("twin03")
    n_train = int(np.isin(sd.image_ids, sd.train_image_ids).sum())
    at = open_app("pages/3_Transfer_lab.py")
    assert not errors(at)
    assert at.selectbox[0].options == ["twin03"]
    at.radio[0].set_value(15).run()
    out = RunDirectory(tr.transfer_dir(app_env.run, "twin03", 15, app_env.root))
    config = RunDirectory(app_env.run).bit_config
    epochs, synthetic = config["transfer_epochs"], config["transfer_synthetic_per_real"]
    assert (f"{min(n_train, 187):,} single trials of twin03 ({n_train:,} available), {synthetic:g} synthetic per real, "
            f"{epochs} epochs; "
            f"output: `{out.path}`") in texts(at)
    estimate = tr.estimate_minutes(min(n_train, 187), epochs, synthetic_per_real=synthetic)
    assert not out.is_complete and f"Estimated time on this machine: about {estimate:.0f} min" in texts(at)
    button(at, "Run the transfer").click().run()
    assert not errors(at), errors(at)
    assert out.is_complete and out.subjects == ["twin01", "twin02", "twin03"]
    assert "This transfer has been run; its results are below." in texts(at)
    button(at, "Score it on the test images (Brain-IT vs ridge on full data)").click().run()
    assert not errors(at), errors(at)
    rows = tr.curve_rows(app_env.run, "twin03", app_env.root)
    assert [r["amount"] for r in rows] == ["15 min"]
    assert 0.0 <= rows[0]["brainit.semantic.two_way"] <= 1.0
    assert rows[0]["brainit.semantic.two_way"] == out.read_scores()["subjects"]["twin03"]["brainit"]["semantic"]["two_way"]
    (chart,) = at.get("plotly_chart")
    table = at.dataframe[0].value
    assert table["amount"].tolist() == ["15 min"] and table["brainit.semantic.two_way"].tolist() == [
        rows[0]["brainit.semantic.two_way"]]
    n_before = len(at.image)
    button(at, "Reconstruct").click().run()
    assert not errors(at) and len(at.image) == n_before + 3  # ground truth, low-level, fused rows of 4
    assert [len(im.value) for im in at.image[n_before:]] == [4, 4, 4]


def test_transfer_lab_explains_when_nobody_is_held_out(app_env, tmp_path, monkeypatch):
    import json
    import shutil

    copy = tmp_path / "twin"
    shutil.copytree(app_env.dataset, copy)
    meta = json.loads((copy / "dataset.json").read_text())
    meta["subjects"] = ["twin01", "twin02"]
    meta["heldout_subjects"] = []
    (copy / "dataset.json").write_text(json.dumps(meta))
    monkeypatch.setenv("BRAINIT_APP_DATA", str(copy))
    at = open_app("pages/3_Transfer_lab.py")
    assert not errors(at) and "nobody to transfer to" in texts(at)


def test_transfer_lab_on_the_shipped_bundle_offers_the_heldout_subject(app_env, monkeypatch):
    """The bundle ships twin05's first hour: the page offers a live transfer to it (15 minutes by default)."""
    from brainit_core.app_sources import bundle_dir

    b = bundle_dir()
    for key, sub in (("BRAINIT_APP_DATA", "dataset"), ("BRAINIT_APP_RUN", "run"), ("BRAINIT_APP_GENERATORS", "generators")):
        monkeypatch.setenv(key, str(b / sub))
    at = open_app("pages/3_Transfer_lab.py")
    assert not errors(at), errors(at)
    assert "nobody to transfer to" not in texts(at)
    assert at.selectbox[0].options == ["twin05"]
    assert "187 single trials of twin05 (750 available)" in texts(at)


def test_benchmark_page_scores_the_run_and_shows_the_table(app_env):
    at = open_app("pages/4_Benchmark.py")
    assert not errors(at)
    assert "No eval_features.json" in texts(at)
    button(at, "Score the run now").click().run()
    assert not errors(at), errors(at)
    assert (app_env.run / "eval_features.json").is_file()
    assert len(at.get("plotly_chart")) == 1
    table = next(d.value for d in at.dataframe if "method" in d.value.columns)  # the Images tab has one too
    assert set(table["method"]) == {"Brain-IT", "ridge"} and table["two_way"].between(0, 1).all()
    from brainit_core.runs import RunDirectory

    scores = RunDirectory(app_env.run).read_scores()["subjects"]
    assert table["subject"].unique().tolist() == list(scores) == ["twin01", "twin02"]
    row = table[(table["subject"] == "twin01") & (table["method"] == "Brain-IT") & (table["head"] == "semantic")]
    assert row["two_way"].tolist() == [scores["twin01"]["brainit"]["semantic"]["two_way"]]


def test_benchmark_page_shows_the_benchmark_results(app_env):
    from brainit_core.benchmark import run_benchmark

    out = app_env.root / "benchmarks" / "tiny"
    run_benchmark(app_env.dataset, app_env.run, app_env.generators, out, limit=3, networks="offline", device="cpu")
    at = open_app("pages/4_Benchmark.py")
    assert not errors(at), errors(at)
    table = at.dataframe[0].value
    assert "Brain-IT (fused)" in table.index and "global embedding (MindEye style)" in table.index
    assert table.loc["oracle (true features)", "s / image"] > 0
    assert len(at.image) >= 2  # scores and timing plots at least
    assert "Claims" in texts(at) and "Contralaterality" in texts(at)
