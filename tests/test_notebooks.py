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

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CONTRACT_PARAMETERS = {  # the training notebook's parameters shared with the grid runner
    "dataset", "features", "model", "dim", "epochs", "batch_size", "negatives", "lr", "seed", "device", "eval_every",
    "denoising", "dynamic_weights", "gan", "self_attention", "model_options", "train_options", "run_dir", "progress",
}


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


def test_the_five_notebooks_exist():
    assert NAMES == ["01_data_exploration.ipynb", "02_training.ipynb", "03_ablations.ipynb",
                     "04_modality_contributions.ipynb", "05_robustness.ipynb"]
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_what_the_build_script_writes(name):
    assert (NOTEBOOKS / name).read_text() == BUILD.render(BUILD.NOTEBOOKS[name]), \
        "run `python notebooks/_build.py` after editing it"


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


@pytest.mark.parametrize("name", NAMES)
def test_quick_mode_picks_the_tiny_preset(name, monkeypatch):
    params = _parameters(_read(name), True, monkeypatch)
    assert params["QUICK"] is True
    assert params.get("dataset", "synth:tiny") == "synth:tiny"
    if "epochs" in params:
        assert params["epochs"] <= 3


def test_ablation_notebook_variants(monkeypatch):
    full = _parameters(_read("03_ablations.ipynb"), False, monkeypatch)
    assert full["grid_report"] is None and full["seeds"] == [0, 1, 2]
    assert full["variants"] == {"full": {}, "w/o denoising": {"denoising": False},
                                "w/o dynamic weighting": {"dynamic_weights": False}, "w/o GAN": {"gan": False},
                                "w/o self-attention": {"self_attention": False}}
    assert _parameters(_read("05_robustness.ipynb"), False, monkeypatch)["variants"] == full["variants"]


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_grids_only_set_parameters_the_notebook_defines(config, monkeypatch):
    """load_grid checks every grid parameter against the notebook's parameters cell."""
    from afme_lib.grid import load_grid

    monkeypatch.chdir(ROOT)
    grid = load_grid(ROOT / "configs" / config)
    assert grid.notebook.name.endswith(".ipynb")


# --- headless check of the interactive panel (notebook stage only) --------------------------------
@pytest.mark.skipif(os.environ.get("AFME_NB_QUICK", "").strip().lower() not in ("1", "true", "yes", "on"),
                    reason="executes notebook 04 (~30 s); scripts/test.sh runs it in its notebook stage (AFME_NB_QUICK=1)")
def test_modality_panel_widget_state_is_saved(tmp_path):
    import papermill

    out = tmp_path / "04.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "04_modality_contributions.ipynb"), str(out), cwd=str(NOTEBOOKS),
                               kernel_name="python3", progress_bar=False, store_widget_state=True,
                               parameters={"figures_dir": str(tmp_path / "figures")})
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
    views = [o["data"]["application/vnd.jupyter.widget-view+json"] for c in nb["cells"] for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views and views[-1]["model_id"] in state  # the panel's output points at a saved widget
