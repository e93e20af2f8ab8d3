import numpy as np
import pytest

from brainit_core.reconstruction.branches import branch_study, format_study, simulate_tokens


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)


def test_branch_study_rows_and_kept_share(generators, images):
    """Strength 1 is generation from pure noise with the same seeds, so fusion there keeps none of the
    low-level branch's advantage; strength 0 is the low-level image through the autoencoder."""
    grid = {}
    res = branch_study(generators, images, sources=("true",), strengths=(0.0, 1.0), networks="offline",
                       steps=4, images_out=grid)
    rows = res["true"]
    assert list(rows) == ["low-level", "semantic only", "fused s=0.000", "fused s=1.000"]
    assert np.array_equal(grid[("true", "fused s=1.000")], grid[("true", "semantic only")])
    assert not np.array_equal(grid[("true", "fused s=0.000")], grid[("true", "semantic only")])
    assert res["kept"]["true"]["1.000"] == pytest.approx(0.0, abs=1e-6)
    assert grid["truth"].shape[0] == 4 and "PixCorr" in rows["low-level"]
    table = format_study(res)
    assert "| fused s=1.000 |" in table and "kept" in table


def test_simulated_tokens_are_shrunk_and_noisy(generators):
    import torch

    tok = torch.randn(3, generators.unet.config.n_tokens, generators.unet.config.token_dim) * 2 + 1
    a = simulate_tokens(tok, generators.unet, seed=0)
    b = simulate_tokens(tok, generators.unet, seed=0)
    assert torch.equal(a, b) and not torch.allclose(a, tok)
    z = generators.unet.conditioner.standardize
    assert z(a).std() < 1.2 * z(tok).std()


def test_cli_predicted_source_decodes_what_bit_predicts(app_data, tmp_path):
    """``--run`` adds BIT's predictions from the subject's test betas as a third source; its low-level
    row is the pipeline's low-level image of those betas (same seeds), so the rows are the app's images."""
    import json

    from brainit_core.cli import main
    from brainit_core.data import load_dataset
    from brainit_core.models.run import BrainITRun
    from brainit_core.reconstruction import BrainITPipeline, Generators

    out = tmp_path / "branches.json"
    assert main(["generator-branches", "--generators", str(app_data.generators), "--data", str(app_data.dataset),
                 "--run", str(app_data.run), "--n", "3", "--strengths", "0.5", "--steps", "4",
                 "--out", str(out), "--threads", "1"]) == 0
    res = json.loads(out.read_text())
    assert [k for k in res if k not in ("setup", "kept")] == ["true", "simulated", "bit"]
    run = BrainITRun.load(app_data.run, device="cpu")
    subject = run.subjects[0]
    assert res["setup"]["images"]["subject"] == subject
    betas, ids = load_dataset(app_data.dataset).subject(subject).averaged("test")
    assert res["setup"]["images"]["image_ids"] == np.asarray(ids[:3]).tolist()  # the images used (--n 3)
    assert set(res["kept"]["bit"]) == {"0.500"}
    # the predicted source's low-level images are the pipeline's on the same betas
    pipe = BrainITPipeline(run, Generators.load(app_data.generators, device="cpu", space=run.space))
    low = pipe(betas[:3], subject, branches=("low_level",), seed=[0, 1, 2]).low_level
    assert res["bit"]["low-level"]["PixCorr"] == pytest.approx(
        _pixcorr_vs_truth(app_data.dataset, ids[:3], low), abs=1e-3)


def _pixcorr_vs_truth(dataset, ids, images):
    from brainit_core.data import load_dataset
    from brainit_core.metrics.pixel import pixcorr

    return float(pixcorr(load_dataset(dataset).images(ids), images))


def test_cli_predicted_source_needs_a_run_and_a_dataset(tmp_path, capsys):
    from brainit_core.cli import main

    for extra in (["--photos", "--sources", "bit"], ["--photos", "--run", str(tmp_path)]):
        assert main(["generator-branches", "--generators", str(tmp_path), *extra,
                     "--out", str(tmp_path / "x.json")]) == 2
        assert "needs --run RUN and --data DATASET" in capsys.readouterr().err
