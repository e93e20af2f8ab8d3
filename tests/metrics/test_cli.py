"""The `evaluate` command on a saved reconstruction set."""
from __future__ import annotations

import json

from PIL import Image

from brainit_core.cli import main
from tests.factories import make_tiny_dataset, refused


def test_evaluate_reads_a_reconstruct_output(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BRAINIT_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    data = tmp_path / "data"
    ids = [5, 8, 11]
    truth = make_tiny_dataset(data).images(ids)
    out = tmp_path / "recon"
    (out / "fused").mkdir(parents=True)
    for i, img in zip(ids, truth):
        Image.fromarray(img).save(out / "fused" / f"{i}.png")  # perfect reconstructions
    manifest = {"data": str(data), "images": {str(i): {"files": {"fused": f"fused/{i}.png"}} for i in ids}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["evaluate", str(out), "--networks", "alexnet", "lite2", "--device", "cpu"]) == 0
    result = json.loads((out / "metrics_fused.json").read_text())
    assert result["table"]["PixCorr"] == 1.0 and result["table"]["Lite2-late (2-way)"] == 1.0
    assert result["table"]["Alex(2)"] == "unavailable" and result["images"] == ["5", "8", "11"]
    assert len(result["per_image"]["SSIM"]) == 3
    assert "unavailable" in capsys.readouterr().out
    assert main(["evaluate", "--list-columns"]) == 0
    assert "alexnet-owt-7be5be79.pth" in capsys.readouterr().out


def test_evaluate_mixed_image_sizes_names_the_files(tmp_path, capsys):
    recon, truth = tmp_path / "recon", tmp_path / "truth"
    recon.mkdir()
    truth.mkdir()
    for name, size in (("a.png", 16), ("b.png", 24), ("c.png", 16)):
        Image.new("RGB", (size, size)).save(recon / name)
        Image.new("RGB", (16, 16)).save(truth / name)
    line = refused(capsys, ["evaluate", str(recon), "--truth", str(truth), "--networks", "offline"], "b.png")
    assert "24x24" in line and str(recon) in line
    assert not (recon / "metrics_fused.json").exists()

