"""Several processes, one model: torch.distributed as launched by ``torchrun``.

    torchrun --standalone --nproc_per_node=2 -m afme_lib.interfaces.cli train --dataset MKG-W --model rotate --out runs/x

Nothing here is home-made parallelism: torchrun starts the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; :func:`init_from_env` joins that
process group (NCCL on CUDA, one GPU per process, ``cuda:LOCAL_RANK``; gloo on the CPU);
gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`. What the
workbench adds is the split of the work:

Training (W processes, global batch B, per-process batch b = ceil(B / W)). Every process draws
the same permutation of the training triples for epoch e, padded by wrapping to a multiple of
W; process r takes positions r, r + W, r + 2W, ... (:func:`shard_permutation`). Its i-th batch
then holds exactly the positives with positions ``i*b*W .. (i+1)*b*W - 1`` congruent to r, so
the union over processes of the i-th batches is the i-th batch of one process with batch b*W.
Each process draws its own negatives (and AFME noise): its global RNG is reseeded at every
epoch from (seed, epoch, rank) (:func:`rank_seed`). With every process's loss a mean over its b
rows, DDP's gradient average is the gradient of the mean over the b*W rows of the global batch.
Because the permutation depends only on (seed, epoch) and the draws only on (seed, epoch,
rank), a resumed run continues exactly as an uninterrupted one with the same number of
processes -- no per-process RNG state needs checkpointing.

Evaluation: the queries are split into W contiguous blocks (:func:`shard_bounds`) of the
evaluation order, each process ranks its block and :func:`all_gather_rows` collects the ranks;
every process then computes identical metrics.

Files: only rank 0 (:func:`is_main`) writes config, log, checkpoints and metrics; the others
wait at a :func:`barrier` where they read what rank 0 wrote.
"""

from __future__ import annotations

import atexit
import inspect
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def is_active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0, the one process that writes files and prints (True without torch.distributed)."""
    return rank() == 0


def info() -> DistInfo:
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def env_world_size() -> int:
    """The world size torchrun announces in ``WORLD_SIZE`` (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init_from_env(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join torchrun's process group if there is one; return (this process's info, its device).

    Idempotent: a group that already exists (an earlier call, or one the caller made) is used
    as it is. Without torchrun (``WORLD_SIZE`` unset or 1) nothing is initialised and
    ``device`` comes back unchanged. A CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per
    process) and the backend NCCL; any other device uses gloo.
    """
    device = torch.device(device)
    if not (dist.is_available() and dist.is_initialized()):
        if env_world_size() <= 1:
            return DistInfo(), device
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
        atexit.register(_destroy)
    elif device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return info(), device


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op with one process)."""
    if is_active():
        dist.barrier()


# --- splitting the work -------------------------------------------------------------------------
def _mixed_seed(*words: int) -> int:
    """A 63-bit seed mixing the given integers (numpy's SeedSequence: nearby inputs, unrelated seeds)."""
    state = np.random.SeedSequence([int(w) % 2**64 for w in words]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def rank_seed(seed: int, epoch: int, rank_: int) -> int:
    """Seed of process ``rank_``'s own random draws (negatives, noise) in epoch ``epoch``."""
    return _mixed_seed(seed, epoch, rank_, 0)


def shard_permutation(n: int, epoch: int, seed: int, rank_: int, world: int) -> torch.Tensor:
    """Process ``rank_``'s positions of epoch ``epoch``'s shuffled training triples.

    One permutation of range(n), the same in every process (a CPU generator seeded with
    (seed, epoch)), padded by repeating its start up to a multiple of ``world``; the process
    takes every ``world``-th entry starting at ``rank_``. Every process gets ceil(n / world)
    positions; together they cover each triple once, plus the < world padding repeats.
    """
    if not 0 <= rank_ < world:
        raise ValueError(f"rank {rank_} outside a world of {world} processes")
    generator = torch.Generator().manual_seed(_mixed_seed(seed, epoch, 0, 1))  # the same in every process
    order = torch.randperm(n, generator=generator)
    padded = -(-n // world) * world
    if padded > n:
        order = torch.cat([order, order[: padded - n]])
    return order[rank_::world]


def shard_bounds(n: int, rank_: int, world: int) -> tuple[int, int]:
    """Contiguous block [start, end) of ``n`` items for ``rank_``; sizes differ by at most one."""
    return n * rank_ // world, n * (rank_ + 1) // world


def _comm_device(device: torch.device) -> torch.device:
    """Where a collective's tensors must live: the CPU for gloo, this process's GPU for NCCL."""
    if dist.get_backend() == "gloo":
        return torch.device("cpu")
    return device if device.type == "cuda" else torch.device("cuda", torch.cuda.current_device())


def all_gather_rows(values: torch.Tensor) -> torch.Tensor:
    """Every process's ``values`` [m_r, ...] concatenated in rank order (m_r may differ).

    The result is on ``values.device`` in every process; with one process it is ``values``.
    """
    if not is_active():
        return values
    device = values.device
    comm = _comm_device(device)
    local = values.to(comm)
    sizes = [torch.zeros(1, dtype=torch.long, device=comm) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], dtype=torch.long, device=comm))
    sizes = [int(s) for s in sizes]
    longest = max(sizes)
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=comm)
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(device)


def all_reduce(values: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Element-wise ``op`` ("sum", "min" or "max") of ``values`` over all processes (a new tensor)."""
    if not is_active():
        return values.clone()
    ops = {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}
    out = values.to(_comm_device(values.device)).clone()
    dist.all_reduce(out, op=ops[op])
    return out.to(values.device)


# --- DistributedDataParallel --------------------------------------------------------------------
class LossModule(nn.Module):
    """What DDP wraps: ``forward(kind, *tensors)`` runs the loss function ``losses[kind]``.

    DDP all-reduces the gradients of a backward pass only when the outputs came through its own
    ``forward``; calling the model's methods (``score``, ``critic_loss``, ...) on the wrapped
    module directly would skip the reduction without any error. Routing each loss of a step
    ("main", "critic") through this forward keeps every gradient synchronised. The model is a
    submodule, so DDP sees exactly its parameters (checkpoints keep using the bare model).
    """

    def __init__(self, model: nn.Module, losses: dict):
        super().__init__()
        self.model = model
        self._losses = losses

    def forward(self, kind: str, *tensors):
        return self._losses[kind](*tensors)


def wrap_ddp(
    model: nn.Module,
    losses: dict,
    device: torch.device,
    find_unused_parameters: bool = True,
    ignore: list[nn.Parameter] | tuple = (),
):
    """A DDP-wrapped :class:`LossModule` around ``model``.

    Buffers (the frozen feature tables, presence masks) are neither broadcast at construction
    nor before each forward: they are loaded identically by every process, never change, and
    can be gigabytes. Parameters in ``ignore`` are not synchronised by this wrapper (AFME's
    critic, which has its own optimiser and its own wrapper). ``find_unused_parameters`` must
    stay True when some parameters may get no gradient in a step (ablations that leave gates or
    weights unused; a critic batch without measured features).
    """
    module = LossModule(model, losses)
    skip = {id(p) for p in ignore}
    names = [name for name, _ in module.named_buffers()]
    names += [name for name, p in module.named_parameters() if id(p) in skip]
    if names:
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, names)
    device_ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # Newer torch renamed broadcast_buffers; with every buffer ignored both mean "never sync".
    no_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
        else {"broadcast_buffers": False}
    )
    return ddp(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters, **no_sync)
