"""The main job's declared selection grid: how each model's own setting is chosen, on validation.

Every model of the main job gets the same budget: :data:`VALUES_PER_MODEL` values of one knob,
each trained on :data:`SEEDS` with the main job's other settings, and the value with the best mean
validation MRR on the cold attribute queries (:data:`CRITERION`, the slice the claims are about)
is the model's setting (``main_job.MODEL_SETTINGS``; the model's default when the default wins).
The knob of a model that reads features is the cold-entity structure shuffle every such model
offers; RotatE reads none, so its knob is its learning rate.

    python benchmarks/main_job_selection.py --model native   # the declared grid of one model
    # -> reports/main/selection/native-structure_shuffle.{md,csv}

The CSV keeps every seed's validation MRR by slice, so the choice can be checked against the
settings the main job uses (a test does) without training anything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from afme_lib.analysis import slices
from afme_lib.core import ablations
from afme_lib.experiments import comparisons, main_job
from afme_lib.experiments.spec import RunSpec
from afme_lib.models.registry import model_class

SPLIT = "valid"
SEEDS = (0, 1, 2)
CRITERION = ablations.COLD_ATTRIBUTE
VALUES_PER_MODEL = 4
SHUFFLES = (0.0, 0.2, 0.4, 0.6)
# {model: (run-spec field, values)}: the same number of values for every model of the main job.
GRID: dict[str, tuple[str, tuple]] = {
    "rotate": ("lr", (3e-3, 1e-2, 3e-2, 1e-1)),
    "mm-concat": ("structure_shuffle", SHUFFLES),
    "native": ("structure_shuffle", SHUFFLES),
    "ikrl": ("structure_shuffle", SHUFFLES),
    "afme": ("structure_shuffle", SHUFFLES),
}
# AFME's own settings beyond the grid's knob, chosen on validation with the grid's size and rule:
# {(model, field): values}. The value each check picks is the one the main job trains with, as for
# GRID (their earlier history: reports/main/selection.md).
RECHECKS: dict[tuple[str, str], tuple] = {
    ("afme", "cross_check_margin"): (1.0, 1.5, 2.0, 3.0),
    ("afme", "adversarial_every"): (1, 2, 4, 8),
}
# Settings every model shares (main_job.TRAINING), chosen on validation for every model of the
# main job alike, with the grid's size and rule: {field: values} (history: selection.md). A model whose check picks another value than TRAINING's trains
# with its own (main_job.MODEL_SETTINGS).
SHARED_RECHECKS: dict[str, tuple] = {"dim": (48, 64, 96, 128)}
FOLDER = "reports/main/selection"


def declared_values(model: str, field: str) -> tuple | None:
    """The values the declared selection gives ``field`` of ``model``: its grid's, its recheck's,
    or a shared recheck's; None when nothing is declared for it."""
    if model in GRID and GRID[model][0] == field:
        return GRID[model][1]
    if (model, field) in RECHECKS:
        return RECHECKS[model, field]
    if field in SHARED_RECHECKS and model in GRID:
        return SHARED_RECHECKS[field]
    return None


def specs(model: str, field: str, values, seeds, dataset_of, training: dict) -> dict[tuple, RunSpec]:
    """``{(value, seed): RunSpec}``: the main job's run of ``model`` (:func:`main_job.model_spec`)
    but ``field`` at each value; ``dataset_of(seed)`` names each seed's dataset."""
    return {
        (v, seed): main_job.model_spec(model, dataset_of(seed), seed, training, **{field: v})
        for v in values
        for seed in seeds
    }


def results(runs: dict[tuple, object]) -> pd.DataFrame:
    """One row per ``(value, seed)`` run: those two columns, then its validation MRR (fraction) per slice."""
    rows = [{"value": v, "seed": seed, **comparisons.run_slice_mrr(run, SPLIT)} for (v, seed), run in runs.items()]
    return pd.DataFrame(rows)


def chosen(frame: pd.DataFrame):
    """The value with the best mean :data:`CRITERION` MRR over the seeds (the first on a tie)."""
    means = frame.groupby("value", sort=False)[CRITERION].mean()
    return means.idxmax()


def table(frame: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """Validation MRR % by slice (the cold attribute ones and all queries), mean ± std over the
    seeds, one row per value, and a last row with the first seed's query counts."""
    columns = [c for c in frame.columns if c.startswith(ablations.COLD_ATTRIBUTE)] + ["all"]
    shown = slices.mean_std_table(frame.rename(columns={"value": "variant"})[["variant", "seed", *columns]])
    shown = shown.drop(columns="seeds")
    shown.loc["queries (first seed)"] = [str(counts.get(c, 0)) for c in columns]
    return shown


def csv_path(model: str, field: str, folder: str | Path = FOLDER) -> Path:
    return Path(folder) / f"{model}-{field}.csv"


def setting_in_use(model: str, field: str):
    """What the main job trains ``model`` with for ``field``: the field of its run spec
    (:func:`main_job.model_spec`: MODEL_SETTINGS, else TRAINING, else the model's recipe or
    default), a structure shuffle left to the model as the model's own default."""
    value = main_job.model_spec(model, "synth:default", 0, main_job.TRAINING).fields()[field]
    if value is None and field == "structure_shuffle":
        return model_class(model).default_structure_shuffle
    return value
