"""Real-data comparisons: every model from its own recipe under one shared protocol, the full
AFME trained once for both the comparison and the ablation, and pages that pair runs by seed."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from afme_lib.core.errors import AfmeError
from afme_lib.experiments.grid import run_grid
from afme_lib.experiments.pages.real_data import ablation_page, comparison_page, goal_lines, paired, significant
from afme_lib.experiments.real_data import ablation_grid, comparison_grid, recipe_fields

PROTOCOL = {"epochs": 2, "eval_every": 1, "patience": 0, "device": "cpu"}
COMMON = {"dim": 16, "batch_size": 256, "negatives": 4, "loss": "nssa", "seed": 7, "epochs": 30, "eval_every": 10}


def write_recipes(folder, dataset):
    """Recipes as ``benchmarks/recipes.py`` copies them: complete run specs, each its own lr / margin."""
    recipes = folder / "recipes"
    (recipes / dataset.name).mkdir(parents=True)
    own = {
        "rotate": {"model": "rotate", "lr": 0.02, "margin": 5.0},
        "transe": {"model": "transe", "lr": 0.01, "margin": 7.0},
        "afme": {
            "model": "afme",
            "lr": 0.015,
            "margin": 4.0,
            "features": str(dataset),
            "modalities": ["text"],
            "adversarial_rows": 32,
        },
    }
    for name, fields in own.items():
        text = yaml.safe_dump({"dataset": str(dataset), **COMMON, **fields})
        (recipes / dataset.name / f"{name}.yaml").write_text(f"# afme tune ...\n{text}")
    return recipes


def test_each_model_keeps_its_recipe_and_the_protocol_replaces_only_the_budget(tiny_synth, tmp_path):
    recipes = write_recipes(tmp_path, tiny_synth)
    grid = comparison_grid(
        "c", str(tiny_synth), ["rotate", "transe", "afme"], PROTOCOL, [0, 1], ["rotate", "afme"], recipes, [32]
    )
    cells = {(c.variant, c.params["seed"]): c.params for c in grid.cells()}
    # transe once; rotate (and its other dim) and afme on both seeds
    assert sorted(cells) == sorted(
        [("rotate", 0), ("rotate", 1), ("rotate-d32", 0), ("rotate-d32", 1), ("transe", 0), ("afme", 0), ("afme", 1)]
    )
    assert cells[("transe", 0)]["lr"] == 0.01 and cells[("transe", 0)]["margin"] == 7.0
    assert cells[("afme", 1)]["lr"] == 0.015 and cells[("afme", 1)]["adversarial_rows"] == 32
    assert cells[("rotate-d32", 0)]["dim"] == 32 and cells[("rotate", 0)]["dim"] == 16
    for params in cells.values():  # the recipe's own budget and seed give way to the protocol
        assert params["epochs"] == 2 and params["eval_every"] == 1 and params["device"] == "cpu"
    assert {p["seed"] for p in cells.values()} == {0, 1}
    assert "seed" not in recipe_fields(recipes / tiny_synth.name / "afme.yaml")


def test_a_missing_recipe_names_the_command_that_makes_it(tiny_synth, tmp_path):
    recipes = write_recipes(tmp_path, tiny_synth)
    with pytest.raises(AfmeError, match="benchmarks/recipes.py --dataset tiny --models native"):
        comparison_grid("c", str(tiny_synth), ["native"], PROTOCOL, [0], [], recipes)
    broken = recipes / "tiny" / "transe.yaml"
    broken.write_text("model: transe\nlr: [0.01\n")
    with pytest.raises(AfmeError, match=r"transe.yaml, line 3: not a readable recipe \(expected ',' or '\]'"):
        recipe_fields(broken)
    broken.write_text("- just a list\n")
    with pytest.raises(AfmeError, match="transe.yaml: a recipe is one mapping"):
        recipe_fields(broken)


def test_the_ablation_reads_the_comparisons_full_model_and_pages_pair_by_seed(tiny_synth, tmp_path):
    recipes = write_recipes(tmp_path, tiny_synth)
    runs = tmp_path / "runs"
    comparison = comparison_grid(
        "c", str(tiny_synth), ["rotate", "afme"], PROTOCOL, [0, 1], ["rotate", "afme"], recipes
    )
    results = run_grid(comparison, report_dir=tmp_path / "c", runs_dir=runs, readme=False, progress=False)
    assert (results["status"] == "ok").all(), results["error"].tolist()
    full = runs / "afme-s0" / "metrics.json"
    before = full.stat().st_mtime_ns

    ablation = ablation_grid("a", str(tiny_synth), PROTOCOL, [0, 1], recipes, names=["full", "w/o GAN"])
    ab = run_grid(ablation, report_dir=tmp_path / "a", runs_dir=runs, readme=False, progress=False)
    assert (ab["status"] == "ok").all(), ab["error"].tolist()
    assert full.stat().st_mtime_ns == before  # read, not trained again
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == [
        "afme-s0",
        "afme-s1",
        "rotate-s0",
        "rotate-s1",
        "w-o-GAN-s0",
        "w-o-GAN-s1",
    ]

    page = "\n".join(comparison_page(results, comparison, "cmd", tmp_path / "c"))
    d = paired(results, "afme", "rotate")
    expected = results.set_index(["variant", "seed"])["mrr"]
    assert d["mrr"].tolist() == pytest.approx([expected[("afme", s)] - expected[("rotate", s)] for s in (0, 1)])
    row = next(line for line in page.splitlines() if line.startswith("| afme | rotate |"))
    assert f"{100 * d['mrr'].mean():.2f} ± {100 * d['mrr'].std():.2f}" in row
    assert "## By relation category" in page and (tmp_path / "c" / "categories.csv").is_file()

    coverage = {"text": (0, 10)}
    text = "\n".join(ablation_page(ab, ablation, "cmd", "../c/README.md", coverage))
    gan = next(line for line in text.splitlines() if line.startswith("| w/o GAN"))
    assert "MoIEn completes nothing" in gan
    assert "MoIEn completes nothing" not in "\n".join(
        ablation_page(ab, ablation, "cmd", "../c/README.md", {"text": (3, 10)})
    )


def test_the_category_table_survives_a_rebuild_without_run_folders(tiny_synth, tmp_path):
    recipes = write_recipes(tmp_path, tiny_synth)
    grid = comparison_grid("c", str(tiny_synth), ["rotate"], PROTOCOL, [0], ["rotate"], recipes)
    results = run_grid(grid, report_dir=tmp_path / "c", runs_dir=tmp_path / "runs", readme=False, progress=False)
    first = "\n".join(comparison_page(results, grid, "cmd", tmp_path / "c"))
    results = results.assign(run_dir=str(tmp_path / "gone"))
    again = "\n".join(comparison_page(results, grid, "cmd", tmp_path / "c"))
    table = lambda page: page[page.index("## By relation category") :]  # noqa: E731
    assert table(again) == table(first)


def results_of(afme, native, other):
    rows = [
        {"variant": v, "seed": s, "status": "ok", "mrr": m}
        for v, ms in (("afme", afme), ("native", native), ("rotate", other))
        for s, m in enumerate(ms)
    ]
    return pd.DataFrame(rows).assign(**{"hits@1": 0.0, "hits@3": 0.0, "hits@10": 0.0})


class _Grid:  # the two fields goal_lines reads
    variants = {"afme": {}, "native": {}, "rotate": {}}


def test_the_goal_says_met_or_by_how_much_it_is_missed():
    met = "\n".join(goal_lines(results_of([0.40, 0.41, 0.42], [0.39, 0.40, 0.41], [0.30] * 3), _Grid))
    assert met.count("**met**") == 2 and "ahead on 3 of 3" in met
    short = "\n".join(goal_lines(results_of([0.38, 0.38, 0.38], [0.39, 0.40, 0.39], [0.385] * 3), _Grid))
    assert "**not met**, 1.33 points short" in short  # AFME - NATIVE = -1.33
    assert "AFME − rotate = -0.50 points: **not met**, 0.50 points short" in short


def test_significance_needs_the_mean_beyond_twice_its_standard_error():
    assert significant(pd.Series([0.010, 0.012, 0.011]))
    assert not significant(pd.Series([0.010, -0.012, 0.011]))
    assert not significant(pd.Series([0.02]))  # one seed has no spread


def test_an_ablation_that_cannot_change_anything_is_named_not_run(tiny_synth, tmp_path):
    recipes = write_recipes(tmp_path, tiny_synth)  # AFME reads one modality: text
    grid = ablation_grid("a", str(tiny_synth), PROTOCOL, [0], recipes)
    assert "w/o dynamic weighting" not in grid.variants and "w/o GAN" in grid.variants
    empty = pd.DataFrame(columns=["variant", "seed", "status", "mrr", "device_used"])
    page = "\n".join(ablation_page(empty, grid, "cmd", "../c/README.md", {}))
    row = next(line for line in page.splitlines() if line.startswith("| w/o dynamic weighting"))
    assert "not run" in row and "softmax over a single token" in row
