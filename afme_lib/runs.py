"""Run folders: config, per-epoch log, checkpoints with RNG state, final metrics.

A run folder holds
- ``config.json``: everything needed to repeat the run (data, model, training, package version,
  git commit);
- ``log.jsonl``: one JSON line per epoch (``epoch`` counted from 1, losses, ``seconds``, valid
  metrics when computed) -- a trace any tool can read;
- ``checkpoint-last.pt`` (every ``checkpoint_every`` epochs, at the last epoch and when stopping
  early; an ``epochs=0`` run keeps its initial model there) and ``checkpoint-best.pt`` (best
  valid MRR); each holds model + optimiser state and every RNG state, so a resumed run continues
  exactly as an uninterrupted one would on the same device;
- ``metrics.json`` when the run is finished.

Under torchrun only rank 0 writes any of these (afme_lib/distributed.py).

Checkpoints are written to a temporary file and renamed into place, so a kill -9 in the middle of
a save leaves the previous checkpoint intact; they are read with ``weights_only=True`` and an
unreadable one raises :class:`AfmeError` naming the file. A kill can tear the last log line at
most; :func:`read_log` stops there and a resume rewrites the log up to the checkpoint's epoch.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

import afme_lib
from afme_lib.errors import AfmeError

LAST, BEST = "checkpoint-last.pt", "checkpoint-best.pt"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(afme_lib.__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# --- RNG state --------------------------------------------------------------------------------
def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s output. The state tensors may come back on a GPU (a checkpoint
    read with ``map_location="cuda"``); the generators take CPU byte tensors, hence ``.cpu()``."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


# --- checkpoints ------------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` (tensors and plain containers, no pickled code).

    A missing, truncated or corrupted file raises :class:`AfmeError` naming the file, instead of
    the unpickler's own error (EOFError, KeyError, OSError ... depending on where the bytes end).
    """
    path = Path(path)
    if not path.is_file():
        raise AfmeError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 -- every unpickling failure means the same thing here
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise AfmeError(f"{path}: unreadable checkpoint ({type(err).__name__}: {detail}); the file is truncated, "
                        "corrupted or not an afme checkpoint -- delete it and resume from another one, or retrain") from err
    if not isinstance(payload, dict) or "model" not in payload:
        raise AfmeError(f"{path}: not an afme checkpoint (expected a dict with a 'model' entry)")
    return payload


# --- epoch log --------------------------------------------------------------------------------
def append_log(run_dir: Path, record: dict) -> None:
    with open(run_dir / "log.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill in mid-write: the epoch is redone
            break
    return records


def truncate_log(run_dir: Path, last_epoch: int) -> None:
    """Keep the log lines of epochs <= last_epoch (those the checkpoint contains)."""
    kept = [r for r in read_log(run_dir) if r.get("epoch", 0) <= last_epoch]
    tmp = Path(run_dir) / "log.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, Path(run_dir) / "log.jsonl")


def run_config(dataset: str, features: str | None, data_dir: str | None, model_cfg, train_cfg,
               feature_placement: str = "auto", world_size: int = 1) -> dict:
    """config.json's content. ``world_size``: processes the run was started with (torchrun);
    ``feature_placement``: where features were asked to live (see afme_lib.pipeline)."""
    return {
        "dataset": dataset,
        "features": features,
        "data_dir": data_dir,
        "feature_placement": feature_placement,
        "world_size": int(world_size),
        "model": model_cfg.to_dict(),
        "train": train_cfg.to_dict(),
        "afme_version": afme_lib.__version__,
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
    }
