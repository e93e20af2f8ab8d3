"""Server-side time of the first visit to the model pages, without a browser (Streamlit's AppTest).

Opens the app on the shipped demo bundle, stays DWELL seconds on Home, then times the first run of
Brain tokens and of Reconstructions. With --no-warm-up the app's background warm-up (heavy imports
and the cortical mesh, ``brainit_core.ui.loaders.warm_up``) is switched off, for comparison.

Run from a checkout with the README's venv:
    .venv/bin/python scripts/bench_app_server.py --dwell 8
    .venv/bin/python scripts/bench_app_server.py --dwell 8 --no-warm-up
(each in a fresh process: imports are what is measured).
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dwell", type=float, default=8.0, help="seconds on Home before the first model page")
    ap.add_argument("--no-warm-up", action="store_true")
    args = ap.parse_args()
    bundle = ROOT / "assets" / "demo"
    os.environ.update({"BRAINIT_APP_DATA": str(bundle / "dataset"), "BRAINIT_APP_RUN": str(bundle / "run"),
                       "BRAINIT_APP_GENERATORS": str(bundle / "generators")})
    if args.no_warm_up:
        import brainit_core.ui.loaders as loaders

        loaders._warm = lambda: None
    from streamlit.testing.v1 import AppTest

    t0 = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    print(f"Home {time.perf_counter() - t0:.2f} s")
    time.sleep(args.dwell)
    for page, name in (("pages/2_Brain_tokens.py", "Brain tokens"), ("pages/1_Reconstructions.py", "Reconstructions")):
        t = time.perf_counter()
        at.switch_page(page)
        at.run()
        print(f"{name} first visit {time.perf_counter() - t:.2f} s, exceptions {len(at.exception)}")
    print("warm-up", "off" if args.no_warm_up else "on", f"dwell {args.dwell:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
