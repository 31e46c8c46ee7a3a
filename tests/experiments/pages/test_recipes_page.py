"""The recipes page: a study's best.yaml becomes the recipe file, its page is written, and the best
trial's run is evaluated on test only when the comparison reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("optuna")

from afme_lib.experiments.pages.recipes import publish, read_recipe, recipes_index, recipes_page  # noqa: E402
from afme_lib.experiments.tuning import load_study, tune  # noqa: E402


def test_a_study_becomes_a_recipe_and_a_row_of_the_comparison(tiny_synth, tmp_path):
    spec = tmp_path / "transe.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "dataset": str(tiny_synth),
                "model": "transe",
                "dim": 32,
                "epochs": 10,
                "eval_every": 5,
                "batch_size": 128,
                "progress": False,
                "search": {"space": {"lr": {"log": [1.0e-3, 5.0e-2]}}, "trials": 2, "pruner": "none"},
            }
        )
    )
    study_dir = tmp_path / "study"
    tune(spec, study_dir)
    best = load_study(study_dir).best_trial
    metrics = Path(best.user_attrs["run_dir"], "metrics.json")
    assert json.loads(metrics.read_text())["test"] is None  # the search never read test

    recipe_file, page_dir = tmp_path / "recipes" / "tiny" / "transe.yaml", tmp_path / "reports" / "tiny" / "transe"
    publish(study_dir, recipe_file, page_dir)
    assert recipe_file.read_text() == (study_dir / "best.yaml").read_text()
    assert yaml.safe_load(recipe_file.read_text())["lr"] == best.params["lr"]
    assert (page_dir / "README.md").is_file() and (page_dir / "trials.csv").is_file()

    recipe = read_recipe(study_dir, "tiny", "transe")
    recorded = json.loads(metrics.read_text())
    assert recipe.valid_mrr == best.value == recorded["valid"]["mrr"]
    assert recipe.test["mrr"] == recorded["test"]["mrr"] > 0  # evaluated once, kept in the run folder
    assert recipe.trials == 2 and recipe.best_trial == best.number

    page = recipes_page([recipe], tmp_path / "reports" / "tiny" / "README.md", "python benchmarks/recipes.py", "x")
    row = next(line for line in page.read_text().splitlines() if line.startswith("| transe"))
    assert f"{100 * recipe.valid_mrr:.2f}" in row and f"{100 * recipe.test['mrr']:.2f}" in row
    assert "[page](transe/README.md)" in row  # beside the study's own page
    index = recipes_index(tmp_path / "reports").read_text()
    assert "- [tiny](tiny/README.md): Recipes on tiny" in index
