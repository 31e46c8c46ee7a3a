"""The workbench notebooks: built from notebooks/_build.py, shaped for papermill, and (in the
notebook stage of scripts/test.sh) the interactive panel's widget state saved by a headless run.

The notebooks themselves run top to bottom under ``pytest --nbval-lax notebooks/`` with
``AFME_NB_QUICK=1`` (scripts/test.sh); these tests check what nbval does not.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path

import nbformat
import pytest

from afme_lib.core import ablations

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CONTRACT_PARAMETERS = {  # the training notebook's parameters shared with the grid runner
    "dataset",
    "features",
    "model",
    "dim",
    "epochs",
    "batch_size",
    "negatives",
    "lr",
    "seed",
    "device",
    "eval_every",
    "denoising",
    "dynamic_weights",
    "gan",
    "self_attention",
    "relation_context",
    "run_dir",
    "progress",
    "compare_with",
    "runs_root",
}
TRAINING = (
    "dataset",
    "features",
    "dim",
    "epochs",
    "batch_size",
    "negatives",
    "lr",
    "seed",
    "eval_every",
    "runs_root",
)  # the same in 02-05: their runs are shared


def _build_module():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _build_module()
NAMES = list(BUILD.NOTEBOOKS)


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _parameters_cell(nb) -> str:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged parameters"
    return cells[0].source


def _parameters(nb, quick: bool, monkeypatch) -> dict:
    monkeypatch.setenv("AFME_NB_QUICK", "1" if quick else "0")
    namespace: dict = {}
    exec(_parameters_cell(nb), namespace)  # noqa: S102 -- our own notebook's parameter cell
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def test_the_seven_notebooks_exist():
    assert NAMES == [
        "00_your_own_kg.ipynb",
        "01_data_exploration.ipynb",
        "02_training.ipynb",
        "03_ablations.ipynb",
        "04_modality_contributions.ipynb",
        "05_robustness.ipynb",
        "06_tuning.ipynb",
    ]
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_what_the_build_script_writes(name):
    assert (NOTEBOOKS / name).read_text() == BUILD.render(BUILD.NOTEBOOKS[name]), (
        "run `python notebooks/_build.py` after editing it"
    )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_shape(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "**Question" in nb.cells[0].source  # the title cell says what the notebook answers
    assert nb.cells[1].cell_type == "code" and nb.cells[1].metadata.get("tags") == ["parameters"]
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "commit notebooks without outputs"
            ast.parse(cell.source)  # plain Python: no magics


def test_training_notebook_defines_the_contract_parameters(monkeypatch):
    quick = _parameters(_read("02_training.ipynb"), True, monkeypatch)
    assert CONTRACT_PARAMETERS <= set(quick)
    assert quick["dataset"] == "synth:tiny" and quick["epochs"] <= 3 and quick["progress"] is False
    assert quick["run_dir"] is None and quick["features"] is None and quick["device"] == "auto"
    full = _parameters(_read("02_training.ipynb"), False, monkeypatch)
    assert full["dataset"] == "synth:default" and full["epochs"] >= 20 and full["progress"] is True
    assert full["compare_with"] == ["rotate", "mm-concat"] and full["runs_root"] == "runs/cache"


@pytest.mark.parametrize("quick", [True, False])
def test_notebooks_that_train_share_their_settings(quick, monkeypatch):
    """02-05 train with the same parameter names and defaults, so a run one trains the others reuse."""
    seen = {name: _parameters(_read(name), quick, monkeypatch) for name in NAMES[2:6]}
    reference = {k: seen["02_training.ipynb"][k] for k in TRAINING}
    for name, params in seen.items():
        assert {k: params[k] for k in TRAINING} == reference, name


@pytest.mark.parametrize("quick", [True, False])
def test_your_own_kg_notebook_defaults_to_the_packaged_example(quick, monkeypatch):
    """With no parameters notebook 00 imports PyKEEN's Nations (its inputs left at None) and trains
    RotatE beside AFME at the training notebooks' budget."""
    params = _parameters(_read("00_your_own_kg.ipynb"), quick, monkeypatch)
    assert all(params[k] is None for k in ("triples", "valid", "test", "texts", "images", "numeric", "out"))
    assert params["model"] == "afme" and params["compare_with"] == ["rotate"]
    reference = _parameters(_read("02_training.ipynb"), quick, monkeypatch)
    assert {k: params[k] for k in TRAINING if k not in ("dataset", "features")} == {
        k: reference[k] for k in TRAINING if k not in ("dataset", "features")
    }


@pytest.mark.parametrize("quick", [True, False])
def test_ablation_variants_are_named_from_the_registry(quick, monkeypatch):
    ablation = _parameters(_read("03_ablations.ipynb"), quick, monkeypatch)
    robustness = _parameters(_read("05_robustness.ipynb"), quick, monkeypatch)
    assert ablation["grid_report"] is None and ablation["seeds"] == [0]
    assert ablations.check_names(ablation["variants"]) and ablations.check_names(robustness["variants"])
    if not quick:  # the whole study by default; 05 the components that act on corrupted or missing rows
        assert ablation["variants"] == list(ablations.NAMES)
        assert robustness["variants"] == ["full", "w/o denoising", "w/o GAN"]


def _switches_turned_off(tree: ast.AST) -> int:
    """Dict entries ``"<switch>": False`` and keyword arguments ``<switch>=False`` in ``tree``."""
    switches = {a.switch for a in ablations.ABLATIONS.values()}
    found = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            found += sum(
                isinstance(k, ast.Constant) and k.value in switches and isinstance(v, ast.Constant) and v.value is False
                for k, v in zip(node.keys, node.values)
            )
        elif isinstance(node, ast.keyword):
            found += node.arg in switches and isinstance(node.value, ast.Constant) and node.value.value is False
    return found


def test_no_second_copy_of_the_ablation_switches():
    """Variants are named (afme_lib/core/ablations.py): no library module, benchmark or notebook spells
    a switch turned off; the grid files that do are checked against the registry (tests/experiments/grid/test_grid.py)."""
    sources = [
        p for p in [*(ROOT / "afme_lib").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")] if p.name != "ablations.py"
    ]
    copies = [str(p.relative_to(ROOT)) for p in sources if _switches_turned_off(ast.parse(p.read_text()))]
    copies += [
        f"{name} cell {i}"
        for name, cells in BUILD.NOTEBOOKS.items()
        for i, (kind, text, _) in enumerate(cells)
        if kind == "code" and _switches_turned_off(ast.parse(text))
    ]
    assert copies == []
    assert _switches_turned_off(ast.parse("f(gan=False); x = {'denoising': False}")) == 2  # the check can fail


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_grids_only_set_parameters_the_notebook_defines(config, monkeypatch):
    """load_grid checks every grid parameter against the notebook's parameters cell (a grid of
    ``target: train``: against ModelConfig / TrainConfig, every cell's configs built)."""
    from afme_lib.experiments.grid import load_grid

    monkeypatch.chdir(ROOT)
    grid = load_grid(ROOT / "configs" / config)
    assert grid.notebook.name.endswith(".ipynb") if grid.runs_notebooks else grid.target == "train"


# --- headless check of the interactive panel (notebook stage only) --------------------------------
@pytest.mark.skipif(
    os.environ.get("AFME_NB_QUICK", "").strip().lower() not in ("1", "true", "yes", "on"),
    reason="executes notebook 04 (~30 s); scripts/test.sh runs it in its notebook stage (AFME_NB_QUICK=1)",
)
def test_modality_panel_widget_state_is_saved(tmp_path):
    import papermill

    out = tmp_path / "04.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "04_modality_contributions.ipynb"),
        str(out),
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
        store_widget_state=True,
        parameters={"figures_dir": str(tmp_path / "figures")},
    )
    nb = json.loads(out.read_text())
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    by_model: dict[str, list[dict]] = {}
    for widget in state.values():
        by_model.setdefault(widget["model_name"], []).append(widget["state"])
    dropdown = next(s for s in by_model["DropdownModel"] if s.get("description") == "relation")
    combobox = next(s for s in by_model["ComboboxModel"] if s.get("description") == "entity")
    metadata = json.loads((ROOT / "runs" / "data" / "synth-tiny-seed0" / "metadata.json").read_text())
    assert dropdown["_options_labels"] == [r["name"] for r in metadata["relations"]]
    assert combobox["value"] and len(combobox["options"]) == metadata["counts"]["entities"]
    assert any("Top 10 tails" in s.get("value", "") for s in by_model["HTMLModel"])
    charts = [o for s in by_model["OutputModel"] for o in s.get("outputs", [])]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in charts)
    views = [
        o["data"]["application/vnd.jupyter.widget-view+json"]
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert views and views[-1]["model_id"] in state  # the panel's output points at a saved widget


# --- one spec, three interfaces (notebook stage only) ---------------------------------------------------
@pytest.mark.skipif(
    os.environ.get("AFME_NB_QUICK", "").strip().lower() not in ("1", "true", "yes", "on"),
    reason="executes notebook 02 (~20 s); scripts/test.sh runs it in its notebook stage (AFME_NB_QUICK=1)",
)
def test_one_spec_file_gives_one_run_from_the_cli_a_grid_and_a_notebook(tiny_synth, tmp_path):
    """The same run-spec YAML given to `afme train --config`, to a train grid (`spec:`) and to
    notebook 02 (papermill's parameter file) makes run folders with the same fingerprint. The spec
    sets every field the notebook's parameters cell lists, and one it does not (self_negatives)."""
    import papermill
    import yaml

    from afme_lib.engine.run_folder import RunFolder
    from afme_lib.experiments.grid import load_grid, run_grid
    from afme_lib.interfaces.cli import main

    fields = {
        "dataset": str(tiny_synth),
        "model": "rotate",
        "dim": 8,
        "epochs": 1,
        "batch_size": 2048,
        "negatives": 2,
        "lr": 0.01,
        "seed": 0,
        "eval_every": 1,
        "device": "cpu",
        "self_negatives": 0.5,
    }
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(fields))
    assert main(["train", "--config", str(spec), "--out", str(tmp_path / "cli"), "--no-progress"]) == 0

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(f"name: one\ntarget: train\nspec: {spec}\nrun_dir: cell\n")
    run_grid(load_grid(grid_file), report_dir=tmp_path / "report", runs_dir=tmp_path / "grid", progress=False)

    papermill.execute_notebook(
        str(NOTEBOOKS / "02_training.ipynb"),
        str(tmp_path / "02.ipynb"),
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
        parameters={
            **yaml.safe_load(spec.read_text()),
            "compare_with": [],
            "run_dir": str(tmp_path / "notebook"),
            "figures_dir": str(tmp_path / "f"),
        },
    )
    folders = [RunFolder(tmp_path / "cli"), RunFolder(tmp_path / "grid" / "cell"), RunFolder(tmp_path / "notebook")]
    assert all(folder.finished for folder in folders)
    assert len({folder.config.fingerprint() for folder in folders}) == 1
    assert {folder.config.train.self_negatives for folder in folders} == {0.5}
