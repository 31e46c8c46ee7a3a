"""Real-data comparisons at equal care: every model trained from its recipe under one protocol.

A recipe (``configs/recipes/<dataset>/<model>.yaml``, :mod:`afme_lib.experiments.pages.recipes`)
holds a model's complete run spec as its tuning study chose it on validation, trained for the
study's short budget. A comparison keeps each recipe's own settings and replaces only the
protocol every model shares (:data:`PROTOCOL`: the epoch budget, validation schedule, early
stopping, seed, device), so no model gets another's settings and none gets a longer budget.

Two grids are built here, both ``target: train`` with run folders ``<variant>-s<seed>`` under one
runs folder, so that AFME's full model is trained once and read by both:

- :func:`comparison_grid`: every model at its recipe, ``seeds`` for the models named in
  ``seeded`` and the first seed for the others; RotatE also at other dimensions (``rotate-d<D>``)
  so that its strongest form can be chosen on validation;
- :func:`ablation_grid`: AFME's recipe with each named ablation switched off
  (:mod:`afme_lib.core.ablations`), every seed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from afme_lib.core import ablations
from afme_lib.core.errors import AfmeError
from afme_lib.experiments.grid.spec import Grid, parse_grid

# What a comparison sets for every model alike; everything else is the model's recipe.
PROTOCOL = ("dataset", "data_dir", "epochs", "eval_every", "patience", "seed", "device", "progress", "compile")
STRUCTURE = "rotate"  # the structure-only reference; its other dimensions are variants rotate-d<D>
FULL = "afme"  # AFME's full model: one variant name in both grids, so its run folders are shared
RUN_DIR = "{variant}-s{seed}"
METRICS = ["mrr", "hits@1", "hits@3", "hits@10"]


def recipe_file(recipes: str | Path, dataset: str, model: str) -> Path:
    """``<recipes>/<dataset's name>/<model>.yaml`` (a dataset given as a folder: its last part)."""
    return Path(recipes) / Path(dataset).name / f"{model}.yaml"


def recipe_fields(path: str | Path) -> dict:
    """A recipe's run-spec fields less the shared protocol; a missing recipe names its tune spec."""
    path = Path(path)
    if not path.is_file():
        raise AfmeError(
            f"{path}: no recipe; make it with python benchmarks/recipes.py --dataset {path.parent.name} "
            f"--models {path.stem}"
        )
    try:
        fields = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise AfmeError(f"{path}{where}: not a readable recipe ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(fields, dict):
        raise AfmeError(f"{path}: a recipe is one mapping of field: value")
    return {k: v for k, v in fields.items() if k not in PROTOCOL}


def comparison_grid(
    name: str,
    dataset: str,
    models: list[str],
    protocol: dict,
    seeds: list[int],
    seeded: list[str],
    recipes: str | Path,
    rotate_dims: list[int] = (),
) -> Grid:
    """Every model of ``models`` at its recipe on ``dataset`` under ``protocol`` (fields of
    :data:`PROTOCOL` but dataset and seed); the models in ``seeded`` over every seed, the others
    over the first; RotatE also at each of ``rotate_dims``, seeded as RotatE is."""
    variants = {m: recipe_fields(recipe_file(recipes, dataset, m)) for m in models}
    if STRUCTURE in variants:
        for dim in rotate_dims:
            if dim != variants[STRUCTURE].get("dim"):
                variants[f"{STRUCTURE}-d{dim}"] = {**variants[STRUCTURE], "dim": dim}
    once = [v for v, fields in variants.items() if fields.get("model", v) not in seeded]
    spec = {
        "name": name,
        "target": "train",
        "description": f"Every model on {dataset} at its recipe (configs/recipes/{dataset}/), one protocol.",
        "run_dir": RUN_DIR,
        "parameters": {"dataset": dataset, **protocol},
        "grid": {"seed": list(seeds)},
        "variants": variants,
        "exclude": [{"variant": v, "seed": s} for v in once for s in seeds[1:]],
        "metrics": METRICS,
    }
    return parse_grid(spec, source=f"<comparison grid {name}>")


def inert_ablations(fields: dict) -> dict[str, str]:
    """The ablations whose switch cannot change AFME's computation under these run-spec fields,
    each with the reason: they are not trained (their runs would repeat the full model's)."""
    inert = {}
    if len(fields.get("modalities") or []) == 1:
        inert["w/o dynamic weighting"] = (
            "one modality: the weights are a softmax over a single token, 1 with or without the switch "
            "(afme_lib/models/fusion.py), so its runs would repeat the full model's"
        )
    return inert


def ablation_grid(
    name: str, dataset: str, protocol: dict, seeds: list[int], recipes: str | Path, names=ablations.NAMES
) -> Grid:
    """AFME's recipe on ``dataset`` with each of ``names`` switched off (``"full"``: the variant
    :data:`FULL`, shared with the comparison's AFME), every seed, under ``protocol``; the
    :func:`inert_ablations` of the recipe are left out."""
    fields = recipe_fields(recipe_file(recipes, dataset, "afme"))
    inert = inert_ablations(fields)
    variants = {
        (FULL if n == ablations.FULL else n): ablations.overrides(n)
        for n in ablations.check_names(names)
        if n not in inert
    }
    spec = {
        "name": name,
        "target": "train",
        "description": f"AFME on {dataset} at its recipe, each component switched off in turn.",
        "run_dir": RUN_DIR,
        "parameters": {"dataset": dataset, **fields, **protocol},
        "grid": {"seed": list(seeds)},
        "variants": variants,
        "metrics": METRICS,
    }
    return parse_grid(spec, source=f"<ablation grid {name}>")
