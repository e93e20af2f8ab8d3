"""Transfer lab and Benchmark pages under AppTest, on the tiny twin (twin03 held out)."""
from __future__ import annotations

from tests.ui.test_app_pages import button, errors, open_app, texts


def test_transfer_lab_runs_scores_and_draws_the_curve(app_env):
    from brainit_core.ui import transfer as tr

    at = open_app("pages/3_Transfer_lab.py")
    assert not errors(at)
    assert at.selectbox[0].options == ["twin03"]
    at.radio[0].set_value(15).run()
    out = tr.transfer_dir(app_env.run, "twin03", 15, app_env.root)
    assert str(out) in texts(at) and not tr.is_finished(out)
    button(at, "Run the transfer").click().run()
    assert not errors(at), errors(at)
    assert tr.is_finished(out)
    button(at, "Score it on the test images (Brain-IT vs ridge on full data)").click().run()
    assert not errors(at), errors(at)
    rows = tr.curve_rows(app_env.run, "twin03", app_env.root)
    assert [r["amount"] for r in rows] == ["15 min"]
    assert 0.0 <= rows[0]["brainit.semantic.two_way"] <= 1.0
    assert len(at.get("plotly_chart")) == 1
    button(at, "Reconstruct").click().run()
    assert not errors(at) and len(at.image) >= 3


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


def test_transfer_lab_on_the_shipped_bundle_shows_the_measured_curve(app_env, monkeypatch):
    """The bundle has nobody to transfer to; the page shows the transfer its benchmark measured instead."""
    import json

    from brainit_core.ui.sources import bundle_dir

    b = bundle_dir()
    for key, sub in (("BRAINIT_APP_DATA", "dataset"), ("BRAINIT_APP_RUN", "run"), ("BRAINIT_APP_GENERATORS", "generators")):
        monkeypatch.setenv(key, str(b / sub))
    at = open_app("pages/3_Transfer_lab.py")
    assert not errors(at), errors(at)
    shipped = json.loads((b / "benchmark" / "results.json").read_text())["transfer"]
    assert "nobody to transfer to" in texts(at)
    assert [h.value for h in at.subheader] == [f"Measured: transfer of this run to {shipped['subject']}"]
    assert len(at.get("plotly_chart")) == 1
    rows = at.dataframe[0].value
    assert list(rows["amount"]) == ["15 min", "60 min", "all"]
    assert rows["SSIM"].tolist() == [shipped["scores"][a]["SSIM"] for a in ("15", "60", "all")]


def test_benchmark_curve_rows():
    from brainit_core.ui import transfer as tr

    res = {"transfer": {"amounts": ["15", "all"], "scores": {"15": {"SSIM": 0.5, "Incep": "unavailable"},
                                                             "all": {"SSIM": 0.7, "Incep": "unavailable"}},
                        "baselines": {"ridge": {"SSIM": 0.6}}}}
    rows, base = tr.benchmark_curve(res)
    assert rows == [{"amount": "15 min", "SSIM": 0.5}, {"amount": "all", "SSIM": 0.7}] and base == {"ridge": {"SSIM": 0.6}}
    assert tr.benchmark_curve({"transfer": {"skipped": "no runs"}}) is None and tr.benchmark_curve(None) is None


def test_a_bundled_run_answers_to_the_sha256_of_its_source(app_env):
    import json

    from brainit_core.ui import transfer as tr
    from brainit_core.ui.sources import bundle_dir

    bundled = json.loads((bundle_dir() / "run" / "bit.json").read_text())
    assert tr.run_identities(bundle_dir() / "run") == {bundled["sha256"], bundled["meta"]["bundled_from_sha256"]}
    assert tr.run_identities(app_env.run) == {json.loads((app_env.run / "bit.json").read_text())["sha256"]}


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
