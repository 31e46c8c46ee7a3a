"""Epoch timing: the steady mean and median leave the warm-up epoch out."""

from __future__ import annotations

import itertools

import torch

from afme_lib.engine import timing


class FakeTrainer:
    device = torch.device("cpu")

    def __init__(self):
        self.epochs = []

    def train_epoch(self, epoch):
        self.epochs.append(epoch)


def test_time_epochs_leaves_out_the_warm_up_and_takes_the_median(monkeypatch):
    # epochs lasting 9 (warm-up), 1, 5, 2 and 30 seconds (a neighbour slowed the last one)
    ticks = itertools.accumulate([0, 9, 0, 1, 0, 5, 0, 2, 0, 30])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(ticks)))
    trainer = FakeTrainer()
    out = timing.time_epochs(trainer, 5)
    assert trainer.epochs == [1, 2, 3, 4, 5]
    assert out["epoch_seconds"] == [9, 1, 5, 2, 30]
    assert out["steady_epoch_seconds"] == 9.5
    assert out["median_epoch_seconds"] == 3.5  # (2 + 5) / 2: the slow epoch moves the mean only
    ticks = itertools.accumulate([0, 4])
    assert timing.time_epochs(FakeTrainer(), 1)["median_epoch_seconds"] == 4  # one epoch: itself


def test_interleaved_timing_takes_the_trainers_epochs_in_turn(monkeypatch):
    order = []

    class Logged(FakeTrainer):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def train_epoch(self, epoch):
            order.append((self.name, epoch))

    # a: 9, 1, 3 seconds; b: 8, 2, 6 seconds, in the order a1 b1 a2 b2 a3 b3
    ticks = itertools.accumulate([0, 9, 0, 8, 0, 1, 0, 2, 0, 3, 0, 6])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(ticks)))
    out = timing.time_epochs_interleaved({"a": Logged("a"), "b": Logged("b")}, 3)
    assert order == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert out["a"]["epoch_seconds"] == [9, 1, 3] and out["b"]["epoch_seconds"] == [8, 2, 6]
    assert out["a"]["median_epoch_seconds"] == 2 and out["b"]["median_epoch_seconds"] == 4


def test_the_machine_line_names_the_cpu_model_and_the_threads(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
    )
    assert timing.cpu_name(info) == "AMD EPYC 7B13 64-Core Processor"
    # no such file (macOS, Windows) or no model line: what platform knows
    monkeypatch.setattr(timing.platform, "processor", lambda: "arm")
    assert timing.cpu_name(tmp_path / "missing") == "arm"
    info.write_text("processor\t: 0\n")
    assert timing.cpu_name(info) == "arm"
    monkeypatch.setattr(timing, "cpu_name", lambda: "Some CPU")
    assert timing.machine_name(torch.device("cpu"), 2) == f"Some CPU, 2 thread(s), torch {torch.__version__}"
