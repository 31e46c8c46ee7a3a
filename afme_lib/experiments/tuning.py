"""Hyper-parameter search on the validation split: ``afme tune SPEC.yaml --trials N --out DIR``.

A tune spec is a run spec (:mod:`afme_lib.experiments.spec`) with a ``search:`` block::

    dataset: synth:tiny
    model: afme
    epochs: 6
    eval_every: 2
    search:
      space:
        lr: {log: [1.0e-4, 1.0e-1]}        # a float, log-uniform between the bounds
        dropout: {uniform: [0.0, 0.5]}     # a float, uniform
        dim: {int: [32, 128], step: 32}    # an integer (step optional, default 1)
        negatives: {choices: [8, 16, 32]}  # one of the values
      objective: mrr          # a validation metric, or a slice: by_group/cold/mrr, by_side/tail/hits@10
      direction: maximize     # default: minimize for mr, else maximize
      trials: 12              # the budget; --trials wins
      epochs: 6               # epochs per trial (default: the spec's epochs)
      pruner: median          # median | halving | none
      seed: 0                 # the sampler's seed

Optuna does the search: a TPE sampler seeded by ``search.seed``, and a pruner fed by each trial's
periodic validation (the trainer's ``eval_every``), which stops a trial whose validation trails
the others at the same epoch. Every trial is one :func:`~afme_lib.experiments.run.run` of the
spec with the trial's values, in ``DIR/trials/trial-NNNN`` (``--runs`` moves them); its objective
is read from the run's ``metrics.json`` (validation at its best-valid checkpoint). The objective
is always on ``valid``: a test objective is refused, since keeping test out of every choice is
what this tool is for.

The study lives in an Optuna storage, ``DIR/study.db`` (SQLite) unless ``storage`` names another
(any database URL Optuna takes, e.g. ``postgresql://user@host/db``): rerunning the same command
continues it (finished trials are kept; a trial whose process died is tried again from its run
folder's last checkpoint), ``workers`` runs that many trials at once on this machine (worker i
samples with seed ``search.seed + i``, so that workers started together do not propose the same
point), and several machines given one database URL share one study. The study records its tune spec, and
a different spec in the same storage is refused.

Outputs, rewritten after every trial: ``DIR/trials.csv`` (one row per trial, the objective in
``value`` as Optuna's trial table names it), ``DIR/best.yaml`` (the best trial's complete run
spec, the command on its first line: ``afme train --config DIR/best.yaml`` reproduces it), and at
the end (``afme tune``) ``DIR/README.md`` with Optuna's figures (:mod:`afme_lib.experiments.pages.tuning`).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import warnings
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from afme_lib.core import atomic
from afme_lib.core.config import RUN_FIELDS
from afme_lib.core.console import display_path
from afme_lib.core.errors import AfmeError, DataFormatError, did_you_mean
from afme_lib.core.machine import usable_cores
from afme_lib.core.metric_names import RANK_METRICS
from afme_lib.data.benchmarks import load_benchmark
from afme_lib.engine.evaluation import recorded_slices
from afme_lib.engine.training import NonFiniteLossError
from afme_lib.experiments.run import run
from afme_lib.experiments.spec import RunSpec, read_spec_file, resolve_path

KINDS = ("log", "uniform", "int", "choices")
PRUNERS = ("median", "halving", "none")
OBJECTIVE_METRICS = (*RANK_METRICS, "self_answer")
STUDY_DB = "study.db"
TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
SPEC_COPY = "tune.yaml"
# A trial's worker proves it is alive this often; one silent for GRACE seconds is failed and
# tried again (Optuna's heartbeat: how a study shared by machines recovers a dead worker).
HEARTBEAT, GRACE = 30, 120


class SearchError(AfmeError):
    """A tune spec that cannot be searched: names the file and the field."""

    def __init__(self, source: str, where: str, problem: str):
        super().__init__(f"{source}: {where} {problem}")


# --- the search space ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One searched field: ``kind`` is log / uniform (floats), int, or choices."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int = 1
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "choices":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.kind == "log")

    def corners(self) -> list:
        """The values whose run specs are checked before any trial: the bounds, or every choice."""
        return list(self.choices) if self.kind == "choices" else [self.low, self.high]

    def describe(self) -> str:
        if self.kind == "choices":
            return f"one of {', '.join(map(str, self.choices))}"
        if self.kind == "int":
            return f"integer {self.low} to {self.high}" + (f" by {self.step}" if self.step != 1 else "")
        return f"{'log-uniform' if self.kind == 'log' else 'uniform'} {self.low:g} to {self.high:g}"


def parse_dimension(name: str, value, source: str) -> Dimension:
    where = f"search.space.{name}"
    if name not in RUN_FIELDS:
        raise SearchError(source, where, f"is not a run-spec field{did_you_mean(name, RUN_FIELDS)}")
    if name in ("dataset", "model"):
        raise SearchError(source, where, "cannot be searched: a study compares settings of one model on one dataset")
    if not isinstance(value, Mapping):
        raise SearchError(source, where, f"must be a mapping such as {{log: [1.0e-4, 1.0e-1]}} (got {value!r})")
    kinds = [k for k in KINDS if k in value]
    extra = sorted(set(value) - {*KINDS, "step"})
    if len(kinds) != 1 or extra:
        raise SearchError(source, where, f"must name one of {', '.join(KINDS)} (got {', '.join(map(str, value))})")
    kind = kinds[0]
    if kind == "choices":
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            raise SearchError(source, where, f"has no choices: give a non-empty list (got {choices!r})")
        return Dimension(name, kind, choices=tuple(choices))
    bounds = value[kind]
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    ):
        raise SearchError(source, where, f"{kind} needs [low, high] numbers (got {bounds!r})")
    low, high = bounds
    if not low < high:
        raise SearchError(source, where, f"is an empty or inverted range: {kind} [{low}, {high}] needs low < high")
    if kind == "log" and low <= 0:
        raise SearchError(source, where, f"log needs a positive low bound (got {low})")
    step = value.get("step", 1)
    if kind == "int":
        if not all(float(b).is_integer() for b in bounds) or not isinstance(step, int) or step < 1:
            raise SearchError(source, where, f"int needs integer bounds and step >= 1 (got {bounds}, step {step})")
        return Dimension(name, kind, int(low), int(high), step)
    if "step" in value:
        raise SearchError(source, where, "step applies to int only")
    return Dimension(name, kind, float(low), float(high))


# --- the objective ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """A number a run records on the validation split: ``metric`` overall, or in one slice
    (``part``/``key`` of :func:`~afme_lib.engine.evaluation.evaluate`'s breakdowns)."""

    metric: str
    part: str | None = None
    key: str | None = None

    @property
    def name(self) -> str:
        return self.metric if self.part is None else f"{self.part}/{self.key}/{self.metric}"

    def read(self, result: dict) -> float:
        """The objective in an evaluation result (``metrics.json["valid"]`` or a trainer's validation)."""
        values = result if self.part is None else result.get(self.part, {}).get(self.key)
        if values is None or self.metric not in values:
            raise AfmeError(f"objective {self.name}: the run recorded no such value")
        return float(values[self.metric])


def parse_objective(text, source: str) -> Objective:
    where = "search.objective"
    if not isinstance(text, str) or not text:
        raise SearchError(source, where, f"must be a metric such as mrr or by_group/cold/mrr (got {text!r})")
    parts = text.split("/")
    if parts[0] in ("test", "train"):
        raise SearchError(
            source,
            where,
            f"{text!r} reads the {parts[0]} split: a search reads validation only (test is read once, for "
            "the report; tuning on it is what this tool exists to prevent)",
        )
    if parts[0] == "valid":
        parts = parts[1:]
    if len(parts) == 1:
        objective = Objective(parts[0])
    elif len(parts) == 3:
        objective = Objective(parts[2], parts[0], parts[1])
    else:
        raise SearchError(source, where, f"{text!r} must be <metric> or <breakdown>/<slice>/<metric>")
    if objective.metric not in OBJECTIVE_METRICS or (objective.part is not None and objective.metric == "self_answer"):
        raise SearchError(
            source,
            where,
            f"{text!r}: no run records {objective.metric!r}{did_you_mean(objective.metric, OBJECTIVE_METRICS)} "
            f"(metrics: {', '.join(OBJECTIVE_METRICS)}; self_answer overall only)",
        )
    return objective


# --- the tune spec ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuneSpec:
    """A run spec's fields (``base``) and what to search over them (module docstring)."""

    base: dict
    space: tuple[Dimension, ...]
    objective: Objective
    direction: str
    trials: int
    pruner: str = "median"
    seed: int = 0
    epochs: int | None = None
    source: str = "<tune spec>"
    search: dict = field(default_factory=dict)  # the search block as written

    @classmethod
    def from_yaml(cls, path: str | Path) -> TuneSpec:
        return cls.from_fields(read_spec_file(path), str(path))

    @classmethod
    def from_fields(cls, values: Mapping, source: str = "<tune spec>") -> TuneSpec:
        values = dict(values)
        search = values.pop("search", None)
        if not isinstance(search, Mapping):
            raise SearchError(source, "search", "is missing: a tune spec is a run spec with a search: block")
        known = ("space", "objective", "direction", "trials", "epochs", "pruner", "seed")
        for key in search:
            if key not in known:
                raise SearchError(source, f"search.{key}", f"is not a search setting{did_you_mean(str(key), known)}")
        space = search.get("space")
        if not isinstance(space, Mapping) or not space:
            raise SearchError(source, "search.space", "must map at least one run-spec field to its range")
        dims = tuple(parse_dimension(str(name), value, source) for name, value in space.items())
        objective = parse_objective(search.get("objective", "mrr"), source)
        direction = search.get("direction", "minimize" if objective.metric in ("mr", "self_answer") else "maximize")
        if direction not in ("maximize", "minimize"):
            raise SearchError(source, "search.direction", f"must be maximize or minimize (got {direction!r})")
        pruner = search.get("pruner", "median")
        if pruner not in PRUNERS:
            raise SearchError(source, "search.pruner", f"must be one of {', '.join(PRUNERS)} (got {pruner!r})")
        for key, default in (("trials", 20), ("seed", 0)):
            value = search.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "trials" else 0):
                raise SearchError(source, f"search.{key}", f"must be an integer >= {1 if key == 'trials' else 0}")
        epochs = search.get("epochs")
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
            raise SearchError(source, "search.epochs", f"must be an integer >= 1 (got {epochs!r})")
        tune = cls(
            values,
            dims,
            objective,
            direction,
            search.get("trials", 20),
            pruner,
            search.get("seed", 0),
            epochs,
            source,
            dict(search),
        )
        tune.check()
        return tune

    def trial_spec(self, params: Mapping) -> RunSpec:
        """The run spec of one trial: the base with ``params``, the search's epochs, no bars."""
        budget = {"epochs": self.epochs} if self.epochs is not None else {}
        return RunSpec.from_fields({**self.base, **budget, "progress": False, **params})

    def best_spec(self, params: Mapping) -> RunSpec:
        """The best trial's spec as a user runs it: the trial's, with the base's progress bars."""
        return self.trial_spec(params).with_fields(progress=self.base.get("progress", True))

    def check(self) -> None:
        """Refuse, before any trial, what no trial could run: every searched bound and choice is
        built into a run spec (so a value its field refuses is named now), and the objective must be
        a slice this dataset's validation split has."""
        try:
            spec = self.trial_spec({})
            for dim in self.space:
                for value in dim.corners():
                    self.trial_spec({dim.name: value})
        except AfmeError as err:
            raise SearchError(self.source, "", str(err).strip()) from None
        if spec.train.eval_every <= 0 and self.pruner != "none":
            raise SearchError(self.source, "eval_every", "must be > 0 for a pruner to see the trials' validation")
        if self.objective.part is not None:
            resolved = spec.resolve(machine=False)
            slices = recorded_slices(load_benchmark(resolved.dataset, data_dir=spec.data_dir), "valid")
            keys = slices.get(self.objective.part)
            if keys is None:
                raise SearchError(
                    self.source,
                    "search.objective",
                    f"{self.objective.name!r}: no run records the breakdown {self.objective.part!r} on this "
                    f"dataset (it records {', '.join(slices)})",
                )
            if self.objective.key not in keys:
                raise SearchError(
                    self.source,
                    "search.objective",
                    f"{self.objective.name!r}: the validation split has no slice {self.objective.key!r} in "
                    f"{self.objective.part}{did_you_mean(self.objective.key, keys)} (it has {', '.join(keys[:12])}"
                    f"{', ...' if len(keys) > 12 else ''})",
                )

    def to_yaml_text(self) -> str:
        """The tune spec as one YAML file (what :meth:`from_yaml` reads back)."""
        return yaml.safe_dump({**self.base, "search": self.search}, sort_keys=False, default_flow_style=None)

    def identity(self) -> dict:
        """What makes a study this study (the budget aside): stored in it, compared on reopening."""
        search = {k: v for k, v in self.search.items() if k != "trials"}
        return {"base": self.base, "search": search}


# --- the study ----------------------------------------------------------------------------------------
def _optuna():
    try:
        import optuna
    except ImportError:
        raise AfmeError(
            "afme tune needs optuna: pip install -e '.[tune]' (bash scripts/setup.sh installs it)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    # The heartbeat that recovers dead workers is marked experimental; that is known, not news.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out / STUDY_DB).resolve()}"


def _storage(url: str):
    optuna = _optuna()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=kwargs,
        heartbeat_interval=HEARTBEAT,
        grace_period=GRACE,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
    )


def _sampler_and_pruner(tune: TuneSpec, worker: int = 0):
    optuna = _optuna()
    # Each worker draws from its own stream: workers seeded alike would propose the same random
    # start-up points at once and train one setting twice. Worker 0 keeps the spec's seed.
    sampler = optuna.samplers.TPESampler(seed=tune.seed + worker, n_startup_trials=min(10, max(2, tune.trials // 3)))
    if tune.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2)
    elif tune.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner()
    else:
        pruner = optuna.pruners.NopPruner()
    return sampler, pruner


STUDY_NAME = "afme-tune"


def open_study(tune: TuneSpec, url: str, worker: int = 0):
    """The study in ``url``, created on first use; one that records another tune spec is refused.
    ``worker``: this process's index among those sharing the study (it offsets the sampler's seed)."""
    optuna = _optuna()
    sampler, pruner = _sampler_and_pruner(tune, worker)
    study = optuna.create_study(
        storage=_storage(url),
        study_name=STUDY_NAME,
        sampler=sampler,
        pruner=pruner,
        direction=tune.direction,
        load_if_exists=True,
    )
    identity = yaml.safe_dump(tune.identity(), sort_keys=True)
    recorded = study.user_attrs.get("tune_spec")
    if recorded is None:
        study.set_user_attr("tune_spec", identity)
        study.set_user_attr("objective", tune.objective.name)
    elif recorded != identity:
        raise AfmeError(
            f"{url} holds a study of another tune spec (its spec differs from {tune.source} other than in "
            "trials); give another --out (or --storage), or delete that study"
        )
    return study


def finished_count(study) -> int:
    """Trials that count towards the budget: complete, pruned, or failed by the run itself (a
    non-finite loss); a trial failed because its worker died is tried again instead."""
    from optuna.trial import TrialState

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )


def _this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dead_trials(study) -> list[int]:
    """Trials left running by a process of this machine that is gone (a kill, a crash): failed
    and queued again with their values and run folder, so the retry resumes from the folder's
    last checkpoint. Other machines' trials are left to the heartbeat. Returns their numbers."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if where != host or not pid.isdigit() or _alive(int(pid)):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        attrs = {k: v for k, v in trial.user_attrs.items() if k in ("run_dir",)}
        study.enqueue_trial(trial.params, user_attrs={**attrs, "retry_of": trial.number})
        recovered.append(trial.number)
    return recovered


def _objective(tune: TuneSpec, runs: Path):
    optuna = _optuna()

    def objective(trial) -> float:
        params = {dim.name: dim.suggest(trial) for dim in tune.space}
        run_dir = trial.user_attrs.get("run_dir") or str(runs / f"trial-{trial.number:04d}")
        trial.set_user_attr("run_dir", run_dir)
        trial.set_user_attr("worker", _this_worker())
        pruned = []

        def on_validation(epoch: int, result: dict) -> bool:
            trial.report(tune.objective.read(result), epoch)
            if trial.should_prune():
                pruned.append(epoch)
                return True
            return False

        try:
            folder = run(tune.trial_spec(params), run_dir, on_validation=on_validation, evaluate_test=False)
        except NonFiniteLossError as err:
            trial.set_user_attr("error", str(err).splitlines()[0][:300])
            raise
        metrics = folder.metrics
        trial.set_user_attr("epochs_run", metrics["epochs_run"])
        trial.set_user_attr("best_epoch", metrics["best_epoch"])
        trial.set_user_attr("train_seconds", metrics["train_seconds"])
        value = tune.objective.read(metrics["valid"])
        if pruned or (metrics.get("stopped_early") and _log_says_pruned(Path(run_dir))):
            raise optuna.TrialPruned(f"pruned at epoch {pruned[0] if pruned else metrics['epochs_run']}")
        return value

    return objective


def _log_says_pruned(run_dir: Path) -> bool:
    """Whether a finished run folder was stopped by a pruner (a retried trial finds it so)."""
    log = run_dir / "log.jsonl"
    return log.is_file() and '"pruned": true' in log.read_text(encoding="utf-8")


def _trial_line(study, trial, tune: TuneSpec) -> str:
    values = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    state = trial.state.name.lower()
    value = "" if trial.value is None else f" {tune.objective.name} {trial.value:.4f}"
    try:
        best = f"; best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = ""
    return f"trial {trial.number} {state}: {values} ->{value or ' (no value)'}{best}"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def work(
    tune: TuneSpec, url: str, out: Path, runs: Path, target: int, threads: int | None = None, worker: int = 0
) -> int:
    """Run trials of the study in ``url`` until ``target`` count (:func:`finished_count`),
    rewriting the outputs after each; several of these (processes, machines) share one study.
    Returns the trials this worker ran; ``worker`` is its index among the processes sharing the study."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    study = open_study(tune, url, worker)
    objective = _objective(tune, runs)
    ran = 0

    def after_trial(study, trial) -> None:
        print(_trial_line(study, trial, tune), flush=True)
        write_outputs(study, tune, out)

    while finished_count(study) + _running_elsewhere(study) < target:
        study.optimize(objective, n_trials=1, catch=(NonFiniteLossError,), callbacks=[after_trial])
        ran += 1
    return ran


def _running_elsewhere(study) -> int:
    """Trials other workers are running now: counted so that workers stop at the budget together."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _work_in_process(tune: TuneSpec, url: str, out: str, runs: str, target: int, threads: int, worker: int) -> int:
    return work(tune, url, Path(out), Path(runs), target, threads, worker)


@dataclass
class TuneResult:
    """A finished search: its folder, spec, Optuna study and the tables written (the page,
    :func:`afme_lib.experiments.pages.tuning.study_page`, is written by its caller)."""

    out: Path
    spec: TuneSpec
    study: object
    best_yaml: Path | None
    trials_csv: Path


def tune(
    spec: TuneSpec | str | Path,
    out: str | Path,
    *,
    trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    runs: str | Path | None = None,
    command: str | None = None,
) -> TuneResult:
    """Search ``spec`` until its study has ``trials`` finished trials (the spec's budget by
    default), in ``workers`` processes; write ``out``'s trials.csv and best.yaml."""
    if not isinstance(spec, TuneSpec):  # a path: from the working directory, else the checkout's
        spec = TuneSpec.from_yaml(spec if Path(spec).exists() else resolve_path(spec))
    tune_spec = spec
    if workers < 1:
        raise AfmeError(f"--workers must be >= 1 (got {workers})")
    target = trials if trials is not None else tune_spec.trials
    if target < 1:
        raise AfmeError(f"--trials must be >= 1 (got {target})")
    out = resolve_path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = resolve_path(runs) if runs is not None else out / "trials"
    url = storage_url(out, storage)
    study = open_study(tune_spec, url)  # refuses another spec before anything is written
    study.set_user_attr(
        "command", command or f"afme tune {display_path(tune_spec.source)} --trials {target} --out {display_path(out)}"
    )
    atomic.write_text(out / SPEC_COPY, tune_spec.to_yaml_text())
    recovered = recover_dead_trials(study)
    if recovered:
        print(f"trials {', '.join(map(str, recovered))} were left by a process that is gone: queued again", flush=True)
    done = finished_count(study)
    print(f"study {url}: {done} of {target} trials finished; objective valid {tune_spec.objective.name}", flush=True)
    if workers == 1:
        work(tune_spec, url, out, runs, target)
    else:
        threads = max(1, usable_cores() // workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(_work_in_process, tune_spec, url, str(out), str(runs), target, threads, worker)
                for worker in range(workers)
            ]
            for future in futures:
                future.result()
    study = open_study(tune_spec, url)
    best, csv = write_outputs(study, tune_spec, out)
    return TuneResult(out, tune_spec, study, best, csv)


def open_or_tune(
    out: str | Path, spec: TuneSpec | str | Path | None = None, trials: int | None = None, workers: int = 1
) -> TuneResult:
    """The study folder ``out``: continued until ``trials`` finished trials (with ``spec``, or the
    spec recorded in ``out`` when None), or with ``trials`` None opened as it is, running nothing
    (how a notebook looks at a finished study)."""
    out = resolve_path(out)
    if spec is None:
        if not (out / SPEC_COPY).is_file():
            raise AfmeError(f"{out}: no {SPEC_COPY} here (not a study folder); give the tune spec to start one")
        spec = study_spec(out)
    if trials is not None:
        return tune(spec, out, trials=trials, workers=workers)
    study = load_study(out)
    best = out / BEST_YAML
    tune_spec = spec if isinstance(spec, TuneSpec) else TuneSpec.from_yaml(spec)
    return TuneResult(out, tune_spec, study, best if best.is_file() else None, out / TRIALS_CSV)


# --- outputs ------------------------------------------------------------------------------------------
def trials_table(study):
    """Optuna's trial table (``value`` the objective, ``params_<field>`` the values), durations in
    seconds, with each trial's run folder, epochs run and best epoch."""
    frame = study.trials_dataframe(
        attrs=("number", "value", "state", "params", "user_attrs", "duration", "datetime_start")
    )
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds().round(1)
    frame = frame.drop(columns=[c for c in frame if c in ("user_attrs_worker",)])
    return frame


def best_trial(study):
    """The best complete trial, or None before any."""
    try:
        return study.best_trial
    except ValueError:
        return None


def write_outputs(study, tune: TuneSpec, out: Path) -> tuple[Path | None, Path]:
    """``out/trials.csv`` and ``out/best.yaml`` (when a trial is complete), written atomically."""
    csv = out / TRIALS_CSV
    atomic.write_text(csv, trials_table(study).to_csv(index=False))
    best = best_trial(study)
    if best is None:
        return None, csv
    command = study.user_attrs.get("command", "afme tune")
    finished = finished_count(study)
    header = (
        f"# {command}\n"
        f"# best of {finished} finished trials: trial {best.number}, valid {tune.objective.name} "
        f"{best.value:.6f} (best epoch {best.user_attrs.get('best_epoch')}); run it with "
        f"afme train --config {display_path(out / BEST_YAML)}\n"
    )
    fields = tune.best_spec(best.params).fields()
    body = yaml.safe_dump(fields, sort_keys=False, default_flow_style=False)
    path = out / BEST_YAML
    atomic.write_text(path, header + body)
    return path, csv


def read_best(out: str | Path) -> dict:
    """The run-spec fields of a study folder's best.yaml."""
    path = Path(out) / BEST_YAML
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataFormatError(str(path), f"cannot read it ({err.strerror or err}); has a trial finished?") from None


def load_study(out: str | Path, storage: str | None = None):
    """The study of a folder written by :func:`tune` (read-only use: tables and figures)."""
    optuna = _optuna()
    out = resolve_path(out)
    url = storage_url(out, storage)
    if storage is None and not (out / STUDY_DB).is_file():
        raise AfmeError(f"{out}: no {STUDY_DB} here; run `afme tune SPEC.yaml --out {out}` first")
    return optuna.load_study(study_name=STUDY_NAME, storage=url)


def study_spec(out: str | Path) -> TuneSpec:
    """The tune spec a study folder was made from (its copy, ``tune.yaml``)."""
    return TuneSpec.from_yaml(Path(out) / SPEC_COPY)


__all__ = [
    "Dimension",
    "Objective",
    "SearchError",
    "TuneSpec",
    "best_trial",
    "load_study",
    "open_or_tune",
    "read_best",
    "recover_dead_trials",
    "study_spec",
    "trials_table",
    "tune",
    "work",
    "write_outputs",
]
