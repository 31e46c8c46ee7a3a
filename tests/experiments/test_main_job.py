"""The README's main job on the tiny preset (one epoch): report sections, the slice table against
the oracle module, resumability. The unit suite writes the report without the notebooks; the
notebook stage (AFME_NB_QUICK=1, scripts/test.sh) executes them too."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from afme_lib.analysis import slices
from afme_lib.core import ablations
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import read_metadata
from afme_lib.data.synthetic_oracle import mrr_by_label, oracle_summary, slice_labels
from afme_lib.engine.evaluation import evaluate, random_baseline
from afme_lib.experiments import main_job, selection
from afme_lib.experiments.run import cache_folder, load_trainer
from afme_lib.experiments.spec import FIELDS, RunSpec

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = [
    "## Reading",
    "## Notebooks",
    "## Test MRR (%) by slice",
    "## Each ablation on the slice built to need it",
    "## AFME's modality weights against the truth",
    "## The claims on this seed",
    "## The claims over seeds",
    "## Time",
]


def _args(tmp: Path, *extra: str) -> list[str]:
    return [
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--dim",
        "8",
        "--out",
        str(tmp / "out"),
        "--runs-root",
        str(tmp / "runs"),
        "--data-root",
        str(tmp / "data"),
        *extra,
    ]


def _table(report: str, heading: str) -> dict[str, list[str]]:
    """The Markdown table under ``heading``: {first cell: the other cells}, header row under ""."""
    block = report.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in block.splitlines() if line.startswith("| ")]
    return {"" if i == 0 else r[0].strip(): [c.strip() for c in r[1:]] for i, r in enumerate(rows)}


def _runs(tmp: Path) -> dict[str, str]:
    return {p.name: (p / "log.jsonl").read_text() for p in sorted((tmp / "runs").iterdir())}


def test_main_job_report_from_the_runs_and_a_second_call_retrains_nothing(tmp_path, capsys):
    assert main_job.main(_args(tmp_path, "--workers", "1", "--no-notebooks")) == 0
    report = (tmp_path / "out" / "README.md").read_text()
    assert [line for line in report.splitlines() if line.startswith("## ")] == SECTIONS
    runs = _runs(tmp_path)
    assert len(runs) == len(main_job.BASELINES) + len(ablations.NAMES)  # one run per model and variant

    table = _table(report, "## Test MRR (%) by slice")
    columns = table[""][:]
    assert columns[:2] == ["all", "warm/structural"] and "cold/attribute/missing" in columns
    assert list(table)[1:] == [
        *main_job.BASELINES,
        "afme",
        *list(ablations.ABLATIONS),
        "rule oracle",
        "feature oracle",
        "random ranking",
        "queries",
    ]
    data = tmp_path / "data" / "synth-tiny-seed0"
    ds, meta = load_dataset(data), read_metadata(data)
    summary = oracle_summary(ds, FeatureStore.load(data, ds.num_entities), meta)
    for row, want in (("rule oracle", summary["rule"]), ("feature oracle", summary["features"]["all"])):
        for label, value in want.items():
            shown = table[row][columns.index(label)]
            assert (shown == "–") if np.isnan(value) else float(shown) == pytest.approx(100 * value, abs=0.006)
    training = {**main_job.TRAINING, "epochs": 1, "dim": 8}
    specs = main_job.run_specs(str(data), 0, training)
    for name in ("afme", "w/o GAN"):  # their rows, recomputed from the run folders
        trainer = load_trainer(cache_folder(specs[name].resolve(), tmp_path / "runs"))
        assert trainer.model_cfg.gan is (name == "afme")
        ranks = evaluate(trainer.model, ds, "test", filter_index=trainer.filter_index, return_ranks=True)["ranks"]
        for label, value in mrr_by_label(ranks, slice_labels(ds, meta)).items():
            assert float(table[name][columns.index(label)]) == pytest.approx(100 * value, abs=0.006)
    assert table["queries"][columns.index("all")] == str(2 * len(ds.test))
    for label, mask in slices.slice_masks(ds, meta).items():  # the random ranking of each slice's own triples
        assert float(table["random ranking"][columns.index(label)]) == pytest.approx(
            100 * random_baseline(ds, "test", triples_mask=mask)["mrr"], abs=0.006
        )

    ablation = _table(report, "## Each ablation on the slice built to need it")
    assert {k: v[0] for k, v in ablation.items() if k} == {k: a.slice for k, a in ablations.ABLATIONS.items()}
    claims = _table(report, "## The claims on this seed")
    assert len(claims) == 1 + 4 + len(ablations.ABLATIONS)  # oracle, RotatE, best feature reader, AUC
    assert all(v[-1] in ("met", "**not met**") for k, v in claims.items() if k)
    assert re.search(r"AFME reaches \d+\.\d % MRR", report)  # the reading quotes the numbers

    capsys.readouterr()
    assert main_job.main(_args(tmp_path, "--workers", "1", "--no-notebooks")) == 0
    assert _runs(tmp_path) == runs  # the same folders, their logs untouched: nothing retrained
    again = (tmp_path / "out" / "README.md").read_text()
    n = len(main_job.BASELINES) + len(ablations.NAMES)
    assert f"| training {n} of the {n} runs, 1 at a time |" in report  # the call that trained them
    assert f"| training: none, all {n} runs reused (their own times, summed over runs) |" in again
    assert again.split("## Time")[0].split("## Reading")[1] == report.split("## Time")[0].split("## Reading")[1]


@pytest.mark.skipif(
    os.environ.get("AFME_NB_QUICK", "").strip().lower() not in ("1", "true", "yes", "on"),
    reason="executes the five notebooks (~1-2 min); scripts/test.sh runs it in its notebook stage",
)
def test_main_job_executes_the_notebooks_once(tmp_path, capsys):
    assert main_job.main(_args(tmp_path, "--workers", "2")) == 0
    out = tmp_path / "out"
    for name in main_job.NOTEBOOKS:
        assert (out / f"{name}.ipynb").is_file() and (out / f"{name}.html").stat().st_size > 10_000
    runs = _runs(tmp_path)
    assert len(runs) == len(main_job.BASELINES) + len(ablations.NAMES)  # the notebooks trained nothing else
    assert (out / "figures" / "04_modality_contributions" / "modality_weights.html").is_file()
    capsys.readouterr()
    assert main_job.main(_args(tmp_path, "--workers", "2")) == 0
    printed = capsys.readouterr().out
    assert all(f"{name}: unchanged, kept" in printed for name in main_job.NOTEBOOKS)
    assert _runs(tmp_path) == runs
    assert "| 02_training | [02_training.ipynb](02_training.ipynb) |" in (out / "README.md").read_text()


def test_seeds_benchmark_checks_every_claim_per_seed(tmp_path):
    """benchmarks/main_job_seeds.py on tiny, two seeds of one epoch: every claim, every seed, met or not."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "main_job_seeds", Path(__file__).resolve().parents[2] / "benchmarks" / "main_job_seeds.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "seeds.md"
    assert (
        script.main(
            [
                "--preset",
                "tiny",
                "--seeds",
                "0",
                "1",
                "--epochs",
                "1",
                "--dim",
                "8",
                "--workers",
                "1",
                "--runs-root",
                str(tmp_path / "runs"),
                "--data-root",
                str(tmp_path / "data"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    page = out.read_text()
    verdicts = _table(page, "# The main job's claims over seeds")
    assert verdicts[""] == ["seeds met", "mean margin ± s.e.", "holds"]
    assert len(verdicts) == 1 + 4 + len(ablations.ABLATIONS)
    per_seed = _table(page, "## Each seed")
    assert per_seed[""] == ["seed 0", "seed 1"] and list(per_seed) == list(verdicts)
    for text, (met_on, margin, holds) in list(verdicts.items())[1:]:
        results = [c.rsplit(": ", 1)[1] for c in per_seed[text]]
        assert set(results) <= {"met", "**not met**"}
        assert met_on == f"{results.count('met')} of 2"
        mean, se = (float(x) for x in margin.split(" ± "))
        assert holds == ("holds" if results == ["met", "met"] and mean > 2 * se else "**does not hold**")
    held = sum(cells[2] == "holds" for cells in list(verdicts.values())[1:])
    assert f"**{held} of {len(verdicts) - 1} claims hold** over seeds 0, 1." in page
    slice_rows = _table(page, "## Test MRR (%) by slice, mean ± std over 2 seeds")
    assert slice_rows[""][0] == "cold/attribute" and re.fullmatch(r"\d+\.\d+ ± \d+\.\d+", slice_rows["afme"][0])
    assert len(list((tmp_path / "data").iterdir())) == 2  # a graph per seed
    assert "## Time" in page and "runs took" in page

    # the JSON beside the page is what the main job's page shows over seeds
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["seeds"] == [0, 1] and summary["preset"] == "tiny" and summary["split"] == "test"
    assert [c["text"] for c in summary["claims"]] == list(verdicts)[1:]
    assert [f"{c['met_on']} of 2" for c in summary["claims"]] == [v[0] for v in list(verdicts.values())[1:]]
    assert summary["runs"] == 2 * (len(main_job.BASELINES) + len(ablations.NAMES))
    judged_at = {**main_job.TRAINING, "epochs": 1, "dim": 8}
    assert summary["settings"] == main_job.settings_text(judged_at)
    lines = main_job.over_seeds_lines(tmp_path, judged_at)
    shown = _table("\n".join(lines), "## The claims over seeds")
    assert shown["[seeds.md](seeds.md)"][3] == f"{held} of {len(verdicts) - 1}"
    assert shown["[seeds.md](seeds.md)"][6] == "this page's" and "judged at other settings" not in "\n".join(lines)
    assert shown[list(verdicts)[1]] == [f"{verdicts[list(verdicts)[1]][0]} seeds, {verdicts[list(verdicts)[1]][2]}"]
    # a page whose runs had other settings than the page that shows it is said to be so
    other = "\n".join(main_job.over_seeds_lines(tmp_path, main_job.TRAINING))
    assert "| **other than this page's** |" in other
    assert "**seeds.md was judged at other settings than this page's**" in other


def test_the_main_page_lists_the_diagnosis_pages_with_the_claim_they_are_read_for(tmp_path):
    assert main_job.diagnosis_lines(tmp_path) == []  # none: no section
    folder = tmp_path / main_job.DIAGNOSIS
    folder.mkdir()
    claims = [
        {"text": main_job.DIAGNOSED_CLAIM, "met_on": 1, "mean": -3.5, "standard_error": 1.25, "holds": False},
        {"text": "weight–truth AUC ≥ 0.9", "met_on": 3, "mean": 0.08, "standard_error": 0.01, "holds": True},
    ]
    summary = {"preset": "missing", "split": "valid", "seeds": [0, 1, 2], "claims": claims, "command": "cmd"}
    (folder / "missing-valid.json").write_text(json.dumps(summary))
    (folder / "margin.json").write_text(json.dumps({"not": "a seeds page"}))
    table = _table("\n".join(main_job.diagnosis_lines(tmp_path)), "Diagnosis:")
    assert table[""][0] == "configuration"
    assert table["[diagnosis/missing-valid.md](diagnosis/missing-valid.md)"] == [
        "`missing`",
        "valid",
        "0, 1, 2",
        "1 of 2",
        "-3.50 ± 1.25",
        "`cmd`",
    ]
    assert len(table) == 2  # the other JSON is not a seeds page


def test_the_main_page_says_when_the_claims_were_not_judged_over_seeds(tmp_path):
    assert "Not judged yet" in "\n".join(main_job.over_seeds_lines(tmp_path, main_job.TRAINING))
    assert main_job.seeds_page_name("default") == "seeds.md"
    assert main_job.seeds_page_name("held-out", "valid") == "seeds-held-out-valid.md"


def _benchmark(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_selection_benchmark_reads_only_validation_and_refuses_the_claim_seeds(tmp_path, capsys):
    script = _benchmark("main_job_selection")
    common = ["--preset", "tiny", "--epochs", "1", "--dim", "8", "--workers", "1"]
    common += ["--runs-root", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data")]
    out = tmp_path / "page.md"
    argv = ["--field", "structure_shuffle", "--values", "0.0", "0.5", "--seeds", "0", *common, "--out", str(out)]
    assert script.main(argv) == 0
    page = out.read_text()
    table = _table(page, "# `structure_shuffle` of afme")
    assert table[""][0] == "cold/attribute" and table[""][-1] == "all"
    assert list(table)[1:] == ["0.0", "0.5", "queries (first seed)"]
    assert all(re.fullmatch(r"\d+\.\d+ ± n/a", cell) for cell in table["0.5"])
    specs = [json.loads((p / "config.json").read_text()) for p in (tmp_path / "runs").iterdir() if p.name != "data"]
    assert sorted(s["model"]["structure_shuffle"] for s in specs) == [0.0, 0.5]
    # the query counts are the validation split's, never the test split's
    ds = load_dataset(next((tmp_path / "data").iterdir()))
    assert int(table["queries (first seed)"][-1]) == 2 * len(ds.valid)
    with pytest.raises(SystemExit):
        script.main(["--field", "dim", "--values", "8", "--seeds", str(main_job.CLAIM_SEEDS[0]), *common])
    assert "claim seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--model", "transe", "--seeds", "0", *common])  # no declared grid: say what to give
    assert "no declared grid" in capsys.readouterr().err


def test_selection_benchmark_runs_a_models_declared_grid_and_names_its_choice(tmp_path):
    script = _benchmark("main_job_selection")
    out = tmp_path / "page.md"
    argv = ["--model", "rotate", "--preset", "tiny", "--epochs", "1", "--dim", "8", "--workers", "1"]
    argv += ["--seeds", "0", "1", "--runs-root", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data")]
    assert script.main([*argv, "--out", str(out)]) == 0
    field, values = selection.GRID["rotate"]
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert sorted(frame["value"]) == sorted(list(values) * 2) and set(frame["seed"]) == {0, 1}
    means = frame.groupby("value")[selection.CRITERION].mean()
    assert selection.chosen(frame) == means.idxmax()
    assert f"**{field} {means.idxmax()}**" in out.read_text()
    configs = [json.loads((p / "config.json").read_text()) for p in (tmp_path / "runs").iterdir()]
    assert sorted(c["train"]["lr"] for c in configs) == sorted(list(values) * 2)


def test_every_main_job_model_gets_the_same_budget_and_trains_at_its_choice():
    """The committed selection CSVs: one per model of the main job, the same number of values and
    seeds for each, and the value each picks is the one the main job trains with."""
    assert set(selection.GRID) == {*main_job.BASELINES, "afme"}
    for model, (field, values) in selection.GRID.items():
        assert len(values) == selection.VALUES_PER_MODEL
        frame = pd.read_csv(ROOT / selection.csv_path(model, field))
        assert sorted(frame["value"]) == sorted(list(values) * len(selection.SEEDS)), model
        assert sorted(set(frame["seed"])) == list(selection.SEEDS), model
        assert selection.chosen(frame) == pytest.approx(selection.setting_in_use(model, field)), model


def test_every_recheck_has_the_grids_size_and_the_main_job_trains_at_its_choice():
    """The AFME settings first set on test slices, checked on validation: each committed CSV has the
    grid's number of values and seeds, and the main job trains with the value it picks."""
    for (model, field), values in selection.RECHECKS.items():
        assert len(values) == selection.VALUES_PER_MODEL
        assert any(v == pytest.approx(selection.setting_in_use("afme", field)) for v in values), field
        frame = pd.read_csv(ROOT / selection.csv_path(model, field))
        assert sorted(frame["value"]) == sorted(list(values) * len(selection.SEEDS)), field
        assert sorted(set(frame["seed"])) == list(selection.SEEDS), field
        assert selection.chosen(frame) == pytest.approx(selection.setting_in_use(model, field)), field


def test_every_shared_recheck_covers_every_model_and_the_main_job_trains_at_each_choice():
    """A shared setting (TRAINING's) checked on validation for every model of the main job alike:
    one committed CSV per model with the grid's number of values and seeds, and each model trains
    with the value its CSV picks (TRAINING's, or its own in MODEL_SETTINGS)."""
    for field, values in selection.SHARED_RECHECKS.items():
        assert len(values) == selection.VALUES_PER_MODEL and main_job.TRAINING[field] in values
        for model in selection.GRID:
            assert selection.declared_values(model, field) == values
            frame = pd.read_csv(ROOT / selection.csv_path(model, field))
            assert sorted(frame["value"]) == sorted(list(values) * len(selection.SEEDS)), (model, field)
            assert sorted(set(frame["seed"])) == list(selection.SEEDS), (model, field)
            pending = main_job.PENDING_SETTINGS.get(model, {})
            if field in pending:  # chosen, declared as not yet trained with, and named on the page
                assert selection.chosen(frame) == pytest.approx(pending[field]), (model, field)
                assert pending[field] != selection.setting_in_use(model, field), (model, field)
            else:
                assert selection.chosen(frame) == pytest.approx(selection.setting_in_use(model, field)), (model, field)


def test_a_models_own_shared_setting_holds_unless_the_caller_changes_it_for_every_model(monkeypatch):
    monkeypatch.setattr(main_job, "MODEL_SETTINGS", {"afme": {"dim": 128, "cross_check_margin": 1.5}, "rotate": {}})
    at_main = main_job.model_spec("afme", "synth:tiny", 0, main_job.TRAINING).fields()
    assert (at_main["dim"], at_main["cross_check_margin"]) == (128, 1.5)
    assert main_job.model_spec("rotate", "synth:tiny", 0, main_job.TRAINING).fields()["dim"] == main_job.TRAINING["dim"]
    quick = {**main_job.TRAINING, "dim": 8}  # `afme main-job --dim 8`: every model at 8
    fields = main_job.model_spec("afme", "synth:tiny", 0, quick).fields()
    assert (fields["dim"], fields["cross_check_margin"]) == (8, 1.5)  # the margin is AFME's own still
    assert "afme: dim 128, cross_check_margin 1.5" in main_job.settings_text(main_job.TRAINING)
    assert "afme: cross_check_margin 1.5" in main_job.settings_text(quick) and "dim 128" not in main_job.settings_text(
        quick
    )
    params = main_job.notebook_parameters("02_training", "synth:tiny", 0, quick, Path("runs"), Path("out"), 1)
    assert params["dim"] == 8


def test_the_page_names_the_choices_not_yet_trained_with(monkeypatch):
    monkeypatch.setattr(main_job, "PENDING_SETTINGS", {"afme": {"dim": 128}, "ikrl": {"dim": 48}})
    (line, blank) = main_job.pending_lines()
    assert "afme: dim 128; ikrl: dim 48" in line and "selection.md" in line and blank == ""
    monkeypatch.setattr(main_job, "PENDING_SETTINGS", {})
    assert main_job.pending_lines() == []


def test_declared_values_name_the_grid_the_rechecks_and_nothing_else():
    assert selection.declared_values("native", "structure_shuffle") == selection.SHUFFLES
    assert selection.declared_values("afme", "cross_check_margin") == selection.RECHECKS["afme", "cross_check_margin"]
    assert selection.declared_values("native", "cross_check_margin") is None  # AFME's recheck only
    assert selection.declared_values("rotate", "dim") == selection.SHARED_RECHECKS["dim"]
    assert selection.declared_values("transe", "dim") is None  # not a model of the main job
    assert selection.declared_values("rotate", "negatives") is None


def test_the_setting_in_use_is_the_main_jobs_spec_field():
    assert selection.setting_in_use("rotate", "lr") == main_job.MODEL_SETTINGS["rotate"]["lr"]
    assert selection.setting_in_use("native", "dim") == main_job.TRAINING["dim"]
    assert selection.setting_in_use("afme", "dim") == main_job.MODEL_SETTINGS["afme"]["dim"]
    assert selection.setting_in_use("ikrl", "structure_shuffle") == 0.0  # left to IKRL: its default
    assert selection.setting_in_use("afme", "structure_shuffle") == 0.4
    assert selection.setting_in_use("native", "lambda_adv") == 1e-4  # NATIVE's recipe


def test_a_notebook_waits_for_exactly_the_runs_it_reads():
    """Notebooks start while the rest trains, but never before their runs are finished (a notebook
    that found its run missing would train it itself, beside the worker training it)."""
    waiting = list(main_job.NOTEBOOKS)
    assert main_job.next_notebook(waiting, set(), False) == "01_data_exploration"
    waiting.remove("01_data_exploration")
    assert main_job.next_notebook(waiting, set(), False) is None
    assert main_job.next_notebook(waiting, {"afme"}, False) == "04_modality_contributions"
    assert main_job.next_notebook(["02_training"], {"afme", "rotate", "mm-concat"}, False) is None  # and NATIVE, IKRL
    assert main_job.next_notebook(waiting, {"afme", *main_job.BASELINES}, False) == "02_training"
    every = set(main_job.run_specs("data", 0, main_job.TRAINING))
    # 03 and 05 read ablations: they wait for the whole training, even with every run listed finished
    assert main_job.next_notebook(["03_ablations", "05_robustness"], every, False) is None
    assert main_job.next_notebook(["03_ablations", "05_robustness"], set(), True) == "03_ablations"
    assert set(main_job.NOTEBOOK_NEEDS) == set(main_job.NOTEBOOKS)
    for needs in main_job.NOTEBOOK_NEEDS.values():
        assert needs is None or set(needs) <= every


def test_notebook_02s_baselines_are_the_main_jobs_runs(tmp_path):
    """Notebook 02 derives each baseline from AFME's spec (comparisons.model_runs); each must land
    on the main job's run of that model, recipe included (NATIVE's adversarial weights are not
    AFME's), or the notebook would train it a second time."""
    from afme_lib.experiments.spec import synthetic_folder

    data = str(synthetic_folder("tiny", 0, tmp_path))
    training = {**main_job.TRAINING, "epochs": 1, "dim": 8}
    specs = main_job.run_specs(data, 0, training)
    params = main_job.notebook_parameters("02_training", data, 0, training, tmp_path, tmp_path, 1)
    # the notebook's own model is the main job's AFME, its own settings included
    notebook_afme = RunSpec.from_fields({**{k: v for k, v in params.items() if k in FIELDS}, "model": "afme"})
    assert cache_folder(notebook_afme.resolve(), tmp_path) == cache_folder(specs["afme"].resolve(), tmp_path)
    plain = {ablation.switch: True for ablation in ablations.ABLATIONS.values()}
    for name in main_job.BASELINES:
        derived = notebook_afme.for_model(name, **plain, **params["compare_with"][name])
        assert cache_folder(derived.resolve(), tmp_path) == cache_folder(specs[name].resolve(), tmp_path), name
