"""Screenshots of the cortex views on NSD-format data, in a real browser (headless chromium).

For each space (fsaverage, func1pt8mm) this builds an NSD tree in NSD's own file formats (the test
fixture of tests/data/nsd_fixtures.py: a fake icosahedral fsaverage with FreeSurfer surfaces and
flat patches, ROI atlases with colour tables, func1pt8mm volumes with mean image and transforms;
``--order 2`` gives fsaverage's 163,842 vertices per hemisphere), prepares it with ``nsd prepare``,
trains a ``ci`` run on it, starts ``streamlit run app.py`` on it and saves the Brain tokens, Data and
Learn pages as ``<out>/nsd_<space>_<page>.png``.

Run: python scripts/screenshot_nsd_views.py [--out docs/img] [--work /tmp/nsd-shots] [--order 2]
"""
import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_app_demo import CHROMIUM_ARGS, launch, wait_loaded  # noqa: E402

BAD = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict, port: int, log: Path) -> subprocess.Popen:
    return launch(port, str(log), python=sys.executable, env={**env, "OMP_NUM_THREADS": "1"}, cwd=ROOT)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` and wait for the rerun."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.locator('input[role="combobox"]').click()
    page.get_by_role("option", name=option, exact=True).first.click()
    time.sleep(0.5)
    wait_loaded(page)


def settle(page, seconds: float = 4.0) -> None:
    wait_loaded(page)
    time.sleep(seconds)  # plotly's WebGL scenes draw after Streamlit is idle


def shoot(page, path: Path, height: int) -> None:
    """The top ``height`` pixels of the window (Streamlit scrolls inside its main block, so the window is
    made tall enough for what is shown)."""
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1400, "height": height})
    errors = page.locator(BAD).all_inner_texts()
    print(f"{path.name}: {'errors ' + str(errors) if errors else 'no error shown'}", flush=True)


def visit(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    page.locator('[data-testid="stMain"] h1').first.wait_for()
    settle(page)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--work", type=Path, default=Path("/tmp/nsd-shots"))
    ap.add_argument("--order", type=int, default=2, help="fsaverage5 subdivisions (2: 163,842 vertices per hemisphere)")
    ap.add_argument("--spaces", nargs="+", default=["fsaverage", "func1pt8mm"])
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from tests.factories import AppData, build_nsd_app_data

    args.out.mkdir(parents=True, exist_ok=True)
    for space in args.spaces:
        work = args.work / space
        data = AppData(work, work / f"nsd-{space}", work / "runs" / space, work / "generators" / space)
        if not data.generators.exists():  # built by an earlier call otherwise
            t0 = time.time()
            data = build_nsd_app_data(work, space, order=args.order, volume_shape=(36, 44, 36))
            print(f"{space}: built the NSD tree, prepared it and trained a ci run in {time.time() - t0:.0f} s")
        env = {**data.env(), "BRAINIT_DATA": str(work)}
        port = free_port()
        proc = serve(env, port, work / "streamlit.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1500})
                page.set_default_timeout(600_000)
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("h1")
                settle(page, 1)

                visit(page, "Brain tokens")
                if space == "fsaverage":
                    choose(page, "View", "inflated + flat")
                choose(page, "ROI borders", "prf-visualrois")
                settle(page, 8)
                shoot(page, args.out / f"nsd_{space}_brain_tokens.png", 1400 if space == "fsaverage" else 1000)

                visit(page, "Data")
                settle(page, 8)
                page.get_by_role("heading", name="On the cortex").first.evaluate("h => h.scrollIntoView()")
                settle(page, 4)
                shoot(page, args.out / f"nsd_{space}_data.png", 1250)

                visit(page, "Learn")
                page.locator('[data-testid="stRadio"]').get_by_text("2 · Voxel responses").click()
                settle(page)
                choose(page, "ROI borders", "prf-visualrois")
                if space == "func1pt8mm":
                    choose(page, "View", "flat")
                settle(page, 8)
                shoot(page, args.out / f"nsd_{space}_learn.png", 1050 if space == "func1pt8mm" else 950)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
