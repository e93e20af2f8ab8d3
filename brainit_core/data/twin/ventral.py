"""The twin's inferotemporal cortex: a small convnet that finds the library's categories in any image.

``VentralNet`` is the project's own network, trained from scratch on the stimulus library's
composites (:mod:`.scenes`); it is neither the decoder's feature network nor an evaluation network,
so a decoder gets nothing from it for free. For an RGB image in [0, 1] it gives

- ``maps``: per-location category evidence (logits, (B, 9, H/8, W/8); 16 x 16 for the 128 px
  input), one sigmoid per category of :data:`.taxonomy.CATEGORIES`: the fraction of a cell covered
  by that category, learned from the composites' category masks;
- ``embedding``: late features (B, D), non-negative (a ReLU of global average and max pooling of
  the deepest stage), read by a linear image-label head (:meth:`VentralNet.labels`).

Design (``widths = (w0, w1, w2, w3, w4)``): a stride-2 stem, two stride-2 stages of two 3x3 conv
blocks (conv, batch norm, ReLU), a context stage at stride 8 with dilations 2 and 4, a deep stage at
stride 16 whose features are upsampled and added to the context stage together with a global
scene vector, then one block and a 1x1 conv to the map logits.

Training (:func:`train_ventral`, in :mod:`.ventral_training`) renders fresh composites for every step. This module holds the
network, loading, inference on images of any size (:func:`ventral_maps`, :func:`ventral_response`)
and the held-out evaluation (:func:`evaluate_ventral`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainit_core.checkpoint import checkpoint_exists, checkpoint_paths, load_checkpoint
from brainit_core.data.twin.taxonomy import CATEGORIES
from brainit_core.errors import CheckpointError
from brainit_core.utils import assets_dir

HELDOUT_SEED = 1_000_003
"""Scene seed of the held-out composites (training seeds must differ)."""
ASSET = "twin/ventral"
"""The shipped network: ``assets/twin/ventral.{safetensors,json}`` with ``assets/twin/quality.json``."""


@dataclass
class VentralConfig:
    """The network's shape and its training schedule.

    Attributes
    ----------
    size : int
        Input side during training and inference (images are resized to it).
    render_size : int
        Side of the rendered composites before the random resized crop.
    widths : tuple of int
        Channels of the stem, the two stages, the context stage and the deep stage.
    embed_dim : int
        Size of the late-feature embedding.
    batch, steps : int
        Composites per step and steps in all (every composite is new).
    lr, weight_decay : float
        AdamW, with a linear warm-up over ``warmup`` steps and a cosine decay to 2% of ``lr``.
    label_weight : float
        Weight of the image-label loss next to the map loss.
    min_scale : float
        Smallest area fraction of a random resized crop.
    checkpoint_every : int
        Steps between saved training states.
    eval_n : int
        Held-out composites scored at the end of training.
    focus, focus_weight : tuple of str, float
        Categories whose map and label losses are weighted ``focus_weight`` times (a targeted
        fine-tune of the weakest categories; default none).
    """

    size: int = 128
    render_size: int = 144
    widths: tuple = (24, 48, 96, 128, 192)
    embed_dim: int = 128
    batch: int = 32
    steps: int = 2000
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    label_weight: float = 0.5
    min_scale: float = 0.4
    checkpoint_every: int = 50
    eval_n: int = 500
    focus: tuple = ()
    focus_weight: float = 1.0

    @classmethod
    def preset(cls, name: str, **overrides) -> "VentralConfig":
        """``ci`` (a tiny net trained for a few steps, for tests) or ``demo`` (the shipped network)."""
        presets = {
            "ci": dict(size=32, render_size=40, widths=(8, 12, 16, 16, 24), embed_dim=16, batch=4, steps=6,
                       warmup=2, checkpoint_every=2, eval_n=16),
            "demo": dict(steps=2000),
        }
        if name not in presets:
            raise ValueError(f"unknown ventral preset {name!r}; choose one of {sorted(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_json(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["focus"] = list(self.focus)
        return d

    @classmethod
    def from_json(cls, d: dict, where: str = "config") -> "VentralConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(f"{where}: unknown ventral config fields {unknown}")
        d = dict(d)
        if "widths" in d:
            d["widths"] = tuple(int(w) for w in d["widths"])
        if "focus" in d:
            d["focus"] = tuple(str(c) for c in d["focus"])
        return cls(**d)


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VentralNet(nn.Module):
    """A small convnet: category maps at stride 8 and a pooled late-feature embedding.

    Parameters
    ----------
    config : VentralConfig
    """

    def __init__(self, config: VentralConfig):
        super().__init__()
        w0, w1, w2, w3, w4 = config.widths
        c = len(CATEGORIES)
        self.config = config
        self.stem = _block(3, w0, 2)
        self.stage1 = nn.Sequential(_block(w0, w1, 2), _block(w1, w1))
        self.stage2 = nn.Sequential(_block(w1, w2, 2), _block(w2, w2))
        self.context = nn.Sequential(_block(w2, w3, dilation=2), _block(w3, w3, dilation=4))
        self.deep = nn.Sequential(_block(w3, w4, 2), _block(w4, w4))
        self.lateral = nn.Conv2d(w4, w3, 1)
        self.scene = nn.Linear(w4, w3)
        self.fuse = _block(w3, w3)
        self.map_head = nn.Conv2d(w3, c, 1)
        self.embed = nn.Linear(2 * w4, config.embed_dim)
        self.label_head = nn.Linear(config.embed_dim, c)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, 3, H, W) in [0, 1] -> (map logits (B, 9, ceil(H/8), ceil(W/8)), embedding (B, D))."""
        x = (x - 0.45) / 0.25
        mid = self.context(self.stage2(self.stage1(self.stem(x))))
        deep = self.deep(mid)
        pooled = deep.mean(dim=(2, 3))
        top = F.interpolate(self.lateral(deep), size=mid.shape[-2:], mode="bilinear", align_corners=False)
        fused = self.fuse(mid + top + self.scene(pooled)[:, :, None, None])
        embedding = F.relu(self.embed(torch.cat([pooled, deep.amax(dim=(2, 3))], dim=1)))
        return self.map_head(fused), embedding

    def labels(self, embedding: torch.Tensor) -> torch.Tensor:
        """Image-label logits (B, 9) from the embedding."""
        return self.label_head(embedding)


def train_ventral(out, config: VentralConfig | None = None, seed: int = 0, library=None,
                  max_seconds: float | None = None, **kwargs) -> dict:
    """Train or continue training in ``out``: :func:`brainit_core.data.twin.ventral_training.train_ventral`."""
    from brainit_core.data.twin.ventral_training import train_ventral as train

    return train(out, config, seed, library, max_seconds, **kwargs)


def n_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def load_ventral(path=None) -> VentralNet:
    """A trained network from ``path`` (``X`` for ``X.safetensors`` + ``X.json``; default the shipped asset).

    Returns the network in eval mode, float32, on the CPU.
    """
    path = Path(path) if path is not None else assets_dir() / ASSET
    if not checkpoint_exists(path):
        st, js = checkpoint_paths(path)
        raise CheckpointError(f"ventral network {st} / {js.name} not found; train one with "
                              "`python -m brainit_core twin train-ventral --out DIR` or use the shipped asset")
    tensors, config, meta = load_checkpoint(path)
    if meta.get("kind") != "ventral":
        raise CheckpointError(f"{checkpoint_paths(path)[1]} is not a ventral network (kind {meta.get('kind')!r})")
    net = VentralNet(VentralConfig.from_json(config, where=str(checkpoint_paths(path)[1])))
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint_paths(path)[0]} does not fit the ventral network of its config: "
                              f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    return net.eval()


def ventral_record(path=None) -> dict:
    """What a twin records of the network it was built with: ``asset`` path, ``sha256`` of its weights
    and its held-out ``mean_auc`` (from ``quality.json`` beside it, when there)."""
    from brainit_core.checkpoint import read_checkpoint_record
    from brainit_core.fileio import try_read_json

    name = str(path) if path is not None else f"assets/{ASSET}"
    path = Path(path) if path is not None else assets_dir() / ASSET
    quality = try_read_json(path.parent / "quality.json")
    return {"asset": name, "sha256": read_checkpoint_record(path)["sha256"],
            "mean_auc": quality.get("mean_auc") if isinstance(quality, dict) else None}


def weights(net: VentralNet, half: bool = True) -> dict:
    """The network's tensors for :func:`brainit_core.checkpoint.save_checkpoint` (float16 when ``half``)."""
    return {k: (v.half() if half and v.is_floating_point() else v) for k, v in net.state_dict().items()}


def as_batch(images, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) or a list of (H, W[, 3 or 4]) arrays of any sizes -> float (N, 3, size, size) in [0, 1].

    Images are resized to a square with bilinear interpolation (as the twin's ``respond`` does);
    grey images are repeated to RGB and an alpha channel is dropped.
    """
    from PIL import Image

    out = np.zeros((len(images), size, size, 3), np.uint8)
    for i, im in enumerate(images):
        im = np.asarray(im)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        if im.ndim != 3 or im.shape[2] not in (3, 4):
            raise ValueError(f"image {i}: expected (H, W), (H, W, 3) or (H, W, 4), got shape {im.shape}")
        im = im[..., :3]
        if im.dtype != np.uint8:
            im = np.clip(im, 0, 255).astype(np.uint8)
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        out[i] = im
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


@contextmanager
def one_thread():
    """Run torch on one CPU thread inside the block: convolutions then give the same bits whatever the
    caller's thread setting (a twin built in worker processes equals one built serially)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def ventral_response(net: VentralNet, images, batch: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category maps, image-label probabilities and embeddings of any images (on one thread: :func:`one_thread`).

    Parameters
    ----------
    net : VentralNet
    images : uint8 (N, H, W, 3) or a list of arrays of any sizes (see :func:`as_batch`)
    batch : int

    Returns
    -------
    maps : float32 (N, 9, h, w) probabilities (h = w = ceil(size / 8))
    labels : float32 (N, 9) probabilities of the label head
    embedding : float32 (N, D)
    """
    was_training = net.training
    net.eval()
    maps, labels, embs = [], [], []
    with one_thread():
        for i in range(0, len(images), batch):
            logits, emb = net(as_batch(images[i:i + batch], net.config.size))
            maps.append(torch.sigmoid(logits).numpy())
            labels.append(torch.sigmoid(net.labels(emb)).numpy())
            embs.append(emb.numpy())
    net.train(was_training)
    if not maps:
        h = -(-net.config.size // 8)
        return (np.zeros((0, len(CATEGORIES), h, h), np.float32), np.zeros((0, len(CATEGORIES)), np.float32),
                np.zeros((0, net.config.embed_dim), np.float32))
    return (np.concatenate(maps).astype(np.float32), np.concatenate(labels).astype(np.float32),
            np.concatenate(embs).astype(np.float32))


def ventral_maps(net: VentralNet, images, batch: int = 32) -> np.ndarray:
    """Per-location category probabilities (N, 9, h, w) of uint8 images of any size (see :func:`ventral_response`)."""
    return ventral_response(net, images, batch)[0]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN when a class is missing."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate_ventral(net: VentralNet, library, n: int = 500, seed: int = HELDOUT_SEED, batch: int = 50,
                     cache=None) -> dict:
    """Held-out quality on ``n`` fresh composites of ``seed`` (rendered at the network's input size).

    Per category: ``auc`` (image label against the map's maximum probability), ``auc_head`` (against
    the label head), ``iou`` (maps upsampled bilinearly to the image, thresholded at 0.5, against the
    true masks; intersection and union summed over all images) and ``positives`` (images with it).

    Returns
    -------
    dict
        ``{"n", "seed", "size", "library_version", "categories": {name: {...}}, "mean_auc", "mean_iou"}``.
    """
    from brainit_core.data.twin.scenes import render_scenes
    from brainit_core.data.twin.sprites import SpriteCache

    size = net.config.size
    cache = cache or SpriteCache(library, max_side=max(256, 2 * size))
    c = len(CATEGORIES)
    map_max, head, truth = np.zeros((n, c)), np.zeros((n, c)), np.zeros((n, c), bool)
    inter, union = np.zeros(c), np.zeros(c)
    for start in range(0, n, batch):
        k = min(batch, n - start)
        s = render_scenes(library, k, seed=seed, size=size, start=start, cache=cache)
        maps, labels, _ = ventral_response(net, s.images, batch)
        map_max[start:start + k] = maps.max(axis=(2, 3))
        head[start:start + k] = labels
        truth[start:start + k] = s.labels
        up = F.interpolate(torch.from_numpy(maps), size=(size, size), mode="bilinear", align_corners=False).numpy()
        pred = up >= 0.5
        inter += (pred & s.category_masks).sum(axis=(0, 2, 3))
        union += (pred | s.category_masks).sum(axis=(0, 2, 3))
    cats = {}
    for j, name in enumerate(CATEGORIES):
        cats[name] = {"auc": auc(map_max[:, j], truth[:, j]), "auc_head": auc(head[:, j], truth[:, j]),
                      "iou": float(inter[j] / union[j]) if union[j] else float("nan"),
                      "positives": int(truth[:, j].sum())}
    return {"n": int(n), "seed": int(seed), "size": int(size), "library_version": library.version,
            "categories": cats, "mean_auc": float(np.nanmean([v["auc"] for v in cats.values()])),
            "mean_iou": float(np.nanmean([v["iou"] for v in cats.values()]))}


def format_quality(quality: dict) -> str:
    """A table of :func:`evaluate_ventral`'s figures."""
    from brainit_core.data.twin.taxonomy import CATEGORY_LABELS

    lines = [f"held-out composites: {quality['n']} (seed {quality['seed']}, {quality['size']} px, "
             f"library {quality['library_version']})",
             f"{'category':16s} {'AUC map':>8s} {'AUC head':>9s} {'IoU@0.5':>8s} {'images':>7s}"]
    for name, v in quality["categories"].items():
        lines.append(f"{CATEGORY_LABELS.get(name, name):16s} {v['auc']:8.3f} {v['auc_head']:9.3f} "
                     f"{v['iou']:8.3f} {v['positives']:7d}")
    lines.append(f"{'mean':16s} {quality['mean_auc']:8.3f} {'':9s} {quality['mean_iou']:8.3f}")
    return "\n".join(lines)
