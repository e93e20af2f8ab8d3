import numpy as np
import torch

from brainit_core.reconstruction.autoencoder import (AutoencoderConfig, autoencoder_loss, build_autoencoder,
                                                     decode_latents, encode_images, fit_scaling_factor,
                                                     load_autoencoder, save_autoencoder, train_autoencoder)


def test_round_trip_shapes_demo_and_ci():
    torch.manual_seed(0)
    demo = AutoencoderConfig.preset("demo")
    ae = build_autoencoder(demo).eval()
    assert 3e6 < sum(p.numel() for p in ae.parameters()) < 5e6
    with torch.no_grad():
        z = encode_images(ae, torch.rand(1, 3, 128, 128))
        assert z.shape == (1, 4, 16, 16) and demo.latent_size == 16
        z64 = encode_images(ae, torch.rand(1, 3, 64, 64))  # convolutional: trains on crops
        assert z64.shape == (1, 4, 8, 8)
        x = decode_latents(ae, z)
    assert x.shape == (1, 3, 128, 128) and 0 <= x.min() and x.max() <= 1


def test_training_reduces_loss_and_scaling_factor():
    torch.manual_seed(0)
    cfg = AutoencoderConfig.preset("ci")
    ae = build_autoencoder(cfg)
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4), size=(32, 32), mode="bilinear")
    opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss, _ = autoencoder_loss(ae, x, cfg, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    imgs = (np.random.default_rng(0).random((12, 64, 64, 3)) * 255).astype(np.uint8)
    scale = fit_scaling_factor(ae.eval(), imgs)
    assert ae.config.scaling_factor == scale
    with torch.no_grad():
        z = encode_images(ae, torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
    assert abs(float(z.std()) - 1.0) < 0.05


def test_checkpoint_round_trip(tmp_path):
    cfg = AutoencoderConfig.preset("ci")
    ae = build_autoencoder(cfg).eval()
    ae.register_to_config(scaling_factor=0.5)
    save_autoencoder(ae, tmp_path / "ae", cfg)
    again = load_autoencoder(tmp_path / "ae")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(decode_latents(ae, encode_images(ae, x)), decode_latents(again, encode_images(again, x)))
    assert again.config.scaling_factor == 0.5


def test_train_autoencoder_writes_curves(tmp_path):
    cfg = AutoencoderConfig.preset("ci")
    cfg.steps, cfg.checkpoint_every = 3, 2
    imgs = (np.random.default_rng(0).random((6, 64, 64, 3)) * 255).astype(np.uint8)
    ae = train_autoencoder(imgs, cfg, tmp_path / "autoencoder")
    assert (tmp_path / "autoencoder.safetensors").exists()
    assert (tmp_path / "train" / "autoencoder_loss.csv").exists()
    assert ae.config.scaling_factor != 1.0
