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
    at.selectbox(key="bt_mesh").set_value("pial").run()
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
