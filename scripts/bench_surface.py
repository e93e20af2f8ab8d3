"""Time a surface redraw: build the plotly figure of a per-vertex map and serialise it to JSON.

The mesh geometry is loaded once (first, untimed call); each timed redraw then builds a new figure
for new values, as the app does when a widget changes, and encodes it as Streamlit does
(``plotly.io.to_json``). Target: <= 0.5 s per redraw, at fsaverage5 and at full fsaverage resolution.

``--full`` draws on a 163,842-vertex icosahedral fsaverage written as FreeSurfer files (nilearn's
fsaverage5 subdivided twice: fsaverage's vertex and face counts; real fsaverage files are not on
this machine) with ``--vertices`` values (NSD's nsdgeneral: ~40,000) and, with ``--borders``, the
outlines of a 7-ROI atlas.

Run: .venv/bin/python scripts/bench_surface.py [--full] [--vertices 40000] [--borders] [--repeats 5]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vertices", type=int, default=None,
                    help="vertices with a value (default: 2,000 as the twin demo; 40,000 with --full as NSD)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mesh", default="inflated", choices=["inflated", "pial", "flat"])
    ap.add_argument("--full", action="store_true", help="fsaverage at 163,842 vertices per hemisphere")
    ap.add_argument("--borders", action="store_true", help="outline a 7-ROI atlas")
    args = ap.parse_args(argv)

    import plotly.io as pio

    from brainit_core.viz.meshes import load_surface
    from brainit_core.viz.surface import MeshMap, surface_map_figure

    directory = None
    if args.full:
        from tests.data.nsd_fixtures import fake_fsaverage, write_fsaverage_dir

        directory = Path(tempfile.mkdtemp()) / "fsaverage"
        t0 = time.perf_counter()
        write_fsaverage_dir(directory, fake_fsaverage(2))
        print(f"wrote a 163,842-vertex fsaverage in {time.perf_counter() - t0:.1f} s")
    n_values = args.vertices or (40000 if args.full else 2000)
    t0 = time.perf_counter()
    geom = load_surface(args.mesh, str(directory) if directory else None)
    print(f"mesh {geom.name} {args.mesh}: {geom.n_vertices} vertices per hemisphere, loaded in "
          f"{time.perf_counter() - t0:.2f} s")
    rng = np.random.default_rng(0)
    half = n_values // 2
    mask = np.zeros((2, geom.n_vertices), bool)
    for h, n in enumerate((half, n_values - half)):  # the most posterior vertices, as nsdgeneral
        mask[h, np.argsort(load_surface("inflated", str(directory) if directory else None).coords[h][:, 1])[:n]] = True
    borders = None
    if args.borders:
        y = load_surface("inflated", str(directory) if directory else None).coords[0][:, 1]
        band = np.clip(((y - y.min()) / np.ptp(y) * 40).astype(int), 0, 6) + 1
        borders = np.where(mask, np.stack([band, band]), 0)
    area = np.where(mask, "V1", "")

    def redraw(categorical: bool):
        v = rng.integers(0, 128, mask.shape).astype(float) if categorical else rng.standard_normal(mask.shape)
        full = np.where(mask, v, np.nan)
        return surface_map_figure([MeshMap(geom, full, {"area": area}, borders)], categorical=categorical,
                                  symmetric=not categorical)

    t0 = time.perf_counter()
    pio.to_json(redraw(False), validate=False)
    print(f"first figure (caches the grey mesh): {time.perf_counter() - t0:.3f} s")
    for kind in ("continuous", "categorical"):
        build, encode, cpu = [], [], []
        for _ in range(args.repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            fig = redraw(kind == "categorical")
            t1 = time.perf_counter()
            spec = pio.to_json(fig, validate=False)
            build.append(t1 - t0)
            encode.append(time.perf_counter() - t1)
            cpu.append(time.process_time() - c0)
        total = np.add(build, encode)
        print(f"redraw {kind:11s}: median {np.median(total):.3f} s (build {np.median(build):.3f} s, "
              f"JSON {np.median(encode):.3f} s, {len(spec) / 1e6:.2f} MB), max {total.max():.3f} s; "
              f"CPU median {np.median(cpu):.3f} s")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
