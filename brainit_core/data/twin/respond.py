"""The twin's in-silico experiment: show any image to a twin subject and get simulated betas.

Higher visual cortex sees what is in the image through the twin's ventral network (:mod:`.encoding`),
so a user's photo of a face drives the face patch. A twin v1 dataset (the shipped demo, built on
procedural drawings whose masks drove its patches) is answered the same way: its eight category
channels are read from the network's maps (building <- place/building, round <- other object).
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from brainit_core.data.twin.encoding import category_columns, image_channels, prf_weights
from brainit_core.data.twin.experiment import TwinConfig, noise_smoother, load_ground_truth, subject_signal, trial_noise
from brainit_core.data.twin.ventral import ventral_record
from brainit_core.data.uploads import read_photo
from brainit_core.errors import DataFormatError


@lru_cache(maxsize=8)
def _subject_model(dataset_dir: str, subject: str) -> tuple[dict, TwinConfig, object]:
    """The subject's encoding model and noise mixer, built once per process (respond is interactive)."""
    gt = load_ground_truth(dataset_dir, subject)
    z = gt["subject"]
    sub = {"noise_sd": z["noise_sd"], "signal_mean": z["signal_mean"], "signal_std": z["signal_std"],
           "weights": prf_weights(z["x"], z["y"], z["sigma"]), "area_code": z["area"],
           "tuning": {"gabor": z["tuning_gabor"], "colour": z["tuning_colour"], "category": z["tuning_category"]},
           "category_columns": category_columns(gt["categories"])}
    if "tuning_embedding" in z:  # twin v2: the higher areas read the ventral network's embedding
        sub["tuning"]["embedding"] = z["tuning_embedding"]
    if "tuning_category_peak" in z:  # patches pooling their map as a soft maximum (built since issue 12's fix)
        sub["tuning"]["category_peak"] = z["tuning_category_peak"]
    for key in ("noise_global", "noise_area", "noise_independent"):  # shared noise (twin v2 only)
        if key in z:
            sub[key] = z[key]
    config = TwinConfig(**{k: v for k, v in gt["config"].items() if k in TwinConfig.__dataclass_fields__})
    built_with = gt.get("ventral", {}).get("sha256")
    if built_with is not None and built_with != ventral_record()["sha256"]:
        warnings.warn(f"{dataset_dir} was built with another ventral network (sha256 {built_with[:12]}...) than "
                      "the installed assets/twin/ventral.*: its simulated responses to new images differ from "
                      "those of its dataset; rebuild it with `twin build`", stacklevel=3)
    return sub, config, noise_smoother(z["hemispheres"], z["vertices"], config.smooth_noise)


def respond(dataset_dir, subject: str, images, repeats: int = 3, seed: int = 0, noise: bool = True) -> np.ndarray:
    """Simulated single-trial betas of a twin subject for any RGB images.

    Parameters
    ----------
    dataset_dir : path
        A twin dataset (its ground truth holds the subject's encoding model).
    subject : str
    images : uint8 (n, H, W, 3) or a list of (H, W, 3) of any sizes (resized to the twin's size)
    repeats : int
        Trials per image, each with independent noise.
    seed : int
    noise : bool
        ``False`` gives the noiseless response (same scale).

    Returns
    -------
    ndarray, float32, (n, repeats, n_vertices)
        In the subject's vertex order and on the dataset's scale: signal plus noise divided by
        the per-vertex standard deviation that per-session z-scoring removes (sqrt(1 + noise_sd^2)).
    """
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1 (trials per image), got {repeats}")
    sub, config, mixer = _subject_model(str(Path(dataset_dir).resolve()), subject)
    size = config.image_size
    resized = []
    for im in images:  # an array (n, H, W, 3) or a list of (H, W, 3) arrays of any sizes
        im = np.asarray(im)
        if im.ndim != 3 or im.shape[-1] != 3:
            raise DataFormatError(f"each image must be (H, W, 3) RGB, got {im.shape}")
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im.astype(np.uint8)).resize((size, size), Image.BILINEAR))
        resized.append(im)
    images = np.stack(resized)
    channels = image_channels(images.astype(np.uint8))
    channels["category"] = channels["category"][:, sub["category_columns"]]  # the twin's own category channels
    signal = subject_signal(sub, channels)  # (n, V)
    out = np.repeat(signal[:, None], repeats, axis=1)
    if noise:
        rng = np.random.default_rng(seed)
        out = out + trial_noise(sub, mixer, len(images) * repeats, rng).reshape(out.shape)
    return (out / np.sqrt(1 + sub["noise_sd"] ** 2)).astype(np.float32)


def read_images(paths) -> np.ndarray:
    """Load image files (or every image in a directory) as a list of uint8 RGB arrays (see :func:`read_photo`)."""
    files = []
    for p in map(Path, paths):
        files += sorted(f for f in p.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")) \
            if p.is_dir() else [p]
    if not files:
        raise DataFormatError(f"no images found in {list(map(str, paths))}")
    out = []
    for f in files:  # the app's photo reader: pixel limit before decoding, 16-bit grey scaled, not clipped
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise DataFormatError(f"{f}: cannot read ({exc})") from exc
        out.append(read_photo(str(f), data))
    return out
