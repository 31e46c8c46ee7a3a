"""What a checkpoint holds and how it is written and read: tensors, optimiser states, RNG states.

A checkpoint (``checkpoint-last.pt`` / ``checkpoint-best.pt`` in a run folder, see
:mod:`afme_lib.engine.run_folder`) holds model + optimiser state and every RNG state (python, numpy, torch,
cuda), so a resumed run continues exactly as an uninterrupted one would on the same device.
It is written atomically (:func:`afme_lib.core.atomic.save`): a kill -9 in the middle of a save
leaves the previous checkpoint intact. It is read with ``weights_only=True`` and an unreadable
one raises :class:`AfmeError` naming the file.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from afme_lib.core import atomic
from afme_lib.core.errors import AfmeError


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
    atomic.save(payload, path)


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
        raise AfmeError(
            f"{path}: unreadable checkpoint ({type(err).__name__}: {detail}); the file is truncated, "
            "corrupted or not an afme checkpoint -- delete it and resume from another one, or retrain"
        ) from err
    if not isinstance(payload, dict) or "model" not in payload:
        raise AfmeError(f"{path}: not an afme checkpoint (expected a dict with a 'model' entry)")
    return payload
