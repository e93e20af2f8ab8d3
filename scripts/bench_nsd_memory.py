"""Peak RSS of `nsd prepare` on NSD-format fixtures with 1 vs N sessions (memory must not grow).

Run: .venv/bin/python scripts/bench_nsd_memory.py [--trials 150] [--sessions 1 6]
Each measurement runs in a fresh process; fixtures use the real fsaverage vertex count (163842 per
hemisphere) and a smaller number of trials per session.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MAKE = r"""
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.data.nsd_fixtures import make_nsd_tree
make_nsd_tree(Path({tmp!r}), subjects=(1,), sessions={{1: {n}}}, trials={trials}, n_vert=163842)
"""
CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from brainit_core.data.nsd import prepare_nsd
tmp = Path({tmp!r})
t = time.time()
ds, rep = prepare_nsd(tmp, [1], tmp / "out", trials_per_session={trials}, image_size=16, val_images=0)
print(json.dumps({{"sessions": {n}, "trials_per_session": {trials}, "seconds": round(time.time() - t, 1),
                   "peak_rss_mb": round(rep.peak_rss_mb)}}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 6])
    args = ap.parse_args()
    root = str(Path(__file__).resolve().parent.parent)
    for n in args.sessions:
        with tempfile.TemporaryDirectory() as tmp:
            fill = dict(root=root, tmp=tmp, n=n, trials=args.trials)
            subprocess.run([sys.executable, "-c", MAKE.format(**fill)], check=True)
            code = CHILD.format(**fill)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
