"""The run spec: one training run's data, features, model and training, in the one spelling every
interface uses: the config dataclasses' field names.

    dataset: synth:tiny      # a registered benchmark, an OpenKE folder, or synth:<preset>[:<seed>]
    features: null           # a feature folder; null: the dataset folder's own feature files
    model: afme              # ModelConfig.name
    dim: 32                  # any other ModelConfig or TrainConfig field, by its name
    epochs: 10
    self_negatives: 1.0

That mapping is a YAML file for ``afme train --config FILE`` (whose flags are the same names,
``--self-negatives``), a grid's ``parameters`` and cells, a notebook's parameters (papermill
``-p NAME VALUE`` or ``-f FILE``) and the keywords of :meth:`RunSpec.from_fields`. The two
dataclasses share no field name, so a flat key says which one it sets. A training field a spec
leaves out takes the model's recipe (``recommended_train_options``: DistMult's logistic loss
with N3, NATIVE's adversarial weights), else the config's default. A spec is checked when it is
built (every value, and the combinations that cannot train on any machine) and resolved once
before a run (:meth:`RunSpec.resolve`: the dataset and feature folders found, what this machine
lacks refused), so a run never checks or looks anything up twice.

Relative folders are taken from the project root (the folder holding ``pyproject.toml`` above
the working directory, else the working directory): a notebook's kernel runs in
``notebooks/``, the command line wherever it is called, and both must find the same ``runs/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from afme_lib.core import atomic
from afme_lib.core.config import MODEL_FIELDS, RUN_FIELDS, RUN_INPUTS, TRAIN_FIELDS, ModelConfig, TrainConfig
from afme_lib.core.errors import AfmeError, DataFormatError, OptionError, did_you_mean, literal
from afme_lib.data import synthetic
from afme_lib.data.benchmarks import load_benchmark, resolve_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.summary import has_feature_files
from afme_lib.engine.checks import check_configs, check_features, check_run, wants_features
from afme_lib.engine.run_folder import read_json, run_fingerprint
from afme_lib.experiments.presets import EVIDENCE_PRESETS, all_presets
from afme_lib.models.registry import model_class, model_names, recommended_train_options

INPUTS, FIELDS = RUN_INPUTS, RUN_FIELDS  # every key a run spec may hold
PLACEMENTS = ("auto", "device", "pinned", "mmap")
SYNTH_PREFIX = "synth:"
DATA_ROOT = "runs/data"  # where synth:<preset> folders are generated
STAMP_FILE = "workbench-stamp.json"  # in a generated synthetic folder: which generator made it


# --- paths ------------------------------------------------------------------------------------
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


def _recipe(model: str) -> dict:
    """The training settings ``model`` takes when a spec leaves them out (none for an unknown name,
    which validation reports)."""
    return recommended_train_options(model) if model in model_names() else {}


# --- synthetic datasets -------------------------------------------------------------------------
def parse_synth(dataset: str) -> tuple[str, int] | None:
    """``"synth:<preset>[:<seed>]"`` -> (preset, seed); None for any other dataset."""
    if not dataset.startswith(SYNTH_PREFIX):
        return None
    parts = dataset[len(SYNTH_PREFIX) :].split(":")
    if len(parts) > 2 or not parts[0]:
        raise AfmeError(f"dataset {dataset!r}: expected synth:<preset> or synth:<preset>:<seed>")
    seed = 0
    if len(parts) == 2:
        try:
            seed = int(parts[1])
        except ValueError:
            raise AfmeError(f"dataset {dataset!r}: the seed {parts[1]!r} is not an integer") from None
    return parts[0], seed


def _generator_fingerprint() -> str:
    """sha1 of the generator's source: a folder made by another version of it is regenerated."""
    return hashlib.sha1(Path(synthetic.__file__).read_bytes()).hexdigest()


def synthetic_folder(preset: str, seed: int = 0, data_root: str | Path = DATA_ROOT) -> Path:
    """``<data_root>/synth-<preset>-seed<seed>``, generated on first use and reused afterwards.

    The folder is regenerated when it was written by a different version of
    :mod:`afme_lib.data.synthetic` (its source hash is stamped into ``workbench-stamp.json``).
    A new folder is written under a temporary name and renamed into place, so runs started in
    parallel (a grid with several workers) never read a half-written folder.
    """
    known = all_presets()
    if preset not in known:
        raise AfmeError(
            f"unknown synthetic preset {preset!r}{did_you_mean(preset, known)}; expected one of {sorted(known)}"
        )
    folder = resolve_path(data_root) / f"synth-{preset}-seed{seed}"
    stamp = {"preset": preset, "seed": seed, "generator_sha1": _generator_fingerprint()}
    config = known[preset]
    if preset in EVIDENCE_PRESETS:  # defined outside the generator: an edit to it regenerates too
        stamp["config_sha1"] = hashlib.sha1(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()

    def write(tmp: Path) -> None:
        synthetic.write_synthetic(tmp, config, seed=seed)
        atomic.write_json(tmp / STAMP_FILE, stamp)

    def current(path: Path) -> bool:
        return (path / STAMP_FILE).is_file() and read_json(path / STAMP_FILE) == stamp

    return atomic.publish_folder(folder, write, current)


def dataset_folder(dataset: str, data_dir: str | None = None, data_root: str | Path = DATA_ROOT) -> Path:
    """The absolute folder of ``dataset``: a generated synthetic one, an existing folder (relative
    to the project root), or a registered benchmark looked up in ``data_dir`` and the usual places."""
    synth = parse_synth(dataset)
    if synth is not None:
        return synthetic_folder(*synth, data_root=data_root)
    candidate = resolve_path(dataset)
    if candidate.is_dir():
        return candidate
    return resolve_dataset(dataset, data_dir).resolve()


def find_inputs(
    dataset: str, features: str | Path | None = None, data_dir: str | None = None, data_root: str | Path = DATA_ROOT
) -> tuple[Path, Path | None]:
    """(dataset folder, feature folder or None), absolute: ``features`` when given (relative to the
    project root), else the dataset folder when it holds feature files."""
    data = dataset_folder(dataset, data_dir, data_root)
    if features is not None:
        folder = resolve_path(features)
        if not folder.is_dir():
            raise OptionError("features", f"is no folder: {folder}")
        return data, folder
    return data, data if has_feature_files(data) else None


def load_inputs(dataset: str, features: str | Path | None = None, data_dir: str | None = None, modalities=None):
    """The dataset and its feature store (None without features), found as :func:`find_inputs`
    finds them: what the data notebooks and analyses read."""
    data_folder, feature_folder = find_inputs(dataset, features, data_dir)
    data = load_benchmark(str(data_folder), data_dir=data_dir)
    store = FeatureStore.load(feature_folder, data.num_entities, modalities, verbose=False) if feature_folder else None
    return data, store


# --- the spec -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """Everything one run is made of (module docstring). Built from flat field names with
    :meth:`from_fields` or :meth:`from_yaml`; checked on construction."""

    dataset: str
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    features: str | None = None
    data_dir: str | None = None
    feature_placement: str = "auto"

    def __post_init__(self):
        if not isinstance(self.dataset, str) or not self.dataset:
            raise OptionError(
                "dataset", f"must name a benchmark, a folder or synth:<preset> (got {literal(self.dataset)})"
            )
        for name in ("features", "data_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, Path)):
                raise OptionError(name, f"must be a folder or None (got {literal(value)})")
        if self.feature_placement not in PLACEMENTS:
            raise OptionError(
                "feature_placement",
                f"must be one of {', '.join(PLACEMENTS)} (got "
                f"{literal(self.feature_placement)}){did_you_mean(self.feature_placement, PLACEMENTS)}",
            )
        try:  # the one check a run's settings get (a config changed after it was built included)
            self.model.validate()
            self.train.validate()
            check_configs(self.model, self.train)
        except OptionError as err:
            raise err.respelled(lambda name: "model" if name == "name" else name) from None

    # --- the flat spelling ---------------------------------------------------------------------
    @classmethod
    def from_fields(cls, values: Mapping) -> RunSpec:
        """A spec from flat field names (module docstring); an unknown name is an OptionError
        naming it, with the closest field."""
        if not isinstance(values, Mapping):
            raise OptionError("spec", f"must be a mapping of field: value (got {literal(values)})")
        inputs, model, train = {}, {}, {}
        for key, value in values.items():
            if key in INPUTS:
                inputs[key] = str(value) if isinstance(value, Path) else value
            elif key == "model":
                model["name"] = value
            elif key in MODEL_FIELDS:
                model[key] = value
            elif key in TRAIN_FIELDS:
                train[key] = value
            else:
                raise OptionError(
                    str(key),
                    f"is not a run-spec field{did_you_mean(str(key), FIELDS)} (dataset, "
                    "features, data_dir, feature_placement, model, or a ModelConfig / TrainConfig field)",
                )
        if "dataset" not in inputs:
            raise OptionError("dataset", "is required (a registered benchmark, a folder or synth:<preset>)")
        try:
            model_cfg = ModelConfig.from_dict(model)
            train_cfg = TrainConfig.from_dict({**_recipe(model_cfg.name), **train})
        except OptionError as err:
            raise err.respelled(lambda name: "model" if name == "name" else name) from None
        return cls(model=model_cfg, train=train_cfg, **inputs)

    @classmethod
    def from_yaml(cls, path: str | Path, **changes) -> RunSpec:
        """The spec written in the YAML file ``path`` (one flat mapping), with ``changes`` (flat
        field names) over it. A file that is not such a mapping is a DataFormatError naming it."""
        return cls.from_fields({**read_spec_file(path), **changes})

    def fields(self) -> dict:
        """The flat spelling of this spec: every input, ``model`` and every other field."""
        model = self.model.to_dict()
        return {
            "dataset": self.dataset,
            "features": self.features,
            "data_dir": self.data_dir,
            "feature_placement": self.feature_placement,
            "model": model.pop("name"),
            **model,
            **self.train.to_dict(),
        }

    def with_fields(self, **changes) -> RunSpec:
        """This spec with ``changes`` (flat field names)."""
        return RunSpec.from_fields({**self.fields(), **changes}) if changes else self

    def for_model(self, name: str, **changes) -> RunSpec:
        """This spec's settings for the model ``name``, with ``changes``: a training setting left
        at what this spec's model takes by default (its recipe, else TrainConfig's default) takes
        ``name``'s instead, so that NATIVE compared beside AFME keeps NATIVE's adversarial weights;
        a setting changed from that default stays changed."""
        fields = self.fields()
        defaults = TrainConfig().to_dict()
        ours = {**defaults, **_recipe(self.model.name)}
        theirs = {**defaults, **_recipe(name)}
        for key in TRAIN_FIELDS:
            if key in ours and fields.get(key) == ours[key]:
                fields[key] = theirs[key]
        return RunSpec.from_fields({**fields, "model": name, **changes})

    def to_yaml(self, path: str | Path) -> Path:
        """Write :meth:`fields` as a YAML file that :meth:`from_yaml` reads back."""
        atomic.write_text(Path(path), yaml.safe_dump(self.fields(), sort_keys=False, default_flow_style=None))
        return Path(path)

    # --- resolution ---------------------------------------------------------------------------
    def resolve(self, data_root: str | Path = DATA_ROOT, machine: bool = True) -> ResolvedSpec:
        """The spec with its folders found (absolute): the dataset (a synthetic one generated on
        first use) and the features (given, else the dataset folder's own when the model reads
        features). ``machine``: also refuse what this machine cannot run (a missing device, a
        multi-modal model with no features)."""
        respell = lambda name: "model" if name == "name" else name  # noqa: E731
        if machine:  # the device and GPU-only options, before any data is looked at
            try:
                check_run(self.model, self.train, needs_features=False)
            except OptionError as err:
                raise err.respelled(respell) from None
        data, found = find_inputs(self.dataset, self.features, self.data_dir, data_root)
        features, note = None, ""
        if wants_features(self.model) and found is not None:
            features = found
            note = "" if self.features is not None else "the dataset folder's own, as none were given"
        if machine:
            try:
                check_features(
                    self.model, str(features) if features else None, looked_in=None if self.features else data
                )
            except OptionError as err:
                raise err.respelled(respell) from None
        return ResolvedSpec(self._canonical(), str(data), str(features) if features else None, note)

    def _canonical(self) -> RunSpec:
        """This spec with a setting the model decides when left unset (None) unset again where it is
        given at the model's own value: one setting, one run folder, however it was spelled (the
        selection grid writes AFME's structure shuffle 0.4, the main job leaves it to AFME)."""
        shuffle = self.model.structure_shuffle
        if shuffle is not None and shuffle == model_class(self.model.name).default_structure_shuffle:
            return replace(self, model=replace(self.model, structure_shuffle=None))
        return self


@dataclass(frozen=True)
class ResolvedSpec:
    """A :class:`RunSpec` whose dataset and feature folders are found (absolute paths);
    ``feature_note`` says where features came from when none were given."""

    spec: RunSpec
    dataset: str
    features: str | None
    feature_note: str = ""

    @property
    def model(self) -> ModelConfig:
        return self.spec.model

    @property
    def train(self) -> TrainConfig:
        return self.spec.train

    def fingerprint(self) -> str:
        """What the run computes, hashed (:func:`~afme_lib.engine.run_folder.run_fingerprint`):
        the same for the same data, features and settings, whichever interface started it."""
        return run_fingerprint(self.dataset, self.features, self.spec.model, self.spec.train)


def read_spec_file(path: str | Path) -> dict:
    """The flat mapping of a run-spec YAML file; a DataFormatError names the file otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise AfmeError(f"{path}: cannot read the run spec ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "the file"
        raise DataFormatError(str(path), f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(data, dict):
        raise DataFormatError(str(path), "a run spec is one mapping of field: value (dataset, model, epochs, ...)")
    return data
