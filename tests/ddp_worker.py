"""A training job the data-parallel tests start under torchrun (not a test module; see tests/test_distributed.py).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py MODE OUT [HEAD [EPOCHS]]

Modes: ``head`` trains one BIT head on the tiny factory data (``tiny_head_job``; ``OUT/curves.json``);
``crash`` and ``hang`` do the same but rank 1 raises or stalls in epoch 2. Without torchrun it is the
one-process job the tests compare with. ``infonce`` computes each process's share of the low-level
loss of a fixed batch (``infonce_batch``) and its gradients (``OUT/rank<R>.npz``).
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from brainit_core import distributed  # noqa: E402
from brainit_core.fileio import write_json  # noqa: E402


def head(out: Path, name: str, fault: str | None = None, epochs: int = 3) -> None:
    from brainit_core.models import head_training
    from tests.factories import tiny_head_job

    data, cfg, model = tiny_head_job(epochs)
    if fault and distributed.rank() == 1:
        original = head_training.epoch_samples

        def faulty(*args, **kw):  # epoch 2 on rank 1
            if faulty.calls == 1:
                if fault == "crash":
                    raise RuntimeError("injected failure on rank 1")
                time.sleep(3600)
            faulty.calls += 1
            return original(*args, **kw)

        faulty.calls = 0
        head_training.epoch_samples = faulty
    curves = head_training.train_head(model, name, data, cfg, out, torch.device("cpu"))
    write_json(out / "curves.json", curves)


def infonce(out: Path) -> None:
    import numpy as np

    from brainit_core.models.losses import lowlevel_loss
    from tests.factories import infonce_batch

    preds, targets, kw = infonce_batch()
    shard = distributed.shard_of(len(preds[0]))
    own = [shard.take(x).clone().requires_grad_(True) for x in preds + targets]
    loss, parts = lowlevel_loss(own[:len(preds)], own[len(preds):], shard=shard, **kw)
    loss.backward()
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / f"rank{distributed.rank()}.npz", loss=float(loss.detach()), acc=parts["acc"], lo=shard.lo,
             **{f"grad{i}": x.grad.numpy() for i, x in enumerate(own)})


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO if distributed.env_rank() == 0 else logging.WARNING)
    distributed.setup("cpu")
    mode, out = argv[0], Path(argv[1])
    if mode not in ("head", "crash", "hang", "infonce"):
        raise SystemExit(f"unknown mode {mode!r}")
    if mode == "infonce":
        infonce(out)
    else:
        head(out, argv[2], None if mode == "head" else mode, int(argv[3]) if len(argv) > 3 else 3)
    distributed.barrier()
    distributed.shutdown()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as exc:  # as the CLI does: the launcher's summary shows the message
        distributed.record_error(exc)
        raise
