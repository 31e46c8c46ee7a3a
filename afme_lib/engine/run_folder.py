"""Run folders: what a training run leaves on disk, and :class:`RunFolder`, the one way to read it.

A run folder holds
- ``config.json``: everything needed to repeat the run (data, model, training, package version,
  git commit) -- :class:`RunConfig`;
- ``log.jsonl``: one JSON line per epoch (``epoch`` counted from 1, losses, ``seconds``, valid
  metrics when computed) -- a trace any tool can read;
- ``checkpoint-last.pt`` (every ``checkpoint_every`` epochs, at the last epoch and when stopping
  early; an ``epochs=0`` run keeps its initial model there) and ``checkpoint-best.pt`` (best
  valid MRR), written and read by :mod:`afme_lib.engine.checkpoints`;
- ``metrics.json`` when the run is finished.

Under torchrun only rank 0 writes any of these (afme_lib/engine/distributed.py). JSON files are
published atomically (:mod:`afme_lib.core.atomic`); a kill can tear the last log line at most:
:func:`read_log` stops there and a resume rewrites the log up to the checkpoint's epoch.

This module reads and writes JSON only (no torch), so the grid runner and the CLI can look into
run folders without loading the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import afme_lib
from afme_lib.core import atomic
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.errors import AfmeError

CONFIG, LOG, METRICS = "config.json", "log.jsonl", "metrics.json"
LAST, BEST = "checkpoint-last.pt", "checkpoint-best.pt"
CHECKPOINTS = {"best": BEST, "last": LAST}
# TrainConfig fields that change how a run is shown, not what it computes.
COSMETIC = ("progress",)


def run_fingerprint(dataset: str, features: str | None, model: ModelConfig, train: TrainConfig) -> str:
    """sha1 of what a run computes: its dataset and feature folders (absolute), every model field
    and every training field but the :data:`COSMETIC` ones. Written into ``config.json``; the same
    spec gives the same fingerprint from the command line, a grid cell or a notebook."""
    payload = {
        "dataset": _absolute(dataset),
        "features": _absolute(features),
        "model": model.to_dict(),
        "train": {k: v for k, v in train.to_dict().items() if k not in COSMETIC},
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(afme_lib.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_json(path: Path, payload: dict) -> None:
    atomic.write_json(path, payload)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# --- config.json ------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """``config.json``, typed. ``dataset`` / ``features`` / ``data_dir`` as given to the run
    (folders absolute); ``feature_placement``: where features were asked to live (see
    afme_lib.experiments.run); ``world_size``: processes the run was started with (torchrun)."""

    dataset: str
    features: str | None
    model: ModelConfig
    train: TrainConfig
    data_dir: str | None = None
    feature_placement: str = "auto"
    world_size: int = 1
    afme_version: str | None = None
    torch_version: str | None = None
    git_commit: str | None = None
    other: dict = field(default_factory=dict)  # keys this version does not know, kept as they are

    @classmethod
    def new(
        cls,
        dataset: str,
        features: str | None,
        data_dir: str | None,
        model: ModelConfig,
        train: TrainConfig,
        feature_placement: str = "auto",
        world_size: int = 1,
    ) -> RunConfig:
        """The config of a run starting now, with this package's and torch's versions and the git commit."""
        import torch  # its version only; importing this module stays torch-free

        return cls(
            dataset=dataset,
            features=features,
            data_dir=data_dir,
            model=model,
            train=train,
            feature_placement=feature_placement,
            world_size=int(world_size),
            afme_version=afme_lib.__version__,
            torch_version=torch.__version__,
            git_commit=git_commit(),
        )

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        known = {f.name for f in fields(cls)} - {"other"} | {"fingerprint"}  # the fingerprint is recomputed
        plain = {k: v for k, v in values.items() if k in known and k not in ("model", "train", "fingerprint")}
        model = values["model"]
        if isinstance(model, dict) and model.get("name") == "afme" and "cross_check_margin" not in model:
            # An AFME folder that does not name the field trained without the row cross-check (its
            # checkpoint holds no agreement statistics): the field's default would misread it.
            model = {**model, "cross_check_margin": 0.0}
        train = values["train"]
        if isinstance(train, dict) and "self_negatives" not in train:
            train = {**train, "self_negatives": 0.0}  # a folder that does not name them trained without them
        return cls(
            model=ModelConfig.from_dict(model),
            train=TrainConfig.from_dict(train),
            other={k: v for k, v in values.items() if k not in known},
            **plain,
        )

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "features": self.features,
            "data_dir": self.data_dir,
            "feature_placement": self.feature_placement,
            "world_size": self.world_size,
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
            "fingerprint": self.fingerprint(),
            "afme_version": self.afme_version,
            "torch_version": self.torch_version,
            "git_commit": self.git_commit,
            **self.other,
        }

    def fingerprint(self) -> str:
        """:func:`run_fingerprint` of this run."""
        return run_fingerprint(self.dataset, self.features, self.model, self.train)

    def differences(self, other: RunConfig) -> list[tuple[str, object, object]]:
        """``(field, ours, theirs)`` for every field that changes what the run computes: the
        dataset and features (folders compared as absolute paths), every model field and every
        training field but the :data:`COSMETIC` ones; sorted by field name."""
        mine, theirs = self._computed(), other._computed()
        return [
            (k, mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)
        ]

    def _computed(self) -> dict:
        return {
            "dataset": _absolute(self.dataset),
            "features": _absolute(self.features),
            **{f"model.{k}": v for k, v in self.model.to_dict().items()},
            **{f"train.{k}": v for k, v in self.train.to_dict().items() if k not in COSMETIC},
        }

    def with_train(self, train: TrainConfig) -> RunConfig:
        return replace(self, train=train)


def _absolute(path: str | None) -> str | None:
    """Folders as absolute paths (how runs record them); names and None unchanged."""
    if path is None:
        return None
    candidate = Path(path)
    return str(candidate.resolve()) if candidate.is_dir() else str(path)


# --- the folder -------------------------------------------------------------------------------
class RunFolder:
    """A run folder (see the module docstring); reading a file it does not hold raises an
    :class:`AfmeError` that says how to get it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def started(self) -> bool:
        """Whether the folder holds a run (its config.json), finished or not."""
        return (self.path / CONFIG).is_file()

    @property
    def finished(self) -> bool:
        """Whether the run is finished (its metrics.json)."""
        return (self.path / METRICS).is_file()

    @property
    def config(self) -> RunConfig:
        if not self.started:
            raise AfmeError(
                f"{self.path} is not a run folder (no config.json); start a run with `afme train --out {self.path}`"
            )
        return RunConfig.from_dict(read_json(self.path / CONFIG))

    def write_config(self, config: RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / CONFIG, config.to_dict())

    @property
    def metrics(self) -> dict:
        """metrics.json: valid and test results and the run's counters (see afme_lib.experiments.run)."""
        if not self.finished:
            raise AfmeError(
                f"{self.path} holds no finished run (no metrics.json); finish it with `afme train --resume {self.path}`"
            )
        return read_json(self.path / METRICS)

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / METRICS, metrics)

    @property
    def log(self) -> list[dict]:
        return read_log(self.path)

    def checkpoint(self, which: str = "best") -> Path:
        """The path of ``checkpoint-best.pt`` (falling back to ``-last`` for a run without
        validation) or ``checkpoint-last.pt``."""
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be 'best' or 'last', got {which!r}")
        for name in (BEST, LAST) if which == "best" else (LAST,):
            if (self.path / name).is_file():
                return self.path / name
        raise AfmeError(
            f"{self.path} holds no checkpoint yet (stopped before its first epoch ended); "
            f"continue it with `afme train --resume {self.path}`"
        )


# --- epoch log --------------------------------------------------------------------------------
def append_log(run_dir: Path, record: dict) -> None:
    with open(Path(run_dir) / LOG, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / LOG
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
    atomic.write_text(Path(run_dir) / LOG, "".join(json.dumps(r) + "\n" for r in kept))
