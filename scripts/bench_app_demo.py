"""Launch the app on its default (the shipped demo bundle) and time it in headless chromium.

Run from a checkout with the venv of the README: .venv/bin/python scripts/bench_app_demo.py
Prints: ready after launch, and the first visit of every page (in the sidebar's order, or the
page titles given as arguments, e.g. "Brain tokens" "Reconstructions"; `--dwell S` waits S seconds
on the first page before the first click); saves
screenshots to /tmp/demo_*.png. A page counts as loaded when its own title is shown and Streamlit's
running indicator and every spinner have then been gone for 1.5 s (a click starts the run a moment
later, so an absent indicator right after the click does not count); the time is taken at the
start of that quiet spell.
"""
import subprocess
import sys
import time
import urllib.request

BUSY = '[data-testid="stStatusWidget"], [data-testid="stSpinner"]'
PAGES = ("Reconstructions", "Brain tokens", "Transfer lab", "Benchmark", "Data", "Learn", "Home")
TITLES = {"Home": "Brain-IT Explorer", "Learn": "Learn:"}  # how each page's h1 starts (default: its name)
QUIET_S = 1.5  # a run can take a moment to show the running indicator when the server is busy


def wait_loaded(pg, timeout_s=600.0, quiet_s=QUIET_S):
    """Wait until nothing has been running for ``quiet_s``; returns the time it became quiet."""
    deadline, quiet_since = time.time() + timeout_s, None
    while time.time() < deadline:
        if pg.locator(BUSY).count() > 0:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > quiet_s:
            return quiet_since
        time.sleep(0.05)
    raise TimeoutError("the page kept running")


def launch(port: int, log: str = "/tmp/demo_st.log", python: str = ".venv/bin/python", env: dict | None = None,
           cwd=None) -> subprocess.Popen:
    """Start ``streamlit run app.py`` on ``port`` (in ``cwd``, with ``env`` added to the environment) and
    return once its health check answers."""
    import os

    proc = subprocess.Popen([python, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.fileWatcherType", "none",
                             "--browser.gatherUsageStats", "false"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=cwd,
                            env={**os.environ, **env} if env else None)
    while True:
        try:
            urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1)
            return proc
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited; see {log}")
            time.sleep(0.2)


CHROMIUM_ARGS = ["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def main(pages, dwell: float = 0.0) -> int:
    from playwright.sync_api import sync_playwright

    t0 = time.time()
    proc = launch(8599)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            pg = b.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto("http://localhost:8599/")
            pg.wait_for_selector("h1", timeout=60000)
            print("ready after launch %.1f s" % (time.time() - t0))
            time.sleep(dwell)  # a user reading the first page
            for name in pages:
                t1 = time.time()
                pg.get_by_role("link", name=name).first.click()
                title = TITLES.get(name, name)
                pg.wait_for_function("t => [...document.querySelectorAll('h1')].some(h => h.innerText.startsWith(t))",
                                     arg=title, timeout=600000)
                done = wait_loaded(pg)
                print("%s first visit %.1f s, errors: %d" % (name, done - t1, pg.locator("[data-testid=stException]").count()),
                      flush=True)
                pg.screenshot(path=f"/tmp/demo_{name.replace(' ', '_')}.png", full_page=False)
            b.close()
    finally:
        proc.terminate()
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    dwell = 0.0
    if "--dwell" in args:  # seconds on the first page before the first click
        k = args.index("--dwell")
        dwell = float(args[k + 1])
        del args[k:k + 2]
    sys.exit(main(args or PAGES, dwell))
