"""Wall-clock timing of training epochs and of a full filtered evaluation, for the benchmarks.

CUDA kernels run asynchronously, so the device is synchronised before the clock starts and
before it stops (otherwise the clock stops while queued work still runs). The first epoch pays
for warm-up (allocator, kernel selection, compilation) and is reported apart from the steady
ones; the evaluation is timed after a warm-up on a few triples.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from afme_lib.engine.evaluation import evaluate


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux's first "model name" line), else what ``platform`` knows. AFME's
    synthetic epoch ranged from 7.7x to 10.9x RotatE's across our VMs, each reported as "x86_64"."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_name(device: torch.device, threads: int) -> str:
    """One line naming what a timing ran on: the GPU, or the CPU and its torch threads; torch's version."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_name()}, {threads} thread(s)"
    return f"{where}, torch {torch.__version__}"


def time_epochs(trainer, epochs: int) -> dict:
    """Run ``epochs`` training epochs of ``trainer``; seconds of each, and the steady mean and
    median (all but the first, when there is more than one). The median is the figure to compare
    on a shared machine: an epoch slowed by a neighbour moves the mean, not the median."""
    return time_epochs_interleaved({"": trainer}, epochs)[""]


def time_epochs_interleaved(trainers: dict, epochs: int) -> dict[str, dict]:
    """:func:`time_epochs` of several trainers, their epochs taken in turn (epoch 1 of each, then
    epoch 2 of each, ...): a stretch of time in which a shared machine is slow then falls on every
    trainer alike instead of on whichever ran through it, so the ratios between them hold (run
    one after another on a noisy host, RotatE's synthetic epoch took 0.39 s in one block of the
    speed page and 0.25 s in the next, with nothing changed but the negative sampler)."""
    seconds = time_calls_interleaved(
        {label: trainer.train_epoch for label, trainer in trainers.items()},
        epochs,
        next(iter(trainers.values())).device if trainers else torch.device("cpu"),
    )
    out = {}
    for label, times in seconds.items():
        steady = times[1:] or times
        out[label] = {
            "epoch_seconds": times,
            "steady_epoch_seconds": sum(steady) / len(steady),
            "median_epoch_seconds": statistics.median(steady),
        }
    return out


def time_calls_interleaved(calls: dict, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each call in ``calls`` (label -> f(round)), run ``rounds`` times in turn (each
    call once, then each once again, ...), the device synchronised around each."""
    seconds: dict[str, list[float]] = {label: [] for label in calls}
    for round_ in range(1, rounds + 1):
        for label, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call(round_)
            synchronize(device)
            seconds[label].append(time.perf_counter() - start)
    return seconds


def time_evaluation(trainer, dataset, split: str = "test", batch_size: int = 256, warmup_triples: int = 256) -> dict:
    """One full filtered evaluation of ``split`` (after a warm-up on its first triples): seconds and MRR."""
    warm = replace(dataset, **{split: dataset.split(split)[:warmup_triples]})
    evaluate(trainer.model, warm, split, filter_index=trainer.filter_index, batch_size=batch_size)
    synchronize(trainer.device)
    start = time.perf_counter()
    result = evaluate(trainer.model, dataset, split, filter_index=trainer.filter_index, batch_size=batch_size)
    synchronize(trainer.device)
    return {"eval_seconds": time.perf_counter() - start, "mrr": result["mrr"]}
