"""The shipped demo bundle (assets/demo): intact, loadable, made with the code's current presets."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import numpy as np
import pytest

from brainit_core.bundle import export_dataset_slice, verify_bundle
from tests.factories import make_run_dataset
from brainit_core.app_sources import bundle_dir

BUNDLE = bundle_dir()


def test_shipped_bundle_matches_manifest():
    assert (BUNDLE / "MANIFEST.json").exists(), f"{BUNDLE} is missing: run `python -m brainit_core train-demo`"
    assert verify_bundle(BUNDLE) == []


def test_shipped_bundle_stays_within_120_mb():
    """The repository carries the bundle: its files (the manifest's sizes, which verify-bundle checks) stay within
    120 MB (train-demo's --n-test 80 and --unlabeled 100 with float16 betas are chosen for that)."""
    manifest = json.loads((BUNDLE / "MANIFEST.json").read_text())
    total = sum(int(entry["bytes"]) for entry in manifest["files"].values()) + (BUNDLE / "MANIFEST.json").stat().st_size
    assert total <= 120e6, f"{BUNDLE} holds {total / 1e6:.1f} MB (budget 120 MB)"


def test_shipped_configs_match_the_code_presets():
    from brainit_core.features import get_feature_space
    from brainit_core.models.bit import BITConfig
    from brainit_core.models.encoder import EncoderConfig
    from brainit_core.reconstruction.generators import ReconstructionConfig
    from brainit_core.reconstruction.training import generator_configs

    run = json.loads((BUNDLE / "run" / "run.json").read_text())
    assert run["preset"] == "demo"
    assert BITConfig.from_dict(run["bit_config"]) == BITConfig.preset("demo"), \
        "the demo BIT preset changed since the shipped run was trained: retrain with train-demo"
    assert EncoderConfig(**run["encoder_config"]) == EncoderConfig.preset("demo"), \
        "the demo encoder preset changed since the shipped run was trained: retrain with train-demo"
    gens = json.loads((BUNDLE / "generators" / "generators.json").read_text())
    space = get_feature_space("lite0", preset="demo")
    expected = {k: json.loads(json.dumps(asdict(v))) for k, v in generator_configs(space, "demo").items()}
    shipped = json.loads(json.dumps(gens["train_configs"]))
    # A stage that started from earlier weights (train-generators --init-from) trains for its own number of
    # steps: the shipped autoencoder is the first demo's, fine-tuned on the stimulus library's scenes.
    for stage in gens.get("init_stages", []):
        shipped[stage].pop("steps"), expected[stage].pop("steps")
    assert shipped == expected, "the demo generator presets changed: retrain with train-demo"
    assert gens["reconstruction"] == json.loads(json.dumps(asdict(ReconstructionConfig.preset("demo"))))


@pytest.fixture(scope="module")
def shipped_pipeline():
    import torch

    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators

    torch.set_num_threads(1)
    run = BrainITRun.load(BUNDLE / "run", device="cpu")
    return BrainITPipeline(run, Generators.load(BUNDLE / "generators", device=run.device, space=run.space))


def test_shipped_models_reconstruct_a_test_image(shipped_pipeline):
    from brainit_core.data import load_dataset
    from brainit_core.metrics.pixel import pixcorr

    ds = load_dataset(BUNDLE / "dataset")
    subject = shipped_pipeline.run.subjects[0]
    betas, ids = ds.subject(subject).averaged("test")
    out = shipped_pipeline(betas[:4], subject, mode="fast", seed=0)
    assert out.fused.shape == (4, 128, 128, 3) and out.fused.dtype == np.uint8
    # the trained low-level branch must carry the layout: far above the ~0 of unrelated images
    assert pixcorr(ds.images(ids[:4]), out.low_level) > 0.2


def test_shipped_bundle_has_the_app_default_grid(shipped_pipeline, tmp_path):
    """The Reconstructions page opens on the run's first subject; its default grid ships with the bundle
    (else the first visit runs the pipeline: `python -m brainit_core bundle-grids` makes it)."""
    from brainit_core.data import load_dataset
    from brainit_core.reconstruction import grids as recon

    ds = load_dataset(BUNDLE / "dataset")
    subject = shipped_pipeline.run.subjects[0]
    n = min(recon.GRID_SIZE, len(ds.subject(subject).test_image_ids))
    grid = recon.reconstruct_grid(shipped_pipeline, ds, subject, n, recon.GRID_SETTINGS, root=tmp_path, compute=False)
    assert grid is not None and grid.cached, "assets/demo/grids lacks the default grid: run bundle-grids"
    assert list(grid.images) == list(recon.COLUMNS) and len(grid.image_ids) == n


def test_tampered_or_missing_files_are_reported(tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(BUNDLE / "run", copy / "run")
    shutil.copy(BUNDLE / "MANIFEST.json", copy / "MANIFEST.json")
    manifest = json.loads((copy / "MANIFEST.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k.startswith("run/")}
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    assert verify_bundle(copy) == []
    target = copy / "run" / "v2c.json"
    target.write_text(target.read_text() + " ")
    (copy / "run" / "curves.json").unlink()
    problems = verify_bundle(copy)
    assert any("v2c.json differs" in p for p in problems) and any("curves.json is missing" in p for p in problems)


@pytest.mark.parametrize("compact", [False, True])
def test_dataset_slice_keeps_trials_exactly(tiny_dataset, tmp_path, compact):
    """Every trial of the kept test images, as in the source: exactly, or (compact, the bundle's
    default) rounded to float16 and read back as float32."""
    import h5py

    from brainit_core.data import load_dataset

    src = tiny_dataset
    out = load_dataset(export_dataset_slice(src.path, tmp_path / "slice", n_test=3, n_ood=0, compact=compact))
    for name in out.subjects:
        a, b = src.subject(name), out.subject(name)
        keep = np.sort(b.test_image_ids)
        assert len(keep) == 3 and set(keep) <= set(a.test_image_ids)
        np.testing.assert_array_equal(b.vertices, a.vertices)
        with h5py.File(out.path / "subjects" / f"{name}.h5") as f:
            assert f["betas"].dtype == (np.float16 if compact else np.float32)
        for image_id in keep:
            want = a.betas_for_trials(np.flatnonzero(a.image_ids == image_id))
            got = b.betas_for_trials(np.flatnonzero(b.image_ids == image_id))
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32) if compact else want)
            if compact:
                assert np.abs(got - want).max() <= 0.004 * max(1.0, np.abs(want).max() / 8)
        np.testing.assert_array_equal(out.images(keep), src.images(keep))
        assert len(b.train_image_ids) == 0


def test_compact_slice_leaves_out_the_noiseless_responses_and_says_so(app_data, tmp_path):
    """The bundle's twin ground truth keeps every array but the noiseless test responses; the
    benchmark's noiseless-oracle row then names what is missing instead of failing on a key."""
    from brainit_core.benchmark.twin import noiseless_responses
    from brainit_core.data import load_dataset
    from brainit_core.data.twin import load_ground_truth
    from brainit_core.errors import BrainITError

    src = load_dataset(app_data.dataset)
    out = load_dataset(export_dataset_slice(src.path, tmp_path / "slice", n_test=3, n_ood=0))
    assert out.info.metadata["bundle"]["ground_truth_omits"] == ["noiseless_test"]
    subject = out.subjects[0]
    full, slim = load_ground_truth(src.path, subject)["subject"], load_ground_truth(out.path, subject)["subject"]
    assert "noiseless_test" in full and set(full) - set(slim) == {"noiseless_test"}
    for key in slim:
        np.testing.assert_array_equal(slim[key], full[key])
    with pytest.raises(BrainITError, match="no noiseless test responses"):
        noiseless_responses(out, out.path, subject, np.sort(out.subject(subject).test_image_ids))


def test_a_bundled_run_answers_to_the_sha256_of_its_source(app_data):
    """A benchmark of the source run counts for its bundled (float16) copy (the Transfer lab shows it)."""
    from brainit_core.models.transfer import benchmark_curve
    from brainit_core.runs import RunDirectory

    bundled = json.loads((BUNDLE / "run" / "bit.json").read_text())
    assert RunDirectory(BUNDLE / "run").identities == {bundled["sha256"], bundled["meta"]["bundled_from_sha256"]}
    own = json.loads((app_data.run / "bit.json").read_text())["sha256"]
    assert RunDirectory(app_data.run).identities == {own}
    results = {"run_sha256": bundled["meta"]["bundled_from_sha256"],
               "transfer": {"amounts": ["all"], "scores": {"all": {"SSIM": 0.5}}}}
    assert benchmark_curve(results, run=BUNDLE / "run")[0] == [{"amount": "all", "SSIM": 0.5}]
    assert benchmark_curve(results, run=app_data.run) is None


def test_dataset_slice_ships_the_heldout_subjects_first_hour(tmp_path):
    """The Transfer lab's data: the held-out subject's first minutes of training trials, in session order,
    its test trials and the first unlabeled images; the run's subjects keep test trials only."""
    from brainit_core.data import load_dataset
    from brainit_core.models.transfer import transfer_trials

    make_run_dataset(tmp_path / "src")
    src = load_dataset(tmp_path / "src")
    out = load_dataset(export_dataset_slice(src.path, tmp_path / "slice", n_test=3, n_ood=0,
                                            subjects=["sub01", "sub02"], heldout_minutes=1, n_unlabeled=5))
    assert out.subjects == ["sub01", "sub02", "sub03"] and out.heldout_subjects == ["sub03"]
    assert len(out.subject("sub01").train_image_ids) == 0
    a, b = src.subject("sub03"), out.subject("sub03")
    budget = transfer_trials(a, 1)  # 12 trials: 750 an hour
    assert len(budget) == 12
    np.testing.assert_array_equal(np.sort(b.train_image_ids), np.unique(a.image_ids[budget]))
    np.testing.assert_array_equal(transfer_trials(b, 1), transfer_trials(b, "all"))  # the whole budget, nothing more
    want = a.betas_for_trials(np.sort(budget)).astype(np.float16).astype(np.float32)  # the compact slice's precision
    got = b.betas_for_trials(np.flatnonzero(np.isin(b.image_ids, b.train_image_ids)))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out.image_set("unlabeled"), src.image_set("unlabeled")[:5])
    np.testing.assert_array_equal(out.images(b.train_image_ids), src.images(b.train_image_ids))
    assert out.info.metadata["bundle"]["heldout_trials"] == {"sub03": 12}
