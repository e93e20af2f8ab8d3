"""The app in a real browser: ``streamlit run app.py`` + headless chromium (playwright).

Visits every page of the navigation, waits for Streamlit to finish rendering, checks that no
exception or error box is shown, saves a screenshot per page (``$BRAINIT_SCREENSHOTS`` or a
temporary directory) and measures: the app ready after launch, each page switch, and one
reconstruction (click on "Reconstruct" to the image). Run with ``-s`` to see the figures; they
are also written to ``timings.json`` beside the screenshots.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BRAINIT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BAD = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def nav_pages() -> list[tuple[str, str]]:
    """(file, title) of the app's navigation, read from app.py without running it."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            return [(f, t) for f, t, _ in ast.literal_eval(node.value) if (ROOT / f).is_file()]
    raise AssertionError("app.py has no PAGES list")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_idle(page, timeout_s: float = 300.0) -> None:
    """Wait until Streamlit has finished the current run (no running-status widget for 0.5 s)."""
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 0.5:
            return
        time.sleep(0.05)
    raise AssertionError("the app did not finish running in time")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip(f"chromium not installed ({CHROMIUM}); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        exe = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(app_env, browser):
    port = free_port()
    env = {**os.environ, **app_env.env(), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(app_env.root / f"streamlit-{port}.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(f"streamlit exited: {(app_env.root / f'streamlit-{port}.log').read_text()}")
                time.sleep(0.1)
        yield url, t0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_every_page_in_chromium(server, browser, tmp_path):
    url, t_launch = server
    shots = Path(os.environ.get("BRAINIT_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    timings: dict = {}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(300_000)  # the shared CI machine can be slow to import torch

    page.goto(url)
    page.get_by_role("heading", name="Brain-IT Explorer").first.wait_for()
    wait_idle(page)
    timings["app_ready_after_launch_s"] = round(time.perf_counter() - t_launch, 2)
    assert page.locator(BAD).count() == 0, page.locator(BAD).all_inner_texts()
    page.screenshot(path=str(shots / "0_Home.png"), full_page=True)

    timings["page_switch_s"] = {}
    for file, title in nav_pages():
        t = time.perf_counter()
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
        url_path = Path(file).stem.split("_", 1)[-1]  # st.Page's default: the name without its number
        if title != "Home":
            page.wait_for_url(f"**/{url_path}")
        page.locator('[data-testid="stMain"] h1').first.wait_for()
        wait_idle(page)
        timings["page_switch_s"][title] = round(time.perf_counter() - t, 2)
        assert page.locator(BAD).count() == 0, (title, page.locator(BAD).all_inner_texts())
        page.screenshot(path=str(shots / f"{Path(file).stem}.png"), full_page=True)

    # one reconstruction: from the click to the image (the grid is already cached by the visit above)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Reconstructions").click()
    page.get_by_role("heading", name="Re-run one image").wait_for()
    wait_idle(page)
    n_images = page.locator('[data-testid="stImage"]').count()
    t = time.perf_counter()
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    page.get_by_text("metrics are for this one image").wait_for()
    timings["one_reconstruction_s"] = round(time.perf_counter() - t, 2)
    wait_idle(page)
    assert page.locator('[data-testid="stImage"]').count() >= n_images + 3
    assert page.locator(BAD).count() == 0, page.locator(BAD).all_inner_texts()
    page.screenshot(path=str(shots / "1_Reconstructions_rerun.png"), full_page=True)

    # the Data page's in-silico experiment end to end
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Data").click()
    page.get_by_role("tab", name="In-silico experiment").click()
    t = time.perf_counter()
    page.get_by_role("button", name="Show it and reconstruct").click()
    page.get_by_text("fused: PixCorr").wait_for()
    timings["in_silico_s"] = round(time.perf_counter() - t, 2)
    wait_idle(page)
    assert page.locator(BAD).count() == 0, page.locator(BAD).all_inner_texts()
    page.screenshot(path=str(shots / "5_Data_in_silico.png"), full_page=True)

    (shots / "timings.json").write_text(json.dumps(timings, indent=1))
    print("\nbrowser timings:", json.dumps(timings), f"\nscreenshots: {shots}")
    assert timings["app_ready_after_launch_s"] < 60
