"""Keep freed CPU memory inside the process during training (glibc only).

Why. A CPU training step allocates and frees tens of tensors of a few to some tens of MB (AFME's
fusion on the synthetic default preset: about 7k pairs x 4 modalities x 128 floats, 14.6 MB
each). glibc's malloc serves blocks of that size with fresh pages (mmap, or a heap it trims back
to the kernel as soon as more than a few tens of MB lie free at its top; how often depends on
where its self-adjusting thresholds settle in each process), so a step touches new pages and the
kernel zero-fills each one at first touch: measured with ``benchmarks/allocator.py``, 36k to 240k
minor page faults per AFME epoch on the synthetic preset, and about a sixth of the epoch.
Serving those blocks from the heap and trimming only past :data:`TRIM_THRESHOLD` lets the next
step reuse the same pages.

What it costs. Memory the process has already used stays mapped to it after it is freed (up to
:data:`TRIM_THRESHOLD` of it), so the resident size reads as the run's peak instead of falling
between steps; the peak itself does not grow.

Where it applies. glibc only (Linux; macOS and musl keep their allocator, and jemalloc, tcmalloc
or mimalloc preloaded with LD_PRELOAD are left alone), once per process, from the trainer on a
CPU device. Someone who set glibc's own knobs (:data:`USER_SETTINGS`, or any ``glibc.malloc``
tunable in ``GLIBC_TUNABLES``) keeps them; ``AFME_SYSTEM_MALLOC=1`` turns this off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # the most glibc accepts on 64-bit; blocks below it come from the heap
TRIM_THRESHOLD = 2**30  # free memory at the heap's top kept before it is returned to the kernel
OPT_OUT = "AFME_SYSTEM_MALLOC"
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_applied: bool | None = None  # the outcome of the first call: settings are process-wide


def _user_chose() -> bool:
    """Whether the environment already says how malloc should behave (ours must not override it)."""
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return True
    if any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return True
    preload = os.environ.get("LD_PRELOAD", "")
    return "jemalloc" in preload or "tcmalloc" in preload or "mimalloc" in preload


def _glibc():
    """The C library when it is glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def retain_freed_memory() -> bool:
    """Apply the module's malloc settings once per process; True when they are in force (this or
    an earlier call set them), False where they do not apply (see the module docstring)."""
    global _applied
    if _applied is None:
        libc = None if _user_chose() else _glibc()
        # mallopt returns 1 on success, 0 when glibc refuses the value.
        _applied = (
            libc is not None
            and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
            and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        )
    return _applied
