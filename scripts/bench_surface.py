"""Time a surface redraw: build the plotly figure of a per-vertex map and serialise it to JSON.

The mesh geometry is loaded once (first, untimed call); each timed redraw then builds a new figure
for new values, as the app does when a widget changes, and encodes it as Streamlit does
(``plotly.io.to_json``). Target: <= 0.5 s per redraw.

Run: .venv/bin/python scripts/bench_surface.py [--vertices 2000] [--repeats 5]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, default=2000, help="subject vertices with a value (the twin demo: ~2,000)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mesh", default="inflated", choices=["inflated", "pial"])
    args = ap.parse_args(argv)

    import plotly.io as pio

    from brainit_core.viz.surface import N_VERTICES, load_surface, surface_figure

    rng = np.random.default_rng(0)
    half = args.vertices // 2
    verts = np.concatenate([np.sort(rng.choice(N_VERTICES, half, replace=False)),
                            np.sort(rng.choice(N_VERTICES, args.vertices - half, replace=False))])
    hemis = np.repeat([0, 1], [half, args.vertices - half])
    areas = rng.choice(["V1", "V2", "V3", "hV4", "LO"], args.vertices)
    t0 = time.perf_counter()
    load_surface(args.mesh)
    surface_figure(rng.random(args.vertices), verts, hemis, mesh=args.mesh)
    print(f"first figure (loads the mesh): {time.perf_counter() - t0:.3f} s")
    for kind in ("continuous", "categorical"):
        build, encode = [], []
        for _ in range(args.repeats):
            values = rng.integers(0, 128, args.vertices) if kind == "categorical" else rng.random(args.vertices)
            t0 = time.perf_counter()
            fig = surface_figure(values, verts, hemis, mesh=args.mesh, categorical=kind == "categorical",
                                 hover={"area": areas})
            t1 = time.perf_counter()
            spec = pio.to_json(fig, validate=False)
            build.append(t1 - t0)
            encode.append(time.perf_counter() - t1)
        total = np.add(build, encode)
        print(f"redraw {kind:11s}: median {np.median(total):.3f} s (build {np.median(build):.3f} s, "
              f"JSON {np.median(encode):.3f} s, {len(spec) / 1e6:.2f} MB), max {total.max():.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
