"""The one way to start a run: :func:`run` takes a run spec and returns its finished run folder.

    from afme_lib.experiments.run import run
    from afme_lib.experiments.spec import RunSpec

    folder = run(RunSpec.from_fields({"dataset": "synth:tiny", "model": "afme", "epochs": 5}), "runs/afme")
    folder.metrics["test"]["mrr"]

It trains a new run, resumes an interrupted one, or returns a finished one as it is; a folder
holding another run is refused, naming what differs. Without a folder the run goes to the cache
(``runs/cache/<model>-<dataset>-<hash>``, the hash covering the spec and the library code that
trains it), which is how notebooks, comparisons and the main job share runs. ``afme train``,
grid cells, notebooks, the main job and the benchmark scripts all come here; nothing else
builds a :class:`~afme_lib.engine.training.Trainer` (:func:`build_trainer` times the engine
without a run folder, :func:`open_run` reads a finished one back). The spec is checked once
when built and resolved once here (its folders, this machine's device).

The test metrics come from the best-valid checkpoint (never selected on test); with no
validation at all (``eval_every=0`` or ``epochs=0``) from the final model. ``metrics.json`` has
exactly the keys :data:`METRICS_KEYS`: ``test`` and ``valid`` (each
:func:`~afme_lib.engine.evaluation.evaluate`'s result, with ``random``: the same metrics expected
of a random ranking of that split), ``epochs_run``, ``best_epoch`` (None without validation),
``stopped_early``, ``train_seconds``, ``eval_seconds``, ``device`` and ``world_size``.

Under torchrun every process calls :func:`run` (``afme train`` does); every process trains and
evaluates its share, only rank 0 writes files, and all return the same folder.

Feature placement (``feature_placement``): "device" copies the features to the model's device,
"pinned" / "mmap" keep them in host memory and gather each batch's rows
(afme_lib/data/feature_store.py), "auto" keeps them on the device when the run fits there by the
memory model (afme_lib/engine/memory.py), else pinned.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path

import afme_lib
from afme_lib.core.errors import AfmeError
from afme_lib.core.fingerprint import code_digest
from afme_lib.core.machine import usable_cores
from afme_lib.data.benchmarks import graph_counts, load_benchmark
from afme_lib.data.feature_store import FeatureStore, loaded_line
from afme_lib.data.leakage import warn_split_leakage
from afme_lib.engine import distributed, memory
from afme_lib.engine.checks import wants_features
from afme_lib.engine.device import resolve_device
from afme_lib.engine.evaluation import SelfAnswerWarning, evaluate, random_baseline, self_answer_warning
from afme_lib.engine.run_folder import BEST, RunConfig, RunFolder
from afme_lib.engine.training import Trainer
from afme_lib.experiments.spec import ResolvedSpec, RunSpec, resolve_path

CACHE_ROOT = "runs/cache"
METRICS_KEYS = (
    "valid",
    "test",
    "epochs_run",
    "best_epoch",
    "stopped_early",
    "train_seconds",
    "eval_seconds",
    "device",
    "world_size",
)
# Parts of the library that cannot change what a training run computes: editing them keeps the
# cache's runs (the analysis code, experiments and interfaces).
_NOT_TRAINING = ("analysis", "experiments", "extraction", "interfaces", "core/ablations.py")


# --- the entry point ------------------------------------------------------------------------------
def run(
    spec: RunSpec | ResolvedSpec,
    out: str | Path | None = None,
    *,
    runs_root: str | Path = CACHE_ROOT,
    train_changes: bool = False,
    on_validation=None,
    evaluate_test: bool = True,
) -> RunFolder:
    """The finished run of ``spec`` in ``out`` (None: the cache folder :func:`cache_folder` under
    ``runs_root``): returned as it is when finished, resumed when interrupted, else trained.

    A folder that holds another run (other data, features or settings; ``progress`` aside) is an
    AfmeError naming the differences, unless ``train_changes``: then training fields may differ
    (``afme train --resume DIR --epochs 40``) and are written back to its ``config.json``.
    ``on_validation`` goes to :meth:`~afme_lib.engine.training.Trainer.fit` (a search's pruner).
    ``evaluate_test=False`` leaves the test split unread (``metrics["test"]`` is None): a
    search's trials; a later call that wants test evaluates it on the finished run.
    """
    resolved = spec if isinstance(spec, ResolvedSpec) else spec.resolve()
    folder = RunFolder(Path(out) if out is not None else cache_folder(resolved, runs_root))
    # Under torchrun: join the group first, and let every process look at the folder before rank 0
    # writes into it, so that they all take the same branch below.
    dist, device = distributed.init_from_env(resolve_device(resolved.train.device))
    started, finished = folder.started, folder.finished
    distributed.barrier()
    wanted = _config(resolved, dist.world_size)
    recorded, changed = None, False
    if started:
        recorded = folder.config
        differ = recorded.differences(wanted)  # what changes results: display-only fields aside
        changed = any(key.startswith("train.") for key, _, _ in differ)
        if train_changes:
            differ = [d for d in differ if not d[0].startswith("train.")]
        if differ:
            detail = ", ".join(f"{k}: {there!r} there, {asked!r} asked" for k, there, asked in differ[:6])
            raise AfmeError(
                f"{folder.path} holds another run ({detail}{', ...' if len(differ) > 6 else ''}); pick "
                "another folder, delete that one, or continue it with `afme train --resume "
                f"{folder.path}`"
            )
        if finished and not changed and (not evaluate_test or folder.metrics["test"] is not None):
            return folder
    with training_lock(folder.path, dist.is_main):
        _train(resolved, folder, recorded, changed, dist, device, wanted, on_validation, evaluate_test)
    return folder


def _train(resolved, folder, recorded, changed, dist, device, wanted, on_validation, evaluate_test) -> None:
    """The body of :func:`run` for a folder that is not finished: resume the run ``recorded`` in it
    (its config as every process read it before rank 0 wrote into it; ``changed``: its training
    fields are to be rewritten), else (None) start it."""
    if recorded is not None:
        if recorded.world_size != dist.world_size and dist.is_main:
            warnings.warn(
                f"{folder.path} was started with {recorded.world_size} process(es) and continues with "
                f"{dist.world_size}: the continuation draws other shards and negatives than an "
                "uninterrupted run would",
                RuntimeWarning,
                stacklevel=2,
            )
        trainer = _trainer(resolved, folder.path, device, recorded.feature_placement)
        if changed and dist.is_main:
            folder.write_config(recorded.with_train(resolved.train))
        trainer.resume()
    else:
        # valid/test rows that are training triples make the run's numbers mean little
        trainer = _trainer(resolved, folder.path, device, resolved.spec.feature_placement, announce=True)
        if dist.is_main:
            warn_split_leakage(trainer.dataset)
            folder.write_config(wanted)
    trainer.fit(on_validation)
    _finish(trainer, folder, evaluate_test)


@contextmanager
def training_lock(path: Path, is_main: bool = True):
    """An exclusive lock on a run folder while this process trains it (the main process only,
    under torchrun). A second process that would train the same folder, such as a job started
    again while the workers of a killed one still run, stops with an AfmeError instead of writing
    its checkpoints and log beside the first one's. The lock goes with the process that holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    if not is_main or fcntl is None:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    with open(path / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AfmeError(
                f"{path} is being trained by another process; let it finish or stop it, then run again "
                "(finished work is kept)"
            ) from None
        try:
            yield
        finally:  # the lock file goes before the lock: a finished folder holds only the run's files
            (path / LOCK_FILE).unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def resume(run_dir: str | Path, **train_changes) -> RunFolder:
    """:func:`run` of the run recorded in ``run_dir``, with ``train_changes`` (TrainConfig fields,
    e.g. ``epochs=40`` to extend a finished run, ``lr=1e-4`` after a non-finite loss) written back
    to its ``config.json``; ``feature_placement`` may be given too (where features live changes no
    result)."""
    recorded = RunFolder(run_dir).config
    placement = train_changes.pop("feature_placement", None) or recorded.feature_placement
    spec = RunSpec(
        dataset=recorded.dataset,
        model=recorded.model,
        features=recorded.features,
        data_dir=recorded.data_dir,
        feature_placement=placement,
        train=replace(recorded.train, **train_changes),
    )
    return run(spec, run_dir, train_changes=True)


def run_many(specs: dict, workers: int = 1, runs_root: str | Path = CACHE_ROOT) -> dict:
    """``{key: RunFolder}``: :func:`run` of every ``{key: spec}`` in the cache under ``runs_root``.

    ``workers`` > 1 trains that many runs at once, each in its own process; on a CPU, small models
    use one core each far better than two cores together. Every run trains on ``cores // workers``
    torch threads, in a worker or in this process (when one run is left to train, or ``workers``
    is 1): a CPU's float sums depend on the thread count, so the same spec and ``workers`` give the
    same numbers however many of the runs were already in the cache. Finished runs are opened
    without starting a process.
    """
    resolved = {key: spec.resolve() for key, spec in specs.items()}
    folders = {key: RunFolder(cache_folder(r, runs_root)) for key, r in resolved.items()}
    todo = [key for key, folder in folders.items() if not folder.finished]
    threads = max(1, usable_cores() // max(1, workers))
    start = time.perf_counter()
    if workers > 1 and len(todo) > 1:
        workers = min(workers, len(todo))
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_in_worker, resolved[key], str(folders[key].path), threads): key for key in todo}
            for future in as_completed(futures):
                key = futures[future]
                future.result()  # a worker's error is raised here, with its message
                print(f"trained {key} ({time.perf_counter() - start:.0f} s so far): {folders[key].path}", flush=True)
    else:
        for key in todo:
            with torch_threads(threads):
                run(resolved[key], folders[key].path)
            print(f"trained {key} ({time.perf_counter() - start:.0f} s so far): {folders[key].path}", flush=True)
    return {key: run(resolved[key], folders[key].path) for key in specs}


@contextmanager
def torch_threads(count: int):
    """torch's intra-op thread count set to ``count`` for the block, then put back."""
    import torch  # loaded already: this module's engine imports need it

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_in_worker(resolved: ResolvedSpec, out: str, threads: int) -> str:
    """One run of :func:`run_many` in a worker process: its own share of the cores, no bars."""
    import torch  # the worker's own thread budget (torch is loaded already: this module needs it)

    torch.set_num_threads(threads)
    quiet = replace(resolved, spec=replace(resolved.spec, train=replace(resolved.spec.train, progress=False)))
    return str(run(quiet, out).path)


LOCK_FILE = ".training.lock"


# --- the cache --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha1 over the code of the library's Python sources that training depends on (all but
    :data:`_NOT_TRAINING`; comments and docstrings do not count): a cached run made by other
    training code is not reused."""
    package = Path(afme_lib.__file__).parent

    def trains(path: Path) -> bool:
        relative = path.relative_to(package)
        return relative.parts[0] not in _NOT_TRAINING and relative.as_posix() not in _NOT_TRAINING

    return code_digest([p for p in package.rglob("*.py") if trains(p)], package)


def cache_folder(resolved: ResolvedSpec, runs_root: str | Path = CACHE_ROOT) -> Path:
    """``<runs_root>/<model>-<dataset>-<hash>``: the run's folder in the cache, the hash covering
    its fingerprint and :func:`code_fingerprint`, so the same spec and code reuse a finished run
    and anything else trains a new one."""
    key = json.dumps({"run": resolved.fingerprint(), "code": code_fingerprint()}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return resolve_path(runs_root) / f"{resolved.model.name}-{Path(resolved.dataset).name}-{digest}"


# --- building the engine ------------------------------------------------------------------------
def _config(resolved: ResolvedSpec, world_size: int) -> RunConfig:
    spec = resolved.spec
    return RunConfig.new(
        resolved.dataset,
        resolved.features,
        spec.data_dir,
        spec.model,
        spec.train,
        feature_placement=spec.feature_placement,
        world_size=world_size,
    )


def _inputs(resolved: ResolvedSpec, device, placement: str):
    """The dataset and its feature store (None without features), the store placed as asked;
    "auto" keeps it on a CUDA device when the run fits there by the memory model, else pinned."""
    data = load_benchmark(resolved.dataset, data_dir=resolved.spec.data_dir)
    if resolved.features is None:
        return data, None
    if placement == "auto":
        placement = "device"
        if device.type == "cuda":  # on the CPU features are in host memory whatever the placement
            entities, relations = graph_counts(resolved.dataset, resolved.spec.data_dir)
            dims = memory.feature_dims_in(resolved.features)
            placement = memory.choose_feature_placement(
                "auto", resolved.model, resolved.train, entities, relations, dims, device
            )
    store = FeatureStore.load(
        resolved.features, data.num_entities, resolved.model.modalities, verbose=False, mmap=placement == "mmap"
    )
    return data, store.offload("pinned") if placement == "pinned" else store


def _trainer(resolved: ResolvedSpec, run_dir: Path | None, device, placement: str, announce: bool = False) -> Trainer:
    data, store = _inputs(resolved, device, placement)
    trainer = Trainer(data, resolved.model, resolved.train, run_dir, store, device=device)
    if announce and store is not None and trainer.dist.is_main:
        print(loaded_line(store, resolved.features, resolved.feature_note), flush=True)  # files, shapes, missing rows
    return trainer


def build_trainer(spec: RunSpec | ResolvedSpec, data=None, features: FeatureStore | None = None) -> Trainer:
    """A trainer of ``spec`` that writes nothing (no run folder): what the benchmarks time.
    ``data`` (a KGDataset) and ``features`` replace what the spec's folders hold (a benchmark
    that truncates a split or stands random features in for released ones); a model that reads
    no features is given none."""
    _, device = distributed.init_from_env(resolve_device(spec.train.device))
    if data is None:
        resolved = spec if isinstance(spec, ResolvedSpec) else spec.resolve()
        return _trainer(resolved, None, device, resolved.spec.feature_placement)
    spec = spec.spec if isinstance(spec, ResolvedSpec) else spec
    return Trainer(data, spec.model, spec.train, None, features if wants_features(spec.model) else None, device=device)


def _warn_self_answers(result: dict, split: str, self_negatives: float, is_main: bool = True) -> None:
    message = self_answer_warning(result, split, self_negatives)
    if message and is_main:
        warnings.warn(message, SelfAnswerWarning, stacklevel=3)


def _finish(trainer: Trainer, folder: RunFolder, evaluate_test: bool = True) -> dict:
    """Evaluate valid and test (test None unless ``evaluate_test``) with the best-valid
    checkpoint (the final model when there is none: a run without validation); write metrics.json."""
    if (folder.path / BEST).is_file():
        trainer.restore(folder.path / BEST, with_training_state=False)
    start = time.perf_counter()
    cfg = trainer.cfg
    results = {"test": None}
    for split in ("valid", "test") if evaluate_test else ("valid",):
        results[split] = evaluate(
            trainer.model,
            trainer.dataset,
            split,
            filter_index=trainer.filter_index,
            batch_size=cfg.eval_batch_size,
            chunk_size=cfg.eval_chunk_size or None,
            progress=cfg.progress,
        )
        results[split]["random"] = random_baseline(trainer.dataset, split, trainer.filter_index)
    if evaluate_test:
        _warn_self_answers(results["test"], "test", cfg.self_negatives, trainer.dist.is_main)
    st = trainer.state
    metrics = {
        **results,
        "epochs_run": st.epoch,
        "best_epoch": st.best_epoch or None,
        "stopped_early": st.stopped_early,
        "train_seconds": round(st.train_seconds, 3),
        "eval_seconds": round(time.perf_counter() - start, 3),
        "device": str(trainer.device),
        "world_size": trainer.dist.world_size,
    }
    if trainer.dist.is_main:
        folder.write_metrics(metrics)
    distributed.barrier()  # the others return once metrics.json is there
    return metrics


# --- reading runs back ------------------------------------------------------------------------------
def _folder_trainer(folder: RunFolder, device: str | None = None, **train_changes) -> Trainer:
    config = folder.config
    train = replace(config.train, **train_changes, **({"device": device} if device else {}))
    spec = RunSpec(
        dataset=config.dataset,
        model=config.model,
        train=train,
        features=config.features,
        data_dir=config.data_dir,
        feature_placement=config.feature_placement,
    )
    resolved = ResolvedSpec(spec, config.dataset, config.features)
    return _trainer(resolved, folder.path, resolve_device(spec.train.device), spec.feature_placement)


def evaluate_run(run_dir: str | Path, split: str = "test", checkpoint: str = "best", **train_changes) -> dict:
    """Evaluate a run's best (or last) checkpoint on a split; ``random`` holds the random-ranking
    baseline of that split. ``train_changes``: TrainConfig fields for this evaluation only
    (``eval_batch_size``, ``device``, ``progress`` ...)."""
    folder = RunFolder(run_dir)
    trainer = _folder_trainer(folder, **train_changes)
    trainer.restore(folder.checkpoint(checkpoint), with_training_state=False)
    cfg = trainer.cfg
    result = evaluate(
        trainer.model,
        trainer.dataset,
        split,
        filter_index=trainer.filter_index,
        batch_size=cfg.eval_batch_size,
        chunk_size=cfg.eval_chunk_size or None,
        progress=cfg.progress,
    )
    result["random"] = random_baseline(trainer.dataset, split, trainer.filter_index)
    _warn_self_answers(result, split, cfg.self_negatives)
    return result


def load_trainer(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> Trainer:
    """A trainer holding a finished run's model in eval mode (notebooks: introspection, predictions)."""
    folder = RunFolder(run_dir)
    trainer = _folder_trainer(folder, device=device, progress=False)
    trainer.restore(folder.checkpoint(checkpoint), with_training_state=False)
    trainer.model.eval()
    return trainer


@dataclass
class Run:
    """A finished run as the notebooks and comparisons use it: its folder, inputs, configs and
    metrics.json; the model (``trainer``, on the CPU), the feature store and the ground truth are
    loaded on first use."""

    path: Path
    config: RunConfig
    metrics: dict

    @property
    def dataset(self) -> str:
        return self.config.dataset

    @property
    def features(self) -> str | None:
        return self.config.features

    @property
    def model_cfg(self):
        return self.config.model

    @property
    def train_cfg(self):
        return self.config.train

    @property
    def spec(self) -> RunSpec:
        """The run's spec (its folders as recorded: absolute)."""
        c = self.config
        return RunSpec(
            dataset=c.dataset,
            model=c.model,
            train=c.train,
            features=c.features,
            data_dir=c.data_dir,
            feature_placement=c.feature_placement,
        )

    @cached_property
    def trainer(self) -> Trainer:
        return load_trainer(self.path)

    @property
    def model(self):
        return self.trainer.model

    @cached_property
    def store(self) -> FeatureStore | None:
        """The run's feature store (None for a structure-only run)."""
        if self.features is None:
            return None
        return FeatureStore.load(
            self.features, self.trainer.dataset.num_entities, self.model_cfg.modalities, verbose=False
        )

    @cached_property
    def truth(self) -> dict | None:
        """The synthetic generator's ``metadata.json`` in the dataset folder, or None (real data)."""
        path = Path(self.dataset) / "metadata.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def open_run(run_dir: str | Path | RunFolder) -> Run:
    """The finished run in ``run_dir`` (relative to the project root); an unfinished or missing one
    is an AfmeError saying how to finish it."""
    folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(resolve_path(run_dir))
    return Run(folder.path, folder.config, folder.metrics)
