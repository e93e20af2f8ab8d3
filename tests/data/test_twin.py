import json

import h5py
import numpy as np
import pytest

from brainit_core.data import load_dataset
from brainit_core.data.twin import TwinConfig, build_twin, load_ground_truth, respond, validate_twin


@pytest.fixture
def twin(ci_twin):
    return ci_twin


def test_validation_figures(twin):
    report = validate_twin(twin)
    assert set(report) == {"twin01", "twin02", "twin03"}
    for r in report.values():
        truth = r["ground_truth"]
        assert 0.75 < truth["contralateral_fraction"] < 0.97  # twin v2: some ipsilateral pRFs
        assert truth["eccentricity_gradient_rho"] > 0.6  # eccentricity grows from the pole forward
        nc = r["noise_ceiling_median"]
        assert 0.25 < nc["measured"] < 0.55 and abs(nc["measured"] - nc["designed"]) < 0.08
        assert 0.08 < r["noise_ceiling_under_10pct"] < 0.35
        assert r["contralateral_drive"] > 0.55 and r["residual_correlation"] > 0.05
        per_area = r["noise_ceiling_per_area"]
        early = np.mean([per_area[a]["measured"] for a in ("V1", "V2", "V3")])
        assert early > np.mean([per_area[a]["measured"] for a in ("IPS", "LOTC", "VOT")]) + 0.05
        for a, p in per_area.items():
            # measured as designed (ci: 150 images, and the noise shared within a trial moves the
            # estimates of a subject's vertices together, so a per-area median can be 0.1 off)
            if p["n"] >= 30:
                assert abs(p["measured"] - p["designed"]) < 0.15, (a, p)
        assert r["noise_ceiling_per_area"]["V1"]["split_half"] > 0.05
        assert set(r["category_selectivity_dprime"]) == {"face", "body", "place", "word", "food"}
    # 30 test composites and a few vertices per patch: selective on average (the real check, on
    # hundreds of held-out composites and on photographs, is tests/data/test_twin_selectivity.py)
    loc = [r["category_selectivity_localizer"] for r in report.values()]
    for patch in ("face", "place", "word", "food"):
        assert np.mean([d[patch] for d in loc if patch in d]) > 0.2, (patch, loc)
    assert np.mean([v for d in loc for v in d.values()]) > 0.5, loc
    photos = report["twin01"]["photo_selectivity"]
    assert photos["face"]["n_own"] >= 2 and photos["body"]["own"] is None


def test_layout_and_heldout(twin):
    ds = load_dataset(twin)
    assert ds.heldout_subjects == ["twin03"] and ds.training_subjects == ["twin01", "twin02"]
    a, b = ds.subject("twin01"), ds.subject("twin02")
    np.testing.assert_array_equal(a.test_image_ids, b.test_image_ids)
    assert set(a.train_image_ids).isdisjoint(b.train_image_ids)
    assert np.all(np.diff(a.vertices[a.hemispheres == 0]) > 0) and a.vertices.max() < 10242
    assert np.all(np.bincount(a.image_ids)[np.unique(a.image_ids)] == 3)
    assert len(ds.image_set("unlabeled")) == 60 and len(ds.image_set("ood")) == 10
    assert np.abs(a.betas.mean(0)).max() < 1e-3  # z-scored (one session in ci)
    # ground truth lives apart: no canonical file holds it
    with h5py.File(twin / "subjects" / "twin01.h5") as f:
        assert set(f.keys()) == {"betas", "image_ids", "sessions", "vertices", "hemispheres",
                                 "train_image_ids", "val_image_ids", "test_image_ids"}
    gt = load_ground_truth(twin, "twin01")["subject"]
    np.testing.assert_array_equal(gt["vertices"], a.vertices)


def test_determinism(twin, tmp_path):
    again = build_twin(tmp_path / "again", TwinConfig.preset("ci", seed=3))
    other = build_twin(tmp_path / "other", TwinConfig.preset("ci", seed=4, n_train=10, n_unlabeled=2, n_ood=2))
    ds = load_dataset(twin)
    for name in ds.subjects:
        np.testing.assert_array_equal(ds.subject(name).betas, again.subject(name).betas)
        np.testing.assert_array_equal(ds.subject(name).image_ids, again.subject(name).image_ids)
    np.testing.assert_array_equal(ds.images(ds.image_ids[:20]), again.images(ds.image_ids[:20]))
    for name in ds.subjects:  # the brain too: layout, pRFs, noise loadings, noiseless responses
        a, b = load_ground_truth(twin, name)["subject"], load_ground_truth(again.path, name)["subject"]
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(load_ground_truth(twin, "twin01")["subject"]["vertices"],
                              load_ground_truth(other.path, "twin01")["subject"]["vertices"])
    assert not np.array_equal(ds.images(ds.image_ids[:5]), other.images(other.image_ids[:5]))


def test_respond_scale_and_agreement(twin):
    ds = load_dataset(twin)
    sub = ds.subject("twin01")
    betas, ids = sub.averaged("test")
    out = respond(twin, "twin01", ds.images(ids), repeats=3, seed=0)
    assert out.shape == (len(ids), 3, sub.n_vertices)
    # the dataset's scale (twin v2: the mean over 30 images moves more, signal and noise are shared across vertices)
    assert abs(out.mean()) < 0.3 and 0.8 < out.std() < 1.2
    m = out.mean(1)
    r = np.mean([np.corrcoef(m[:, v], betas[:, v])[0, 1] for v in range(sub.n_vertices)])
    assert r > 0.2
    clean = respond(twin, "twin01", [ds.images(ids[:1])[0][:40, :50]], repeats=2, noise=False)
    np.testing.assert_array_equal(clean[:, 0], clean[:, 1])


def test_cli_respond_and_validate(twin, tmp_path, capsys):
    from PIL import Image

    from brainit_core.cli import main

    Image.fromarray(np.zeros((30, 40, 3), np.uint8) + 128).save(tmp_path / "grey.png")
    assert main(["twin", "respond", "--data", str(twin), "--subject", "twin02", "--images", str(tmp_path),
                 "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape[:2] == (1, 3)
    assert main(["twin", "validate", "--data", str(twin), "--json", str(tmp_path / "v.json")]) == 0
    assert "contralateral" in capsys.readouterr().out
    assert "twin01" in json.loads((tmp_path / "v.json").read_text())


def test_stimuli_in_worker_processes_equal_serial(monkeypatch, fake_library):
    from brainit_core.data.twin.encoding import make_tuning, prf_weights
    from brainit_core.data.twin.library import load_library
    from brainit_core.data.twin.stimulus_sets import render_chunk, worker_pool

    library = load_library(fake_library[0], data_dir=fake_library[1])
    photos = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    area, x, y = np.array(["V1", "LOTC", "face", "food"]), rng.uniform(-3, 3, 4), rng.uniform(-3, 3, 4)
    models = [{"weights": prf_weights(x, y, np.full(4, 1.5)), "tuning": make_tuning(area, x, y, rng, np.ones(128))}]
    # ids 0-19 scenes, 20-23 OOD (2 photographs, then procedural drawings); subject 0 sees ids 2-16
    jobs = []
    for k in range(8):
        ids = np.arange(k * 3, k * 3 + 3)
        seen = (ids >= 2) & (ids <= 16)
        jobs.append((ids, 7, 32, "library", 20, [(0, seen)] if seen.any() else []))
    monkeypatch.setenv("BRAINIT_WORKERS", "2")
    with worker_pool(len(jobs), library, photos, ["a", "b"], models) as pool:
        assert pool is not None
        parallel = list(pool.imap(render_chunk, jobs))
    monkeypatch.setenv("BRAINIT_WORKERS", "1")
    with worker_pool(len(jobs), library, photos, ["a", "b"], models) as pool:
        assert pool is None
        serial = list(map(render_chunk, jobs))
    for got, want in zip(parallel, serial):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert got[2] == want[2] and set(got[3]) == set(want[3])
        for k in want[3]:
            np.testing.assert_array_equal(got[3][k], want[3][k])
    np.testing.assert_array_equal(serial[6][0][2], photos[0])  # id 20: the first photograph
    assert serial[6][2][20] == {"style": "photo", "photo": "a"} and serial[7][2][23]["style"] == "procedural"
    assert serial[0][3][0].shape == (1, 4) and serial[5][3][0].shape == (2, 4) and serial[6][3] == {}
    assert serial[0][2][0]["style"] == "library" and serial[0][1].shape == (3, 9, 32, 32)


def test_report_rows_one_per_subject():
    from brainit_core.data.twin.validation import report_rows

    report = {"twin01": {"n_vertices": 5, "noise_ceiling_median": {"designed": 0.4, "measured": 0.38},
                         "noise_ceiling_under_10pct": 0.2, "split_half_median": 0.17, "contralateral_drive": 0.9,
                         "residual_correlation": 0.13, "category_selectivity_dprime": {"face": 3.1},
                         "ground_truth": {"ipsilateral_fraction": 0.15, "eccentricity_gradient_rho": 0.8}}}
    (row,) = report_rows(report)
    assert row == {"subject": "twin01", "vertices": 5, "NC designed": 0.4, "NC measured": 0.38, "NC < 10%": 0.2,
                   "split-half r": 0.17, "contralateral drive": 0.9, "residual r": 0.13, "d' face": 3.1,
                   "ipsilateral pRFs (truth)": 0.15, "ecc-gradient rho (truth)": 0.8}


def test_respond_reads_16_bit_photos_like_the_app(tmp_path):
    """`twin respond --images` decodes through the app's photo reader: 16-bit grey is scaled, not clipped."""
    from PIL import Image

    from brainit_core.data.twin.respond import read_images

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    (im,) = read_images([tmp_path])
    assert im.shape == (64, 64, 3) and im.dtype == np.uint8
    assert 120 < im.mean() < 135  # a clipped ramp would be almost all white (mean ~254)
