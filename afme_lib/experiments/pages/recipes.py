"""Recipes: each model's settings on a dataset, chosen by ``afme tune`` on validation with the same
search for every model of that dataset, and the page that compares the models at them.

A recipe is a study's ``best.yaml`` copied to ``configs/recipes/<dataset>/<model>.yaml`` (its
first line the ``afme tune`` command that made it). The comparison reads each best trial's
validation from the study, and evaluates that trial's run folder on test once, for the report:
the test split takes no part in any choice. Each study's own page (trials, importances,
figures) goes to ``reports/recipes/<dataset>/<model>/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from afme_lib.experiments.pages.tuning import study_page
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import run
from afme_lib.experiments.tuning import BEST_YAML, TRIALS_CSV, best_trial, finished_count, load_study, study_spec

TEST_METRICS = ("mrr", "hits@1", "hits@10")


@dataclass(frozen=True)
class Recipe:
    """One model's study on one dataset, read back with its best trial's test numbers."""

    dataset: str
    model: str
    trials: int  # finished trials of the study
    pruned: int
    best_trial: int
    params: dict
    valid_mrr: float
    best_epoch: int | None
    test: dict  # the best trial's run on test: TEST_METRICS and self_answer


def read_recipe(study_dir: str | Path, dataset: str, model: str) -> Recipe:
    """The recipe of a finished study folder; its best trial's run is evaluated on test (once:
    the result is kept in that run's metrics.json)."""
    study_dir = Path(study_dir)
    study, tune = load_study(study_dir), study_spec(study_dir)
    best = best_trial(study)
    if best is None:
        raise ValueError(f"{study_dir}: no complete trial yet; run its afme tune command first")
    folder = run(tune.trial_spec(best.params), best.user_attrs["run_dir"], evaluate_test=True)
    test = folder.metrics["test"]
    return Recipe(
        dataset=dataset,
        model=model,
        trials=finished_count(study),
        pruned=sum(t.state.name == "PRUNED" for t in study.trials),
        best_trial=best.number,
        params=dict(best.params),
        valid_mrr=float(best.value),
        best_epoch=best.user_attrs.get("best_epoch"),
        test={k: float(test[k]) for k in (*TEST_METRICS, "self_answer")},
    )


def publish(study_dir: str | Path, recipe_file: str | Path, page_dir: str | Path) -> None:
    """Copy the study's best.yaml to ``recipe_file`` and write its page (with trials.csv and
    best.yaml beside it) into ``page_dir``."""
    study_dir, page_dir = Path(study_dir), Path(page_dir)
    Path(recipe_file).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(study_dir / BEST_YAML, recipe_file)
    page_dir.mkdir(parents=True, exist_ok=True)
    for name in (BEST_YAML, TRIALS_CSV):
        shutil.copyfile(study_dir / name, page_dir / name)
    study_page(load_study(study_dir), study_spec(study_dir), page_dir)


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


INTRO = (
    "Each model of a dataset gets the same search (`configs/tune/<dataset>/<model>.yaml`: the same "
    "space, trials, epochs per trial and pruner) from `afme tune`, on validation MRR; its best trial's "
    "complete run spec is the recipe `configs/recipes/<dataset>/<model>.yaml`, which `afme train "
    "--config` trains as is. *Test*: that best trial's run evaluated once on the test split, for this "
    "page; no choice reads it. One seed (0) per trial: differences of a point or less are within "
    "seed noise (compare the seeded pages before calling them)."
)


def recipes_page(recipes: list[Recipe], page: str | Path, command: str, search: str) -> Path:
    """``reports/recipes/<dataset>/README.md``: every model of one dataset at its recipe, best on
    validation first, test read once. ``search`` is one line describing the search."""
    dataset = recipes[0].dataset
    lines = [
        f"# Recipes on {dataset}: every model at its settings chosen on validation",
        "",
        f"Command: `{command}` (resumable: finished trials are kept; `--report-only` rewrites the pages).",
        "",
        INTRO,
        "",
        search,
        "",
        "| model | trials (pruned) | best trial | valid MRR | best epoch | test MRR | test Hits@1 | "
        "test Hits@10 | self-answers | settings | study |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(recipes, key=lambda r: -r.valid_mrr):
        settings = ", ".join(f"{k} {_value(v)}" for k, v in r.params.items())
        lines.append(
            f"| {r.model} | {r.trials} ({r.pruned}) | {r.best_trial} | {pct(r.valid_mrr)} | {r.best_epoch} | "
            f"{pct(r.test['mrr'])} | {pct(r.test['hits@1'])} | {pct(r.test['hits@10'])} | "
            f"{pct(r.test['self_answer'])} | {settings} | [page]({r.model}/README.md) |"
        )
    return write_page(Path(page), lines)


def recipes_index(out: str | Path) -> Path:
    """``reports/recipes/README.md``: one line per dataset page found under ``out``, so that a
    dataset's recipes are rewritten without touching another's."""
    out = Path(out)
    lines = ["# Recipes: every model at its settings chosen on validation", "", INTRO, ""]
    for page in sorted(out.glob("*/README.md")):
        title = page.read_text().splitlines()[0].lstrip("# ")
        lines.append(f"- [{page.parent.name}]({page.parent.name}/README.md): {title}")
    return write_page(out / "README.md", lines, keep_reading=False)
