import json

import numpy as np
import pytest

from brainit_core.cli import main
from tests.factories import make_tiny_dataset
from tests.factories import FakeRun, refused


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    make_tiny_dataset(d / "data")
    argv = ["train-generators", "--data", str(d / "data"), "--preset", "ci", "--out", str(d / "gen"),
            "--steps", "autoencoder=3", "inverter=3", "unet=3", "--threads", "1"]
    assert main(argv) == 0
    return d


def test_train_generators_writes_everything_and_skips_when_done(trained):
    gen = trained / "gen"
    for name in ("autoencoder", "inverter", "unet"):
        assert (gen / f"{name}.safetensors").exists() and (gen / f"{name}.json").exists()
        assert (gen / "train" / f"{name}_loss.csv").exists()
    settings = json.loads((gen / "generators.json").read_text())
    assert settings["preset"] == "ci" and settings["train_configs"]["unet"]["steps"] == 3
    before = {p.name: p.stat().st_mtime for p in gen.glob("*.safetensors")}
    assert main(["train-generators", "--data", str(trained / "data"), "--preset", "ci", "--out", str(gen)]) == 0
    assert before == {p.name: p.stat().st_mtime for p in gen.glob("*.safetensors")}


def test_reconstruct_writes_pngs_and_resumes(trained, monkeypatch, tmp_path):
    from PIL import Image

    from brainit_core.models import run as run_module
    from brainit_core.reconstruction.generators import Generators

    space = Generators.load(trained / "gen", device="cpu").space
    fake = FakeRun(space)
    monkeypatch.setattr(run_module.BrainITRun, "load", classmethod(lambda cls, path, device=None: fake))
    base = ["reconstruct", "--run", str(tmp_path), "--generators", str(trained / "gen"), "--data", str(trained / "data"),
            "--subject", "sub01", "--out", str(tmp_path / "rec"), "--threads", "1"]
    assert main(base + ["--limit", "2"]) == 0
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert len(manifest["images"]) == 2 and manifest["run_sha256"] == "0" * 64
    first = sorted(manifest["images"])[0]
    img = np.asarray(Image.open(tmp_path / "rec" / "fused" / f"{first}.png"))
    assert img.shape == (64, 64, 3)
    assert (tmp_path / "rec" / "low_level" / f"{first}.png").exists()
    calls = fake.calls
    assert main(base + ["--limit", "4"]) == 0  # 2 done, 2 new
    manifest = json.loads((tmp_path / "rec" / "manifest.json").read_text())
    assert len(manifest["images"]) == 4 and manifest["completed"]
    assert fake.calls == calls + 1
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rec" / "fused" / f"{first}.png")), img)
    # other settings into the same folder: refused unless --overwrite
    assert main(base + ["--limit", "1", "--guidance-scale", "7"]) == 2
    assert main(base + ["--limit", "1", "--guidance-scale", "7", "--overwrite"]) == 0


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "train-generators" in out and "reconstruct" in out and "benchmark-generators" in out


def test_train_generators_pauses_and_resumes(tmp_path):
    make_tiny_dataset(tmp_path / "data")
    argv = ["train-generators", "--data", str(tmp_path / "data"), "--preset", "ci", "--out", str(tmp_path / "gen"),
            "--steps", "autoencoder=3", "inverter=2", "unet=2", "--threads", "1"]
    assert main(argv + ["--max-minutes", "0"]) == 0  # one step, state saved, later stages not started
    assert not (tmp_path / "gen" / "autoencoder.safetensors").exists()
    assert (tmp_path / "gen" / "train" / "autoencoder_state.safetensors").exists()
    assert not (tmp_path / "gen" / "train" / "inverter_loss.csv").exists()
    assert main(argv) == 0
    rows = (tmp_path / "gen" / "train" / "autoencoder_loss.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["1", "2", "3"]
    assert all((tmp_path / "gen" / f"{s}.safetensors").exists() for s in ("autoencoder", "inverter", "unet"))


def test_reconstruct_refuses_another_split_in_the_same_out(trained, monkeypatch, tmp_path, capsys):
    from brainit_core.models import run as run_module
    from brainit_core.reconstruction.generators import Generators

    fake = FakeRun(Generators.load(trained / "gen", device="cpu").space)
    monkeypatch.setattr(run_module.BrainITRun, "load", classmethod(lambda cls, path, device=None: fake))
    out = tmp_path / "rec"
    base = ["reconstruct", "--run", str(tmp_path), "--generators", str(trained / "gen"), "--data",
            str(trained / "data"), "--subject", "sub01", "--out", str(out), "--threads", "1", "--limit", "2"]
    assert main(base) == 0
    test_files = sorted(p.name for p in (out / "fused").iterdir())
    capsys.readouterr()
    line = refused(capsys, base + ["--split", "train"], "--split")
    assert "--split test" in line and "--split train" in line
    assert sorted(p.name for p in (out / "fused").iterdir()) == test_files  # nothing mixed in
    assert json.loads((out / "manifest.json").read_text())["split"] == "test"
    assert main(base + ["--split", "train", "--overwrite"]) == 0  # the test images go, the train ones come
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"] == "train"
    assert sorted(p.name for p in (out / "fused").iterdir()) == sorted(f"{i}.png" for i in manifest["images"])
    assert not set(test_files) & set(f"{i}.png" for i in manifest["images"])


def test_train_generators_on_library_scenes(fake_library, tmp_path, monkeypatch, capsys):
    """--scenes N trains on scenes of the stimulus library, records where they came from, keeps tokens in
    GEN_DIR/train; without the library it stops with the install command."""
    import json

    root, data = fake_library
    monkeypatch.setenv("BRAINIT_LIBRARY_ROOT", str(root))
    monkeypatch.setenv("BRAINIT_DATA", str(data))
    argv = ["train-generators", "--scenes", "12", "--scene-seed", "5", "--preset", "ci", "--out",
            str(tmp_path / "gen"), "--steps", "autoencoder=2", "inverter=2", "unet=2", "--threads", "1"]
    assert main(argv) == 0
    record = json.loads((tmp_path / "gen" / "generators.json").read_text())
    assert record["scenes"]["n"] == 12 and record["scenes"]["seed"] == 5 and "dataset" not in record
    assert len(record["scenes"]["library_version"]) == 16
    tokens = list((tmp_path / "gen" / "train").glob("semantic_*scenes12_seed5_*.npy"))
    assert len(tokens) == 1 and np.load(tokens[0]).shape[0] == 12
    monkeypatch.setenv("BRAINIT_LIBRARY_ROOT", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    line = refused(capsys, argv[:8] + [str(tmp_path / "gen2"), "--threads", "1"], "apt-get install")
    assert "openclipart" in line


def test_fine_tune_starts_from_finished_generators(trained, tmp_path, capsys):
    """--init-from: a one-step fine-tune stays close to the start weights (a fresh start of another seed
    would not);
    a component of another design is refused with one line."""
    from brainit_core.checkpoint import load_checkpoint

    gen = trained / "gen"

    def argv(out, *init):
        return ["train-generators", "--data", str(trained / "data"), "--preset", "ci", "--out", str(out),
                "--stages", "autoencoder", "--steps", "autoencoder=1", "--threads", "1", "--seed", "1", *init]

    assert main(argv(tmp_path / "tuned", "--init-from", str(gen))) == 0
    assert main(argv(tmp_path / "fresh")) == 0
    start, tuned, scratch = (load_checkpoint(p / "autoencoder")[0] for p in (gen, tmp_path / "tuned", tmp_path / "fresh"))
    w = "encoder.conv_in.weight"
    assert (tuned[w] - start[w]).abs().max() < 0.05 < (scratch[w] - start[w]).abs().max()
    assert json.loads((tmp_path / "tuned" / "generators.json").read_text())["init_stages"] == list(
        ("autoencoder", "inverter", "unet"))
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "autoencoder.safetensors").write_bytes((gen / "inverter.safetensors").read_bytes())
    (odd / "autoencoder.json").write_text((gen / "inverter.json").read_text())
    capsys.readouterr()
    line = refused(capsys, argv(tmp_path / "x", "--init-from", str(odd)), "do not fit")
    assert "autoencoder" in line
