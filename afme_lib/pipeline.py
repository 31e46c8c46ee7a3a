"""From a dataset name to a finished run folder in one call (used by the CLI and the notebooks).

    metrics = train_run("synth-tiny-dir", ModelConfig(name="afme"), TrainConfig(epochs=5), "runs/x",
                        features="synth-tiny-dir")

The test metrics come from the best-valid checkpoint (never selected on test); with no
validation at all (``eval_every=0`` or ``epochs=0``) from the final model.

``metrics.json`` (and the returned dict) has exactly the keys :data:`METRICS_KEYS`:
``test`` and ``valid`` (each :func:`~afme_lib.evaluate.evaluate`'s result: mrr, mr, hits@1/3/10,
count, by_side, by_category), ``epochs_run``, ``best_epoch`` (None without validation),
``stopped_early``, ``train_seconds``, ``eval_seconds``, ``device`` and ``world_size`` (processes).

Under torchrun every process calls these functions (``afme train`` does); every process trains
and evaluates its share, only rank 0 writes files, and all return the same metrics.

Feature placement (``feature_placement``): "device" copies the features to the model's device,
"pinned" / "mmap" keep them in host memory and gather each batch's rows (afme_lib/data/features.py),
"auto" keeps them on the device when the run fits there by the memory model (afme_lib/memory.py),
else pinned. The choice asked for is recorded in config.json and used again on resume.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from afme_lib import distributed, memory
from afme_lib.combinations import check_run
from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.data.features import FeatureStore
from afme_lib.data.hygiene import warn_split_leakage
from afme_lib.data.registry import graph_counts, load_benchmark
from afme_lib.device import resolve_device
from afme_lib.errors import AfmeError, OptionError, did_you_mean, literal
from afme_lib.evaluate import evaluate
from afme_lib.runs import BEST, LAST, read_json, run_config, write_json
from afme_lib.train import Trainer

SUMMARY_KEYS = ("mrr", "mr", "hits@1", "hits@3", "hits@10")
METRICS_KEYS = ("valid", "test", "epochs_run", "best_epoch", "stopped_early", "train_seconds", "eval_seconds", "device",
                "world_size")


def load_inputs(dataset: str, features: str | None = None, data_dir: str | None = None, modalities=None,
                placement: str = "device"):
    """The dataset (registered name or folder) and its feature store (None without features),
    the store placed as ``placement`` says ("device", "pinned" or "mmap")."""
    if placement not in ("device", "pinned", "mmap"):
        raise ValueError(f"placement must be device, pinned or mmap here, got {placement!r}")
    data = load_benchmark(dataset, data_dir=data_dir)
    store = None
    if features:
        store = FeatureStore.load(features, data.num_entities, modalities, mmap=placement == "mmap")
        if placement == "pinned":
            store = store.offload("pinned")
    return data, store


def _inputs_for_run(dataset, features, data_dir, model_cfg: ModelConfig, train_cfg: TrainConfig, placement: str):
    """:func:`load_inputs` with "auto" placement resolved by the memory model for this run's device."""
    if features and placement == "auto":
        _info, device = distributed.init_from_env(resolve_device(train_cfg.device))
        if device.type == "cuda":  # on the CPU features are in host memory whatever the placement
            entities, relations = graph_counts(dataset, data_dir)
            dims = memory.feature_dims_in(features)
            placement = memory.choose_feature_placement("auto", model_cfg, train_cfg, entities, relations, dims, device)
    return load_inputs(dataset, features, data_dir, model_cfg.modalities, "device" if placement == "auto" else placement)


def _finish(trainer: Trainer, run_dir: Path) -> dict:
    """Evaluate valid and test with the best-valid checkpoint; write metrics.json."""
    if (run_dir / BEST).is_file():
        trainer.restore(run_dir / BEST, with_training_state=False)
    start = time.perf_counter()
    cfg = trainer.cfg
    results = {}
    for split in ("valid", "test"):
        results[split] = evaluate(trainer.model, trainer.dataset, split, filter_index=trainer.filter_index,
                                  batch_size=cfg.eval_batch_size, chunk_size=cfg.eval_chunk_size or None,
                                  progress=cfg.progress)
    st = trainer.state
    metrics = {
        **results,
        "epochs_run": st.epoch,
        "best_epoch": st.best_epoch or None,
        "stopped_early": st.stopped_early,
        "train_seconds": round(st.train_seconds, 3),
        "eval_seconds": round(time.perf_counter() - start, 3),
        "device": str(trainer.device),
    }
    metrics["world_size"] = trainer.dist.world_size
    if trainer.dist.is_main:
        write_json(run_dir / "metrics.json", metrics)
    return metrics


def train_run(dataset: str, model_cfg: ModelConfig, train_cfg: TrainConfig, out_dir: str | Path,
              features: str | None = None, data_dir: str | None = None, feature_placement: str = "auto") -> dict:
    """Train a fresh run into ``out_dir`` (which must not already hold a run) and return its metrics."""
    run_dir = Path(out_dir)
    check_run(model_cfg, train_cfg, features)  # options and their combinations, before any data is read
    if feature_placement not in memory.PLACEMENTS:
        raise OptionError("feature_placement", f"must be one of {', '.join(memory.PLACEMENTS)} (got "
                          f"{literal(feature_placement)}){did_you_mean(feature_placement, memory.PLACEMENTS)}")
    # Under torchrun: join the group first, and let every process look at the folder before
    # rank 0 writes into it, so that they all take the same branch below.
    distributed.init_from_env(resolve_device(train_cfg.device))
    taken = (run_dir / "config.json").exists()
    distributed.barrier()
    if taken:
        raise AfmeError(f"{run_dir} already holds a run: resume it with `afme train --resume {run_dir}` "
                        "or choose another --out")
    # Folders are recorded absolute so that resume and evaluate work from any working directory.
    dataset, features, data_dir = (str(Path(p).resolve()) if p and Path(p).is_dir() else p
                                   for p in (dataset, features, data_dir))
    data, store = _inputs_for_run(dataset, features, data_dir, model_cfg, train_cfg, feature_placement)
    if distributed.is_main():  # valid/test rows that are training triples make the run's numbers mean little
        warn_split_leakage(data)
    # Build everything before writing config.json: a config the trainer rejects (bad loss,
    # sampler, modality ...) must not leave a "run" that only --resume would accept.
    trainer = Trainer(data, model_cfg, train_cfg, run_dir, store)
    if trainer.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", run_config(
            str(dataset), str(features) if features else None, data_dir, model_cfg, train_cfg,
            feature_placement=feature_placement, world_size=trainer.dist.world_size))
    trainer.fit()
    return _finish(trainer, run_dir)


def _read_run_config(run_dir: Path) -> dict:
    if not (run_dir / "config.json").is_file():
        raise AfmeError(f"{run_dir} is not a run folder (no config.json); start a run with `afme train --out {run_dir}`")
    return read_json(run_dir / "config.json")


def _trainer_for(run_dir: Path, feature_placement: str | None = None, check: bool = False,
                 **train_overrides) -> Trainer:
    """The run's trainer, its TrainConfig updated by ``train_overrides``; ``check``: refuse
    overrides this machine cannot run before any data is loaded (resume with user options)."""
    cfg = _read_run_config(run_dir)
    model_cfg = ModelConfig.from_dict(cfg["model"])
    train_cfg = TrainConfig.from_dict({**cfg["train"], **train_overrides})
    if check:
        check_run(model_cfg, train_cfg, needs_features=False)  # the run keeps the inputs it started with
    placement = feature_placement or cfg.get("feature_placement", "auto")
    data, store = _inputs_for_run(cfg["dataset"], cfg["features"], cfg["data_dir"], model_cfg, train_cfg, placement)
    return Trainer(data, model_cfg, train_cfg, run_dir, store)


def _checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """``checkpoint-best.pt`` (or ``-last``); best falls back to last (runs without validation)."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    for name in ((BEST, LAST) if checkpoint == "best" else (LAST,)):
        if (run_dir / name).is_file():
            return run_dir / name
    raise AfmeError(f"{run_dir} holds no checkpoint yet (stopped before its first epoch ended); "
                    f"continue it with `afme train --resume {run_dir}`")


def resume_run(run_dir: str | Path, feature_placement: str | None = None, **train_overrides) -> dict:
    """Continue an interrupted run from its last checkpoint, then finish it.

    ``train_overrides`` replace TrainConfig fields (e.g. ``epochs=40`` to extend a finished run,
    ``lr=1e-4`` after a non-finite loss); they are written back to ``config.json`` so the folder
    keeps describing the run it holds. A finished run with no override is re-finished: its
    checkpoint is evaluated again, nothing is trained. ``feature_placement`` replaces the
    recorded one for this process only (where features live changes no result).
    A run continued with another number of processes than it started with trains on
    differently drawn shards and negatives from there on (a warning says so).
    """
    run_dir = Path(run_dir)
    trainer = _trainer_for(run_dir, feature_placement, check=bool(train_overrides), **train_overrides)
    cfg = _read_run_config(run_dir)
    started_with = cfg.get("world_size", 1)
    if started_with != trainer.dist.world_size and trainer.dist.is_main:
        warnings.warn(f"{run_dir} was started with {started_with} process(es) and continues with "
                      f"{trainer.dist.world_size}: the continuation draws other shards and negatives than an "
                      "uninterrupted run would", RuntimeWarning, stacklevel=2)
    if train_overrides and trainer.dist.is_main:
        cfg["train"] = trainer.cfg.to_dict()
        write_json(run_dir / "config.json", cfg)
    trainer.resume()
    trainer.fit()
    return _finish(trainer, run_dir)


def run_or_resume(dataset: str, model_cfg: ModelConfig, train_cfg: TrainConfig, out_dir: str | Path,
                  features: str | None = None, data_dir: str | None = None) -> dict:
    """Metrics of the run in ``out_dir``: read when finished, resumed when interrupted, else trained.

    What batch jobs (the main job, benchmark grids) call so that a rerun never repeats finished work.
    """
    run_dir = Path(out_dir)
    if (run_dir / "metrics.json").is_file():
        return read_json(run_dir / "metrics.json")
    if (run_dir / "config.json").is_file():
        return resume_run(run_dir)
    return train_run(dataset, model_cfg, train_cfg, run_dir, features=features, data_dir=data_dir)


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", **train_overrides) -> dict:
    """Evaluate a run's best (or last) checkpoint on a split."""
    run_dir = Path(run_dir)
    trainer = _trainer_for(run_dir, **train_overrides)
    trainer.restore(_checkpoint_path(run_dir, checkpoint), with_training_state=False)
    cfg = trainer.cfg
    return evaluate(trainer.model, trainer.dataset, split, filter_index=trainer.filter_index,
                    batch_size=cfg.eval_batch_size, chunk_size=cfg.eval_chunk_size or None, progress=cfg.progress)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> Trainer:
    """A trainer holding a finished run's model (for notebooks: introspection, predictions)."""
    run_dir = Path(run_dir)
    trainer = _trainer_for(run_dir, device=device, progress=False)
    trainer.restore(_checkpoint_path(run_dir, checkpoint), with_training_state=False)
    trainer.model.eval()
    return trainer
