"""Memory of full-size BIT inference (official sizes): does it fit a 24 GB GPU?

Builds ``BrainITModel`` with ``BITConfig.preset("full")`` and the full feature layout (bigG
256 x 1664 semantic tokens; VGG16-BN 56^2/55^2/28^2/14^2/7^2 x 512 low-level tokens), 4 subjects x
40,000 voxels (random labels and weights: memory does not depend on them), and predicts one
subject's sample (B = 1, all voxels, ``return_attention=True``) under ``torch.no_grad``.

Prints parameter counts, two analytic figures (``memory.estimate_memory`` at batch 1, a training
formula, as an upper bound; and an inference formula, see ``inference_estimate``) and the measured
peak: ``torch.cuda.max_memory_allocated`` on CUDA, otherwise the peak resident-set size (sampled
from /proc every 5 ms, and ``ru_maxrss``) over the baseline before the model was built.

Run: .venv/bin/python scripts/bench_bit_memory.py [--device auto|cpu|cuda] [--threads 1]
     [--subjects 4] [--voxels 40000] [--no-attention]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from brainit_core.features.base import TokenSpec  # noqa: E402
from brainit_core.features.fullsize import vgg_token_specs  # noqa: E402
from brainit_core.models.bit import BITConfig, BrainITModel  # noqa: E402
from brainit_core.models.memory import count_parameters, estimate_memory  # noqa: E402

GIB = 2**30
LIMIT = 24e9  # a "24 GB" card (RTX 3090/4090: 24 GiB nominal, ~23.6 GiB usable after the CUDA context)


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Samples the resident-set size in a thread (ru_maxrss cannot be reset)."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self._stop = every, rss_bytes(), threading.Event()

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.every)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())


def inference_estimate(config: BITConfig, model: BrainITModel, n_voxels: int, batch: int = 1,
                       attention: bool = True) -> dict:
    """Bytes of BIT inference (fp32, no gradients): weights + the largest live activation set.

    weights: ``4 P``. Per head (heads run one after the other; the semantic output is kept):
    tokenizer ``40 N`` bytes (N voxels) + ``16 C D`` elements; a cross block holds at once the
    query state, its LN, the attention output and update (4 Nq D), the MLP hidden layer before
    and after GELU (2 r Nq D) and, with attention weights, logits and softmax (2 H Nq C); the
    read-out, its de-standardised copy and the maps add ``3 Nq C_out``; kept attention maps
    ``(n_self + 1) Nq C`` (+ their stack and mean). 4 bytes per element, + 20 %.
    """
    C, D, H, L, r = config.n_clusters, config.dim, config.heads, config.n_self_blocks, config.mlp_ratio
    heads = {"semantic": (model.semantic_spec.n_tokens, model.semantic_spec.dim),
             "lowlevel": (sum(s.n_tokens for s in model.lowlevel_specs), max(s.dim for s in model.lowlevel_specs))}
    out_sem = model.semantic_spec.n_tokens * model.semantic_spec.dim
    peak = 0
    for name, (nq, c_out) in heads.items():
        elems = 16 * C * D + (4 + 2 * r) * nq * D + (2 * H * nq * C if attention else 0) + 3 * nq * c_out
        if attention:
            elems += 2 * (L + 1) * nq * C + 2 * nq * C
        if name == "lowlevel":
            elems += out_sem + (2 * (L + 1) * heads["semantic"][0] * C if attention else 0)
        peak = max(peak, batch * (40 * n_voxels + 4 * elems))
    weights = 4 * count_parameters(model) + sum(b.numel() * b.element_size() for b in model.buffers())
    return {"weights": weights, "activations": peak, "total": int(1.2 * (weights + peak))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--voxels", type=int, default=40000)
    ap.add_argument("--no-attention", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    attention = not args.no_attention

    config = BITConfig.preset("full")
    sem_spec = TokenSpec("bigg", (16, 16), 1664)
    low_specs = vgg_token_specs(112)
    subjects = {f"sub{i + 1:02d}": args.voxels for i in range(args.subjects)}

    # what it would need, before allocating anything
    with torch.device("meta"):
        meta = BrainITModel(config, sem_spec, low_specs, subjects)
    n_params = count_parameters(meta)
    inf = inference_estimate(config, meta, args.voxels, 1, attention)
    est = {}
    for head, net in meta.heads.items():
        nq = sem_spec.n_tokens if head == "semantic" else sum(s.n_tokens for s in low_specs)
        n_out = sem_spec.dim if head == "semantic" else 512
        est[head] = estimate_memory(config, count_parameters(net), nq, 1, args.voxels, n_out, amp=False)
    print(f"BIT full: {args.subjects} subjects x {args.voxels} voxels; semantic {sem_spec.grid} x {sem_spec.dim}, "
          f"low-level {sum(s.n_tokens for s in low_specs)} tokens x 512; device {dev}")
    for head, net in meta.heads.items():
        print(f"  {head}: {count_parameters(net) / 1e6:.1f} M parameters "
              f"({count_parameters(net, False) / 1e6:.1f} M without voxel embeddings)")
    print(f"  total: {n_params / 1e6:.1f} M parameters = {4 * n_params / GIB:.2f} GiB fp32")
    print(f"analytic, inference (fp32, B=1): weights {inf['weights'] / GIB:.2f} GiB + activations "
          f"{inf['activations'] / GIB:.3f} GiB -> {inf['total'] / GIB:.2f} GiB with 20 % slack")
    for head, e in est.items():
        print(f"analytic, memory.estimate_memory (training formula, batch 1, all {args.voxels} voxels, fp32) {head}: "
              f"{e['total'] / GIB:.2f} GiB (params+grads+AdamW {e['params'] / GIB:.2f}, activations "
              f"{e['activations'] / GIB:.3f})")

    need = inf["total"]
    if dev.type == "cpu":
        avail = None
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
        if avail is not None and need > 0.9 * avail:
            print(f"NOT RUN: needs about {need / GIB:.1f} GiB of RAM, {avail / GIB:.1f} GiB available "
                  f"(nothing was made smaller)")
            return 1

    base_rss = rss_bytes()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.time()
    g = torch.Generator().manual_seed(0)
    with torch.device(dev):
        model = BrainITModel(config, sem_spec, low_specs, subjects).eval()
    for name in subjects:
        model.set_labels(name, torch.randint(0, config.n_clusters, (args.voxels,), generator=g))
    build_s = time.time() - t0
    betas = torch.randn(1, args.voxels, generator=g).to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    rss_before = rss_bytes()
    t0 = time.time()
    with PeakRSS() as sampler, torch.no_grad():
        pred = model.predict(betas, "sub01", return_attention=attention)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    infer_s = time.time() - t0
    shapes = {"semantic": list(pred.semantic.shape), "lowlevel": [list(m.shape) for m in pred.lowlevel],
              "cross_attention": {k: list(v.shape) for k, v in (pred.cross_attention or {}).items()}}
    print(f"built in {build_s:.1f} s; inference {infer_s:.2f} s; outputs {json.dumps(shapes)}")
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
        print(f"measured (CUDA max_memory_allocated): model {before / GIB:.2f} GiB, peak {peak / GIB:.2f} GiB "
              f"(inference adds {(peak - before) / GIB:.3f} GiB)")
    else:
        peak = sampler.peak - base_rss
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"measured (CPU RSS over the {base_rss / GIB:.2f} GiB baseline): model {(rss_before - base_rss) / GIB:.2f} GiB, "
              f"peak {peak / GIB:.2f} GiB (inference adds {(sampler.peak - rss_before) / GIB:.3f} GiB; "
              f"process ru_maxrss {maxrss / GIB:.2f} GiB)")
    worst = max(peak, inf["total"])
    verdict = "fits" if worst < LIMIT else "does NOT fit"
    print(f"verdict: {worst / GIB:.2f} GiB (max of measured and analytic) {verdict} in 24 GB"
          f"{' (CPU RSS includes the allocator; a GPU adds ~0.5 GiB CUDA context)' if dev.type == 'cpu' else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
