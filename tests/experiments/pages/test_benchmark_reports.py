"""The benchmark scripts' report pages, on the tiny synthetic preset: every compared model gets its
paired gain against RotatE, and a hand-written reading survives regenerating the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import load_script, markdown_tables, table_row

from afme_lib.data.dataset import load_dataset
from afme_lib.engine.evaluation import random_baseline

pytest.importorskip("transformers")
text_features_gain = load_script("text_features_gain")


def test_text_features_page_pairs_every_model_with_rotate_and_keeps_the_reading(tiny_synth, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data / "tiny")
    monkeypatch.chdir(data)  # a dataset folder given by name resolves against the working directory
    out = tmp_path / "report"
    common = [
        "--datasets",
        "tiny",
        "--extra-features",
        "--structure-only",
        "--data-dir",
        str(data),
        "--features-root",
        str(tmp_path / "features"),
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        "--models",
        "rotate",
        "transe",
        "afme",
        "mmkrl",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--dim",
        "8",
        "--batch-size",
        "512",
        "--negatives",
        "4",
        "--eval-every",
        "1",
        "--device",
        "cpu",
    ]
    assert text_features_gain.main(common) == 0
    page = (out / "README.md").read_text()
    assert page.startswith("# What entity-name text adds: RotatE vs afme / mmkrl")
    tables = markdown_tables(page)
    for pair in ("afme - rotate", "mmkrl - rotate", "mmkrl - transe"):  # MMKRL also against its backbone
        paired = markdown_tables(page.split(f"Paired gain {pair} ")[1])[0]
        assert [(row["dataset"], row["seeds"]) for row in paired] == [("tiny", "1")]  # one paired seed
        float(paired[0]["ΔMRR"])  # a number, filled in
    assert "Paired gain transe" not in page  # TransE is structure only: no gain of its own
    assert (tmp_path / "features" / "tiny" / "tiny-textual.pth").is_file()
    random = random_baseline(load_dataset(data / "tiny"), "test")  # stated below the dataset's rows
    rows = [row for row in tables[1] if row["dataset"] == "tiny"]
    assert [row["model"] for row in rows] == ["rotate", "transe", "afme", "mmkrl", "random ranking"]
    assert float(rows[-1]["MRR"]) == pytest.approx(100 * random["mrr"], abs=0.006)

    reading = "## Reading (by hand)\n- a conclusion a person wrote\n"
    (out / "README.md").write_text(page + "\n" + reading)
    assert text_features_gain.main([*common, "--report-only"]) == 0
    again = (out / "README.md").read_text()
    assert again == page + "\n" + reading  # finished runs reused, the table unchanged, the reading kept once


def test_the_warm_grid_trains_the_feature_models_without_the_cold_entity_protocols(tiny_synth, tmp_path, monkeypatch):
    import json

    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data / "tiny")
    monkeypatch.chdir(data)
    runs = tmp_path / "runs"
    grid = Path(__file__).resolve().parents[3] / "configs" / "text-features-warm.yaml"
    assert (
        text_features_gain.main(
            [
                "--grid",
                str(grid),
                "--datasets",
                "tiny",
                "--extra-features",
                "--structure-only",
                "--data-dir",
                str(data),
                "--features-root",
                str(tmp_path / "features"),
                "--runs",
                str(runs),
                "--out",
                str(tmp_path / "report"),
                "--models",
                "rotate",
                "afme",
                "native",
                "--seeds",
                "0",
                "--epochs",
                "1",
                "--dim",
                "8",
                "--batch-size",
                "512",
                "--negatives",
                "4",
                "--eval-every",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    model = {
        name: json.loads((runs / f"tiny-{name}-d8-e1-s0" / "config.json").read_text())["model"]
        for name in ("afme", "native")
    }
    assert (model["afme"]["structure_dropout"], model["afme"]["structure_shuffle"]) == (0.0, 0.0)
    assert model["native"]["structure_dropout"] == 0.0
    default = text_features_gain.load_grid(text_features_gain.GRID).variants["afme"]
    assert "structure_dropout" not in default  # the main grid keeps the models' defaults


@pytest.mark.filterwarnings("ignore::afme_lib.data.leakage.SplitLeakageWarning")
def test_hygiene_page_tabulates_the_benchmarks_and_compares_original_with_cleaned(tiny_synth, tmp_path):
    hygiene_report = load_script("hygiene_report")
    from afme_lib.data.dataset import load_dataset
    from afme_lib.data.openke import write_triples

    leaky = tmp_path / "tiny"
    shutil.copytree(tiny_synth, leaky)
    data = load_dataset(leaky)
    write_triples(leaky / "test2id.txt", data.test.numpy()[list(range(len(data.test))) + [0]])  # one duplicate row
    write_triples(leaky / "valid2id.txt", data.train.numpy()[:3].tolist() + data.valid.numpy().tolist())
    out = tmp_path / "report"
    common = [
        "--datasets",
        str(leaky),
        "--compare",
        str(leaky),
        "--runs",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        "--models",
        "rotate",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--dim",
        "8",
        "--batch-size",
        "512",
        "--negatives",
        "4",
        "--eval-every",
        "1",
    ]
    assert hygiene_report.main(common) == 0
    page = (out / "README.md").read_text()
    tables = markdown_tables(page)
    hygiene = table_row(tables, dataset="tiny")
    assert hygiene["train rows (distinct)"] == f"{len(data.train)} ({len(data.train)})"
    assert hygiene["dup. rows valid / test"] == "0 / 1"  # the duplicated test row
    assert hygiene["valid rows in train"].startswith("3 (")  # the three valid rows found in train
    n_test = len(data.test)
    for trained_on, scored_on in (
        ("tiny", f"original test ({n_test + 1})"),
        ("tiny", f"cleaned test rows ({n_test})"),
        ("tiny-clean", f"cleaned test ({n_test})"),
    ):
        row = table_row(tables, model="rotate", **{"trained on": trained_on, "scored on": scored_on})
        assert row["seeds"] == "1" and 0 < float(row["test MRR"]) <= 100
    table_row(tables, model="relation popularity (no training)", **{"scored on": f"tiny-clean test ({n_test})"})
    assert (tmp_path / "runs" / "tiny-clean" / "clean-manifest.json").is_file()
    reading = "## Reading\n- by hand\n"
    (out / "README.md").write_text(page + "\n" + reading)
    assert hygiene_report.main(common) == 0  # finished runs reused, the reading kept once
    assert (out / "README.md").read_text() == page + "\n" + reading


@pytest.mark.filterwarnings("ignore::afme_lib.data.leakage.SplitLeakageWarning")
def test_hygiene_comparison_trains_each_model_from_its_own_recipe(tiny_synth, tmp_path):
    hygiene_report = load_script("hygiene_report")
    recipes = tmp_path / "recipes" / "elsewhere"
    recipes.mkdir(parents=True)
    common = {"dim": 8, "batch_size": 512, "negatives": 4, "epochs": 40, "seed": 5}
    (recipes / "rotate.yaml").write_text(yaml.safe_dump({"model": "rotate", "lr": 0.02, "margin": 5.0, **common}))
    (recipes / "transe.yaml").write_text(yaml.safe_dump({"model": "transe", "lr": 0.01, "margin": 7.0, **common}))
    out = tmp_path / "report"
    argv = ["--datasets", str(tiny_synth), "--compare", str(tiny_synth), "--runs", str(tmp_path / "runs")]
    argv += ["--out", str(out), "--models", "rotate", "transe", "--seeds", "0", "1", "--epochs", "1"]
    argv += ["--eval-every", "1", "--recipes", "elsewhere", "--recipes-dir", str(tmp_path / "recipes")]
    assert hygiene_report.main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    transe = results[results["model"] == "transe"]
    assert set(transe["lr"]) == {0.01} and set(transe["margin"]) == {7.0}  # its own recipe
    assert set(results["epochs"]) == {1} and set(results["seed"]) == {0, 1}  # the protocol's budget and seeds
    page = (out / "README.md").read_text()
    assert "each model's own, `configs/recipes/elsewhere/<model>.yaml`" in page
    assert "transe lr 0.01, margin 7, dim 8" in page
    line = next(x for x in page.splitlines() if x.startswith("- transe: seed 0: "))
    assert "seed 1: " in line and ("holds" in line or "does not hold" in line)


def test_text_features_page_pairs_with_the_strongest_rotate_chosen_on_validation(tiny_synth, tmp_path, monkeypatch):
    import pandas as pd

    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data / "tiny")
    monkeypatch.chdir(data)
    out, runs = tmp_path / "report", tmp_path / "runs"
    assert (
        text_features_gain.main(
            [
                "--datasets",
                "tiny",
                "--extra-features",
                "--structure-only",
                "--data-dir",
                str(data),
                "--features-root",
                str(tmp_path / "features"),
                "--runs",
                str(runs),
                "--out",
                str(out),
                "--models",
                "rotate",
                "afme",
                "--rotate-dims",
                "4",
                "8",
                "--seeds",
                "0",
                "1",
                "--epochs",
                "1",
                "--dim",
                "8",
                "--batch-size",
                "512",
                "--negatives",
                "4",
                "--eval-every",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in runs.iterdir()) == [
        f"tiny-{m}-d{d}-e1-s{s}" for m, d in (("afme", 8), ("rotate", 4), ("rotate", 8)) for s in (0, 1)
    ]
    results = pd.read_csv(out / "results.csv")
    valid = results.groupby("variant")["valid_mrr"].mean()
    best = "rotate" if valid["rotate"] >= valid["rotate-d4"] else "rotate-d4"
    page = (out / "README.md").read_text()
    assert "RotatE also at dim 4 (rows rotate-d<dim>)" in page
    assert table_row(markdown_tables(page), dataset="tiny", model="rotate-d4")["seeds"] == "2"
    paired = markdown_tables(page.split("Paired gain afme - the strongest RotatE")[1])[0]
    row = table_row([paired], dataset="tiny")
    assert row["RotatE"] == best and row["seeds"] == "2"
    mrr = results.set_index(["variant", "seed"])["mrr"]
    gains = [mrr["afme", s] - mrr[best, s] for s in (0, 1)]
    assert float(row["smallest ΔMRR"]) == pytest.approx(100 * min(gains), abs=0.006)  # over the seeds
