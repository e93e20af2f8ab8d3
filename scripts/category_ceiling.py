"""The category-accuracy column's reference points on a twin: the classifier's held-out accuracy on
training images, its accuracy on the seen test images (the most a reconstruction can score), chance.

Run (reads DATA only; the classifier is cached in OUT/categories/classifier.npz, as the benchmark does):
    OMP_NUM_THREADS=1 .venv/bin/python scripts/category_ceiling.py --data /work/twinv2-demo --out /tmp/cat-v2 \
        --n-train 1500 --threads 1
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this script is in


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-train", type=int, default=None, help="training images (default: the benchmark's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from brainit_core.benchmark.categories import N_TRAIN, category_scorer
    from brainit_core.data import load_dataset
    from brainit_core.metrics import Evaluator

    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    notes: list = []
    t0 = time.perf_counter()
    scorer = category_scorer(ds, Evaluator("lite2", device="cpu"), args.out, args.n_train or N_TRAIN, notes)
    if scorer is None:
        print(notes[0])
        return 1
    clf = scorer.classifier
    t_fit = time.perf_counter() - t0
    ids = ds.subject(ds.subjects[0]).split_image_ids("test")
    s = scorer.summary(ids, scorer.features(ds.images(ids), "seen test images"))
    print(f"{args.data}: categories {', '.join(s['categories'])}")
    print(f"classifier: {clf.n_train} training images, C = {clf.c}, held-out accuracy {clf.heldout_accuracy:.3f} "
          f"(features + fit {t_fit:.0f} s, {args.threads} thread(s))")
    print(f"seen test images ({s['n_labelled']} labelled of {s['n_images']}): accuracy {s['ground_truth']:.3f}; "
          f"chance (always '{s['most_common']}') {s['chance']:.3f}; uniform guess {s['chance_uniform']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
