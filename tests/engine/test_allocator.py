"""afme_lib.engine.allocator: with its settings, glibc serves a training step's blocks from pages the
process already holds (counted as minor page faults), and it stays out of the way of whoever
chose another allocator setting. Each case runs in a fresh interpreter, since malloc settings
are process-wide and cannot be undone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.engine import training as train_mod

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the settings are glibc's"
)

# Six 16 MB tensors alive at once, then freed, ten times (a step's working set, in small): the
# minor page faults before and after retain_freed_memory(), as "applied before after". The probe
# first fixes glibc's thresholds at their starting values (128 KiB): left to move by themselves,
# they served this pattern from fresh pages in some processes and from kept ones in others (the
# same probe, run twice: 234k faults, then 0), which would make "before" a coin toss.
PROBE = textwrap.dedent("""
    import ctypes, resource, torch
    from afme_lib.engine.allocator import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, retain_freed_memory

    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024) and libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            alive = [torch.empty(4_000_000).fill_(1.0) for _ in range(6)]
            del alive
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults()
    before = faults()
    applied = retain_freed_memory()
    faults()
    print(applied, before, faults())
""")


def probe(**env: str) -> tuple[bool, int, int]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "AFME_SYSTEM_MALLOC", "LD_PRELOAD")
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@glibc_only
def test_retained_memory_serves_the_next_round_without_new_pages():
    applied, before, after = probe()
    pages = 10 * 6 * 16_000_000 // 4096  # every block on fresh pages, every round
    assert applied
    assert before > pages / 2  # at glibc's starting thresholds every block is mapped afresh
    assert after < before / 10


@glibc_only
@pytest.mark.parametrize(
    "env", [{"AFME_SYSTEM_MALLOC": "1"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}], ids=["opted-out", "user-set-glibc-knob"]
)
def test_an_opt_out_or_a_users_own_setting_is_left_alone(env):
    applied, before, after = probe(**env)
    assert not applied
    assert after > before / 2  # nothing changed: the blocks still come on fresh pages


def test_a_cpu_trainer_applies_the_settings(tiny_synth, monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "retain_freed_memory", lambda: calls.append(True) or True)
    dataset = load_dataset(tiny_synth)
    train_mod.Trainer(dataset, ModelConfig(name="distmult", dim=8), TrainConfig(device="cpu", progress=False), None)
    assert calls == [True]
