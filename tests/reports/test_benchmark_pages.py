"""The reproduction and tuning pages (afme_lib/reports/reproduction.py) through their entry points
on the tiny synthetic preset, and the rule that ``benchmarks/`` holds no training or seed loop of
its own: each former benchmark is a grid file plus a page function."""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import reproduce_baselines  # noqa: E402
import tune_baselines  # noqa: E402

from afme_lib.grid import read_results  # noqa: E402
from afme_lib.runs import RunFolder  # noqa: E402

# The experiment scripts: parse flags -> run a grid -> write a page. (speed_*.py and gpu_figures.py
# time epochs of the engine: measurements, not experiments.)
EXPERIMENTS = ("text_features_gain.py", "reproduce_baselines.py", "tune_baselines.py", "hygiene_report.py",
               "main_job_seeds.py")
TRAINING_CALLS = {"Trainer", "train_run", "run_or_resume", "resume_run", "train_or_reuse", "notebook_run", "fit",
                  "train_epoch"}


@pytest.fixture
def tiny_home(tiny_synth, tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data / "tiny")
    monkeypatch.chdir(data)  # a dataset folder given by name resolves against the working directory
    return data


def test_reproduction_page_from_the_grid_results(tiny_home, tmp_path):
    out, runs = tmp_path / "report", tmp_path / "runs"
    common = ["--datasets", "tiny", "--models", "distmult", "rotate", "--epochs", "1", "--eval-every", "1",
              "--data-dir", str(tiny_home), "--runs", str(runs), "--out", str(out)]
    assert reproduce_baselines.main([*common, "--report-only"]) == 0  # nothing trained yet
    page = (out / "README.md").read_text()
    assert "| tiny | distmult | not run yet | | | | | | | |" in page and not runs.exists()

    assert reproduce_baselines.main(common) == 0
    results = read_results(out)
    assert sorted(p.name for p in runs.iterdir()) == ["tiny-distmult", "tiny-rotate"]
    assert RunFolder(runs / "tiny-distmult").config.train.loss == "softplus"  # DistMult's own recipe
    assert RunFolder(runs / "tiny-distmult").config.model.dim == 250  # the grid file's width
    page = (out / "README.md").read_text()
    assert page.splitlines()[2] == ("Command: `python benchmarks/reproduce_baselines.py --datasets tiny --models "
                                    "distmult rotate --epochs 1 --lr 0.001 --eval-every 1 --patience 3` (runs are "
                                    "resumable and reused; `--report-only` rebuilds this table from finished runs).")
    for _, row in results.iterrows():
        metrics = RunFolder(row["run_dir"]).metrics
        t = metrics["test"]
        assert (f"| tiny | {row['model']} | {100 * t['mrr']:.2f} | {100 * t['hits@1']:.2f} | {100 * t['hits@10']:.2f} "
                f"| – | – | – | 1 | {metrics['train_seconds']:.1f} |") in page
    random = results.iloc[0]
    assert (f"| tiny | random ranking | {100 * random['random_mrr']:.2f} | {100 * random['random_hits@1']:.2f} | "
            f"{100 * random['random_hits@10']:.2f} | | | | | |") in page

    reading = "## Reading\n- by hand\n"
    (out / "README.md").write_text(page + "\n" + reading)
    assert reproduce_baselines.main([*common, "--report-only"]) == 0
    assert (out / "README.md").read_text() == page + "\n" + reading


def test_tuning_page_lists_every_finished_variant(tiny_home, tmp_path):
    out, runs = tmp_path / "report" / "tuning.md", tmp_path / "runs"
    common = ["--dataset", "tiny", "--models", "distmult", "--epochs", "2", "--eval-every", "1",
              "--data-dir", str(tiny_home), "--runs", str(runs), "--out", str(out)]
    assert tune_baselines.main([*common, "--variants", "softplus-n3-1e-2"]) == 0
    assert tune_baselines.main([*common, "--variants", "1vsall-lr-1e-2"]) == 0  # a sweep grows over calls
    page = out.read_text()
    rows = [line for line in page.splitlines() if line.startswith("| distmult |")]
    assert [r.split(" | ")[1] for r in rows] == ["softplus-n3-1e-2", "1vsall-lr-1e-2"]
    assert rows[1].split(" | ")[2] == "loss 1vsall, lr 0.01"
    folder = RunFolder(runs / "tiny-distmult-1vsall-lr-1e-2")
    config, metrics = folder.config, folder.metrics
    assert (config.train.loss, config.train.lr, config.train.regularization) == ("1vsall", 0.01, 1e-3)
    curve = " / ".join(f"{r['valid']['mrr']:.3f}" for r in folder.log)
    assert rows[1].endswith(f"| {100 * metrics['valid']['mrr']:.2f} | {metrics['best_epoch']} | "
                            f"{100 * metrics['test']['mrr']:.2f} | {100 * metrics['test']['hits@1']:.2f} | "
                            f"{100 * metrics['test']['hits@10']:.2f} | – | 2 | "
                            f"{metrics['train_seconds'] / 2:.1f} | {curve} |")
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
    calls, loops = _calls_and_seed_loops("for seed in args.seeds:\n    run_or_resume(d, m, t, out)\n"
                                         "x = [train(s) for s in seeds]\n")
    assert "run_or_resume" in calls and loops == [1, 3]
