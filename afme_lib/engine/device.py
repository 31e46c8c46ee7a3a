"""Device policy on the ground floor: which device, which autocast, how much memory is free.

Training, evaluation, feature extraction and the memory model all ask these questions; keeping
the answers here lets each of them depend on this module instead of on one another.

Evaluation chunk. The scorer materialises about ``B_e x chunk x w`` float32 values per step
(B_e queries, ``w`` reals per entity row), two such tensors alive at once, so
``chunk = budget / (8 B_e w)`` clamped to [1024, N]. The budget (:func:`eval_chunk_budget`) is a
quarter of the free CUDA memory (mem_get_info) -- the rest stays for the [B_e, N] scores, the
model and allocator slack -- and on the CPU a quarter of the available RAM (psutil) capped at
256 MB (the CPU scorers tile far below that anyway).
"""

from __future__ import annotations

import contextlib

import torch

from afme_lib.core.config import AMP_MODES  # training's choices, declared with TrainConfig.amp
from afme_lib.core.errors import AfmeError

AMP_CHOICES = ("auto", *AMP_MODES)  # feature extraction: "auto" picks per device (effective_amp)

F32 = 4  # bytes per float32
MIN_CHUNK = 1024
CPU_CHUNK_BUDGET = 256 * 2**20  # bytes for the scorer's per-chunk intermediates on CPU
CUDA_FREE_FRACTION = 0.25  # share of free GPU memory given to those intermediates
CPU_FREE_FRACTION = 0.25


# --- device and autocast --------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else the CPU; any other name as given (an AfmeError
    when it names CUDA on a machine without one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AfmeError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(name)


def autocast_context(device: torch.device, amp: str):
    """``torch.autocast`` in ``amp``'s dtype on a CUDA device; a no-op for ``"none"`` and on the CPU."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()  # CPU runs in float32: bf16 on CPU is slower, not faster
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast("cuda", dtype=dtype)


def effective_amp(device: torch.device, amp: str) -> str:
    """``auto``: bf16 on a GPU that has it, else fp16 on GPU; none (float32) on CPU."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"unknown amp mode {amp!r}; expected one of {', '.join(AMP_CHOICES)}")
    if device.type != "cuda":
        return "none"  # autocast on CPU is slower, and float32 keeps CPU features exact
    if amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return amp


# --- free memory and the evaluation chunk ---------------------------------------------------------
def available_bytes(device) -> int | None:
    """Free memory of ``device`` in bytes: CUDA's mem_get_info, psutil's available RAM on the
    CPU (None when psutil is not installed)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def eval_chunk_budget(device, free_bytes: int | None = None) -> int:
    """Bytes the evaluation scorer may spend on one chunk's temporaries (see the module doc).

    ``free_bytes`` replaces the measured free memory (planning for another machine)."""
    device = torch.device(device)
    free = available_bytes(device) if free_bytes is None else int(free_bytes)
    if device.type == "cuda":
        return int(free * CUDA_FREE_FRACTION)
    if free is None:
        return CPU_CHUNK_BUDGET
    return int(min(CPU_CHUNK_BUDGET, free * CPU_FREE_FRACTION))


def chunk_for_budget(num_entities: int, width: int, batch_size: int, budget: int) -> int:
    """Candidates per scorer chunk: ``budget / (2 * 4 * batch_size * width)`` clamped to [1024, N]."""
    per_candidate = 2 * F32 * max(int(batch_size), 1) * max(int(width), 1)
    return int(max(1, min(int(num_entities), max(MIN_CHUNK, int(budget) // per_candidate))))
