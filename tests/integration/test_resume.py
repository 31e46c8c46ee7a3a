"""Resuming runs: in-process and after a real SIGKILL, exact continuation (RNG states restored),
torn logs, finished runs, bad folders and corrupted checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import trained

import afme_lib.engine.checkpoints as checkpoints_mod
import afme_lib.engine.training as train_mod
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.errors import AfmeError
from afme_lib.engine.checkpoints import load_checkpoint
from afme_lib.engine.run_folder import BEST, LAST, read_log
from afme_lib.engine.training import NonFiniteLossError, Trainer
from afme_lib.experiments.run import evaluate_run, load_trainer, resume
from afme_lib.interfaces.cli import main

REPO = Path(__file__).resolve().parents[2]


def small(model="rotate", **train):
    """A small model and training config; AFME is kept at one attention layer."""
    model_cfg = ModelConfig(name=model, dim=16, attention_layers=1, attention_heads=2, noise_dim=8)
    fields = dict(epochs=4, batch_size=512, negatives=8, lr=0.02, eval_every=1, progress=False, device="cpu")
    if model == "afme":
        fields.update(batch_size=1024, negatives=2)
    return model_cfg, TrainConfig(**{**fields, **train})


def without_timings(log):
    return [{k: v for k, v in rec.items() if k != "seconds"} for rec in log]


def without_seconds(metrics):
    return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}


def fresh(tiny, out, model="rotate", **train):
    model_cfg, train_cfg = small(model, **train)
    features = str(tiny) if model != "rotate" else None
    return trained(str(tiny), model_cfg, train_cfg, out, features=features)


# --- in-process: interrupted + resumed == uninterrupted ----------------------------------------------
@pytest.mark.parametrize("model,total,first", [("rotate", 4, 2), ("afme", 2, 1)])
def test_resumed_run_matches_an_uninterrupted_one(tiny_synth, tmp_path, model, total, first):
    whole = fresh(tiny_synth, tmp_path / "whole", model, epochs=total)
    fresh(tiny_synth, tmp_path / "part", model, epochs=first)
    torch.manual_seed(1234)  # disturb the global RNG: only the checkpoint's saved state may count
    resumed = resume(tmp_path / "part", epochs=total).metrics
    assert without_timings(read_log(tmp_path / "part")) == without_timings(read_log(tmp_path / "whole"))
    assert [rec["epoch"] for rec in read_log(tmp_path / "part")] == list(range(1, total + 1))
    assert without_seconds(resumed) == without_seconds(whole)
    # the extension is recorded: the folder describes the run it now holds
    assert json.loads((tmp_path / "part" / "config.json").read_text())["train"]["epochs"] == total


def test_without_the_saved_rng_state_the_continuation_differs(tiny_synth, tmp_path, monkeypatch):
    """Negative control for the test above: skipping the RNG restore changes the losses."""
    fresh(tiny_synth, tmp_path / "whole", epochs=3)
    fresh(tiny_synth, tmp_path / "part", epochs=2)
    monkeypatch.setattr(train_mod, "set_rng_state", lambda state: None)
    torch.manual_seed(1234)
    resume(tmp_path / "part", epochs=3)
    assert read_log(tmp_path / "part")[2]["loss"] != read_log(tmp_path / "whole")[2]["loss"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda_continues_the_run(tiny_synth, tmp_path):
    """Checkpoints are read with map_location=cuda: the RNG states must still restore. GPU kernels
    (embedding backward) add in any order, so the comparison has a tolerance."""
    whole = fresh(tiny_synth, tmp_path / "whole", epochs=3, device="cuda")
    fresh(tiny_synth, tmp_path / "part", epochs=2, device="cuda")
    resumed = resume(tmp_path / "part", epochs=3).metrics
    assert resumed["device"].startswith("cuda")
    for a, b in zip(read_log(tmp_path / "part"), read_log(tmp_path / "whole")):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert resumed["test"]["mrr"] == pytest.approx(whole["test"]["mrr"], abs=1e-3)


# --- a real kill -9 ------------------------------------------------------------------------------
KILL_EPOCHS = 8
KILL_ARGS = [
    "--model",
    "rotate",
    "--dim",
    "16",
    "--epochs",
    str(KILL_EPOCHS),
    "--batch-size",
    "64",
    "--negatives",
    "4",
    "--lr",
    "0.02",
    "--eval-every",
    "0",
    "--no-progress",
    "--device",
    "cpu",
    "--seed",
    "3",
]


def test_sigkill_then_resume_finishes_every_epoch_exactly_once(tiny_synth, tmp_path):
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "afme_lib.interfaces.cli",
            "train",
            "--dataset",
            str(tiny_synth),
            "--out",
            str(run),
            *KILL_ARGS,
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    log_path = run / "log.jsonl"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log_path.is_file() and log_path.read_text().count("\n") >= 2:
                break
            time.sleep(0.005)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    if not alive:  # finished (or failed) before the kill: nothing was interrupted
        pytest.fail(
            f"the training subprocess ended before it could be killed (rc {proc.returncode}): {stderr.decode()[-2000:]}"
        )

    before = read_log(run)
    checkpointed = load_checkpoint(run / LAST)["state"]["epoch"]
    assert 2 <= len(before) < KILL_EPOCHS
    assert len(before) - 1 <= checkpointed <= len(before)  # at most the epoch being saved is redone
    # A line torn by a kill in mid-write must be tolerated.
    with open(log_path, "a") as fh:
        fh.write('{"epoch": 99, "kgc": 0.12')

    assert main(["train", "--resume", str(run)]) == 0
    after = read_log(run)
    assert [rec["epoch"] for rec in after] == list(range(1, KILL_EPOCHS + 1))  # each epoch once, no gap
    assert log_path.read_text().endswith("}\n")
    # Completed, checkpointed epochs were not redone: their records (timings included) are the same.
    assert after[:checkpointed] == before[:checkpointed]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == KILL_EPOCHS

    # And the continuation is exact: the same run, never interrupted, in this process.
    whole = tmp_path / "whole"
    assert main(["train", "--dataset", str(tiny_synth), "--out", str(whole), *KILL_ARGS]) == 0
    assert without_timings(read_log(whole)) == without_timings(after)
    assert without_seconds(json.loads((whole / "metrics.json").read_text())) == without_seconds(metrics)


# --- finished runs, missing checkpoints, bad folders ---------------------------------------------------
def test_resuming_a_finished_run_refinishes_without_training(tiny_synth, tmp_path, monkeypatch, capsys):
    run = tmp_path / "done"
    first = fresh(tiny_synth, run, epochs=2)
    log_text, last_bytes = (run / "log.jsonl").read_text(), (run / LAST).read_bytes()
    config_text = (run / "config.json").read_text()

    def no_training(self, epoch):
        raise AssertionError(f"epoch {epoch} was trained again")

    monkeypatch.setattr(Trainer, "train_epoch", no_training)
    (run / "metrics.json").unlink()  # e.g. killed during the final evaluation
    assert main(["train", "--resume", str(run)]) == 0
    assert "(2 epochs," in capsys.readouterr().out
    assert (run / "log.jsonl").read_text() == log_text and (run / LAST).read_bytes() == last_bytes
    assert (run / "config.json").read_text() == config_text  # no override: config untouched
    assert without_seconds(json.loads((run / "metrics.json").read_text())) == without_seconds(first)


def test_a_run_killed_before_its_first_checkpoint_restarts_from_scratch(tiny_synth, tmp_path):
    run = tmp_path / "early"
    first = fresh(tiny_synth, run, epochs=2)
    first_log = read_log(run)
    for name in (LAST, BEST, "metrics.json"):
        (run / name).unlink()
    (run / "log.jsonl").write_text('{"epoch": 1, "kg')  # killed while logging epoch 1
    with pytest.raises(AfmeError, match="holds no checkpoint yet .*afme train --resume"):
        evaluate_run(run)
    again = resume(run).metrics
    assert without_timings(read_log(run)) == without_timings(first_log)
    assert without_seconds(again) == without_seconds(first)


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "stuff").mkdir()
    assert main(["train", "--resume", str(tmp_path / "stuff")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"afme: error: {tmp_path / 'stuff'} is not a run folder (no config.json)")
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_training_into_a_folder_holding_a_run(tiny_synth, tmp_path, capsys):
    """The same spec finds its finished run and returns it; another spec is refused, naming what
    differs and how to continue the run that is there; nothing is touched either way."""
    run = tmp_path / "taken"
    first = fresh(tiny_synth, run, epochs=1)
    log_text = (run / "log.jsonl").read_text()
    assert fresh(tiny_synth, run, epochs=1) == first
    with pytest.raises(
        AfmeError, match=rf"holds another run \(train.epochs: 1 there, 2 asked\).*`afme train --resume {run}`"
    ):
        fresh(tiny_synth, run, epochs=2)
    rc = main(["train", "--dataset", str(tiny_synth), "--out", str(run), "--epochs", "2", "--no-progress"])
    assert rc == 2 and "--resume" in capsys.readouterr().err
    assert (run / "log.jsonl").read_text() == log_text


def test_resume_refuses_model_flags_but_takes_training_flags(tiny_synth, tmp_path, capsys):
    run = tmp_path / "extend"
    fresh(tiny_synth, run, epochs=1)
    assert main(["train", "--resume", str(run), "--dim", "32", "--dataset", "x"]) == 2
    assert "drop --dataset --dim" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert [rec["epoch"] for rec in read_log(run)] == [1, 2]
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2


def load_checkpoint_epoch(run: Path) -> int:
    return load_checkpoint(run / LAST)["state"]["epoch"] if (run / LAST).is_file() else 0


def test_resume_after_a_non_finite_loss_with_a_lower_learning_rate(tiny_synth, tmp_path, monkeypatch):
    """The lr given on resume must replace the one stored with the optimiser state."""
    run = tmp_path / "diverged"
    real_loss = train_mod.kgc_loss

    def nan_once_epoch_1_is_saved(name, pos, *args):
        return real_loss(name, pos * float("nan") if load_checkpoint_epoch(run) >= 1 else pos, *args)

    monkeypatch.setattr(train_mod, "kgc_loss", nan_once_epoch_1_is_saved)
    with pytest.raises(NonFiniteLossError, match="epoch 2, batch 1"):
        fresh(tiny_synth, run, epochs=3)
    monkeypatch.setattr(train_mod, "kgc_loss", real_loss)
    metrics = resume(run, lr=0.005).metrics
    assert metrics["epochs_run"] == 3
    assert [rec["epoch"] for rec in read_log(run)] == [1, 2, 3] and all("error" not in r for r in read_log(run))
    lrs = {group["lr"] for group in load_checkpoint(run / LAST)["optimizer"]["param_groups"]}
    assert lrs == {0.005}


# --- checkpoint files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupted_checkpoint_gives_a_clear_error(tiny_synth, tmp_path, damage, capsys):
    run = tmp_path / "broken"
    fresh(tiny_synth, run, epochs=1)
    data = (run / LAST).read_bytes()
    broken = {"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint " * 40, "empty": b""}[damage]
    for name in (LAST, BEST):
        (run / name).write_bytes(broken)
    (run / "metrics.json").unlink()  # interrupted: resuming must read the last checkpoint
    with pytest.raises(AfmeError, match=rf"{LAST}: unreadable checkpoint \(.*\); the file is truncated, corrupted"):
        resume(run)
    with pytest.raises(AfmeError, match=f"{BEST}: unreadable checkpoint"):
        load_trainer(run)
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("afme: error: ") and "unreadable checkpoint" in err and "Traceback" not in err


def test_checkpoint_writes_are_atomic_and_hold_no_pickled_objects(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    checkpoints_mod.save_checkpoint(path, {"model": {"w": torch.ones(2)}, "n": 1})
    # A save that dies half-way leaves the previous checkpoint in place.
    monkeypatch.setattr(torch, "save", lambda obj, f: (Path(f).write_bytes(b"half"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        checkpoints_mod.save_checkpoint(path, {"model": {"w": torch.zeros(2)}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    monkeypatch.undo()
    # An object that needs pickled code is refused by the weights_only reader, with our message.
    torch.save({"model": {}, "obj": Path("x")}, tmp_path / "evil.pt")
    with pytest.raises(AfmeError, match="evil.pt: unreadable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(AfmeError, match="missing.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
