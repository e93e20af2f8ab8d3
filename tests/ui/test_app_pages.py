"""The app frame, Home, Reconstructions and Data pages under ``streamlit.testing.v1.AppTest``.

Every test runs ``app.py`` (the frame with its sidebar) against the tiny twin (twin01, twin02 trained,
twin03 held out; 8 test images of 32 px), run and generators of ``tests/conftest.py`` and switches to
a page, as a user would; what the page shows is checked against the data.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

from tests.ui.helpers import PAGES, ROOT, TIMEOUT, button, captions, errors, open_app, texts


@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_without_exception(app_env, page):
    at = open_app(page)
    assert not at.exception, [e.value for e in at.exception]


def test_frame_and_home(app_env):
    at = open_app()
    assert not errors(at)
    assert at.title[0].value == "Brain-IT Explorer"
    assert at.sidebar.selectbox(key="sb_subject").value == "twin01"
    assert at.sidebar.selectbox(key="sb_subject").options == ["twin01", "twin02"]
    body = texts(at)
    assert str(app_env.dataset) in body and str(app_env.run) in body and "twin (simulated)" in body
    assert "twin01, twin02" in body  # the subjects the run decodes in this dataset
    from brainit_core.reconstruction import grids

    assert f"cached reconstruction sets: {grids.cached_grids()} (under `{grids.cache_root()}`)" in body
    assert str(app_env.root) in str(grids.cache_root())  # the tests' data directory, never ~/.brainit
    links = [p.label for p in at.get("page_link")]
    assert links == ["Reconstructions", "Brain tokens", "Transfer lab", "Benchmark", "Data", "Learn"]
    assert not at.warning  # nothing is missing


def test_reconstructions_grid_is_cached_and_single_image_reruns(app_env):
    import shutil

    from brainit_core.data import load_dataset
    from brainit_core.reconstruction import grids as recon

    shutil.rmtree(recon.cache_root(), ignore_errors=True)  # the smoke test may have filled it
    at = open_app("pages/1_Reconstructions.py")
    assert not errors(at)
    n = at.slider(key="rc_n").value
    assert n == 8  # the tiny twin has 8 test images; default 8
    assert len(at.image) == 4 * n  # ground truth, low-level, semantic, fused per image; nothing else yet
    assert at.metric[0].value == f"{n} images" and "computed in" in at.metric[0].delta
    n_cached = recon.cached_grids()
    assert n_cached == 1
    # what the page shows is the cached grid of twin01's first 8 test images, captioned with its metrics
    ds = load_dataset(app_env.dataset)
    _, ids = ds.subject("twin01").averaged("test")
    grid = next(recon.cache_root().glob("*.npz"))
    with np.load(grid) as z:
        np.testing.assert_array_equal(z["ids"], ids[:n])
        size = z["img::fused"].shape[1]  # the generators' size; the ground truth is shown at it too
        assert z["img::fused"].shape == z["img::ground truth"].shape == (n, size, size, 3) and size >= 32
        shown = captions(at)
        assert shown[0::4] == [f"image {i}" for i in ids[:n]]
        for k, col in ((1, "low-level"), (2, "semantic"), (3, "fused")):
            assert shown[k::4] == [f"PixCorr {p:.3f} · SSIM {q:.3f}"
                                   for p, q in zip(z[f"met::{col}::PixCorr"], z[f"met::{col}::SSIM"])]

    at.run()  # a rerun (and a revisit) reads the disk cache
    assert "from the disk cache" in at.metric[0].delta

    # per-image metrics are in the captions and the table
    assert len(at.image) == 4 * n and captions(at) == shown  # the same grid, read back
    table = at.dataframe[0].value
    assert set(table["reconstruction"]) == {"low-level", "semantic", "fused"} and len(table) == 3 * n
    assert table["PixCorr"].between(-1, 1).all() and table["SSIM"].between(-1, 1).all()
    assert table["image_id"].tolist()[0::3] == [int(i) for i in ids[:n]]
    means = at.dataframe[1].value
    np.testing.assert_allclose(means.loc["fused", "SSIM"], table[table["reconstruction"] == "fused"]["SSIM"].mean(),
                               atol=1e-4)
    assert {d.label for d in at.get("download_button")} >= {"Download the grid (PNG)", "Download the metrics (CSV)"}

    # one image with other settings: low-level only, DIP mode with 2 steps
    at.selectbox(key="rc_image").select(int(table["image_id"].iloc[3]))
    at.checkbox(key="rc_sem").uncheck()
    at.radio(key="rc_mode").set_value("dip")
    at.number_input(key="rc_dip_steps").set_value(2)
    button(at, "Reconstruct").click()
    at.run()
    assert not errors(at)
    subject, pick, one = at.session_state["rc_single"]
    assert (subject, pick) == ("twin01", int(table["image_id"].iloc[3]))
    assert list(one.images) == ["ground truth", "low-level"]
    assert np.isfinite(one.metrics["low-level"]["SSIM"]).all()
    assert captions(at)[4 * n:] == ["ground truth", f"low-level: {one.metric_caption('low-level', 0)}"]
    assert f"{one.seconds:.2f} s · metrics are for this one image" in texts(at)

    # both branches in fast mode: the fused image, and the semantic-only one only when asked for
    at.checkbox(key="rc_sem").check()
    at.radio(key="rc_mode").set_value("fast")
    button(at, "Reconstruct").click()
    at.run()
    assert set(at.session_state["rc_single"][2].images) == {"ground truth", "low-level", "fused"}
    at.checkbox(key="rc_sem_only").check()
    button(at, "Reconstruct").click()
    at.run()
    assert set(at.session_state["rc_single"][2].images) == {"ground truth", "low-level", "semantic", "fused"}

    # no branch: a warning, no crash
    at.checkbox(key="rc_sem").uncheck()
    at.checkbox(key="rc_low").uncheck()
    button(at, "Reconstruct").click()
    at.run()
    assert any("at least one branch" in w.value for w in at.warning)

    # compare subjects on the same shared test image
    button(at, f"Reconstruct image {pick} for all 2 subjects").click()
    at.run()
    assert not errors(at)
    shown = captions(at)[-3:]  # ground truth, then each subject's fused image
    assert shown[0] == f"ground truth {pick}"
    assert shown[1].startswith("twin01: PixCorr ") and shown[2].startswith("twin02: PixCorr ")
    assert recon.cached_grids() == n_cached + 2


def test_data_page_report_bad_paths_and_nsd_check(app_env, tmp_path):
    from brainit_core.data import load_dataset

    ds = load_dataset(app_env.dataset)
    at = open_app("pages/5_Data.py")
    assert not errors(at)
    table = at.dataframe[0].value
    assert table["subject"].tolist() == ["twin01", "twin02", "twin03"]
    assert table["vertices"].tolist() == [len(ds.subject(s).vertices) for s in ds.subjects]
    assert table["test images"].tolist() == [8, 8, 8] and table["train images"].gt(0).all()
    assert table["held out"].tolist() == [False, False, True]
    assert f"`{app_env.dataset}` · source **twin** · mesh fsaverage5 · {len(ds.image_ids)} images" in texts(at)
    button(at, "Validate the twin").click()
    at.run()
    assert not errors(at)
    report = at.dataframe[1].value
    assert report["subject"].tolist() == ["twin01", "twin02", "twin03"]
    assert report["vertices"].tolist() == table["vertices"].tolist()
    assert report["ipsilateral pRFs (truth)"].between(0.03, 0.3).all()  # twin v2: some ipsilateral pRFs
    assert {"split-half r", "contralateral drive", "residual r"} <= set(report.columns)
    areas = at.dataframe[2].value
    assert areas["area"].tolist()[:3] == ["V1", "V2", "V3"]
    selectivity = at.dataframe[3].value  # patches on test composites and real photographs
    assert len(selectivity) and set(selectivity["patch"]) <= {"face", "body", "place", "word", "food"}
    assert {"d' localizer", "photos of it", "response to them", "selective in"} <= set(selectivity.columns)

    at.radio(key="dt_kind").set_value("A prepared dataset folder")
    at.text_input(key="dt_path").input(str(tmp_path / "nowhere"))
    at.run()
    assert any("nowhere" in e.value for e in at.error)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dataset.json").write_text("{not json")
    at.text_input(key="dt_path").input(str(bad))
    at.run()
    assert any(str(bad) in e.value for e in at.error) and not at.exception
    at.text_input(key="dt_path").input(str(app_env.dataset))
    at.run()
    assert any("twin dataset" in s.value for s in at.success)

    at.radio(key="dt_kind").set_value("An NSD download (root folder)")
    at.run()
    at.text_input(key="dt_nsd_root").input(str(tmp_path))
    at.run()
    button(at, "Check the files").click()
    at.run()
    assert [e.value for e in at.error] == ["Some files are missing:"]
    lines = at.code[-1].value.splitlines()
    assert lines[0].startswith("MISSING experiment design: ") and lines[1].startswith("MISSING stimuli: ")
    assert lines[2:] == [f"MISSING subj{s:02d} fsaverage: 0/40 sessions under {tmp_path}/nsddata_betas/ppdata/"
                         f"subj{s:02d}/fsaverage/betas_fithrf_GLMdenoise_RR" for s in (1, 2, 5, 7)]


def test_data_page_upload_betas(app_env):
    from brainit_core.data import load_dataset

    at = open_app("pages/5_Data.py")
    V = len(load_dataset(app_env.dataset).subject("twin01").vertices)
    bad = io.BytesIO()
    np.save(bad, np.zeros(V + 1, np.float32))
    at.file_uploader(key="dt_betas").upload("wrong.npy", bad.getvalue())
    at.run()
    assert any(f"expected one trial of {V} values" in e.value for e in at.error)

    good = io.BytesIO()
    np.save(good, np.random.default_rng(0).standard_normal(V).astype(np.float32))
    at.file_uploader(key="dt_betas").upload("trial.npy", good.getvalue())
    at.run()
    assert any(s.value.startswith(f"trial.npy: {V} values, mean ") for s in at.success)
    n_before = len(at.image)
    button(at, "Reconstruct").click()
    at.run()
    assert not errors(at)
    assert captions(at)[n_before:n_before + 2] == ["low-level", "fused"]


def test_data_page_in_silico_and_build(app_env, monkeypatch):
    import brainit_core.data.twin as twin
    from tests.factories import TWIN_SIZE

    at = open_app("pages/5_Data.py")
    n_before = len(at.image)
    button(at, "Show it and reconstruct").click()
    at.run()
    assert not errors(at)
    shown = captions(at)[n_before:]
    assert len(shown) == 3 and shown[0] == "photo"  # photo | low-level | fused
    assert shown[1].startswith("low-level: PixCorr ") and shown[2].startswith("fused: PixCorr ")

    real = twin.build_twin
    monkeypatch.setattr(twin, "build_twin", lambda out, config: real(out, twin.TwinConfig.preset(
        "ci", seed=config.seed, **{**TWIN_SIZE, "n_subjects": 1})))
    at.text_input(key="dt_name").input("built-by-test")
    at.run()
    button(at, "Build the twin").click()
    at.run()
    assert not errors(at)
    assert (app_env.root / "built-by-test" / "dataset.json").is_file()
    assert any("built-by-test" in s.value for s in at.success)
    button(at, "Use it").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    built = str(app_env.root / "built-by-test")
    assert at.session_state["sb_dataset"] == built and built in at.session_state["extra_datasets"]
    # AppTest reruns only the page after switch_page; the frame picks the choice up on a full run
    from streamlit.testing.v1 import AppTest

    frame = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    frame.session_state["extra_datasets"] = [built]
    frame.session_state["sb_dataset"] = built
    frame.run()
    assert not frame.exception
    assert frame.session_state["brainit_ctx"].dataset == built


def test_the_app_runs_torch_on_one_thread_unless_told(monkeypatch):
    import torch

    from brainit_core.ui import loaders

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("BRAINIT_APP_THREADS", raising=False)
        assert loaders.app_threads() == 1
        monkeypatch.setenv("BRAINIT_APP_THREADS", "bad")
        assert loaders.app_threads() == 1
        monkeypatch.setenv("BRAINIT_APP_THREADS", "2")
        loaders.use_app_threads()
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("BRAINIT_APP_THREADS", "1")
        loaders.use_app_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_warm_up_imports_what_the_model_pages_need():
    import sys

    from brainit_core.ui import loaders
    from brainit_core.viz.surface import load_surface

    loaders._warm()  # what the app's background thread runs: a renamed module would fail here
    assert all(name in sys.modules for name in loaders.WARM_MODULES)
    assert load_surface.cache_info().currsize >= 1


@pytest.mark.parametrize("name", ["..", "../escape", ".hidden", "a\\b", " "])
def test_data_page_refuses_unsafe_folder_names(app_env, name):
    """'..' would build into the parent of the data directory (and replace its subjects/)."""
    at = open_app("pages/5_Data.py")
    at.text_input(key="dt_name").input(name)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Not a usable folder name" in e.value for e in at.error), [e.value for e in at.error]
    assert "Build the twin" not in [b.label for b in at.button]
