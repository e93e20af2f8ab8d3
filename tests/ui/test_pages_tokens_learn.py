"""The Brain tokens and Learn pages under ``streamlit.testing.v1.AppTest`` (tiny twin, run, generators)."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


def open_page(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(page)
    at.run()
    return at


def problems(at) -> list:
    return [e.value for e in at.exception] + [e.value for e in at.error]


def charts(at) -> list:
    return at.get("plotly_chart")


def test_brain_tokens_page_widgets(app_env):
    at = open_page("pages/2_Brain_tokens.py")
    assert not problems(at)
    assert len(charts(at)) == 6  # clusters; token cortex + image; location image + bar + cortex
    assert at.toggle(key="bt_gt").disabled is False  # the tiny dataset is a twin
    metrics = {m.label: m.value for m in at.metric}
    assert "Contralaterality index" in metrics and metrics["Tokens with voxels"].endswith(" / 8")
    at.toggle(key="bt_gt").set_value(True).run()
    assert not problems(at) and len(charts(at)) == 8  # + truth next to the clusters and the location map
    at.radio(key="bt_head").set_value("lowlevel").run()
    assert not problems(at)
    at.select_slider(key="bt_level").set_value(1).run()
    at.selectbox(key="bt_token").set_value(2).run()
    at.slider(key="bt_x").set_value(0.9).run()
    at.slider(key="bt_y").set_value(0.1).run()
    at.selectbox(key="bt_view").set_value("ventral").run()
    at.selectbox(key="bt_gt_map_loc").set_value("eccentricity (deg)").run()
    assert not problems(at)
    caption = " ".join(c.value for c in at.caption)
    assert "row 0, column" in caption  # y = 0.1 selects the top row of the level's grid
    at.radio(key="bt_export_fmt").set_value("mgh").run()
    assert not problems(at)
    assert at.get("download_button"), "no export button"


def test_brain_tokens_other_image_and_mesh(app_env):
    at = open_page("pages/2_Brain_tokens.py")
    last = int(at.selectbox(key="bt_image").options[-1].split()[-1])  # options read "image <id>"
    at.selectbox(key="bt_image").set_value(last).run()
    at.selectbox(key="bt_mode").set_value("pial").run()
    assert not problems(at)


@pytest.mark.parametrize("step", range(6))
def test_learn_page_every_step(app_env, step):
    at = open_page("pages/6_Learn.py")
    assert not problems(at)
    radio = at.radio(key="ln_step")
    radio.set_value(radio.options[step]).run()
    assert not problems(at)
    if step in (1, 2):
        assert len(charts(at)) == 1
    elif step == 3:
        assert len(at.image) == 8 and "Correlation of predicted and true" in " ".join(c.value for c in at.caption)
    elif step in (4, 5):
        assert len(at.image) == 2
        assert ("low-level" if step == 4 else "fused") in at.image[1].captions[0]
    else:
        assert len(at.image) == 1


def test_brain_tokens_contralaterality_is_the_benchmarks_index_on_the_image(app_env):
    import numpy as np

    from brainit_core.analysis.attention import contralaterality
    from brainit_core.analysis.maps import compute_attention
    from brainit_core.data.dataset import load_dataset
    from brainit_core.models.run import BrainITRun

    at = open_page("pages/2_Brain_tokens.py")
    at.radio(key="bt_head").set_value("lowlevel").run()
    assert not problems(at)
    caption = next(c.value for c in at.caption if "V2C cluster (= one brain token) of " in c.value)
    subject = caption.split(" of ", 1)[1].split("'s ", 1)[0]  # the sidebar's subject, as the page names it
    image_id = int(at.selectbox(key="bt_image").value)
    shown = {m.label: m.value for m in at.metric}
    run = BrainITRun.load(app_env.run, device="cpu")
    sd = load_dataset(app_env.dataset).subject(subject)
    betas, _ = sd.average_trials([image_id])
    maps = compute_attention(run, betas[0], subject)
    # the benchmark's call (low-level head, its grids and tokenizer), on this one image's attention
    bench = contralaterality(maps.cross["lowlevel"][None], [tuple(s.grid) for s in run.space.lowlevel_specs],
                             maps.clusters, sd.hemispheres, maps.tokenizer["lowlevel"][None])
    expected = f"{bench['index']:.3f}" if np.isfinite(bench["index"]) else "n/a"
    assert shown["Contralaterality index"] == expected
    table = at.dataframe[0].value  # the per-token values behind the index: the benchmark's, unrounded
    np.testing.assert_allclose(table["centroid x"], [t["centroid_x"] for t in bench["per_token"]], rtol=1e-9)
    np.testing.assert_allclose(table["left - right share"].astype(float),
                               [np.nan if t["balance"] is None else t["balance"] for t in bench["per_token"]], rtol=1e-9)
    assert np.abs(table["centroid x"]).max() > 0 and np.nanstd(table["left - right share"].astype(float)) > 0
    signed = f"{bench['signed_mean']:+.3f}" if np.isfinite(bench["signed_mean"]) else "n/a"
    assert shown["Signed centroid offset"] == signed
