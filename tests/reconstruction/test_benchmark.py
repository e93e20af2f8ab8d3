import torch

from brainit_core.reconstruction.benchmark import benchmark, format_table, save_grid, simulate_prediction


def test_simulated_prediction_shrinks_toward_mean(generators, space):
    maps = space.lowlevel_maps(torch.rand(2, 3, 64, 64))
    sim = simulate_prediction(maps, generators.inverter, noise=0.0)
    for i, (m, s) in enumerate(zip(maps, sim)):
        mean = getattr(generators.inverter, f"mean_{i}")[:, None, None]
        assert (s - mean).abs().mean() < (m - mean).abs().mean()


def test_benchmark_runs_end_to_end(generators, tiny_dataset, tmp_path):
    images = {}
    res = benchmark(generators, tiny_dataset, n_images=2, dip_steps=2, refine_steps=1, fused_batch=2,
                    images_out=images)
    assert set(res["true"]) == {"inverter", "inverter+DIP-1", "DIP-2", "fused (fast)", "semantic only"}
    for r in res["simulated"].values():
        assert -1 <= r["ssim"] <= 1 and r["seconds_per_image"] > 0
    assert "| true | inverter |" in format_table(res)
    save_grid(images, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
