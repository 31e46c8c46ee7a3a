"""The reproduction and tuning pages (afme_lib/experiments/pages/reproduction.py) through their entry points
on the tiny synthetic preset, and the rule that ``benchmarks/`` holds no training or seed loop of
its own: each former benchmark is a grid file plus a page function."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
from conftest import load_script, markdown_tables, table_row

from afme_lib.engine.run_folder import RunFolder
from afme_lib.experiments.grid import read_results

ROOT = Path(__file__).resolve().parents[3]
reproduce_baselines = load_script("reproduce_baselines")
tune_baselines = load_script("tune_baselines")

# The experiment scripts: parse flags -> run a grid -> write a page. (speed_*.py and gpu_figures.py
# time epochs of the engine: measurements, not experiments.)
EXPERIMENTS = (
    "text_features_gain.py",
    "reproduce_baselines.py",
    "tune_baselines.py",
    "hygiene_report.py",
    "main_job_seeds.py",
    "self_negatives.py",
    "real_data.py",
)
TRAINING_CALLS = {"Trainer", "run", "run_many", "resume", "build_trainer", "fit", "train_epoch"}


@pytest.fixture
def tiny_home(tiny_synth, tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data / "tiny")
    monkeypatch.chdir(data)  # a dataset folder given by name resolves against the working directory
    return data


def test_reproduction_page_from_the_grid_results(tiny_home, tmp_path):
    out, runs = tmp_path / "report", tmp_path / "runs"
    common = [
        "--datasets",
        "tiny",
        "--models",
        "distmult",
        "rotate",
        "--epochs",
        "1",
        "--eval-every",
        "1",
        "--data-dir",
        str(tiny_home),
        "--runs",
        str(runs),
        "--out",
        str(out),
    ]
    assert reproduce_baselines.main([*common, "--report-only"]) == 0  # nothing trained yet
    page = (out / "README.md").read_text()
    assert table_row(markdown_tables(page), dataset="tiny", model="distmult")["MRR"] == "not run yet"
    assert not runs.exists()

    assert reproduce_baselines.main(common) == 0
    results = read_results(out)
    assert sorted(p.name for p in runs.iterdir()) == ["tiny-distmult", "tiny-rotate"]
    assert RunFolder(runs / "tiny-distmult").config.train.loss == "softplus"  # DistMult's own recipe
    assert RunFolder(runs / "tiny-distmult").config.model.dim == 250  # the grid file's width
    page = (out / "README.md").read_text()
    command = page.split("Command: `", 1)[1].split("`", 1)[0]
    assert command == (
        "python benchmarks/reproduce_baselines.py --datasets tiny --models distmult rotate --epochs 1 "
        "--lr 0.001 --eval-every 1 --patience 3"
    )
    tables = markdown_tables(page)
    for _, row in results.iterrows():
        metrics = RunFolder(row["run_dir"]).metrics
        shown = table_row(tables, dataset="tiny", model=row["model"])
        for column, key in (("MRR", "mrr"), ("Hits@1", "hits@1"), ("Hits@10", "hits@10")):
            assert float(shown[column]) == pytest.approx(100 * metrics["test"][key], abs=0.006)
        assert float(shown["epochs"]) == 1
    random = results.iloc[0]
    shown = table_row(tables, dataset="tiny", model="random ranking")
    assert float(shown["MRR"]) == pytest.approx(100 * random["random_mrr"], abs=0.006)

    reading = "## Reading\n- by hand\n"
    (out / "README.md").write_text(page + "\n" + reading)
    assert reproduce_baselines.main([*common, "--report-only"]) == 0
    assert (out / "README.md").read_text() == page + "\n" + reading


def test_tuning_page_lists_every_finished_variant(tiny_home, tmp_path):
    out, runs = tmp_path / "report" / "tuning.md", tmp_path / "runs"
    common = [
        "--dataset",
        "tiny",
        "--models",
        "distmult",
        "--epochs",
        "2",
        "--eval-every",
        "1",
        "--data-dir",
        str(tiny_home),
        "--runs",
        str(runs),
        "--out",
        str(out),
    ]
    assert tune_baselines.main([*common, "--variants", "softplus-n3-1e-2"]) == 0
    assert tune_baselines.main([*common, "--variants", "1vsall-lr-1e-2"]) == 0  # a sweep grows over calls
    rows = [row for table in markdown_tables(out.read_text()) for row in table if row.get("model") == "distmult"]
    assert [r["variant"] for r in rows] == ["softplus-n3-1e-2", "1vsall-lr-1e-2"]
    assert rows[1]["settings"] == "loss 1vsall, lr 0.01"
    folder = RunFolder(runs / "tiny-distmult-1vsall-lr-1e-2")
    config, metrics = folder.config, folder.metrics
    assert (config.train.loss, config.train.lr, config.train.regularization) == ("1vsall", 0.01, 1e-3)
    assert float(rows[1]["best valid MRR"]) == pytest.approx(100 * metrics["valid"]["mrr"], abs=0.006)
    assert int(rows[1]["best epoch"]) == metrics["best_epoch"] and int(rows[1]["epochs"]) == 2
    assert float(rows[1]["test MRR"]) == pytest.approx(100 * metrics["test"]["mrr"], abs=0.006)
    assert [float(v) for v in rows[1]["valid MRR curve"].split(" / ")] == pytest.approx(
        [r["valid"]["mrr"] for r in folder.log], abs=6e-4
    )
    assert (out.parent / "tuning" / "results.csv").is_file()


def _calls_and_seed_loops(source: str) -> tuple[set[str], list[int]]:
    tree = ast.parse(source)
    calls = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            calls.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    seed_loops = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)):
            text = ast.unparse(node.target) + " " + ast.unparse(node.iter)
            if "seed" in text:
                seed_loops.append(getattr(node, "lineno", getattr(node.iter, "lineno", 0)))
    return calls, seed_loops


@pytest.mark.parametrize("script", EXPERIMENTS)
def test_benchmarks_hold_no_training_or_seed_loop(script):
    calls, seed_loops = _calls_and_seed_loops((ROOT / "benchmarks" / script).read_text())
    assert calls & TRAINING_CALLS == set() and seed_loops == []


def test_the_loop_finder_finds_them():
    calls, loops = _calls_and_seed_loops("for seed in args.seeds:\n    run(spec, out)\nx = [train(s) for s in seeds]\n")
    assert "run" in calls and loops == [1, 3]
