"""From a dataset name to a finished run folder in one call (used by the CLI and the notebooks).

    metrics = train_run("synth-tiny-dir", ModelConfig(name="afme"), TrainConfig(epochs=5), "runs/x",
                        features="synth-tiny-dir")

The test metrics come from the best-valid checkpoint (never selected on test); with no
validation at all (``eval_every=0`` or ``epochs=0``) from the final model.

``metrics.json`` (and the returned dict) has exactly the keys :data:`METRICS_KEYS`:
``test`` and ``valid`` (each :func:`~afme_lib.evaluate.evaluate`'s result: mrr, mr, hits@1/3/10,
count, by_side, by_category, and ``random``: the same metrics expected of a random ranking of that
split, :func:`~afme_lib.evaluate.random_baseline`), ``epochs_run``, ``best_epoch`` (None without validation),
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
from afme_lib.combinations import check_features, check_run, wants_features
from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.data.features import FeatureStore, has_feature_files, loaded_line
from afme_lib.data.hygiene import warn_split_leakage
from afme_lib.data.registry import graph_counts, load_benchmark, resolve_dataset
from afme_lib.device import resolve_device
from afme_lib.errors import AfmeError, OptionError, did_you_mean, literal
from afme_lib.evaluate import SelfAnswerWarning, evaluate, random_baseline, self_answer_warning
from afme_lib.runs import BEST, RunConfig, RunFolder
from afme_lib.train import Trainer

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
        store = FeatureStore.load(features, data.num_entities, modalities, verbose=False, mmap=placement == "mmap")
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


def _warn_self_answers(result: dict, split: str, self_negatives: float, is_main: bool = True) -> None:
    message = self_answer_warning(result, split, self_negatives)
    if message and is_main:
        warnings.warn(message, SelfAnswerWarning, stacklevel=3)


def _finish(trainer: Trainer, folder: RunFolder) -> dict:
    """Evaluate valid and test with the best-valid checkpoint (the final model when there is
    none: a run without validation); write metrics.json."""
    if (folder.path / BEST).is_file():
        trainer.restore(folder.path / BEST, with_training_state=False)
    start = time.perf_counter()
    cfg = trainer.cfg
    results = {}
    for split in ("valid", "test"):
        results[split] = evaluate(trainer.model, trainer.dataset, split, filter_index=trainer.filter_index,
                                  batch_size=cfg.eval_batch_size, chunk_size=cfg.eval_chunk_size or None,
                                  progress=cfg.progress)
        results[split]["random"] = random_baseline(trainer.dataset, split, trainer.filter_index)
    _warn_self_answers(results["test"], "test", trainer.cfg.self_negatives, trainer.dist.is_main)
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
        folder.write_metrics(metrics)
    return metrics


def train_run(dataset: str, model_cfg: ModelConfig, train_cfg: TrainConfig, out_dir: str | Path,
              features: str | None = None, data_dir: str | None = None, feature_placement: str = "auto") -> dict:
    """Train a fresh run into ``out_dir`` (which must not already hold a run) and return its metrics.

    ``features`` None: a model that reads modalities uses the feature files in the dataset's own
    folder, and is refused (OptionError) when there are none, unless ``model_cfg.modalities`` is
    ``[]`` (structure only, asked for explicitly). One printed line names the files loaded.
    """
    folder = RunFolder(out_dir)
    check_run(model_cfg, train_cfg, needs_features=False)  # options and their combinations, before any data is read
    if feature_placement not in memory.PLACEMENTS:
        raise OptionError("feature_placement", f"must be one of {', '.join(memory.PLACEMENTS)} (got "
                          f"{literal(feature_placement)}){did_you_mean(feature_placement, memory.PLACEMENTS)}")
    note = ""
    if features is None and wants_features(model_cfg):  # the dataset folder's own feature files, if any
        home = resolve_dataset(dataset, data_dir)
        if has_feature_files(home):
            features, note = str(home), "the dataset folder's own, as none were given"
        check_features(model_cfg, features, looked_in=home)
    # Under torchrun: join the group first, and let every process look at the folder before
    # rank 0 writes into it, so that they all take the same branch below.
    distributed.init_from_env(resolve_device(train_cfg.device))
    taken = folder.started
    distributed.barrier()
    if taken:
        raise AfmeError(f"{folder.path} already holds a run: resume it with `afme train --resume {folder.path}` "
                        "or choose another --out")
    # Folders are recorded absolute so that resume and evaluate work from any working directory.
    dataset, features, data_dir = (str(Path(p).resolve()) if p and Path(p).is_dir() else p
                                   for p in (dataset, features, data_dir))
    data, store = _inputs_for_run(dataset, features, data_dir, model_cfg, train_cfg, feature_placement)
    if distributed.is_main():  # valid/test rows that are training triples make the run's numbers mean little
        warn_split_leakage(data)
    # Build everything before writing config.json: a config the trainer rejects (bad loss,
    # sampler, modality ...) must not leave a "run" that only --resume would accept.
    trainer = Trainer(data, model_cfg, train_cfg, folder.path, store)
    if store is not None and wants_features(model_cfg) and trainer.dist.is_main:
        print(loaded_line(store, features, note), flush=True)  # which files, shapes, missing rows
    if trainer.dist.is_main:
        folder.write_config(RunConfig.new(str(dataset), str(features) if features else None, data_dir, model_cfg,
                                          train_cfg, feature_placement=feature_placement,
                                          world_size=trainer.dist.world_size))
    trainer.fit()
    return _finish(trainer, folder)


def _trainer_for(folder: RunFolder, feature_placement: str | None = None, check: bool = False,
                 **train_overrides) -> Trainer:
    """The run's trainer, its TrainConfig updated by ``train_overrides``; ``check``: refuse
    overrides this machine cannot run before any data is loaded (resume with user options)."""
    config = folder.config
    train_cfg = TrainConfig.from_dict({**config.train.to_dict(), **train_overrides})
    if check:
        check_run(config.model, train_cfg, needs_features=False)  # the run keeps the inputs it started with
    placement = feature_placement or config.feature_placement
    data, store = _inputs_for_run(config.dataset, config.features, config.data_dir, config.model, train_cfg, placement)
    return Trainer(data, config.model, train_cfg, folder.path, store)


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
    folder = RunFolder(run_dir)
    trainer = _trainer_for(folder, feature_placement, check=bool(train_overrides), **train_overrides)
    config = folder.config
    if config.world_size != trainer.dist.world_size and trainer.dist.is_main:
        warnings.warn(f"{folder.path} was started with {config.world_size} process(es) and continues with "
                      f"{trainer.dist.world_size}: the continuation draws other shards and negatives than an "
                      "uninterrupted run would", RuntimeWarning, stacklevel=2)
    if train_overrides and trainer.dist.is_main:
        folder.write_config(config.with_train(trainer.cfg))
    trainer.resume()
    trainer.fit()
    return _finish(trainer, folder)


def run_or_resume(dataset: str, model_cfg: ModelConfig, train_cfg: TrainConfig, out_dir: str | Path,
                  features: str | None = None, data_dir: str | None = None, same_config: bool = False) -> dict:
    """Metrics of the run in ``out_dir``: read when finished, resumed when interrupted, else trained.

    What batch jobs (the main job, benchmark grids, the notebooks) call so that a rerun never
    repeats finished work. ``same_config``: a folder already holding a run is used only when that
    run has the same dataset, features and configs (``TrainConfig.progress`` aside); otherwise an
    AfmeError lists the differing fields instead of silently returning another run's metrics.
    """
    folder = RunFolder(out_dir)
    if same_config and folder.started:
        wanted = RunConfig(dataset=dataset, features=features, model=model_cfg, train=train_cfg)
        differ = folder.config.differences(wanted)
        if differ:
            detail = ", ".join(f"{k}: {there!r} there, {asked!r} asked" for k, there, asked in differ[:6])
            raise AfmeError(f"{folder.path} holds a different run ({detail}{', ...' if len(differ) > 6 else ''}); "
                            "pick another run_dir or delete that folder")
    if folder.finished:
        return folder.metrics
    if folder.started:
        return resume_run(folder.path)
    return train_run(dataset, model_cfg, train_cfg, folder.path, features=features, data_dir=data_dir)


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", **train_overrides) -> dict:
    """Evaluate a run's best (or last) checkpoint on a split; ``random`` holds the random-ranking
    baseline of that split."""
    folder = RunFolder(run_dir)
    trainer = _trainer_for(folder, **train_overrides)
    trainer.restore(folder.checkpoint(checkpoint), with_training_state=False)
    cfg = trainer.cfg
    result = evaluate(trainer.model, trainer.dataset, split, filter_index=trainer.filter_index,
                      batch_size=cfg.eval_batch_size, chunk_size=cfg.eval_chunk_size or None, progress=cfg.progress)
    result["random"] = random_baseline(trainer.dataset, split, trainer.filter_index)
    _warn_self_answers(result, split, cfg.self_negatives)
    return result


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> Trainer:
    """A trainer holding a finished run's model (for notebooks: introspection, predictions)."""
    folder = RunFolder(run_dir)
    trainer = _trainer_for(folder, device=device, progress=False)
    trainer.restore(folder.checkpoint(checkpoint), with_training_state=False)
    trainer.model.eval()
    return trainer
