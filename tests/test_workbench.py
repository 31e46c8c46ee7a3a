"""afme_lib.workbench: dataset specs, quick mode, configs from flat parameters, run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from afme_lib import workbench
from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.features import FeatureStore
from afme_lib.data.registry import DatasetNotFoundError, UnknownDatasetError
from afme_lib.errors import AfmeError
from afme_lib.runs import RunConfig, RunFolder


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A throw-away project root (pyproject.toml + afme_lib/) as the working directory's parent."""
    root = tmp_path / "proj"
    (root / "afme_lib").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "notebooks").mkdir()
    monkeypatch.chdir(root / "notebooks")  # where nbval starts kernels
    return root


# --- quick mode ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), (" YES ", True), ("on", True),
                                             ("0", False), ("false", False), ("", False), ("Off", False)])
def test_quick_mode_reads_the_variable(monkeypatch, value, expected):
    monkeypatch.setenv("AFME_NB_QUICK", value)
    assert workbench.quick_mode() is expected


def test_quick_mode_unset_is_false_and_garbage_is_an_error(monkeypatch):
    monkeypatch.delenv("AFME_NB_QUICK", raising=False)
    assert workbench.quick_mode() is False
    monkeypatch.setenv("AFME_NB_QUICK", "sometimes")
    with pytest.raises(AfmeError, match=r"^AFME_NB_QUICK='sometimes' is not a boolean; use 1 or 0$"):
        workbench.quick_mode()


# --- paths --------------------------------------------------------------------------------------
def test_relative_paths_resolve_against_the_project_root_not_the_working_directory(project):
    assert workbench.project_root() == project.resolve()
    assert workbench.resolve_path("runs/data") == project.resolve() / "runs" / "data"
    assert workbench.resolve_path("/abs/x") == Path("/abs/x")


def test_project_root_falls_back_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert workbench.project_root() == tmp_path.resolve()


def test_figures_folder_defaults_under_runs(project):
    assert workbench.figures_folder(None, "01_x") == project.resolve() / "runs" / "figures" / "01_x"
    assert workbench.figures_folder("reports/figs", "01_x") == project.resolve() / "reports" / "figs"


# --- dataset specs ------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, expected", [("synth:tiny", ("tiny", 0)), ("synth:default:3", ("default", 3)),
                                            ("MKG-W", None), ("data/synth", None)])
def test_parse_synth_spec(spec, expected):
    assert workbench.parse_synth_spec(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("synth:", "dataset spec 'synth:': expected synth:<preset> or synth:<preset>:<seed>"),
    ("synth:tiny:1:2", "dataset spec 'synth:tiny:1:2': expected synth:<preset> or synth:<preset>:<seed>"),
    ("synth:tiny:x", "dataset spec 'synth:tiny:x': the seed 'x' is not an integer"),
])
def test_parse_synth_spec_errors(spec, message):
    with pytest.raises(AfmeError) as err:
        workbench.parse_synth_spec(spec)
    assert str(err.value) == message


def test_prepare_dataset_generates_a_synthetic_folder_once_and_reuses_it(project, monkeypatch):
    import afme_lib.data.synthetic as synthetic

    calls = []
    real = synthetic.write_synthetic
    monkeypatch.setattr(synthetic, "write_synthetic", lambda *a, **k: calls.append(a) or real(*a, **k))
    data, feats = workbench.prepare_dataset("synth:tiny:1")
    folder = project.resolve() / "runs" / "data" / "synth-tiny-seed1"
    assert (data, feats) == (str(folder), str(folder))
    ds = load_dataset(data)
    assert ds.num_entities == 317
    assert set(FeatureStore.load(feats, ds.num_entities, verbose=False).modalities) == {"text", "image", "audio", "numeric"}
    assert json.loads((folder / "metadata.json").read_text())["seed"] == 1
    assert workbench.prepare_dataset("synth:tiny:1") == (data, feats)
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
    folder = workbench.synthetic_folder("tiny", 0, data_root="d")
    stamp = json.loads((folder / workbench.STAMP_FILE).read_text())
    assert stamp["preset"] == "tiny" and stamp["seed"] == 0 and len(stamp["generator_sha1"]) == 40
    workbench.synthetic_folder("tiny", 0, data_root="d")
    assert len(calls) == 1
    (folder / workbench.STAMP_FILE).write_text(json.dumps({**stamp, "generator_sha1": "0" * 40}))
    (folder / "stale-file").write_text("x")
    workbench.synthetic_folder("tiny", 0, data_root="d")
    assert len(calls) == 2
    assert not (folder / "stale-file").exists()  # the stale folder was replaced, not merged


def test_unknown_preset(project):
    with pytest.raises(AfmeError, match="unknown synthetic preset 'huge'; expected one of"):
        workbench.prepare_dataset("synth:huge")


def test_prepare_dataset_with_folders(tiny_synth, tmp_path):
    assert workbench.prepare_dataset(str(tiny_synth)) == (str(tiny_synth.resolve()), str(tiny_synth.resolve()))
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt"):
        (bare / name).write_bytes((tiny_synth / name).read_bytes())
    assert workbench.prepare_dataset(str(bare)) == (str(bare.resolve()), None)
    # an explicit features folder replaces the one found with the dataset
    assert workbench.prepare_dataset(str(bare), str(tiny_synth)) == (str(bare.resolve()), str(tiny_synth.resolve()))


def test_prepare_dataset_registered_name_not_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("AFME_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="MKG-W"):
        workbench.prepare_dataset("MKG-W")
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'no-such-kg'"):
        workbench.prepare_dataset("no-such-kg")


def test_pick_features(project):
    assert workbench.pick_features(None, "/found") == "/found"
    (project / "feats").mkdir()
    assert workbench.pick_features("feats", "/found") == str(project.resolve() / "feats")
    with pytest.raises(AfmeError, match=r"^features='nope': no such folder \("):
        workbench.pick_features("nope", None)


def test_read_ground_truth(tiny_synth, tmp_path):
    assert workbench.read_ground_truth(str(tiny_synth))["generator"] == "afme_lib.data.synthetic"
    assert workbench.read_ground_truth(str(tmp_path)) is None


# --- configs ------------------------------------------------------------------------------------
def test_build_configs_maps_flat_parameters_and_options_win():
    model_cfg, train_cfg = workbench.build_configs(
        model="afme", dim=24, epochs=7, batch_size=256, negatives=4, lr=0.01, seed=3, device="cpu", eval_every=2,
        denoising=False, dynamic_weights=True, gan=False, self_attention=False, progress=False,
        model_options={"attention_layers": 1, "dim": 48}, train_options={"loss": "margin", "epochs": 9})
    assert model_cfg == ModelConfig(name="afme", dim=48, denoising=False, dynamic_weights=True, gan=False,
                                    self_attention=False, attention_layers=1)
    assert train_cfg == TrainConfig(epochs=9, batch_size=256, negatives=4, lr=0.01, seed=3, device="cpu", eval_every=2,
                                    progress=False, loss="margin")


def test_build_configs_rejects_unknown_options():
    with pytest.raises(ValueError, match=r"^dimension is not a ModelConfig field \(did you mean 'dim'.*\?\); fields: name, dim"):
        workbench.build_configs(model_options={"dimension": 3})
    with pytest.raises(ValueError, match=r"^epoch is not a TrainConfig field \(did you mean 'epochs'\?\)"):
        workbench.build_configs(train_options={"epoch": 3})


# --- run folders --------------------------------------------------------------------------------
def test_auto_run_dir_is_keyed_by_everything_that_changes_results(project):
    m, t = workbench.build_configs(model="afme", lr=1e-3)
    first = workbench.auto_run_dir("/d/synth-tiny-seed0", "/d/synth-tiny-seed0", m, t)
    assert first.parent == project.resolve() / "runs" / "notebooks"  # one cache, shared by the notebooks
    assert first.name.startswith("afme-synth-tiny-seed0-")
    assert workbench.auto_run_dir("/d/synth-tiny-seed0", "/d/synth-tiny-seed0", m, t) == first
    _, quiet = workbench.build_configs(model="afme", lr=1e-3, progress=False)
    assert workbench.auto_run_dir("/d/synth-tiny-seed0", "/d/synth-tiny-seed0", m, quiet) == first
    _, other_lr = workbench.build_configs(model="afme", lr=2e-3)
    assert workbench.auto_run_dir("/d/synth-tiny-seed0", "/d/synth-tiny-seed0", m, other_lr) != first
    assert workbench.auto_run_dir("/d/synth-tiny-seed0", None, m, t) != first
    assert workbench.auto_run_dir("/d/synth-tiny-seed0", "/d/synth-tiny-seed0", m, t, root="elsewhere").parent == \
        project.resolve() / "elsewhere"


def test_build_configs_leaves_unset_parameters_to_the_config_defaults():
    assert workbench.build_configs() == (ModelConfig(name="afme"), TrainConfig())
    model_cfg, _ = workbench.build_configs(relation_context=False)
    assert model_cfg == ModelConfig(name="afme", relation_context=False)


def test_code_fingerprint_follows_training_code_only(tmp_path, monkeypatch):
    package = tmp_path / "afme_lib"
    for rel in ("__init__.py", "train.py", "models/afme.py", "analysis/modality.py", "workbench.py"):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(f"# {rel}\n")
    monkeypatch.setattr(workbench.afme_lib, "__file__", str(package / "__init__.py"))

    def fingerprint() -> str:
        workbench.code_fingerprint.cache_clear()
        return workbench.code_fingerprint()

    try:
        first = fingerprint()
        assert len(first) == 40 and fingerprint() == first
        (package / "analysis" / "modality.py").write_text("# edited\n")
        (package / "workbench.py").write_text("# edited\n")
        assert fingerprint() == first  # analysis and notebook helpers cannot change a run
        (package / "models" / "afme.py").write_text("# edited\n")
        assert fingerprint() != first
    finally:
        workbench.code_fingerprint.cache_clear()


def _fake_finished_run(run_dir: Path, dataset: str, model_cfg, train_cfg) -> dict:
    folder = RunFolder(run_dir)
    folder.write_config(RunConfig.new(dataset, dataset, None, model_cfg, train_cfg))
    metrics = {"test": {"mrr": 0.25}, "valid": {"mrr": 0.3}}
    folder.write_metrics(metrics)
    return metrics


def test_train_or_reuse_returns_a_finished_run_with_the_same_settings(tiny_synth, tmp_path):
    m, t = workbench.build_configs(model="afme", epochs=2)
    data = str(tiny_synth.resolve())
    metrics = _fake_finished_run(tmp_path / "run", data, m, t)
    _, quiet = workbench.build_configs(model="afme", epochs=2, progress=False)  # display only: same run
    assert workbench.train_or_reuse(data, data, m, quiet, tmp_path / "run") == metrics


def test_train_or_reuse_refuses_a_folder_holding_another_run(tiny_synth, tmp_path):
    m, t = workbench.build_configs(model="afme", epochs=2, lr=1e-3)
    data = str(tiny_synth.resolve())
    _fake_finished_run(tmp_path / "run", data, m, t)
    m2, t2 = workbench.build_configs(model="afme", epochs=2, lr=5e-3, dim=32)
    with pytest.raises(AfmeError) as err:
        workbench.train_or_reuse(data, data, m2, t2, tmp_path / "run")
    assert str(err.value) == (f"{tmp_path / 'run'} holds a different run (model.dim: 64 there, 32 asked, "
                              "train.lr: 0.001 there, 0.005 asked); pick another run_dir or delete that folder")


def test_run_opens_a_finished_folder(tiny_synth, tmp_path):
    m, t = workbench.build_configs(model="afme", dim=24)
    metrics = _fake_finished_run(tmp_path / "run", str(tiny_synth), m, t)
    run = workbench.Run.open(tmp_path / "run")
    assert (run.model_cfg, run.train_cfg, run.metrics) == (m, t, metrics)
    assert (run.dataset, run.features, run.path) == (str(tiny_synth), str(tiny_synth), tmp_path / "run")
    assert run.truth["generator"] == "afme_lib.data.synthetic"
    (tmp_path / "run" / "metrics.json").unlink()
    with pytest.raises(AfmeError, match=r"holds no finished run \(no metrics.json\); finish it with `afme train --resume"):
        workbench.Run.open(tmp_path / "run")
    with pytest.raises(AfmeError, match="is not a run folder"):
        workbench.Run.open(tmp_path)


# --- runs that train (tiny preset, one epoch) ------------------------------------------------------
TINY = {"dim": 8, "epochs": 1, "batch_size": 2048, "negatives": 2, "eval_every": 1, "progress": False}


def test_notebook_run_trains_once_in_the_shared_cache(tiny_synth, tmp_path):
    run = workbench.notebook_run(str(tiny_synth), runs_root=tmp_path, model="afme", **TINY)
    assert run.path.parent == tmp_path and run.features == str(tiny_synth.resolve()) and run.metrics["epochs_run"] == 1
    log = (run.path / "log.jsonl").read_text()
    again = workbench.notebook_run(str(tiny_synth), runs_root=tmp_path, model="afme", **TINY)
    assert again.path == run.path and (run.path / "log.jsonl").read_text() == log  # reused, not retrained
    rotate = workbench.notebook_run(str(tiny_synth), runs_root=tmp_path, model="rotate", **TINY)
    assert rotate.features is None and rotate.store is None  # a structure-only model is given no features
    assert rotate.model_cfg == ModelConfig(name="rotate", dim=8)


def test_train_all_in_two_processes_gives_the_runs_of_one(tiny_synth, tmp_path):
    jobs = {name: {"dataset": str(tiny_synth), "model": name, **TINY} for name in ("rotate", "afme")}
    parallel = workbench.train_all({k: {**j, "runs_root": tmp_path / "a"} for k, j in jobs.items()}, workers=2)
    serial = workbench.train_all({k: {**j, "runs_root": tmp_path / "b"} for k, j in jobs.items()}, workers=1)
    for name in jobs:
        assert parallel[name].path.name == serial[name].path.name  # same settings, same cache name
        assert parallel[name].metrics["test"] == serial[name].metrics["test"]
