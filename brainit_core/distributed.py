"""Data-parallel training on several processes (torchrun + ``torch.distributed``); a no-op in one process.

A command started by ``torchrun --nproc-per-node N -m brainit_core ...`` finds ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; :func:`setup` joins the process group (NCCL
on GPUs, gloo on CPUs, with a timeout on every collective) and gives each process its device
(``cuda:LOCAL_RANK``). Without those variables, or with ``WORLD_SIZE=1``, nothing here does anything
and single-process training is unchanged.

The rules every training loop follows (``docs/models.md``, "Training on several processes"):

- every process draws the same global batch from the same seeded generators and keeps its
  contiguous slice (:class:`Shard`); random numbers drawn per sample are drawn for the whole
  global batch and sliced (:meth:`Shard.draw`), so the union of the shards is the single-process
  batch with the single-process random numbers;
- a process's loss is its share of the global loss (:meth:`Shard.share`: a mean over its samples
  weighted by its fraction of the batch; a loss over the whole batch such as the InfoNCE gathers
  every process's rows, :meth:`Shard.gather`, and computes this process's rows of it,
  ``models.losses.info_nce_rows``); the
  shares sum to the single-process loss, and :func:`sync_gradients` sums the gradients once per
  step, so one optimiser step equals the single-process one up to the order of float additions;
- only rank 0 writes: :func:`brainit_core.fileio.write_json`, ``save_npy``, ``save_npz`` and
  :func:`brainit_core.checkpoint.save_checkpoint` return without writing on other ranks, and the
  few other writers check :func:`is_main`; :func:`barrier` makes the others wait where they read
  what rank 0 wrote.

Gradients are summed by one explicit all-reduce per step rather than by the
``DistributedDataParallel`` wrapper: the losses call model methods other than ``forward``
(``tokenize``/``read_out``, ``encode``/``decode``, the UNet's conditioner), per-subject parameters
go unused on some ranks in a step, and the InfoNCE needs its own gather; what is given up is DDP's
overlap of the all-reduce with the backward pass.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from datetime import timedelta

#: Seconds a collective (and joining the group) may wait before the job fails; ``BRAINIT_DIST_TIMEOUT_S``.
DEFAULT_TIMEOUT_S = 1800.0
BUCKET_ELEMENTS = 25_000_000  # gradients are all-reduced in flat buckets of this many elements


def env_rank() -> int:
    """This process's rank from torchrun's environment (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """Processes torchrun started for this job (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _group():
    """``torch.distributed`` when a process group is initialised, else None (never imports torch)."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    """Processes in the job (1 unless :func:`setup` joined a group of several)."""
    group = _group()
    return group.get_world_size() if group is not None else 1


def rank() -> int:
    """This process's rank: the group's, else torchrun's ``RANK`` (so a command that does not join a
    group still writes from rank 0 only), else 0."""
    group = _group()
    return group.get_rank() if group is not None else env_rank()


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one process that writes files, logs and progress bars."""
    return rank() == 0


def is_distributed() -> bool:
    return world_size() > 1


def timeout_s() -> float:
    return float(os.environ.get("BRAINIT_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def setup(device="auto"):
    """Join torchrun's process group when launched by it (idempotent) and return this process's device.

    Parameters
    ----------
    device : str or torch.device
        As for :func:`brainit_core.utils.resolve_device`; under torchrun ``"auto"``/``"cuda"`` become
        ``cuda:LOCAL_RANK`` (one GPU per process). An explicit ``cuda:N`` with several processes is refused.

    Returns
    -------
    torch.device
    """
    import torch
    import torch.distributed as dist

    from brainit_core.errors import BrainITError
    from brainit_core.utils import resolve_device

    dev = resolve_device(device)
    world = env_world_size()
    if world <= 1:
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if dev.index is not None and str(device) not in ("auto", "cuda"):
            raise BrainITError(f"--device {device} with {world} processes: each process takes cuda:LOCAL_RANK; "
                               "pass --device cuda (or auto)")
        if local >= torch.cuda.device_count():
            raise BrainITError(f"process with LOCAL_RANK {local} has no GPU: this machine has "
                               f"{torch.cuda.device_count()}; start at most that many processes per node")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s()))
    return dev


def shutdown() -> None:
    """Leave the process group (after a command finished normally)."""
    group = _group()
    if group is not None:
        group.destroy_process_group()


def record_error(exc: BaseException) -> None:
    """Write ``exc`` to torchrun's error file, so that the launcher's summary of a failed job shows its
    message instead of an exit code only (nothing outside torchrun)."""
    if "TORCHELASTIC_ERROR_FILE" in os.environ:
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)


def my_turn(k: int) -> bool:
    """Whether item ``k`` of what the processes take turns at (validation batches; then
    :func:`all_reduce_sum`) is this process's: always in one process."""
    world = world_size()
    return world == 1 or k % world == rank()


def on_main(context):
    """``context`` on rank 0, nothing on the others (a lock on an output only rank 0 writes)."""
    return context if is_main() else contextlib.nullcontext()


def barrier() -> None:
    """Wait for every process (a no-op in one process)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def _device():
    import torch
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values):
    """Sum float values (a list or 1-d array) over processes in float64; returns a NumPy array."""
    import numpy as np
    import torch

    arr = np.asarray(values, dtype=np.float64)
    if not is_distributed():
        return arr
    import torch.distributed as dist

    t = torch.from_numpy(arr.copy()).to(_device())
    dist.all_reduce(t)
    return t.cpu().numpy()


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on any process (so that all take the same branch)."""
    return bool(all_reduce_sum([float(flag)])[0] > 0) if is_distributed() else bool(flag)


def sync_gradients(params) -> None:
    """Sum the gradients of ``params`` over processes (each process's loss is its share of the global one).

    A parameter without a gradient on some processes counts as zero there; one without a gradient on
    every process keeps ``grad=None`` (so an optimiser skips it, as in one process).
    """
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    dist.all_reduce(has)
    groups: dict = {}
    for p, h in zip(params, has.tolist()):
        if h > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault(p.grad.dtype, []).append(p)
    for group in groups.values():
        start = 0
        while start < len(group):
            bucket, size = [], 0
            while start < len(group) and (not bucket or size + group[start].numel() <= BUCKET_ELEMENTS):
                bucket.append(group[start])
                size += group[start].numel()
                start += 1
            flat = torch.cat([q.grad.reshape(-1) for q in bucket])
            dist.all_reduce(flat)
            offset = 0
            for q in bucket:
                q.grad.copy_(flat[offset:offset + q.numel()].view_as(q.grad))
                offset += q.numel()


def broadcast_parameters(module) -> None:
    """Give every process rank 0's parameters and buffers (identical replicas before training)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


@contextlib.contextmanager
def autocast(device, enabled: bool = True):
    """bf16 autocast on CUDA (fp16 where bf16 is not supported); nothing on other devices."""
    import torch

    if enabled and getattr(device, "type", str(device)) == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast("cuda", dtype=dtype):
            yield
    else:
        with torch.autocast("cpu", enabled=False):
            yield


def write_rows(path, n: int, row_shape, dtype, compute, align: int = 1):
    """Write an ``(n, *row_shape)`` ``.npy`` file whose rows the processes compute in shards.

    Rank 0 creates ``<path>.tmp.npy``; each process fills its rows ``[lo, hi)`` with
    ``compute(lo, hi)`` through a memory map (shards are whole blocks of ``align`` rows, so every
    batch is the one a single process would have run); rank 0 then renames the file to ``path``.
    In one process this writes the same bytes as ``np.save(path, compute(0, n))``.

    Returns
    -------
    Path
    """
    from pathlib import Path

    import numpy as np

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npy")
    shard = shard_of(n, align)
    if is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        del_map = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n, *tuple(row_shape)))
        del del_map
    barrier()
    if len(shard):
        rows = np.lib.format.open_memmap(tmp, mode="r+")
        rows[shard.lo:shard.hi] = compute(shard.lo, shard.hi)
        rows.flush()
        del rows
    barrier()
    if is_main():
        os.replace(tmp, path)
    barrier()
    return path


# --------------------------------------------------------------------------------------------
# shards of a global batch
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """This process's contiguous slice ``[lo, hi)`` of a global batch of ``total`` items.

    ``bounds`` holds every process's ``(lo, hi)`` (for gathers). In one process the shard is the
    whole batch and every method returns its input unchanged.
    """

    lo: int
    hi: int
    total: int
    bounds: tuple

    def __len__(self) -> int:
        return self.hi - self.lo

    @property
    def whole(self) -> bool:
        return self.lo == 0 and self.hi == self.total

    @property
    def weight(self) -> float:
        """This shard's fraction of the batch."""
        return len(self) / self.total if self.total else 0.0

    def take(self, x):
        """``x[lo:hi]`` (array, tensor or list)."""
        return x if self.whole else x[self.lo:self.hi]

    def draw(self, fn, shape):
        """Random numbers for this shard: ``fn(shape)`` for the whole batch (first dimension ``total``), sliced;
        ``shape`` has this shard's first dimension (or the total); ``fn``'s generator advances as in one process.
        """
        return self.take(fn((self.total, *tuple(shape)[1:])))

    def share(self, loss):
        """A mean loss over this shard's samples, weighted by the shard's fraction of the batch."""
        return loss if self.whole else loss * self.weight

    def gather(self, x):
        """Concatenate every process's rows of ``x`` (its first dimension is this shard), with gradients.

        The backward pass sums the gradient of the gathered tensor over processes and keeps this
        shard's rows, so each process's loss must be its share of the whole (a loss computed on all
        gathered rows by every process is divided by the process count).
        """
        if self.whole:
            return x
        return _gather_function().apply(x, self)


def draw(fn, shape, shard: "Shard | None" = None):
    """``fn(shape)``, or with a shard the whole batch's draw sliced (:meth:`Shard.draw`)."""
    return fn(tuple(shape)) if shard is None else shard.draw(fn, shape)


def shard_of(n: int, align: int = 1, world: int | None = None, rank_: int | None = None) -> Shard:
    """The contiguous part of ``n`` items a process handles; parts differ by at most one block of ``align``.

    ``world`` and ``rank_`` default to this job's.
    """
    world = world_size() if world is None else int(world)
    r = (rank() if world > 1 else 0) if rank_ is None else int(rank_)
    blocks = -(-n // max(1, align))
    bounds = []
    for k in range(world):
        b0, b1 = blocks * k // world, blocks * (k + 1) // world
        bounds.append((min(n, b0 * align), min(n, b1 * align)))
    lo, hi = bounds[r]
    return Shard(lo, hi, n, tuple(bounds))


def _gather_rows(x, shard: Shard):
    import torch
    import torch.distributed as dist

    sizes = [hi - lo for lo, hi in shard.bounds]
    m = max(sizes)
    pad = x.new_zeros((m - x.shape[0], *x.shape[1:]))
    parts = [x.new_empty((m, *x.shape[1:])) for _ in sizes]
    dist.all_gather(parts, torch.cat([x.detach(), pad]).contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


_GATHER: list = []


def _gather_function():
    """The autograd function behind :meth:`Shard.gather` (built on first use: importing this module
    does not import torch)."""
    if _GATHER:
        return _GATHER[0]
    import torch

    class GatherRows(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, shard):
            ctx.shard = shard
            return _gather_rows(x, shard)

        @staticmethod
        def backward(ctx, grad):
            import torch.distributed as dist

            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            return grad[ctx.shard.lo:ctx.shard.hi], None

    _GATHER.append(GatherRows)
    return GatherRows
