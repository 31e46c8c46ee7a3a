"""The grid's ``train`` target on the tiny synthetic preset: cells that are training runs, run
folders named by a ``run_dir`` template (reused across grids, never retrained), the models'
recipes under the cells' parameters, ``report_only``, ``exclude``, and the file errors."""

from __future__ import annotations

import json
import shutil

import pytest

from afme_lib.core.errors import DataFormatError
from afme_lib.engine.run_folder import RunFolder
from afme_lib.experiments.grid import expand, parse_grid, plan, run_grid
from afme_lib.experiments.grid.spec import changed


def spec(dataset, **extra) -> dict:
    grid = {
        "name": "tr",
        "target": "train",
        "run_dir": "{dataset_name}-{model}-d{dim}-s{seed}",
        "parameters": {
            "dataset": str(dataset),
            "dim": 8,
            "epochs": 1,
            "batch_size": 512,
            "negatives": 4,
            "eval_every": 1,
            "device": "cpu",
        },
        "grid": {"seed": [0, 1]},
        "variants": {"rotate": {"model": "rotate"}, "distmult": {"model": "distmult"}},
    }
    grid.update(extra)
    return grid


def _mtimes(folder):
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("*/metrics.json")}


def test_train_cells_run_resumably_into_named_folders_with_the_models_recipes(tiny_synth, tmp_path):
    grid = parse_grid(spec(tiny_synth))
    runs, report = tmp_path / "runs", tmp_path / "report"
    results = run_grid(grid, report_dir=report, runs_dir=runs, progress=False)
    assert list(results["status"]) == ["ok"] * 4
    assert sorted(p.name for p in runs.iterdir()) == [
        "tiny-distmult-d8-s0",
        "tiny-distmult-d8-s1",
        "tiny-rotate-d8-s0",
        "tiny-rotate-d8-s1",
    ]
    for _, row in results.iterrows():  # each row holds its own run's metrics.json
        metrics = RunFolder(row["run_dir"]).metrics
        assert row["mrr"] == metrics["test"]["mrr"] and row["epochs_run"] == 1 and row["notebook"] == ""
        assert row["random_mrr"] == metrics["test"]["random"]["mrr"]
    # the recipe the model declares (DistMult: logistic loss with N3) holds where the grid says nothing
    distmult, rotate = RunFolder(runs / "tiny-distmult-d8-s0").config, RunFolder(runs / "tiny-rotate-d8-s0").config
    assert (distmult.train.loss, distmult.train.regularization) == ("softplus", 1e-3)
    assert (rotate.train.loss, rotate.train.regularization, rotate.train.progress) == ("nssa", 0.0, False)
    assert (distmult.model.dim, distmult.train.seed, distmult.train.epochs) == (8, 0, 1)
    assert (report / "results.csv").is_file() and (report / "README.md").is_file()

    # Another grid over the same folders (other report, one more seed, DistMult with an explicit
    # loss that beats its recipe): finished runs are read, not retrained; only the new cells train.
    before = _mtimes(runs)
    more = changed(grid, axes={"seed": [0, 1, 2]}, variants={"rotate": {"model": "rotate"}})
    assert list(plan(more, report_dir=tmp_path / "r2", runs_dir=runs)["action"]) == ["skip: finished"] * 2 + ["run"]
    again = run_grid(more, report_dir=tmp_path / "r2", runs_dir=runs, progress=False)
    assert list(again["status"]) == ["ok"] * 3
    after = _mtimes(runs)
    assert {k: after[k] for k in before} == before and set(after) - set(before) == {"tiny-rotate-d8-s2"}
    explicit = parse_grid(
        spec(
            tiny_synth,
            variants={"distmult": {"model": "distmult", "loss": "nssa"}},
            run_dir="{dataset_name}-{model}-{loss}-s{seed}",
        )
    )
    run_grid(explicit, report_dir=tmp_path / "r3", runs_dir=runs, progress=False, only=["*seed=0*"])
    assert RunFolder(runs / "tiny-distmult-nssa-s0").config.train.loss == "nssa"


def test_report_only_trains_nothing_and_an_interrupted_run_resumes(tiny_synth, tmp_path):
    grid = parse_grid(spec(tiny_synth, variants={"rotate": {"model": "rotate"}}, grid={"seed": [0]}))
    runs = tmp_path / "runs"
    results = run_grid(grid, report_dir=tmp_path / "report", runs_dir=runs, report_only=True, readme=False)
    assert list(results["status"]) == ["pending"] and not runs.exists()
    assert not (tmp_path / "report" / "README.md").exists()  # readme=False: results.csv and grid.yaml only
    assert (tmp_path / "report" / "grid.yaml").is_file()

    run_grid(grid, report_dir=tmp_path / "report", runs_dir=runs, progress=False)
    folder = RunFolder(runs / "tiny-rotate-d8-s0")
    first = folder.metrics
    (folder.path / "metrics.json").unlink()  # as if killed after the last epoch: resumed and finished again
    results = run_grid(grid, report_dir=tmp_path / "report", runs_dir=runs, progress=False)
    assert results.iloc[0]["status"] == "ok" and len(folder.log) == 1  # no epoch trained again
    assert folder.metrics["test"]["mrr"] == pytest.approx(first["test"]["mrr"])
    results = run_grid(grid, report_dir=tmp_path / "report", runs_dir=runs, report_only=True)
    assert results.iloc[0]["status"] == "ok"

    # A clone of the report without the run folders: rebuilding the page keeps the recorded rows.
    shutil.rmtree(runs)
    kept = run_grid(grid, report_dir=tmp_path / "report", runs_dir=runs, report_only=True)
    assert kept.iloc[0]["status"] == "ok" and kept.iloc[0]["mrr"] == pytest.approx(results.iloc[0]["mrr"])
    assert kept.iloc[0]["epochs_run"] == 1 and not runs.exists()


def test_two_worker_processes_train_the_cells_of_one(tiny_synth, tmp_path):
    grid = parse_grid(spec(tiny_synth, variants={"rotate": {"model": "rotate"}}))
    one = run_grid(grid, report_dir=tmp_path / "a", runs_dir=tmp_path / "one", progress=False)
    two = run_grid(grid, report_dir=tmp_path / "b", runs_dir=tmp_path / "two", progress=False, workers=2)
    assert list(two["status"]) == ["ok", "ok"]
    assert list(two["mrr"]) == list(one["mrr"])  # independent runs: the same whatever the concurrency


def test_a_failing_cell_is_recorded_and_the_others_go_on(tiny_synth, tmp_path):
    grid = parse_grid(
        spec(
            tiny_synth,
            variants={"rotate": {"model": "rotate"}},
            grid={"dataset": [str(tiny_synth), str(tmp_path / "nowhere")]},
            parameters={"dim": 8, "epochs": 1, "seed": 0, "device": "cpu"},
        )
    )
    results = run_grid(grid, report_dir=tmp_path / "report", runs_dir=tmp_path / "runs", progress=False)
    assert list(results["status"]) == ["ok", "failed"]
    assert "nowhere" in results.iloc[1]["error"]


def test_exclude_and_parameter_templates(tiny_synth):
    grid = parse_grid(
        spec(
            tiny_synth,
            variants={"rotate": {"model": "rotate"}, "afme": {"model": "afme", "features": "{dataset}"}},
            exclude=[{"model": "afme", "seed": 1}],
        )
    )
    cells = expand(grid)
    assert [(c.variant, c.params["seed"]) for c in cells] == [("rotate", 0), ("rotate", 1), ("afme", 0)]
    assert cells[2].params["features"] == str(tiny_synth)
    assert [grid.run_folder_name(c) for c in cells] == ["tiny-rotate-d8-s0", "tiny-rotate-d8-s1", "tiny-afme-d8-s0"]
    assert "exclude" in grid.to_dict() and parse_grid(grid.to_dict()).to_dict() == grid.to_dict()


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            {"parameters": {"dataset": "d", "epoch": 3}},
            "parameters.epoch: 'epoch' is not a parameter of the train target: dataset, features, data_dir, model, or a "
            "ModelConfig / TrainConfig field",
        ),
        (
            {"run_dir": "{model}-{width}"},
            "run_dir: {width} is no parameter of this grid; parameters: dataset, device, dim, model, seed, variant",
        ),
        ({"run_dir": "{model}"}, "run_dir: cells variant=rotate__seed=0__"),
        ({"run_dir": "{model:>5}-{seed}"}, "run_dir: write each field as a bare {name}, got {model:>5}"),
        ({"target": "evaluate"}, "target: unknown target 'evaluate'; targets: train (or give a notebook instead)"),
        ({"notebook": "x.ipynb"}, "target: give either a notebook or a target, not both"),
        ({"exclude": [{"modle": "rotate"}]}, "exclude: 'modle' is no parameter of this grid"),
        ({"exclude": [{"seed": 0}, {"seed": 1}]}, "exclude: leaves no cell to run"),
        (
            {"variants": {"rotate": {"model": "rotate", "features": "{feature_root}/x"}}},
            "parameters: cannot fill in '{feature_root}/x' from the cell's parameters ('feature_root')",
        ),
        ({"variants": {"rotate": {"model": "rotate", "lr": -1.0}}}, "lr must be > 0 (got -1.0)"),
        ({"variants": {"rotate": {"model": "rotatee"}}}, "model must be a registered model"),
    ],
)
def test_train_grid_errors_name_the_key(change, problem):
    base = {
        "name": "tr",
        "target": "train",
        "run_dir": "{model}-s{seed}",
        "parameters": {"dataset": "d", "dim": 8, "device": "cpu"},
        "grid": {"seed": [0, 1]},
        "variants": {"rotate": {"model": "rotate"}},
    }
    base.update(change)
    with pytest.raises(DataFormatError) as err:
        parse_grid(base)
    assert problem in str(err.value)


def test_report_readme_says_the_cells_are_training_runs(tiny_synth, tmp_path):
    grid = parse_grid(spec(tiny_synth, variants={"rotate": {"model": "rotate"}}, grid={"seed": [0]}))
    run_grid(grid, reports_root=tmp_path / "reports", runs_root=tmp_path / "runs", progress=False)
    readme = (tmp_path / "reports" / "tr" / "README.md").read_text()
    assert "Each cell is one training run (`target: train`" in readme
    assert (tmp_path / "runs" / "tr" / "tiny-rotate-d8-s0" / "metrics.json").is_file()
    copied = json.dumps(parse_grid(grid.to_dict()).to_dict())
    assert '"target": "train"' in copied and '"run_dir": "{dataset_name}-{model}-d{dim}-s{seed}"' in copied


def test_report_keeps_its_hand_written_reading_when_rewritten(tiny_synth, tmp_path):
    grid = parse_grid(spec(tiny_synth, variants={"rotate": {"model": "rotate"}}, grid={"seed": [0]}))
    run_grid(grid, reports_root=tmp_path / "reports", runs_root=tmp_path / "runs", progress=False)
    readme = tmp_path / "reports" / "tr" / "README.md"
    reading = "## Reading (by hand)\n\n- RotatE did what it did.\n"
    readme.write_text(readme.read_text().replace("## Test metrics", "## Test metricz") + "\n" + reading)
    run_grid(grid, reports_root=tmp_path / "reports", runs_root=tmp_path / "runs", progress=False)  # retrains nothing
    text = readme.read_text()
    assert text.endswith(reading) and text.count("## Reading") == 1
    assert "## Test metrics: mean ± std over seeds" in text and "metricz" not in text  # the tables were rewritten
