"""What the notebooks share: dataset specs, quick mode, configs from flat parameters, run folders.

Notebooks keep their logic here, in :mod:`afme_lib.studies` (several runs: baselines, ablations,
slices, robustness) and in :mod:`afme_lib.analysis`, so a notebook's code cells stay a call or two
long and everything they do is unit-tested. :func:`notebook_run` is how every notebook gets a
trained run: one cache of runs keyed by their settings, shared by all notebooks and the main job.

Dataset specs (the notebooks' ``dataset`` parameter, see :func:`prepare_dataset`)::

    "synth:tiny"        the synthetic tiny preset, seed 0, generated once under runs/data/
    "synth:default:3"   the default preset with generator seed 3
    "MKG-W"             a registered benchmark (looked up like `afme train --dataset MKG-W`)
    "path/to/folder"    any folder in the OpenKE format

Relative paths given to the helpers here (``data_root``, run folders, figure folders) are taken
relative to the project root (the folder holding ``pyproject.toml`` above the working directory):
nbval starts kernels in ``notebooks/``, papermill wherever it is called from, and both must
reach the same ``runs/`` folder.

Quick mode (``AFME_NB_QUICK=1``, set by CI and ``scripts/test.sh``) makes every notebook pick
parameters small enough to run in seconds on the tiny synthetic preset.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd

import afme_lib
from afme_lib import atomic
from afme_lib.analysis import figures
from afme_lib.analysis.figures import use_notebook_renderer
from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.combinations import check_configs
from afme_lib.data import synthetic
from afme_lib.data.registry import resolve_dataset
from afme_lib.data.summary import has_feature_files
from afme_lib.errors import AfmeError, OptionError, did_you_mean, literal
from afme_lib.grid.execute import usable_cores
from afme_lib.models.registry import model_class
from afme_lib.pipeline import load_inputs, load_run, run_or_resume
from afme_lib.runs import COSMETIC, RunFolder, read_json

QUICK_ENV = "AFME_NB_QUICK"
SYNTH_PREFIX = "synth:"
DEFAULT_DATA_ROOT = "runs/data"
NOTEBOOK_RUNS = "runs/notebooks"
STAMP_FILE = "workbench-stamp.json"  # in a generated synthetic folder: which generator made it
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def quick_mode() -> bool:
    """True when ``$AFME_NB_QUICK`` is set to 1/true/yes/on (case-insensitive); unset means False."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AfmeError(f"{QUICK_ENV}={os.environ[QUICK_ENV]!r} is not a boolean; use 1 or 0")


# --- paths --------------------------------------------------------------------------------------
def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) that holds both
    ``pyproject.toml`` and ``afme_lib/``; the working directory when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "afme_lib").is_dir():
            return folder
    return Path.cwd().resolve()


def resolve_path(path: str | Path) -> Path:
    """An absolute path: ``path`` itself when absolute, else relative to :func:`project_root`."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


# --- datasets -----------------------------------------------------------------------------------
def parse_synth_spec(spec: str) -> tuple[str, int] | None:
    """``"synth:<preset>[:<seed>]"`` -> (preset, seed); None for any other spec."""
    if not spec.startswith(SYNTH_PREFIX):
        return None
    parts = spec[len(SYNTH_PREFIX):].split(":")
    if len(parts) > 2 or not parts[0]:
        raise AfmeError(f"dataset spec {spec!r}: expected synth:<preset> or synth:<preset>:<seed>")
    seed = 0
    if len(parts) == 2:
        try:
            seed = int(parts[1])
        except ValueError:
            raise AfmeError(f"dataset spec {spec!r}: the seed {parts[1]!r} is not an integer") from None
    return parts[0], seed


def _generator_fingerprint() -> str:
    """sha1 of the generator's source: a folder made by another version of it is regenerated."""
    return hashlib.sha1(Path(synthetic.__file__).read_bytes()).hexdigest()


def _synth_stamp(preset: str, seed: int) -> dict:
    return {"preset": preset, "seed": seed, "generator_sha1": _generator_fingerprint()}


def synthetic_folder(preset: str, seed: int = 0, data_root: str | Path = DEFAULT_DATA_ROOT) -> Path:
    """``<data_root>/synth-<preset>-seed<seed>``, generated on first use and reused afterwards.

    The folder is regenerated when it was written by a different version of
    :mod:`afme_lib.data.synthetic` (its source hash is stamped into ``workbench-stamp.json``).
    A new folder is written under a temporary name and renamed into place, so notebooks
    running in parallel (a grid with several workers) never read a half-written folder.
    """
    if preset not in synthetic.PRESETS:
        raise AfmeError(f"unknown synthetic preset {preset!r}{did_you_mean(preset, synthetic.PRESETS)}; expected one of "
                        f"{sorted(synthetic.PRESETS)}")
    folder = resolve_path(data_root) / f"synth-{preset}-seed{seed}"
    stamp = _synth_stamp(preset, seed)

    def write(tmp: Path) -> None:
        synthetic.write_synthetic(tmp, preset, seed=seed)
        atomic.write_json(tmp / STAMP_FILE, stamp)

    def current(path: Path) -> bool:
        return (path / STAMP_FILE).is_file() and read_json(path / STAMP_FILE) == stamp

    return atomic.publish_folder(folder, write, current)


def prepare_dataset(spec: str, features: str | Path | None = None,
                    data_root: str | Path = DEFAULT_DATA_ROOT) -> tuple[str, str | None]:
    """Turn a notebook's ``dataset`` and ``features`` parameters into ``(dataset, features)``
    for the pipeline. ``features`` None means the feature folder found with the dataset:

    - ``synth:<preset>[:<seed>]``: :func:`synthetic_folder` under ``data_root``; the folder is
      both the dataset and its feature folder.
    - an existing folder: itself, and itself as features when it holds feature files.
    - a registered benchmark name: its resolved folder (``afme data download NAME`` first),
      with features only when feature files were put into that folder.
    A given ``features`` folder (relative to the project root) replaces what was found.
    Folders come back as absolute paths.
    """
    data, found = _find_dataset(spec, data_root)
    return data, pick_features(features, found)


def _find_dataset(spec: str, data_root: str | Path) -> tuple[str, str | None]:
    """The dataset folder of ``spec`` and the feature folder that comes with it (or None)."""
    synth = parse_synth_spec(spec)
    if synth is not None:
        folder = synthetic_folder(*synth, data_root=data_root)
        return str(folder), str(folder)
    candidate = resolve_path(spec)
    folder = candidate if candidate.is_dir() else resolve_dataset(spec).resolve()
    return str(folder), str(folder) if has_feature_files(folder) else None


def pick_features(features: str | Path | None, found: str | None) -> str | None:
    """The notebooks' ``features`` parameter as an absolute folder (relative to the project
    root), or, when it is None, the feature folder found with the dataset (``found``)."""
    if features is None:
        return found
    folder = resolve_path(features)
    if not folder.is_dir():
        raise AfmeError(f"features={str(features)!r}: no such folder ({folder})")
    return str(folder)


def read_ground_truth(dataset: str) -> dict | None:
    """The synthetic generator's ``metadata.json`` in the dataset folder, or None (real data)."""
    path = Path(dataset) / "metadata.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# --- configs ------------------------------------------------------------------------------------
def build_configs(model: str = "afme", dim: int | None = None, epochs: int | None = None,
                  batch_size: int | None = None, negatives: int | None = None, lr: float | None = None,
                  seed: int | None = None, device: str | None = None, eval_every: int | None = None,
                  denoising: bool | None = None, dynamic_weights: bool | None = None, gan: bool | None = None,
                  self_attention: bool | None = None, relation_context: bool | None = None,
                  progress: bool | None = None, model_options: dict | None = None,
                  train_options: dict | None = None) -> tuple[ModelConfig, TrainConfig]:
    """ModelConfig and TrainConfig from the training notebook's flat parameters.

    A parameter left at None takes the config's own default (afme_lib/config.py, the one place
    defaults live). ``model_options`` / ``train_options`` hold any other field of the two
    dataclasses and win over the flat values (a grid cell may set ``model_options: {dim: 32}``).
    Every value and the combinations that cannot train are checked here
    (:mod:`afme_lib.combinations`): an :class:`~afme_lib.errors.OptionError` names the parameter
    (``model`` for the model name).
    """
    for name, options in (("model_options", model_options), ("train_options", train_options)):
        if options is not None and not isinstance(options, dict):
            raise OptionError(name, f"must be a mapping of field: value (got {literal(options)})")
    flat_model = {"dim": dim, "denoising": denoising, "dynamic_weights": dynamic_weights, "gan": gan,
                  "self_attention": self_attention, "relation_context": relation_context}
    flat_train = {"epochs": epochs, "batch_size": batch_size, "negatives": negatives, "lr": lr, "seed": seed,
                  "device": device, "eval_every": eval_every, "progress": progress}
    model_fields = {"name": model, **{k: v for k, v in flat_model.items() if v is not None}, **(model_options or {})}
    train_fields = {**{k: v for k, v in flat_train.items() if v is not None}, **(train_options or {})}
    try:
        configs = ModelConfig.from_dict(model_fields), TrainConfig.from_dict(train_fields)
        check_configs(*configs)
    except OptionError as err:
        raise err.respelled(lambda name: "model" if name == "name" else name) from None
    return configs


# --- run folders --------------------------------------------------------------------------------
# Parts of the library that cannot change what a training run computes: editing them must not
# invalidate the notebooks' cached runs (the analysis code, the notebooks' helpers, front ends).
_NOT_TRAINING = ("analysis", "grid", "reports", "workbench.py", "studies.py", "cli.py", "main_job.py", "ablations.py")


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha1 over the library's Python sources that training depends on (all but
    :data:`_NOT_TRAINING`): a notebook's cached run made by other code is not reused."""
    digest = hashlib.sha1()
    package = Path(afme_lib.__file__).parent
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in _NOT_TRAINING:
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _comparable(train_cfg: TrainConfig) -> dict:
    return {k: v for k, v in train_cfg.to_dict().items() if k not in COSMETIC}


def auto_run_dir(dataset: str, features: str | None, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 root: str | Path = NOTEBOOK_RUNS) -> Path:
    """``<root>/<model>-<dataset>-<hash>``: the cache folder of a notebook run, shared by every
    notebook (02 trains AFME, 03, 04 and 05 find the same folder for the same settings).

    The hash covers the dataset, features, both configs and :func:`code_fingerprint`, so the
    same parameters and code reuse a finished run and anything else trains a new one.
    """
    key = json.dumps({"dataset": dataset, "features": features, "model": model_cfg.to_dict(),
                      "train": _comparable(train_cfg), "code": code_fingerprint()}, sort_keys=True, default=str)
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return resolve_path(root) / f"{model_cfg.name}-{Path(dataset).name}-{digest}"


def train_or_reuse(dataset: str, features: str | None, model_cfg: ModelConfig, train_cfg: TrainConfig,
                   run_dir: str | Path) -> dict:
    """:func:`~afme_lib.pipeline.run_or_resume` with ``same_config=True`` on a folder relative to
    the project root: a finished run in ``run_dir`` is reused and an interrupted one resumed only
    when it has the same dataset, features and configs (``progress`` aside)."""
    return run_or_resume(dataset, model_cfg, train_cfg, resolve_path(run_dir), features=features, same_config=True)


@dataclass
class Run:
    """A finished run as the notebooks use it: its folder, inputs, configs and metrics.json;
    the model (``trainer``, on the CPU), the feature store and the ground truth are loaded on
    first use."""

    path: Path
    dataset: str
    features: str | None
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    metrics: dict

    @classmethod
    def open(cls, run_dir: str | Path) -> "Run":
        """The finished run in ``run_dir`` (relative to the project root); an unfinished or
        missing one is an AfmeError saying how to finish it."""
        folder = RunFolder(resolve_path(run_dir))
        config, metrics = folder.config, folder.metrics
        return cls(folder.path, config.dataset, config.features, config.model, config.train, metrics)

    @cached_property
    def trainer(self):
        return load_run(self.path)

    @property
    def model(self):
        return self.trainer.model

    @cached_property
    def store(self):
        """The run's feature store (None for a structure-only run)."""
        return load_inputs(self.dataset, self.features, modalities=self.model_cfg.modalities)[1]

    @cached_property
    def truth(self) -> dict | None:
        return read_ground_truth(self.dataset)


def _planned(dataset: str, features=None, run_dir=None, runs_root=NOTEBOOK_RUNS, **params) -> tuple:
    """(dataset folder, feature folder or None, model config, train config, run folder) of
    :func:`notebook_run` with the same arguments."""
    data, found = prepare_dataset(dataset, features)
    model_cfg, train_cfg = build_configs(**params)
    if not model_class(model_cfg.name).reads_features:
        found = None
    if run_dir is None:
        return data, found, model_cfg, train_cfg, auto_run_dir(data, found, model_cfg, train_cfg, runs_root)
    return data, found, model_cfg, train_cfg, resolve_path(run_dir)


def notebook_run(dataset: str, features: str | Path | None = None, run_dir: str | Path | None = None,
                 runs_root: str | Path = NOTEBOOK_RUNS, **params) -> Run:
    """The finished run of :func:`build_configs` ``(**params)`` on ``dataset``: trained on first
    use, reused after (:func:`train_or_reuse`), resumed when interrupted.

    ``dataset`` / ``features`` as in :func:`prepare_dataset`; a model that reads no features
    (RotatE ...) is given none. ``run_dir`` None: the shared cache folder :func:`auto_run_dir`
    under ``runs_root``; a given ``run_dir`` must hold this very run or nothing yet.
    """
    data, found, model_cfg, train_cfg, folder = _planned(dataset, features, run_dir, runs_root, **params)
    train_or_reuse(data, found, model_cfg, train_cfg, folder)
    return Run.open(folder)


def planned_folder(**job) -> Path:
    """The run folder :func:`notebook_run` ``(**job)`` trains into or reuses."""
    return _planned(**job)[-1]


def run_finished(**job) -> bool:
    """Whether :func:`notebook_run` ``(**job)`` would find its run finished (and train nothing)."""
    return RunFolder(planned_folder(**job)).finished


def _train_in_worker(job: dict, threads: int) -> str:
    """One job of :func:`train_all` in a worker process: its own share of the cores, no bars."""
    import torch  # the worker's own thread budget; torch is imported already (this module needs it)

    torch.set_num_threads(threads)
    return str(notebook_run(**{**job, "progress": False}).path)


def train_all(jobs: dict, workers: int = 1) -> dict:
    """``{key: Run}``: :func:`notebook_run` ``(**job)`` for every ``{key: job}``.

    ``workers`` > 1 trains that many runs at once, each in its own process with
    ``cores // workers`` torch threads: on a CPU, small models use one core each far better
    than two cores together. Finished runs are opened without starting a process; the runs are
    independent folders, so the result is the same whatever ``workers`` is.
    """
    plans = {key: _planned(**job) for key, job in jobs.items()}
    todo = [key for key, plan in plans.items() if not RunFolder(plan[-1]).finished]
    start = time.perf_counter()
    if workers > 1 and len(todo) > 1:
        workers = min(workers, len(todo))
        threads = max(1, usable_cores() // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_train_in_worker, jobs[key], threads): key for key in todo}
            for future in as_completed(futures):
                key = futures[future]
                future.result()  # a worker's error is raised here, with its message
                print(f"trained {key} ({time.perf_counter() - start:.0f} s so far): {plans[key][-1]}", flush=True)
    else:
        for key in todo:
            notebook_run(**jobs[key])
            print(f"trained {key} ({time.perf_counter() - start:.0f} s so far): {plans[key][-1]}", flush=True)
    return {key: notebook_run(**job) for key, job in jobs.items()}


def figures_folder(figures_dir: str | Path | None, notebook: str) -> Path:
    """Where a notebook saves its figures: ``figures_dir``, else ``runs/figures/<notebook>``
    (git-ignored, so executing a notebook never writes into tracked folders)."""
    return resolve_path(figures_dir if figures_dir is not None else Path("runs/figures") / notebook)


def save_figures(figs: dict, figures_dir: str | Path | None, notebook: str) -> list[Path]:
    """A notebook's last call: its ``{name: figure}`` saved as HTML (+ PNG when possible) into
    :func:`figures_folder`; prints and returns the files."""
    written = figures.save_figures(figs, figures_folder(figures_dir, notebook))
    for path in written:
        print(path)
    return written


def setup_notebook() -> None:
    """Notebook defaults: plotly figures as JSON plus offline HTML (see
    :mod:`afme_lib.analysis.figures`) and wide pandas tables."""
    use_notebook_renderer()
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)
