"""The app and training at NSD scale: page loads, server memory and training memory on NSD-shaped data.

Writes canonical datasets of NSD's shape with ``DatasetWriter`` (random z-scored betas; what is
measured does not depend on their values):

- ``fsaverage``: ``--subjects`` subjects x ``--vertices`` vertices (NSD's nsdgeneral: ~40,000 of
  fsaverage's 2 x 163,842; the most posterior ones of a 163,842-vertex icosahedral fsaverage written
  as FreeSurfer files, so the app draws at full resolution) x 30,000 trials (10,000 images x 3);
- ``func1pt8mm``: the same trials over ``--voxels`` voxels (NSD: 12,682-15,724) of an 81x104x83 grid;

``--scale`` multiplies the trials and images (1.0 = NSD's 30,000 trials per subject: 4.8 GB of
float32 betas per subject in fsaverage space, 1.8 GB in func1pt8mm). Datasets are written under
``--out`` as ``nsd-<space>-<scale>`` (a complete one of the same shape is reused). Then, each in a
fresh process with one thread:

1. ``train``: for each ``--train-scales`` (default ``--scale``), ``train_run`` with the ``ci``
   preset, and the ``demo`` preset with one epoch per stage (its peak memory is reached in the first
   epoch), on the fsaverage dataset of that scale: wall and CPU time, peak RSS (a failure, e.g. a
   ``MemoryError`` under ``prlimit --as``, is printed as ``error``);
2. ``pages``: the Brain tokens, Data and Learn pages under ``streamlit.testing.v1.AppTest`` (the
   scripts run in the measuring process, as in the server): first load, a rerun with another test
   image, and the process's peak and final RSS (``VmHWM`` / ``VmRSS``), per space. The pages' run is
   a ``ci`` run trained on the dataset of ``--run-scale`` (default ``--scale``) of that space, which
   must hold the same subjects and vertex numbers (checked: a run records only the dataset's path
   and each subject's vertex count), so full-scale pages need no full-scale training.

3. ``--data-memory STAGE:MODE``: the training samples alone at ``--scale`` (``encoder:both``,
   ``bit:averaged``, ...), as ``train_encoder`` and ``build_bit_data`` hold them: the part of training
   memory that grows with the data.

Run (the commands measured for docs/app.md, "At NSD scale"):
  prlimit --as=14000000000 python scripts/bench_nsd_scale.py --out /work/nsdscale-data \
      --train-scales 0.05 --scale 1 --run-scale 0.05 --spaces fsaverage
  python scripts/bench_nsd_scale.py --out D --scale 1 --train-scales --train --spaces \
      --data-memory encoder:both bit:averaged
  python scripts/bench_nsd_scale.py --out D --scale 1 --run-scale 0.02 --spaces func1pt8mm \
      --train-scales --train --delete
Prints one JSON line per measurement.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TRIALS_PER_SESSION = 750
SHAPE = (81, 104, 83)


RSS = """
from pathlib import Path
def _rss():
    status = Path("/proc/self/status").read_text().splitlines()
    get = {line.split(":")[0]: line.split()[1] for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return {"rss_mb": round(int(get["VmRSS"]) / 1024), "peak_rss_mb": round(int(get["VmHWM"]) / 1024)}
"""


def write_dataset(out: Path, space: str, scale: float, n_subjects: int, n_vertices: int, n_voxels: int,
                  image_size: int, fsaverage_dir: Path | None, seed: int = 0) -> dict:
    """An NSD-shaped canonical dataset; returns its size figures."""
    from brainit_core.data import DatasetWriter
    from brainit_core.viz.meshes import load_surface

    rng = np.random.default_rng(seed)
    n_shared, n_own = max(8, round(1000 * scale)), max(24, round(9000 * scale))
    ids_shared = np.arange(n_shared)
    own = {s: n_shared + s * n_own + np.arange(n_own) for s in range(n_subjects)}
    all_ids = np.arange(n_shared + n_subjects * n_own)
    display = {"space": space, "atlases": {}, "subjects": {}}
    if space == "fsaverage":
        display.update(n_vertices=163842, fsaverage_dir=str(fsaverage_dir) if fsaverage_dir else None)
        y = [load_surface("inflated", str(fsaverage_dir)).coords[h][:, 1] for h in range(2)] if fsaverage_dir else None
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    affine[:3, 3] = -(np.asarray(SHAPE) - 1) / 2 * 1.8
    w = DatasetWriter(out, source="nsd", mesh=space, image_size=image_size, overwrite=True, space=space,
                      mask="nsdgeneral", display=display)
    t0 = time.time()
    for start in range(0, len(all_ids), 512):
        block = all_ids[start:start + 512]
        w.add_images(block, rng.integers(0, 256, (len(block), image_size, image_size, 3), dtype=np.uint8))
    for s in range(n_subjects):
        name = f"subj{s + 1:02d}"
        if space == "fsaverage":
            half = n_vertices // 2
            verts = [np.sort(np.argsort(y[h])[:n]) if y else np.sort(rng.choice(163842, n, replace=False))
                     for h, n in enumerate((half, n_vertices - half))]
            vertices = np.concatenate(verts)
            hemis = np.repeat([0, 1], [len(verts[0]), len(verts[1])]).astype(np.uint8)
        else:
            grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, d) for d in SHAPE], indexing="ij"), -1).reshape(-1, 3)
            dist = ((grid - [0, -0.55, 0]) ** 2 / [0.5, 0.25, 0.35]).sum(1)  # a posterior blob
            vertices = np.sort(np.argsort(dist)[:n_voxels])
            hemis = (np.unravel_index(vertices, SHAPE)[0] < SHAPE[0] / 2).astype(np.uint8)
            display["subjects"][name] = {"shape": list(SHAPE), "affine": affine.tolist(), "background": None,
                                         "atlases": {}, "transforms": None}
        w.begin_subject(name, vertices, hemis)
        shown = np.repeat(np.r_[ids_shared, own[s]], 3)
        rng.shuffle(shown)
        for k, start in enumerate(range(0, len(shown), TRIALS_PER_SESSION), start=1):
            ids = shown[start:start + TRIALS_PER_SESSION]
            w.append_session(name, rng.standard_normal((len(ids), len(vertices)), dtype=np.float32), ids, k)
        val = own[s][:max(2, n_own // 40)]
        w.finalize_subject(name, np.setdiff1d(own[s], val), val, ids_shared)
    w.finalize(display=display)
    return {"space": space, "subjects": n_subjects, "vertices": int(len(vertices)), "trials": int(len(shown)),
            "images": int(len(all_ids)), "write_s": round(time.time() - t0, 1),
            "betas_gb_per_subject": round(len(shown) * len(vertices) * 4 / 1e9, 2)}


TRAIN = r"""
import json, resource, sys, time, dataclasses
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
from brainit_core.models.bit import BITConfig
from brainit_core.models.encoder import EncoderConfig
from brainit_core.models.training import train_run
preset, one_epoch = {preset!r}, {one_epoch!r}
bit, enc = BITConfig.preset(preset), EncoderConfig.preset(preset)
if one_epoch:
    bit = dataclasses.replace(bit, semantic_epochs=1, lowlevel_epochs=1, warmup_epochs=0)
    enc = dataclasses.replace(enc, epochs=1)
t, cpu = time.time(), time.process_time()
train_run({data!r}, preset=preset, out={out!r}, device="cpu", bit_config=bit, encoder_config=enc)
from brainit_core.data import load_dataset
sd = load_dataset({data!r}).subject("subj01")
print(json.dumps({{"train": preset, "one_epoch_per_stage": one_epoch, "seconds": round(time.time() - t),
                   "cpu_s": round(time.process_time() - cpu), "trials_per_subject": sd.n_trials, "vertices": sd.n_vertices,
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}}))
"""

DATA = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from brainit_core.data import load_dataset
from brainit_core.models.bit_data import subject_training_betas
from brainit_core.models.encoder_training import training_samples
{rss}
ds = load_dataset({data!r})
subjects, stage, mode = ds.training_subjects[:{n_subjects}], {stage!r}, {mode!r}
t, pools = time.time(), {{}}
for s in subjects:
    sd = ds.subject(s)
    train = training_samples(sd, mode) if stage == "encoder" else subject_training_betas(sd, mode)
    pools[s] = train, sd.averaged("val")
n = len(pools[subjects[0]][0][0]); batch = np.random.default_rng(0).choice(n, min(64, n), replace=False)
t_batch = time.time(); x = pools[subjects[0]][0][0][batch]; t_batch = time.time() - t_batch
print(json.dumps({{"data": stage, "mode": mode, "subjects": len(subjects), "trials_per_subject": sd.n_trials,
                  "vertices": sd.n_vertices, "seconds": round(time.time() - t, 1),
                  "samples_per_subject": len(pools[subjects[0]][0][0]), "batch_of_64_s": round(t_batch, 3), **_rss()}}))
"""

PAGES = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from streamlit.testing.v1 import AppTest
{rss}
out = {{"space": {space!r}, **_rss()}}
at = AppTest.from_file({app!r}, default_timeout=1200)
t = time.time(); at.run(); out["home_s"] = round(time.time() - t, 2)
for page, key in (("pages/2_Brain_tokens.py", "bt_image"), ("pages/5_Data.py", "dc_image"), ("pages/6_Learn.py", None)):
    t = time.time(); at.switch_page(page); at.run()
    name = Path(page).stem.split("_", 1)[1]
    out[name + "_first_s"] = round(time.time() - t, 2)
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    if page.endswith("Learn.py"):
        radio = at.radio(key="ln_step"); radio.set_value(radio.options[1])
    elif key == "dc_image":
        at.radio(key="dc_map").set_value("responses to a test image").run()
        box = at.selectbox(key=key); box.set_value(int(box.options[-1].split()[-1]))
    else:
        box = at.selectbox(key=key); box.set_value(int(box.options[-1].split()[-1]))  # options read "image <id>"
    t = time.time(); at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    out[name + "_rerun_s"] = round(time.time() - t, 2)
out.update({{"after_" + k: v for k, v in _rss().items()}})
print(json.dumps(out))
"""


def child(code: str, env: dict | None = None, fatal: bool = True) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})})
    if proc.returncode:
        if fatal:
            raise RuntimeError(proc.stderr[-4000:])
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1][-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dataset_dir(out: Path, space: str, scale: float) -> Path:
    return out / f"nsd-{space}-{scale:g}"


def ensure_dataset(out: Path, space: str, scale: float, args, fsdir) -> Path:
    """Write the dataset, or reuse a complete one of the same shape (``write_s`` is then null)."""
    from brainit_core.data import load_dataset

    path = dataset_dir(out, space, scale)
    n_trials = 3 * (max(8, round(1000 * scale)) + max(24, round(9000 * scale)))
    n_vox = args.vertices if space == "fsaverage" else args.voxels
    try:
        ds = load_dataset(path)
        subjects = [ds.subject(s) for s in ds.subjects]
        if len(subjects) == args.subjects and all((s.n_trials, s.n_vertices) == (n_trials, n_vox) for s in subjects):
            print(json.dumps({"space": space, "scale": scale, "reused": str(path), "trials": n_trials,
                              "vertices": n_vox}), flush=True)
            return path
    except Exception:  # noqa: BLE001 - absent or incomplete: write it
        pass
    facts = write_dataset(path, space, scale, args.subjects, args.vertices, args.voxels, args.image_size, fsdir)
    print(json.dumps({"scale": scale, **facts}), flush=True)
    return path


def same_subjects_and_vertices(a: Path, b: Path) -> bool:
    """A run trained on dataset ``a`` can draw dataset ``b``'s pages only if both hold the same subjects
    with the same vertex numbers (a run records the dataset's path and each subject's vertex count only)."""
    from brainit_core.data import load_dataset

    da, db = load_dataset(a), load_dataset(b)
    return da.subjects == db.subjects and all(
        np.array_equal(da.subject(s).vertices, db.subject(s).vertices)
        and np.array_equal(da.subject(s).hemispheres, db.subject(s).hemispheres) for s in da.subjects)


def train(out: Path, preset: str, data: Path, scale: float, fatal: bool = False) -> dict:
    run = out / "runs" / f"{preset}-{data.name}"
    r = child(TRAIN.format(root=str(ROOT), preset=preset, one_epoch=preset != "ci", data=str(data), out=str(run)),
              fatal=fatal)
    return {"scale": scale, "run": str(run), **r}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1, help="fraction of NSD's 30,000 trials and 10,000 images "
                    "of the datasets whose pages are measured")
    ap.add_argument("--train-scales", type=float, nargs="*", default=None,
                    help="scales of the fsaverage datasets whose training memory is measured (default: --scale)")
    ap.add_argument("--run-scale", type=float, default=None,
                    help="scale of the dataset the pages' ci run is trained on (default: --scale); the same "
                         "subjects and vertex sets as the pages' dataset, which is checked")
    ap.add_argument("--out", type=Path, default=Path("/tmp/brainit-nsd-scale"))
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--vertices", type=int, default=40000)
    ap.add_argument("--voxels", type=int, default=15000)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--spaces", nargs="*", default=["fsaverage", "func1pt8mm"], help="spaces whose pages are measured")
    ap.add_argument("--train", nargs="*", default=["ci", "demo"], help="presets whose training memory is measured")
    ap.add_argument("--data-memory", nargs="*", default=[], metavar="STAGE:MODE",
                    help="also measure the training samples alone at --scale (fsaverage), e.g. encoder:both "
                         "bit:averaged: the part of training memory that grows with the trials")
    ap.add_argument("--data-subjects", type=int, default=None, help="subjects of --data-memory (default: all)")
    ap.add_argument("--delete", action="store_true", help="delete each pages dataset once measured (disk: "
                    "4.8 GB of betas per subject in fsaverage space at scale 1)")
    ap.add_argument("--no-surfaces", action="store_true", help="no fsaverage files: the app's resampled view")
    args = ap.parse_args(argv)

    import shutil

    from tests.data.nsd_fixtures import fake_fsaverage, write_fsaverage_dir

    args.out.mkdir(parents=True, exist_ok=True)
    fsdir = None
    if not args.no_surfaces:
        fsdir = args.out / "freesurfer" / "fsaverage"
        if not (fsdir / "surf" / "rh.sulc").exists():
            write_fsaverage_dir(fsdir, fake_fsaverage(2))
    for scale in args.train_scales if args.train_scales is not None else [args.scale]:
        data = ensure_dataset(args.out, "fsaverage", scale, args, fsdir)
        for preset in args.train:
            print(json.dumps(train(args.out, preset, data, scale)), flush=True)
    for item in args.data_memory:
        stage, mode = item.split(":")
        data = ensure_dataset(args.out, "fsaverage", args.scale, args, fsdir)
        r = child(DATA.format(root=str(ROOT), rss=RSS, data=str(data), stage=stage, mode=mode,
                              n_subjects=args.data_subjects or args.subjects), fatal=False)
        print(json.dumps({"scale": args.scale, "data": stage, "mode": mode, **r}), flush=True)
    from brainit_core.models.run import BrainITRun
    from tests.factories import build_tiny_generators

    run_scale = args.scale if args.run_scale is None else args.run_scale
    for space in args.spaces:
        data = ensure_dataset(args.out, space, args.scale, args, fsdir)
        run_data = ensure_dataset(args.out, space, run_scale, args, fsdir)
        if not same_subjects_and_vertices(run_data, data):
            raise SystemExit(f"{run_data} and {data} differ in subjects or vertices: a run of one cannot draw the other")
        run = args.out / "runs" / f"ci-{run_data.name}"
        if not (run / "run.json").exists():
            print(json.dumps(train(args.out, "ci", run_data, run_scale, fatal=True)), flush=True)
        gens = args.out / "generators"
        if not gens.exists():
            build_tiny_generators(BrainITRun.load(run, device="cpu").space).save(gens)
        env = {"BRAINIT_APP_DATA": str(data), "BRAINIT_APP_RUN": str(run),
               "BRAINIT_APP_GENERATORS": str(gens), "BRAINIT_DATA": str(args.out)}
        r = child(PAGES.format(root=str(ROOT), rss=RSS, space=space, app=str(ROOT / "app.py")), env)
        print(json.dumps({"scale": args.scale, "run_scale": run_scale, **r}), flush=True)
        if args.delete:
            shutil.rmtree(data)
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
