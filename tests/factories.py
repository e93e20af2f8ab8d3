"""Builders of tiny test data shared by the test modules (fixtures over them are in conftest.py files).

Everything here is built in seconds on 2 cores: random canonical datasets, BIT training data with a
learnable structure, a tiny twin with a trained ci run and random ci generators, and a fake run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brainit_core.features.base import TokenSpec
from brainit_core.features.cache import FeatureSet
from brainit_core.models.bit import BITConfig, BrainITModel
from brainit_core.models.bit_data import BITData, SamplePool, channel_stats


# -- canonical datasets -------------------------------------------------------------------------

def make_tiny_dataset(path, n_subjects=2, n_vertices=(30, 24), n_train=12, n_test=4, repeats=2, image_size=16, seed=0,
                      overwrite=False, images=None):
    """A canonical dataset with random images and betas (no twin needed); ``overwrite`` replaces one in ``path``.

    ``images``: uint8 (n_test + n_train * n_subjects, S, S, 3) instead of random ones (test images first)."""
    from brainit_core.data import DatasetWriter

    rng = np.random.default_rng(seed)
    w = DatasetWriter(path, source="synthetic-test", mesh="fsaverage5", image_size=image_size, overwrite=overwrite)
    n_img = n_test + n_train * n_subjects
    ids = np.arange(n_img) * 3 + 5
    noise = rng.integers(0, 256, (n_img, image_size, image_size, 3), dtype=np.uint8)
    w.add_images(ids, noise if images is None else images)
    names = []
    for s in range(n_subjects):
        name = f"sub{s + 1:02d}"
        nv = n_vertices[s % len(n_vertices)]
        verts = np.concatenate([np.sort(rng.choice(10242, nv // 2, replace=False)),
                                np.sort(rng.choice(10242, nv - nv // 2, replace=False))])
        hemis = np.r_[np.zeros(nv // 2), np.ones(nv - nv // 2)].astype(np.uint8)
        w.begin_subject(name, verts, hemis)
        test = ids[:n_test]
        train = ids[n_test + s * n_train: n_test + (s + 1) * n_train]
        shown = np.repeat(np.r_[test, train], repeats)
        rng.shuffle(shown)
        half = len(shown) // 2
        for sess, chunk in enumerate((shown[:half], shown[half:]), start=1):
            w.append_session(name, rng.standard_normal((len(chunk), nv)).astype(np.float32), chunk, sess)
        w.finalize_subject(name, train[:-2], train[-2:], test)
        names.append(name)
    return w.finalize(heldout_subjects=names[-1:])


CATEGORY_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def make_category_dataset(path, n_train=15, n_test=9, seed=0):
    """A tiny dataset whose images are labelled by the twin's ground-truth format: image i shows a
    square of colour ``i % 3`` (:data:`CATEGORY_COLOURS`, separable categories) on a noisy background,
    and ``ground_truth/stimuli.npz`` says that category covers it (``twin.json`` names them).
    Returns (dataset, labels by image id)."""
    from brainit_core.fileio import write_json

    rng = np.random.default_rng(seed)
    n_img, size = n_test + 2 * n_train, 16
    images = rng.integers(0, 90, (n_img, size, size, 3), dtype=np.uint8)
    labels = np.arange(n_img) % len(CATEGORY_COLOURS)
    for i, k in enumerate(labels):
        x, y = rng.integers(0, 6, 2)
        images[i, y:y + 10, x:x + 10] = list(CATEGORY_COLOURS.values())[k]
    ds = make_tiny_dataset(path, n_train=n_train, n_test=n_test, image_size=size, seed=seed, images=images)
    ids = np.arange(n_img) * 3 + 5  # make_tiny_dataset's ids
    coverage = np.zeros((ids.max() + 1, len(CATEGORY_COLOURS)), np.float32)
    coverage[ids, labels] = 100 / 256
    by_id = np.full(ids.max() + 1, -1)
    by_id[ids] = labels
    gt = Path(path) / "ground_truth"
    gt.mkdir()
    np.savez_compressed(gt / "stimuli.npz", category_coverage=coverage)
    write_json(gt / "twin.json", {"version": 2, "categories": list(CATEGORY_COLOURS), "subjects": ds.subjects})
    return ds, by_id


def make_run_dataset(path, n_unlabeled=24, seed=0):
    """Like conftest's tiny dataset (3 subjects, the last held out) plus an "unlabeled" image set."""
    from brainit_core.data import DatasetWriter

    rng = np.random.default_rng(seed)
    w = DatasetWriter(path, source="synthetic-test", mesh="fsaverage5", image_size=16)
    n_test, n_train, subjects = 4, 12, ["sub01", "sub02", "sub03"]
    n_img = n_test + n_train * len(subjects) + n_unlabeled
    ids = np.arange(n_img) * 3 + 5
    w.add_images(ids, rng.integers(0, 256, (n_img, 16, 16, 3), dtype=np.uint8))
    w.add_image_set("unlabeled", ids[-n_unlabeled:])
    for s, name in enumerate(subjects):
        nv = (30, 24, 27)[s]
        verts = np.concatenate([np.sort(rng.choice(10242, nv // 2, replace=False)),
                                np.sort(rng.choice(10242, nv - nv // 2, replace=False))])
        w.begin_subject(name, verts, np.r_[np.zeros(nv // 2), np.ones(nv - nv // 2)].astype(np.uint8))
        test, train = ids[:n_test], ids[n_test + s * n_train: n_test + (s + 1) * n_train]
        shown = np.repeat(np.r_[test, train], 2)
        rng.shuffle(shown)
        half = len(shown) // 2
        for sess, chunk in enumerate((shown[:half], shown[half:]), start=1):
            w.append_session(name, rng.standard_normal((len(chunk), nv)).astype(np.float32), chunk, sess)
        w.finalize_subject(name, train[:-3], train[-3:], test)
    return w.finalize(heldout_subjects=subjects[-1:])


# -- BIT training data and models --------------------------------------------------------------

SEM = TokenSpec("semantic", (2, 2), 6)
LOW = [TokenSpec("l0", (4, 4), 3), TokenSpec("l1", (2, 2), 5)]
SUBJECTS = {"a": 20, "b": 14}


def make_data(n=40, seed=0) -> BITData:
    """Features and betas of n images that all derive linearly from 4 latent factors (learnable)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4)).astype(np.float32)
    def feat(*shape):
        return (z @ rng.standard_normal((4, int(np.prod(shape))))).reshape(n, *shape).astype(np.float16)
    fs = FeatureSet(np.arange(n), feat(4, 6), [feat(3, 4, 4), feat(5, 2, 2)])
    real, val, syn = {}, {}, {}
    for s, v in SUBJECTS.items():
        betas = z @ rng.standard_normal((4, v)).astype(np.float32) + 0.1 * rng.standard_normal((n, v)).astype(np.float32)
        real[s] = SamplePool(betas[:30], np.arange(30))
        val[s] = SamplePool(betas[30:], np.arange(30, n))
        syn[s] = SamplePool(betas[:30].astype(np.float16), np.arange(30))
    return BITData(fs, real, val, syn)


def make_model(data: BITData, config: BITConfig, seed=0) -> BrainITModel:
    torch.manual_seed(seed)
    m = BrainITModel(config, SEM, LOW)
    for s, v in SUBJECTS.items():
        m.add_subject(s, v, np.arange(v) % config.n_clusters)
        m.set_input_stats(s, data.real[s].betas.mean(0), data.real[s].betas.std(0))
    m.set_target_stats(*channel_stats(data.features, np.arange(30)))
    return m


def tiny_bit_model(subjects: dict | None = None, config: BITConfig | None = None, seed: int = 0) -> BrainITModel:
    """An untrained BrainITModel on the tiny specs (:data:`SEM`, :data:`LOW`), voxels assigned round-robin to
    clusters. ``subjects``: name -> vertex count (default ``{"a": 20}``)."""
    torch.manual_seed(seed)
    config = config or BITConfig.preset("ci")
    subjects = subjects or {"a": 20}
    model = BrainITModel(config, SEM, LOW, subjects)
    for s, v in subjects.items():
        model.set_labels(s, np.arange(v) % config.n_clusters)
    return model


def tiny_config(**kw) -> BITConfig:
    cfg = BITConfig.preset("ci")
    cfg.voxels_per_sample = 12
    cfg.semantic_batch = cfg.lowlevel_batch = 8
    cfg.lr = 3e-3
    cfg.warmup_epochs = 0
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


# -- generators and runs ------------------------------------------------------------------------

N_VERTICES = 30


def build_tiny_generators(space, seed: int = 0):
    """Randomly initialised ci-size generators whose statistics are fitted on random images."""
    from brainit_core.reconstruction.autoencoder import build_autoencoder
    from brainit_core.reconstruction.diffusion import ConditionalUNet
    from brainit_core.reconstruction.generators import Generators, ReconstructionConfig
    from brainit_core.reconstruction.inverter import FeatureInverter
    from brainit_core.reconstruction.training import generator_configs
    from dataclasses import asdict

    torch.manual_seed(seed)
    cfgs = generator_configs(space, "ci")
    ae = build_autoencoder(cfgs["autoencoder"]).eval()
    unet = ConditionalUNet(cfgs["unet"]).eval()
    inv = FeatureInverter(cfgs["inverter"]).eval()
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        inv.fit_statistics(space.lowlevel_maps(x))
        unet.conditioner.fit_statistics(space.semantic_tokens(x))
    settings = {"preset": "ci", "space": {"name": "lite0", "preset": "ci"},
                "reconstruction": asdict(ReconstructionConfig.preset("ci"))}
    return Generators(space=space, autoencoder=ae, unet=unet, inverter=inv,
                      scheduler_config=cfgs["unet"].scheduler_config(), settings=settings)


def make_tiny_sdxl(path, token_dim: int = 24, projection: bool = True, seed: int = 0) -> Path:
    """A tiny random SDXL in the diffusers directory layout: the SDXL classes (``UNet2DConditionModel`` with
    ``text_time`` added conditioning, ``AutoencoderKL``, an Euler scheduler config) at tiny sizes: 16 px images,
    8 x 8 x 4 latents, cross-attention width 64, pooled width 32. ``projection`` adds an untrained
    ``image_token_projection`` for ``token_dim``-wide tokens (the layout ``SDXLReconstructor.from_pretrained``
    reads without a generator set)."""
    import json

    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel

    from brainit_core.reconstruction.sdxl import PROJECTION_NAME, ImageTokenProjection

    d = Path(path)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=16, sample_size=16, scaling_factor=0.13025)
    unet.save_pretrained(d / "unet", safe_serialization=True)
    vae.save_pretrained(d / "vae", safe_serialization=True)
    EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                           steps_offset=1, timestep_spacing="leading").save_pretrained(d / "scheduler")
    (d / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLImg2ImgPipeline"}))
    if projection:
        ImageTokenProjection(token_dim, 64, 32).save(d / PROJECTION_NAME)
    return d


class FakeRun:
    """Stands in for ``BrainITRun``: a fixed random linear map from betas to both feature sets."""

    def __init__(self, space, subjects=("sub01",), n_vertices: int = N_VERTICES, seed: int = 0):
        self.space = space
        self.subjects = list(subjects)
        self.checkpoint_sha256 = "0" * 64
        self.calls = 0
        g = torch.Generator().manual_seed(seed)
        sem = space.semantic_spec
        self._sem = torch.randn(n_vertices, sem.n_tokens * sem.dim, generator=g) * 0.3
        self._low = [torch.randn(n_vertices, s.dim * s.grid[0] * s.grid[1], generator=g) * 0.3
                     for s in space.lowlevel_specs]

    def predict(self, betas, subject, return_attention=False):
        from brainit_core.models.bit import BITPrediction

        self.calls += 1
        if subject not in self.subjects:
            raise KeyError(subject)
        x = torch.as_tensor(np.asarray(betas, dtype=np.float32))
        B = x.shape[0]
        sem = self.space.semantic_spec
        pred = BITPrediction(semantic=(x @ self._sem).view(B, sem.n_tokens, sem.dim).relu(),
                             lowlevel=[(x @ w).view(B, s.dim, *s.grid).relu() for w, s in zip(self._low, self.space.lowlevel_specs)])
        if return_attention:
            pred.tokenizer_attention = {"semantic": torch.softmax(x, dim=1), "lowlevel": torch.softmax(2 * x, dim=1)}
            pred.cluster_of_voxel = torch.arange(x.shape[1]) % 4
            n_low = sum(s.n_tokens for s in self.space.lowlevel_specs)
            pred.cross_attention = {"semantic": torch.rand(B, sem.n_tokens, 4), "lowlevel": torch.rand(B, n_low, 4)}
        return pred


# -- the app's tiny configuration --------------------------------------------------------------

TWIN_SIZE = dict(n_subjects=2, n_train=40, n_test=8, n_unlabeled=16, n_ood=4, image_size=32,
                 stimuli="procedural")  # the app's tests need no stimulus library


@dataclass(frozen=True)
class AppData:
    """Paths of the tiny app configuration."""

    root: Path
    dataset: Path
    run: Path
    generators: Path

    def env(self) -> dict:
        return {"BRAINIT_APP_DATA": str(self.dataset), "BRAINIT_APP_RUN": str(self.run),
                "BRAINIT_APP_GENERATORS": str(self.generators), "BRAINIT_DATA": str(self.root)}


def build_app_data(root, seed: int = 0) -> AppData:
    """Build the tiny twin (twin01, twin02 trained; twin03 held out), a ci run and ci generators."""
    import torch

    from brainit_core.data.twin import TwinConfig, build_twin
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.training import train_run

    torch.set_num_threads(1)
    root = Path(root)
    ds = build_twin(root / "twin-tiny", TwinConfig.preset("ci", seed=seed, **TWIN_SIZE))
    train_run(ds, preset="ci", out=root / "runs" / "tiny", device="cpu")
    run = BrainITRun.load(root / "runs" / "tiny", device="cpu")
    build_tiny_generators(run.space).save(root / "generators" / "tiny")
    return AppData(root, root / "twin-tiny", root / "runs" / "tiny", root / "generators" / "tiny")


def build_nsd_app_data(root, space: str = "fsaverage", order: int = 1, seed: int = 0, **tree) -> AppData:
    """An NSD-format tree in ``space`` (fake fsaverage surfaces, ROI atlases, volumes: see
    ``tests/data/nsd_fixtures.make_nsd_display_tree``), prepared by ``nsd prepare``, a ci run and ci
    generators on it: subj01 and subj02 with 60 trials each (about 15 s on 2 cores)."""
    import torch

    from brainit_core.data.nsd import prepare_nsd
    from brainit_core.models.run import BrainITRun
    from brainit_core.models.training import train_run
    from tests.data.nsd_fixtures import make_nsd_display_tree

    torch.set_num_threads(1)
    root = Path(root)
    facts = make_nsd_display_tree(root / "nsd", space=space, order=order, seed=seed, **tree)
    out = root / f"nsd-{space}"
    prepare_nsd(root / "nsd", [1, 2], out, space=space, trials_per_session=tree.get("trials", 30), image_size=32,
                n_vertices_per_hemi=facts["n_vertices"], val_images=2, seed=seed)
    train_run(out, preset="ci", out=root / "runs" / space, device="cpu")
    run = BrainITRun.load(root / "runs" / space, device="cpu")
    build_tiny_generators(run.space, seed=seed).save(root / "generators" / space)
    return AppData(root, out, root / "runs" / space, root / "generators" / space)


# -- the command line ---------------------------------------------------------------------------

def refused(capsys, argv: list[str], name: str) -> str:
    """Run the CLI on ``argv``; assert it stopped with status 2 and ONE stderr line naming ``name``
    (an argument or a file) and no traceback; return that line."""
    from brainit_core.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert name in err and "Traceback" not in err, err
    return err


# -- a tiny fake stimulus library (the twin v2's Debian packages) under a fake system root ---------

FAKE_OBJECTS = {  # openclipart folder -> category the taxonomy gives it
    "people": "face", "people/stickmen": "body", "animals/mammals": "animal", "food/fruit": "food",
    "transportation/vehicles": "vehicle", "buildings/homes": "place", "plants/trees": "plant",
    "transportation/roadsigns": "word", "office": "object",
}
FAKE_STATUS = {"openclipart-png": "1:0.18+dfsg-19", "tuxpaint-stamps-default": "2022.06.04-1",
               "mate-backgrounds": "1.26.0-1", "plasma-workspace-wallpapers": "4:5.27.5-2"}


def _sprite(path: Path, colour, size=(40, 30), shape="ellipse") -> None:
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    box = [2, 2, size[0] - 3, size[1] - 3]
    (draw.ellipse if shape == "ellipse" else draw.polygon)(
        box if shape == "ellipse" else [(2, size[1] - 3), (size[0] // 2, 2), (size[0] - 3, size[1] - 3)],
        fill=tuple(colour) + (255,))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _photo(path: Path, size, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    base = rng.uniform(60, 140, 3)
    img = base + 30 * np.sin(xx[..., None] / rng.uniform(20, 60) + yy[..., None] / 50.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_fake_library(root, with_font: bool = True) -> Path:
    """A tiny installed stimulus library under the system root ``root`` (same layout as Debian's packages).

    Two sprites per category folder of :data:`FAKE_OBJECTS` (bright colours on transparency), a
    folder the taxonomy leaves out (``shapes``), one corrupt PNG (``food/fruit/broken.png``), tuxpaint
    stamps with descriptions, three mate backgrounds (two scene photographs, one abstract), a plasma
    wallpaper in two sizes, copyright files, dpkg's status and (``with_font``) DejaVu Sans Bold when
    this machine has it.
    """
    root = Path(root)
    oc = root / "usr/share/openclipart/png"
    colours = [(230, 20, 20), (20, 200, 40), (30, 60, 230), (240, 200, 10), (200, 30, 200), (20, 210, 210)]
    for i, folder in enumerate(FAKE_OBJECTS):
        for j in range(2):
            _sprite(oc / folder / f"item{j}.png", colours[(i + j) % len(colours)], (40 + 8 * j, 30 + 5 * i),
                    "ellipse" if j == 0 else "triangle")
    _sprite(oc / "shapes/star.png", (255, 255, 0))
    (oc / "food/fruit/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png at all" * 4)
    tux = root / "usr/share/tuxpaint/stamps"
    _sprite(tux / "animals/mammals/cats/cat.png", (250, 120, 0))
    (tux / "animals/mammals/cats/cat.txt").write_text("A cat.\nfr.utf8=Un chat.\n")
    _sprite(tux / "seasonal/halloween/blackcat.png", (10, 10, 10))
    (tux / "seasonal/halloween/blackcat.txt").write_text("A black cat.\n")
    _sprite(tux / "seasonal/candle.png", (250, 250, 200))
    (tux / "seasonal/candle.txt").write_text("A candle.\n")
    mate = root / "usr/share/backgrounds/mate"
    _photo(mate / "nature/Dune.jpg", (320, 200), 1)
    _photo(mate / "nature/Storm.jpg", (300, 240), 2)
    _photo(mate / "abstract/Flow.png", (200, 150), 3)
    walls = root / "usr/share/wallpapers/Path/contents/images"
    _photo(walls / "1280x800.jpg", (320, 200), 4)
    _photo(walls / "640x480.jpg", (160, 120), 5)
    docs = root / "usr/share/doc"
    (docs / "openclipart-png").mkdir(parents=True)
    (docs / "openclipart-png/copyright").write_text("Copyright:\n\n creative commons Public Domain Dedication\n")
    dep5 = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: someone\nLicense: GPL-2+\n\nFiles: nature/Storm.jpg\nCopyright: someone else\n"
            "License: CC-BY-SA-4.0\n")
    for pkg in ("tuxpaint-stamps-default", "mate-backgrounds", "plasma-workspace-wallpapers"):
        (docs / pkg).mkdir(parents=True)
        (docs / pkg / "copyright").write_text(dep5.replace("GPL-2+", "GPL-2") if pkg.startswith("tux") else dep5)
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text("".join(f"Package: {p}\nStatus: install ok installed\nVersion: {v}\n\n"
                              for p, v in FAKE_STATUS.items()))
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    if with_font and font.is_file():
        target = root / "usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
        target.parent.mkdir(parents=True)
        target.write_bytes(font.read_bytes())
    return root


# -- jobs of several processes (torchrun, gloo on CPU) ------------------------------------------

def tiny_head_job(epochs: int = 3):
    """The BIT head training of ``tests/ddp_worker.py``: (data, config, model), the same in every process."""
    data = make_data()
    cfg = tiny_config(semantic_epochs=epochs, lowlevel_epochs=epochs, synthetic_per_real=0.5, warmup_epochs=1)
    return data, cfg, make_model(data, cfg)


REPO = Path(__file__).resolve().parent.parent
def infonce_batch():
    """A fixed low-level batch for ``tests/ddp_worker.py infonce``: predictions and targets of two layers
    ``(5, n_l, C_l)`` (5 samples: uneven shards on 2 processes) and the ``lowlevel_loss`` settings."""
    import torch

    g = torch.Generator().manual_seed(7)
    shapes = [(5, 6, 4), (5, 3, 8)]
    preds = [torch.randn(s, generator=g) for s in shapes]
    targets = [p + 0.7 * torch.randn(p.shape, generator=g) for p in preds]
    return preds, targets, {"logit_scale": 0.5, "mse_weight": 0.3, "accuracy": True}


DDP_WORKER = REPO / "tests" / "ddp_worker.py"


@dataclass
class Job:
    returncode: int
    output: str
    seconds: float
    killed: bool = False


def run_job(args: list[str], nproc: int | None = 2, timeout: float = 300, env: dict | None = None,
            kill_when=None) -> Job:
    """Run ``python -m torch.distributed.run --standalone --nproc-per-node NPROC ARGS`` (a free port,
    one torch thread per process) or, with ``nproc=None``, ``python ARGS`` alone, from the repository
    root, in a process group of its own. ``kill_when()`` is polled every 0.1 s; when it turns true the
    whole job (launcher and workers) is killed with SIGKILL, as a machine failure would.
    """
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    launcher = [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    t0 = time.time()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, *launcher, *map(str, args)], cwd=REPO, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        killed = False
        try:
            while proc.poll() is None:
                if time.time() - t0 > timeout:
                    raise TimeoutError(f"job {args} still running after {timeout} s")
                if kill_when is not None and kill_when():
                    killed = True
                    break
                time.sleep(0.1)
        finally:
            if proc.poll() is None:  # the launcher and its workers (torchrun starts each in a session of its own)
                for pid in [proc.pid, *_descendants(proc.pid)]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            proc.wait()
        log.seek(0)
        return Job(proc.returncode, log.read(), time.time() - t0, killed)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc)."""
    from pathlib import Path as P

    children: dict = {}
    for stat in P("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
