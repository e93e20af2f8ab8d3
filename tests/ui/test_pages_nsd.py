"""The Brain tokens, Data and Learn pages under AppTest on NSD-format data in fsaverage and func1pt8mm space.

``nsd_app_data`` (tests/conftest.py) prepares an NSD tree written in NSD's own file formats (a fake
icosahedral fsaverage of 40,962 vertices per hemisphere with its FreeSurfer surfaces and flat patches,
NSD's ROI atlases, func1pt8mm volumes with their mean image and transforms) and trains a ci run on it.
"""
import numpy as np
import pytest

from tests.ui.helpers import open_app


@pytest.fixture
def nsd_env(nsd_app_data, monkeypatch):
    for k, v in nsd_app_data.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("BRAINIT_FSAVERAGE_DIR", raising=False)
    monkeypatch.delenv("SUBJECTS_DIR", raising=False)
    return nsd_app_data


def problems(at) -> list:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def charts(at) -> list:
    return at.get("plotly_chart")


def figures(at) -> list:
    """The plotly figures shown, as dicts."""
    import json

    return [json.loads(c.proto.spec) for c in charts(at)]


def pictures(at) -> list:
    """Matplotlib figures (the volume slices) shown with st.pyplot."""
    return at.get("image")


def notes(at) -> str:
    return "\n".join(c.value for c in at.caption)


def space_of(data) -> str:
    return "func1pt8mm" if "func1pt8mm" in str(data.dataset) else "fsaverage"


def test_brain_tokens_page(nsd_env):
    at = open_app("pages/2_Brain_tokens.py")
    assert not problems(at), problems(at)
    assert at.toggle(key="bt_gt").disabled  # no ground truth in NSD
    metrics = {m.label: m.value for m in at.metric}
    assert "Contralaterality index" in metrics
    modes = at.selectbox(key="bt_mode").options
    if space_of(nsd_env) == "fsaverage":
        assert modes == ["inflated", "inflated + flat", "flat", "pial"]
        assert "full resolution (40,962 vertices per hemisphere)" in notes(at)
        figs = figures(at)
        meshes = [t for t in figs[0]["data"] if t["type"] == "mesh3d"]
        assert len(charts(at)) == 6 and len(meshes) == 4
        assert len(meshes[1]["text"]) > 4000  # the map is drawn on the full-resolution vertices
    else:
        assert modes == ["slices", "interactive", "inflated", "inflated + flat", "flat"]
        assert "func1pt8mm volume over `mean.nii.gz`" in notes(at)
        assert len(pictures(at)) == 3  # clusters, token attention, location map as orthogonal slices
        assert len(charts(at)) == 3  # image, location image, token weights
    assert set(at.selectbox(key="bt_atlas").options) == {"no borders", "prf-visualrois", "floc-faces", "streams"}
    at.selectbox(key="bt_atlas").set_value("prf-visualrois").run()
    assert not problems(at)
    at.selectbox(key="bt_mode").set_value("inflated + flat").run()
    assert not problems(at), problems(at)
    fig = figures(at)[0]
    assert {"scene", "scene2", "scene3", "scene4"} <= set(fig["layout"])  # inflated row, flat row
    borders = [t for t in fig["data"] if t.get("name") == "borders"]
    assert len(borders) == 4  # one line trace per hemisphere and mesh
    texts = [t for t in fig["data"] if t["type"] == "mesh3d" and "text" in t]
    assert any("area: V1" in s for t in texts for s in t["text"]), "hover names the ROI"
    at.number_input(key="bt_thr").set_value(0.5).run()
    assert not problems(at)
    fmt = at.radio(key="bt_export_fmt")
    label = at.get("download_button")[0].proto.label
    if space_of(nsd_env) == "fsaverage":
        assert fmt.options == ["GIFTI", "MGH"] or fmt.options == ["gifti", "mgh"]
        assert "fsaverage (40,962 vertices each)" in label
    else:
        assert "NIfTI, subj01's func1pt8mm grid 20x24x20" in label
        at.selectbox(key="bt_mode").set_value("interactive").run()
        assert not problems(at)
        assert at.get("iframe"), "nilearn's interactive viewer"


def test_data_page(nsd_env):
    at = open_app("pages/5_Data.py")
    assert not problems(at), problems(at)
    table = at.dataframe[0].value
    assert table["subject"].tolist() == ["subj01", "subj02"]
    assert at.radio(key="dc_map").value == "atlas: prf-visualrois"
    sources = at.dataframe[1].value
    assert "ROI atlas prf-visualrois" in sources["for"].tolist()
    if space_of(nsd_env) == "fsaverage":
        fig = figures(at)[0]
        assert sum(t.get("name") == "borders" for t in fig["data"]) == 4
        legend = {t["name"] for t in fig["data"] if t["type"] == "scatter3d" and t.get("showlegend")}
        assert {"V1v", "V1d", "hV4"} <= legend
    else:
        assert len(pictures(at)) == 1
        assert "volume background" in sources["for"].tolist()
    at.radio(key="dc_map").set_value("responses to a test image").run()
    assert not problems(at)
    at.selectbox(key="dc_mode").set_value("flat").run()
    assert not problems(at)
    fig = figures(at)[0]
    assert fig["layout"]["scene"]["camera"]["eye"]["z"] > 0 and fig["layout"]["scene"]["dragmode"] == "pan"


@pytest.mark.parametrize("step", [1, 2, 3])
def test_learn_page(nsd_env, step):
    at = open_app("pages/6_Learn.py")
    radio = at.radio(key="ln_step")
    radio.set_value(radio.options[step]).run()
    assert not problems(at), problems(at)
    if step in (1, 2):
        shown = pictures(at) if space_of(nsd_env) == "func1pt8mm" else charts(at)
        assert len(shown) == 1
    else:
        assert len(at.image) == 8


def test_nothing_loads_all_single_trials(nsd_env):
    """The pages read averages of the trials they show, never a subject's whole betas."""
    from brainit_core.ui import loaders

    open_app("pages/2_Brain_tokens.py")
    at = open_app("pages/5_Data.py")
    assert not problems(at)
    ds = loaders.dataset(str(nsd_env.dataset))
    assert all("betas" not in ds.subject(s).__dict__ for s in ds.subjects)
    assert np.isfinite(ds.subject("subj01").average_trials([int(ds.subject("subj01").test_image_ids[0])])[0]).all()


def test_fsaverage_without_its_files_is_resampled_and_the_sidebar_finds_them(nsd_env, tmp_path):
    """No fsaverage files where nsd prepare saw them: a resampled fsaverage5 view, said so; the folder
    typed in the sidebar brings full resolution back."""
    if space_of(nsd_env) != "fsaverage":
        pytest.skip("fsaverage data only")
    from brainit_core.data.info import DatasetInfo

    recorded = DatasetInfo(nsd_env.dataset).display["fsaverage_dir"]
    moved = tmp_path / "elsewhere" / "fsaverage"
    moved.parent.mkdir()
    import shutil

    shutil.move(recorded, moved)
    try:
        at = open_app("pages/6_Learn.py")
        radio = at.radio(key="ln_step")
        radio.set_value(radio.options[1]).run()
        assert not problems(at), problems(at)
        assert "Resampled view" in notes(at) and "its own value" in notes(at)
        background = [t for t in figures(at)[0]["data"] if t["type"] == "mesh3d"][0]
        assert background["hoverinfo"] == "skip"
        from streamlit.testing.v1 import AppTest

        from tests.ui.helpers import ROOT, TIMEOUT

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.session_state["sb_fsaverage_dir"] = str(moved.parent)  # typed in the sidebar: a SUBJECTS_DIR
        at.run()  # (AppTest runs the frame, and so the sidebar, on the first run only)
        at.switch_page("pages/6_Learn.py")
        at.run()
        at.radio(key="ln_step").set_value(radio.options[1]).run()
        assert not problems(at), problems(at)
        assert f"full resolution (40,962 vertices per hemisphere) from `{moved}`" in notes(at)
    finally:
        shutil.move(moved, recorded)
