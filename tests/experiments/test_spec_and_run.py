"""The run spec (one spelling, resolved once) and the one run entry point: reuse, resume, refusal,
the run cache, several runs at once; and the notebooks' helpers around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.errors import AfmeError, DataFormatError, OptionError
from afme_lib.data.benchmarks import DatasetNotFoundError, UnknownDatasetError
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.run_folder import RunConfig, RunFolder
from afme_lib.experiments import run as run_mod
from afme_lib.experiments.run import cache_folder, code_fingerprint, open_run, run, run_many
from afme_lib.experiments.spec import (
    STAMP_FILE,
    RunSpec,
    find_inputs,
    parse_synth,
    project_root,
    resolve_path,
    synthetic_folder,
)
from afme_lib.interfaces import notebook


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A throw-away project root (pyproject.toml + afme_lib/) as the working directory's parent."""
    root = tmp_path / "proj"
    (root / "afme_lib").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "notebooks").mkdir()
    monkeypatch.chdir(root / "notebooks")  # where nbval starts kernels
    return root


# --- the flat spelling --------------------------------------------------------------------------------
def test_from_fields_splits_flat_names_into_the_configs_and_round_trips():
    spec = RunSpec.from_fields(
        {
            "dataset": "synth:tiny",
            "model": "afme",
            "dim": 24,
            "gan": False,
            "epochs": 7,
            "loss": "margin",
            "features": "f",
            "feature_placement": "pinned",
        }
    )
    assert spec.model == ModelConfig(name="afme", dim=24, gan=False)
    assert spec.train == TrainConfig(epochs=7, loss="margin")
    assert (spec.dataset, spec.features, spec.feature_placement) == ("synth:tiny", "f", "pinned")
    assert RunSpec.from_fields(spec.fields()) == spec
    assert spec.with_fields(dim=48).model.dim == 48 and spec.with_fields() is spec


def test_a_field_left_out_takes_the_models_recipe_else_the_default():
    native = RunSpec.from_fields({"dataset": "d", "model": "native"})
    assert (native.train.lambda_adv, native.train.lambda_gp) == (1e-4, 0.1)  # NATIVE's recipe
    assert RunSpec.from_fields({"dataset": "d", "model": "native", "lambda_adv": 0.5}).train.lambda_adv == 0.5
    assert RunSpec.from_fields({"dataset": "d", "model": "rotate"}).train == TrainConfig()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"model": "afme"}, r"^dataset is required"),
        ({"dataset": "d", "dimension": 3}, r"^dimension is not a run-spec field \(did you mean 'dim'"),
        ({"dataset": "d", "epoch": 3}, r"^epoch is not a run-spec field \(did you mean 'epochs'"),
        ({"dataset": "d", "epochs": -1}, r"^epochs must be >= 0 \(got -1\)$"),
        ({"dataset": "d", "model": "afm"}, r"^model must be a registered model: .*\(did you mean 'afme'\?\)"),
        ({"dataset": "d", "model": "mmkrl", "loss": "1vsall"}, r"^loss 1vsall cannot train model 'mmkrl'"),
        (
            {"dataset": "d", "feature_placement": "disk"},
            r"^feature_placement must be one of auto, device, pinned, mmap",
        ),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(fields, message):
    with pytest.raises(OptionError, match=message):
        RunSpec.from_fields(fields)


def test_yaml_spec_files_round_trip_and_bad_files_name_themselves(tmp_path):
    spec = RunSpec.from_fields({"dataset": "synth:tiny", "model": "afme", "dim": 16, "self_negatives": 0.5})
    path = spec.to_yaml(tmp_path / "spec.yaml")
    assert RunSpec.from_yaml(path) == spec
    assert RunSpec.from_yaml(path, epochs=3).train.epochs == 3
    (tmp_path / "list.yaml").write_text("- dataset\n")
    with pytest.raises(DataFormatError, match=r"list.yaml: a run spec is one mapping"):
        RunSpec.from_yaml(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("dataset: [x\n")
    with pytest.raises(DataFormatError, match=r"broken.yaml: line \d+: not valid YAML"):
        RunSpec.from_yaml(tmp_path / "broken.yaml")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"dataset": "d", "epcohs": 2}))
    with pytest.raises(OptionError, match=r"^epcohs is not a run-spec field \(did you mean 'epochs'"):
        RunSpec.from_yaml(tmp_path / "typo.yaml")


# --- resolution -------------------------------------------------------------------------------------------
def test_relative_paths_resolve_against_the_project_root_not_the_working_directory(project):
    assert project_root() == project.resolve()
    assert resolve_path("runs/data") == project.resolve() / "runs" / "data"
    assert resolve_path("/abs/x") == Path("/abs/x")


def test_project_root_falls_back_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_root() == tmp_path.resolve()


@pytest.mark.parametrize(
    "dataset, expected",
    [("synth:tiny", ("tiny", 0)), ("synth:default:3", ("default", 3)), ("MKG-W", None), ("data/synth", None)],
)
def test_parse_synth(dataset, expected):
    assert parse_synth(dataset) == expected


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("synth:", "dataset 'synth:': expected synth:<preset> or synth:<preset>:<seed>"),
        ("synth:tiny:1:2", "dataset 'synth:tiny:1:2': expected synth:<preset> or synth:<preset>:<seed>"),
        ("synth:tiny:x", "dataset 'synth:tiny:x': the seed 'x' is not an integer"),
    ],
)
def test_parse_synth_errors(dataset, message):
    with pytest.raises(AfmeError) as err:
        parse_synth(dataset)
    assert str(err.value) == message


def test_a_synthetic_dataset_is_generated_once_and_reused(project, monkeypatch):
    import afme_lib.data.synthetic as synthetic

    calls = []
    real = synthetic.write_synthetic
    monkeypatch.setattr(synthetic, "write_synthetic", lambda *a, **k: calls.append(a) or real(*a, **k))
    data, feats = find_inputs("synth:tiny:1")
    folder = project.resolve() / "runs" / "data" / "synth-tiny-seed1"
    assert (data, feats) == (folder, folder)
    ds = load_dataset(data)
    assert ds.num_entities == 317
    assert set(FeatureStore.load(feats, ds.num_entities, verbose=False).modalities) == {
        "text",
        "image",
        "audio",
        "numeric",
    }
    assert json.loads((folder / "metadata.json").read_text())["seed"] == 1
    assert find_inputs("synth:tiny:1") == (data, feats)
    assert len(calls) == 1  # the second call reused the folder
    assert [p.name for p in folder.parent.iterdir()] == ["synth-tiny-seed1"]  # no temporary folder left


def test_a_folder_from_another_generator_version_is_regenerated(project, monkeypatch):
    import afme_lib.data.synthetic as synthetic

    calls = []

    def fake_write(out, preset, seed=None):  # a stand-in: the real generator costs a second
        calls.append((preset, seed))
        Path(out, "metadata.json").write_text("{}")
        return Path(out)

    monkeypatch.setattr(synthetic, "write_synthetic", fake_write)
    folder = synthetic_folder("tiny", 0, data_root="d")
    stamp = json.loads((folder / STAMP_FILE).read_text())
    assert stamp["preset"] == "tiny" and stamp["seed"] == 0 and len(stamp["generator_sha1"]) == 40
    synthetic_folder("tiny", 0, data_root="d")
    assert len(calls) == 1
    (folder / STAMP_FILE).write_text(json.dumps({**stamp, "generator_sha1": "0" * 40}))
    (folder / "stale-file").write_text("x")
    synthetic_folder("tiny", 0, data_root="d")
    assert len(calls) == 2
    assert not (folder / "stale-file").exists()  # the stale folder was replaced, not merged


def test_unknown_preset(project):
    with pytest.raises(AfmeError, match="unknown synthetic preset 'huge'; expected one of"):
        find_inputs("synth:huge")


def test_inputs_of_folders_and_an_explicit_feature_folder(tiny_synth, tmp_path):
    assert find_inputs(str(tiny_synth)) == (tiny_synth.resolve(), tiny_synth.resolve())
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt"):
        (bare / name).write_bytes((tiny_synth / name).read_bytes())
    assert find_inputs(str(bare)) == (bare.resolve(), None)
    assert find_inputs(str(bare), str(tiny_synth)) == (bare.resolve(), tiny_synth.resolve())
    with pytest.raises(OptionError, match=r"^features is no folder: "):
        find_inputs(str(bare), str(tmp_path / "nope"))


def test_a_registered_name_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("AFME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="MKG-W"):
        find_inputs("MKG-W")
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'no-such-kg'"):
        find_inputs("no-such-kg")


def test_resolve_gives_a_structure_only_model_no_features_and_refuses_a_multimodal_one_without(tiny_synth, tmp_path):
    rotate = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "rotate"}).resolve()
    assert rotate.features is None  # it reads none: its fingerprint does not depend on them
    afme = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "afme"}).resolve()
    assert afme.features == str(tiny_synth.resolve()) and "dataset folder's own" in afme.feature_note
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt"):
        (bare / name).write_bytes((tiny_synth / name).read_bytes())
    with pytest.raises(OptionError, match=r"^features are needed by model 'afme'.*holds no feature files"):
        RunSpec.from_fields({"dataset": str(bare), "model": "afme"}).resolve()
    assert RunSpec.from_fields({"dataset": str(bare), "model": "afme", "modalities": []}).resolve().features is None


# --- the run cache ------------------------------------------------------------------------------------
def test_the_cache_folder_is_keyed_by_what_the_run_computes(tiny_synth, project):
    base = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "afme", "lr": 1e-3})
    first = cache_folder(base.resolve())
    assert first.parent == project.resolve() / "runs" / "cache"  # one cache, shared by the notebooks
    assert first.name.startswith(f"afme-{tiny_synth.name}-")
    assert cache_folder(base.with_fields(progress=False).resolve()) == first  # display only
    assert cache_folder(base.with_fields(lr=2e-3).resolve()) != first
    assert cache_folder(base.with_fields(modalities=[]).resolve()) != first
    assert cache_folder(base.resolve(), "elsewhere").parent == project.resolve() / "elsewhere"


def test_a_setting_given_at_the_models_own_default_shares_the_unset_settings_folder(tiny_synth, project):
    # AFME shuffles 0.4 of the cold-entity structure by default, IKRL none: writing that value out
    # (as a selection grid does) is the same run as leaving it to the model, down to the recorded config
    for model, default, other in (("afme", 0.4, 0.2), ("ikrl", 0.0, 0.2)):
        unset = RunSpec.from_fields({"dataset": str(tiny_synth), "model": model}).resolve()
        spelled = RunSpec.from_fields({"dataset": str(tiny_synth), "model": model, "structure_shuffle": default})
        assert spelled.model.structure_shuffle == default  # the spec keeps what was written
        assert spelled.resolve().spec == unset.spec and unset.spec.model.structure_shuffle is None
        assert cache_folder(spelled.resolve()) == cache_folder(unset)
        changed = RunSpec.from_fields({"dataset": str(tiny_synth), "model": model, "structure_shuffle": other})
        assert changed.resolve().spec.model.structure_shuffle == other
        assert cache_folder(changed.resolve()) != cache_folder(unset)


def test_code_fingerprint_follows_training_code_only(tmp_path, monkeypatch):
    package = tmp_path / "afme_lib"
    for rel in (
        "__init__.py",
        "engine/training.py",
        "models/afme.py",
        "analysis/modality_weights.py",
        "experiments/run.py",
        "interfaces/notebook.py",
    ):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(f"# {rel}\n")
    monkeypatch.setattr(run_mod.afme_lib, "__file__", str(package / "__init__.py"))

    def fingerprint() -> str:
        code_fingerprint.cache_clear()
        return code_fingerprint()

    try:
        first = fingerprint()
        assert len(first) == 40 and fingerprint() == first
        for rel in ("analysis/modality_weights.py", "experiments/run.py", "interfaces/notebook.py"):
            (package / rel).write_text("# edited\n")
        assert fingerprint() == first  # analysis, experiments and interfaces cannot change a run
        (package / "models" / "afme.py").write_text('"""A docstring."""\n# a comment\n')
        assert fingerprint() == first  # nor a comment or a docstring of training code
        (package / "models" / "afme.py").write_text("STEP = 2\n")
        assert fingerprint() != first
    finally:
        code_fingerprint.cache_clear()


# --- the entry point ------------------------------------------------------------------------------------
def _fake_finished_run(run_dir: Path, spec: RunSpec) -> dict:
    resolved = spec.resolve()
    folder = RunFolder(run_dir)
    folder.write_config(RunConfig.new(resolved.dataset, resolved.features, None, spec.model, spec.train))
    metrics = {"test": {"mrr": 0.25}, "valid": {"mrr": 0.3}}
    folder.write_metrics(metrics)
    return metrics


def test_a_finished_run_with_the_same_spec_is_returned_as_it_is(tiny_synth, tmp_path):
    spec = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "afme", "epochs": 2})
    metrics = _fake_finished_run(tmp_path / "run", spec)
    folder = run(spec.with_fields(progress=False), tmp_path / "run")  # display only: the same run
    assert folder.path == tmp_path / "run" and folder.metrics == metrics
    assert folder.config.fingerprint() == spec.resolve().fingerprint()


def test_a_folder_holding_another_run_is_refused_naming_the_differences(tiny_synth, tmp_path):
    spec = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "afme", "epochs": 2, "lr": 1e-3})
    _fake_finished_run(tmp_path / "run", spec)
    with pytest.raises(AfmeError) as err:
        run(spec.with_fields(lr=5e-3, dim=32), tmp_path / "run")
    assert str(err.value).startswith(
        f"{tmp_path / 'run'} holds another run (model.dim: 64 there, 32 asked, train.lr: 0.001 there, 0.005 asked)"
    )


def test_open_run_reads_a_finished_folder(tiny_synth, tmp_path):
    spec = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "afme", "dim": 24})
    metrics = _fake_finished_run(tmp_path / "run", spec)
    done = open_run(tmp_path / "run")
    assert (done.model_cfg, done.train_cfg, done.metrics) == (spec.model, spec.train, metrics)
    assert (done.dataset, done.features, done.path) == (str(tiny_synth.resolve()),) * 2 + (tmp_path / "run",)
    assert done.truth["generator"] == "afme_lib.data.synthetic"
    assert done.spec.with_fields(dataset=str(tiny_synth)) == spec.with_fields(features=str(tiny_synth.resolve()))
    (tmp_path / "run" / "metrics.json").unlink()
    with pytest.raises(
        AfmeError, match=r"holds no finished run \(no metrics.json\); finish it with `afme train --resume"
    ):
        open_run(tmp_path / "run")
    with pytest.raises(AfmeError, match="is not a run folder"):
        open_run(tmp_path)


TINY = {"dim": 8, "epochs": 1, "batch_size": 2048, "negatives": 2, "eval_every": 1, "progress": False}


def test_a_run_without_a_folder_trains_once_in_the_cache(tiny_synth, tmp_path):
    spec = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "afme", **TINY})
    folder = run(spec, runs_root=tmp_path)
    assert folder.path.parent == tmp_path and folder.metrics["epochs_run"] == 1
    log = (folder.path / "log.jsonl").read_text()
    again = run(spec, runs_root=tmp_path)
    assert again.path == folder.path and (folder.path / "log.jsonl").read_text() == log  # reused, not retrained
    rotate = open_run(run(spec.with_fields(model="rotate"), runs_root=tmp_path))
    assert rotate.features is None and rotate.store is None  # a structure-only model is given no features


def test_run_many_in_two_processes_gives_the_runs_of_one(tiny_synth, tmp_path):
    specs = {
        name: RunSpec.from_fields({"dataset": str(tiny_synth), "model": name, **TINY}) for name in ("rotate", "afme")
    }
    parallel = run_many(specs, workers=2, runs_root=tmp_path / "a")
    serial = run_many(specs, workers=1, runs_root=tmp_path / "b")
    for name in specs:
        assert parallel[name].path.name == serial[name].path.name  # same spec, same cache name
        assert parallel[name].metrics["test"] == serial[name].metrics["test"]


def test_run_many_trains_every_run_on_its_share_of_the_cores_even_when_one_is_left(tiny_synth, tmp_path, monkeypatch):
    # CPU float sums depend on torch's thread count: a run trained alone (the one run left to train)
    # must get the same share of the cores as one trained beside another, or its numbers differ
    import torch

    seen = []
    real_run = run_mod.run

    def recording_run(resolved, out=None, **kwargs):
        if not RunFolder(out).finished:
            seen.append(torch.get_num_threads())
        return real_run(resolved, out, **kwargs)

    monkeypatch.setattr(run_mod, "run", recording_run)
    monkeypatch.setattr(run_mod, "usable_cores", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the caller's own count, which neither share equals
    try:
        spec = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "rotate", **TINY})
        run_many({"rotate": spec}, workers=2, runs_root=tmp_path)
        assert seen == [2]  # 4 cores // 2 workers, though this run trained alone in this process
        assert torch.get_num_threads() == 3  # and the caller's count is put back
        run_many({"rotate": spec.with_fields(lr=2e-3)}, workers=1, runs_root=tmp_path)
        assert seen == [2, 4]
    finally:
        torch.set_num_threads(before)


def test_a_folder_being_trained_elsewhere_is_refused_not_written_beside(tiny_synth, tmp_path):
    # the workers of a killed job keep training; a job started again must not write the same folder
    spec = RunSpec.from_fields({"dataset": str(tiny_synth), "model": "rotate", **TINY})
    folder = cache_folder(spec.resolve(), tmp_path)
    with run_mod.training_lock(folder):  # held as another process would hold it (its own open file)
        with pytest.raises(AfmeError, match=r"is being trained by another process"):
            run(spec, runs_root=tmp_path)
        assert not (folder / "log.jsonl").exists()
    finished = run(spec, runs_root=tmp_path)  # the lock went with its holder
    assert finished.path == folder and finished.finished
    epochs = [line for line in (folder / "log.jsonl").read_text().splitlines() if line]
    assert len(epochs) == finished.metrics["epochs_run"]
    assert not (folder / run_mod.LOCK_FILE).exists()  # nothing of the lock stays in the run's folder
    with run_mod.training_lock(folder):
        assert run(spec, runs_root=tmp_path).path == folder  # a finished run is read, not trained: no lock


# --- the notebooks' helpers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        ("1", True),
        ("true", True),
        (" YES ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("", False),
        ("Off", False),
    ],
)
def test_quick_mode_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv("AFME_NB_QUICK", value)
    assert notebook.quick_mode() is expected


def test_quick_mode_unset_is_false_and_garbage_is_an_error(monkeypatch):
    monkeypatch.delenv("AFME_NB_QUICK", raising=False)
    assert notebook.quick_mode() is False
    monkeypatch.setenv("AFME_NB_QUICK", "sometimes")
    with pytest.raises(AfmeError, match=r"^AFME_NB_QUICK='sometimes' is not a boolean; use 1 or 0$"):
        notebook.quick_mode()


def test_figures_folder_defaults_under_runs(project):
    assert notebook.figures_folder(None, "01_x") == project.resolve() / "runs" / "figures" / "01_x"
    assert notebook.figures_folder("reports/figs", "01_x") == project.resolve() / "reports" / "figs"


def test_a_notebooks_spec_is_every_field_its_namespace_defines():
    """Parameters cell values and papermill-injected ones alike: what is a run-spec field counts,
    the rest (workers, run_dir ...) is the notebook's own; None leaves a field to its default."""
    namespace = {
        "dataset": "synth:tiny",
        "model": "afme",
        "dim": 16,
        "epochs": None,
        "self_negatives": 0.0,
        "features": None,
        "workers": 2,
        "run_dir": None,
        "compare_with": ["rotate"],
    }
    spec = notebook.spec_from(namespace, model="rotate")
    assert spec == RunSpec.from_fields({"dataset": "synth:tiny", "model": "rotate", "dim": 16, "self_negatives": 0.0})
    with pytest.raises(OptionError, match=r"^dim must be >= 1"):
        notebook.spec_from({"dataset": "d", "dim": 0})


def test_a_spec_for_another_model_takes_that_models_recipe_unless_a_setting_was_changed():
    afme = RunSpec.from_fields({"dataset": "synth:tiny", "model": "afme", "lr": 0.05})
    native = afme.for_model("native")
    assert native.model.name == "native" and native.train.lr == 0.05  # changed: kept
    assert (native.train.lambda_adv, native.train.lambda_gp) == (0.0001, 0.1)  # NATIVE's recipe, not AFME's
    assert native == RunSpec.from_fields({"dataset": "synth:tiny", "model": "native", "lr": 0.05})
    back = native.for_model("afme")
    assert back == afme  # NATIVE's recipe does not follow the spec back to AFME
    changed = afme.with_fields(lambda_adv=0.5).for_model("native")
    assert changed.train.lambda_adv == 0.5 and changed.train.lambda_gp == 0.1
    assert (
        afme.for_model("distmult", seed=3).train.loss == "softplus"
        and afme.for_model("distmult", seed=3).train.seed == 3
    )
