"""``afme tune``: a search on validation that finds better settings than a poor one, continues
where it stopped (also after a kill), shares one study between workers, writes a best.yaml that
trains the best trial again to the same number, and refuses a bad spec in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from afme_lib.interfaces.cli import main

optuna = pytest.importorskip("optuna")

from afme_lib.experiments.run import run  # noqa: E402
from afme_lib.experiments.spec import RunSpec  # noqa: E402
from afme_lib.experiments.tuning import (  # noqa: E402
    STUDY_NAME,
    TuneSpec,
    load_study,
    open_or_tune,
    read_best,
    tune,
)

# TransE on the tiny preset: a trial takes about a second, so a study of several is a test.
BASE = {"model": "transe", "dim": 32, "epochs": 10, "eval_every": 5, "batch_size": 128, "seed": 0, "progress": False}
SEARCH = {"space": {"lr": {"log": [1.0e-4, 1.0e-1]}}, "objective": "mrr", "trials": 4, "pruner": "none", "seed": 0}


def write_spec(folder: Path, dataset: Path, search: dict | None = None, **fields) -> Path:
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(dataset), **BASE, **fields, "search": search or SEARCH}))
    return path


def states(out: Path) -> list[str]:
    return [t.state.name for t in load_study(out).get_trials(deepcopy=False)]


def mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*/metrics.json")}


def test_the_search_beats_a_poor_setting_and_best_yaml_trains_it_again(tiny_synth, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_synth, {**SEARCH, "trials": 6})
    out = tmp_path / "study"
    assert main(["tune", str(spec), "--trials", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\ntrial ") + printed.startswith("trial ") == 6, printed

    table = (out / "trials.csv").read_text().splitlines()
    header = table[0].split(",")
    assert len(table) == 7 and "value" in header and "params_lr" in header
    assert states(out) == ["COMPLETE"] * 6

    # a poor corner of the same space, trained as a plain run with the same budget
    poor = run(RunSpec.from_fields({"dataset": str(tiny_synth), **BASE, "lr": 1.0e-4}), tmp_path / "poor")
    best_text = (out / "best.yaml").read_text()
    assert best_text.startswith(f"# afme tune {spec} --trials 6 --out {out}\n")
    study = load_study(out)
    assert study.best_value > poor.metrics["valid"]["mrr"] + 0.02

    # best.yaml is a complete run spec: training it again gives the best trial's number exactly
    fields = read_best(out)
    assert fields["lr"] == study.best_params["lr"] and fields["progress"] is False
    assert main(["train", "--config", str(out / "best.yaml"), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["valid"]["mrr"] == study.best_value
    # the trials never read test; the plain run does
    trial_metrics = json.loads(Path(study.best_trial.user_attrs["run_dir"], "metrics.json").read_text())
    assert trial_metrics["test"] is None and again["test"]["mrr"] > 0

    page = (out / "README.md").read_text()
    assert f"**{study.best_value:.4f}**" in page and "test is not read" in page
    assert (out / "figures" / "history.html").is_file()


def test_rerunning_continues_the_study_without_redoing_finished_trials(tiny_synth, tmp_path):
    spec = write_spec(tmp_path, tiny_synth)
    out = tmp_path / "study"
    tune(spec, out, trials=2)
    first = mtimes(out)
    assert sorted(first) == ["trial-0000", "trial-0001"]
    tune(spec, out, trials=4)
    assert states(out) == ["COMPLETE"] * 4
    after = mtimes(out)
    assert {k: after[k] for k in first} == first  # finished trials untouched
    params = [t.params["lr"] for t in load_study(out).trials]
    assert len(set(params)) == 4
    # opened without trials, a study folder runs nothing and reads its own spec
    opened = open_or_tune(out)
    assert len(opened.study.trials) == 4 and opened.spec.base == TuneSpec.from_yaml(spec).base
    assert mtimes(out) == after


def test_a_killed_search_resumes_its_interrupted_trial_from_its_folder(tiny_synth, tmp_path):
    # AFME's epochs are slow enough to stop a trial in the middle of its run
    spec = write_spec(tmp_path, tiny_synth, {**SEARCH, "trials": 3}, model="afme", epochs=8, eval_every=4)
    out = tmp_path / "study"
    proc = subprocess.Popen(
        [sys.executable, "-m", "afme_lib.interfaces.cli", "tune", str(spec), "--trials", "3", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    interrupted = out / "trials" / "trial-0001" / "log.jsonl"
    deadline = time.monotonic() + 240
    while not (interrupted.is_file() and interrupted.read_text().count("\n") >= 2):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the second trial did not start in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = mtimes(out)
    assert list(done_before) == ["trial-0000"] and not (interrupted.parent / "metrics.json").exists()
    epochs_before = interrupted.read_text().count("\n")

    tune(spec, out)  # the spec's own budget: 3
    trials = load_study(out).get_trials(deepcopy=False)
    assert [t.state.name for t in trials].count("COMPLETE") == 3
    killed = trials[1]
    assert killed.state.name == "FAIL"
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 1)
    assert retry.params == killed.params and retry.user_attrs["run_dir"] == str(interrupted.parent)
    assert {k: mtimes(out)[k] for k in done_before} == done_before
    # the retry continued the folder: its log keeps the epochs trained before the kill
    epochs = [json.loads(line)["epoch"] for line in interrupted.read_text().splitlines()]
    assert epochs[:epochs_before] == list(range(1, epochs_before + 1)) and epochs[-1] == 8


def test_two_workers_share_one_study_without_running_a_trial_twice(tiny_synth, tmp_path):
    spec = write_spec(tmp_path, tiny_synth)
    out = tmp_path / "study"
    tune(spec, out, trials=4, workers=2)
    trials = load_study(out).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    # two workers may each start a trial when one is left: the budget is met, at most one over
    assert 4 <= len(complete) <= 5 and len(complete) == len(trials)
    folders = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(folders)) == len(folders)
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2  # both did work
    for folder in folders:  # each folder trained once: one line per epoch
        epochs = [json.loads(line)["epoch"] for line in Path(folder, "log.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, 11))
    # the workers start together: seeded alike they would propose the same point and train it twice
    first = sorted(trials, key=lambda t: t.datetime_start)[:2]
    assert first[0].params != first[1].params


def test_a_different_spec_in_the_same_study_is_refused(tiny_synth, tmp_path, capsys):
    spec = write_spec(tmp_path, tiny_synth)
    out = tmp_path / "study"
    tune(spec, out, trials=1)
    (tmp_path / "other").mkdir()
    other = write_spec(tmp_path / "other", tiny_synth, dim=16)
    assert main(["tune", str(other), "--trials", "2", "--out", str(out)]) == 2
    assert "holds a study of another tune spec" in capsys.readouterr().err
    assert len(load_study(out).trials) == 1


def test_a_pruner_stops_trials_that_trail_at_the_same_epoch(tiny_synth, tmp_path):
    search = {**SEARCH, "pruner": "median", "trials": 8}
    spec = write_spec(tmp_path, tiny_synth, search, epochs=6, eval_every=2)
    out = tmp_path / "study"
    tune(spec, out)
    trials = load_study(out).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, [(t.state.name, t.params) for t in trials]
    for trial in pruned:
        log = Path(trial.user_attrs["run_dir"], "log.jsonl").read_text().splitlines()
        last = json.loads(log[-1])
        assert last["pruned"] is True and last["epoch"] < 6
        # what the pruner saw is what the run validated
        assert max(trial.intermediate_values) == last["epoch"]
        assert trial.intermediate_values[last["epoch"]] == pytest.approx(last["valid"]["mrr"])
    # the page's history shows the pruned trials beside the complete ones
    from afme_lib.experiments.pages.tuning import history_figure

    traces = {t.name: t for t in history_figure(load_study(out)).data}
    assert list(traces["pruned"].x) == [t.number for t in pruned]
    assert max(traces["best so far"].y) == load_study(out).best_value


def test_a_slice_objective_reads_that_slice_of_validation(tiny_synth, tmp_path):
    search = {**SEARCH, "objective": "by_side/tail/hits@10", "trials": 2}
    out = tmp_path / "study"
    tune(write_spec(tmp_path, tiny_synth, search), out)
    study = load_study(out)
    for trial in study.trials:
        valid = json.loads(Path(trial.user_attrs["run_dir"], "metrics.json").read_text())["valid"]
        assert trial.value == valid["by_side"]["tail"]["hits@10"]


@pytest.mark.parametrize(
    ("search", "fields", "message"),
    [
        (
            {"space": {"dropuot": {"uniform": [0, 0.5]}}},
            {},
            "search.space.dropuot is not a run-spec field (did you mean",
        ),
        ({"space": {"lr": {"log": [1e-1, 1e-4]}}}, {}, "search.space.lr is an empty or inverted range"),
        ({"space": {"lr": {"uniform": [0.1, 0.1]}}}, {}, "search.space.lr is an empty or inverted range"),
        ({"space": {"dim": {"choices": []}}}, {}, "search.space.dim has no choices"),
        ({"space": {"lr": {"log": [0, 1e-1]}}}, {}, "search.space.lr log needs a positive low bound"),
        ({"space": {"lr": {"between": [0, 1]}}}, {}, "search.space.lr must name one of log, uniform, int, choices"),
        ({"space": {"model": {"choices": ["rotate", "afme"]}}}, {}, "search.space.model cannot be searched"),
        ({"space": {"lr": {"log": [1e-4, 1e-1]}}, "objective": "mmr"}, {}, "no run records 'mmr' (did you mean"),
        ({"space": {"lr": {"log": [1e-4, 1e-1]}}, "objective": "test/mrr"}, {}, "reads the test split"),
        ({"space": {"lr": {"log": [1e-4, 1e-1]}}, "objective": "by_group/nowhere/mrr"}, {}, "no slice 'nowhere'"),
        ({"space": {"lr": {"log": [1e-4, 1e-1]}}, "pruner": "hyperband"}, {}, "search.pruner must be one of"),
        ({"space": {"lr": {"log": [1e-4, 1e-1]}}, "trails": 3}, {}, "search.trails is not a search setting"),
        ({"space": {"dim": {"int": [0, 64]}}}, {}, "dim"),  # a value its field refuses, named before any trial
        ({"space": {"lr": {"log": [1e-4, 1e-1]}}}, {"eval_every": 0}, "eval_every must be > 0 for a pruner"),
    ],
)
def test_a_bad_spec_is_one_line_naming_the_file_and_field(tiny_synth, tmp_path, capsys, search, fields, message):
    spec = write_spec(tmp_path, tiny_synth, search, **fields)
    assert main(["tune", str(spec), "--trials", "2", "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert err.startswith(f"afme: error: {spec}: ") and err.count("\n") == 1, err
    assert not (tmp_path / "study").exists()  # refused before anything is written


def test_a_run_spec_without_a_search_block_is_refused(tiny_synth, tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump({"dataset": str(tiny_synth), **BASE}))
    with pytest.raises(Exception, match="search is missing"):
        TuneSpec.from_yaml(path)


def test_the_study_is_named_in_its_storage(tiny_synth, tmp_path):
    out = tmp_path / "study"
    tune(write_spec(tmp_path, tiny_synth, {**SEARCH, "trials": 1}), out)
    assert optuna.study.get_all_study_names(f"sqlite:///{out / 'study.db'}") == [STUDY_NAME]
