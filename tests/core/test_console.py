"""Progress output: bars on a terminal, one line per epoch in a log (afme_lib.core.console)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from afme_lib.core import console
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.engine.training import Trainer, epoch_line

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "stdout_tty, stderr_tty, bars, lines",
    [
        (True, True, True, False),  # an interactive run: bars only
        (False, True, True, True),  # `afme train > log`: lines in the file, bars on the terminal
        (False, False, False, True),  # `> log 2>&1`, a pipe, a batch job: lines only
    ],
)
def test_bars_follow_stderr_and_lines_follow_stdout(monkeypatch, stdout_tty, stderr_tty, bars, lines):
    monkeypatch.setattr(sys, "stdout", Terminal() if stdout_tty else io.StringIO())
    monkeypatch.setattr(sys, "stderr", Terminal() if stderr_tty else io.StringIO())
    assert (console.bars(), console.lines()) == (bars, lines)
    assert (console.bars(False), console.lines(False)) == (False, False)  # --no-progress silences both


def test_epoch_line():
    record = {
        "epoch": 4,
        "loss": 0.81234,
        "kgc": 0.8,
        "extra": 0.012345,
        "seconds": 3.04,
        "valid": {"mrr": 0.12345, "mr": 45.67, "hits@1": 0.05, "hits@3": 0.1, "hits@10": 0.3},
    }
    assert epoch_line(record, 10, 12.4, 18.6) == (
        "epoch 4/10  loss 0.8123  kgc 0.8  extra 0.01235  3.0 s  "
        "valid mrr 0.1235 mr 45.7 hits@1 0.0500 hits@3 0.1000 hits@10 0.3000  elapsed 0:12  remaining ~0:19"
    )
    stopped = {"epoch": 7, "loss": 0.5, "seconds": 1.0, "stopped_early": True}
    assert epoch_line(stopped, 10, 3725, 0) == "epoch 7/10  loss 0.5  1.0 s  elapsed 1:02:05  stopped early"


def test_a_training_run_into_a_log_prints_one_line_per_epoch(tiny_synth, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [
        sys.executable,
        "-m",
        "afme_lib.interfaces.cli",
        "train",
        "--dataset",
        str(tiny_synth),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "rotate",
        "--dim",
        "16",
        "--epochs",
        "3",
        "--eval-every",
        "2",
        "--batch-size",
        "512",
        "--device",
        "cpu",
    ]
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, check=True)  # pipes: no terminal
    assert "\r" not in out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[:3]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert len(lines) == 4 and lines[3].startswith(f"run {tmp_path / 'run'}: test MRR")
    assert ["valid mrr" in line for line in lines[:3]] == [False, True, True]  # validated at 2 and at the end
    assert all(" loss " in line and " kgc " in line and " elapsed " in line for line in lines[:3])
    assert lines[2].endswith("remaining ~0:00")


def test_a_terminal_gets_bars_and_no_epoch_lines(tiny_synth, monkeypatch):
    stdout, stderr = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    cfg = TrainConfig(epochs=2, batch_size=512, eval_every=1, device="cpu")
    Trainer(load_dataset(tiny_synth), ModelConfig(name="rotate", dim=16), cfg, None).fit()
    assert stdout.getvalue() == ""
    assert "\r" in stderr.getvalue() and "epoch 2" in stderr.getvalue() and "eval valid" in stderr.getvalue()
