"""Launch the app on its default (the shipped demo bundle) and time it in headless chromium.

Run from a checkout with the venv of the README: .venv/bin/python scripts/bench_app_demo.py
Prints: ready after launch, and the first visit of three pages; saves screenshots to /tmp/demo_*.png.
"""
import subprocess, time, urllib.request, sys, os
from playwright.sync_api import sync_playwright
port = 8599
t0 = time.time()
proc = subprocess.Popen([".venv/bin/python", "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                         "--server.port", str(port), "--server.fileWatcherType", "none"],
                        stdout=open("/tmp/demo_st.log", "w"), stderr=subprocess.STDOUT)
try:
    while True:
        try:
            urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1); break
        except Exception:
            time.sleep(0.2)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        pg = b.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(f"http://localhost:{port}/")
        pg.wait_for_selector("h1", timeout=60000)
        print("ready after launch %.1f s" % (time.time() - t0))
        for name, path in (("Reconstructions", "Reconstructions"), ("Brain tokens", "Brain_tokens"), ("Benchmark", "Benchmark")):
            t1 = time.time()
            pg.get_by_role("link", name=name).first.click()
            pg.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=180000)
            time.sleep(1)
            print("%s first visit %.1f s, errors: %d" % (name, time.time() - t1, pg.locator("[data-testid=stException]").count()))
            pg.screenshot(path=f"/tmp/demo_{path}.png", full_page=False)
        b.close()
finally:
    proc.terminate()
