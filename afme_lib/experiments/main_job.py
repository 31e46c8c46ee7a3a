"""The README's main job: the five workbench notebooks on the embedded synthetic KG, and a report.

    afme main-job [--preset default] [--seed 0] [--epochs N] [--out reports/main]

1. Generates the synthetic preset (no download) and trains, ``--workers`` at a time, every run
   the notebooks show: RotatE, the baselines that read features (the ungated fusion mm-concat,
   NATIVE, IKRL) and AFME with its named ablations (:mod:`afme_lib.core.ablations`), all with the
   same settings (:data:`TRAINING`) but each model's own, chosen on validation with the same
   budget for every model (:data:`MODEL_SETTINGS`, :mod:`afme_lib.experiments.selection`).
   The runs are the run cache's (:func:`afme_lib.experiments.run.run_many`), shared with the
   notebooks, so notebook 02 finds the baselines and AFME trained, 03 the ablations, 04 and 05
   AFME's run.
2. Executes the five notebooks with papermill on those settings into ``<out>/`` (executed
   ``.ipynb`` and a static ``.html`` page each that opens offline, :mod:`afme_lib.analysis.export`;
   figures under ``<out>/figures/``).
3. Writes ``<out>/README.md`` from the run folders (never from notebook outputs): the index, the
   MRR of every model and ablation per slice of the test split beside the rule oracle, the feature oracle and
   a random ranking, each ablation on the slice built to need it, AFME's modality weights
   against the generator's truth, the claims (:data:`CLAIMS`) checked on this seed and, as the
   seeds benchmark last judged them, over the held-back seeds and the held-out configuration
   (``benchmarks/main_job_seeds.py``), and a reading generated from those numbers.

Resumable: finished runs are reused, and an executed notebook is kept when its inputs (the
notebook, its parameters, the library's code, the data) did not change (``main-job.json``
records them). The same seed gives the same tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import afme_lib
from afme_lib.analysis import modality_weights, slices
from afme_lib.analysis.export import notebook_html
from afme_lib.core import ablations, atomic
from afme_lib.core.fingerprint import code_digest
from afme_lib.core.machine import usable_cores
from afme_lib.engine.run_folder import RunFolder
from afme_lib.experiments import comparisons
from afme_lib.experiments.grid.execute import quiet_spec_parameters
from afme_lib.experiments.grid.runner import notebook_completed
from afme_lib.experiments.grid.spec import notebook_parameter_names
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import CACHE_ROOT, cache_folder, open_run, run_many
from afme_lib.experiments.spec import DATA_ROOT, FIELDS, STAMP_FILE, RunSpec, resolve_path, synthetic_folder

NOTEBOOKS = ("01_data_exploration", "02_training", "03_ablations", "04_modality_contributions", "05_robustness")
BASELINES = ("rotate", "mm-concat", "native", "ikrl")
MANIFEST = "main-job.json"
DIAGNOSIS = "diagnosis"  # the seeds pages that look for the cause of a claim that does not hold
# The runs (keys of run_specs) each notebook reads with the main job's parameters; None: every run.
# A notebook starts once these are trained, while the others still train: the two workers leave
# a core idle at the end of training, and the notebooks need none of the runs still training.
NOTEBOOK_NEEDS = {
    "01_data_exploration": (),
    "02_training": (*BASELINES, "afme"),
    "03_ablations": None,
    "04_modality_contributions": ("afme",),
    "05_robustness": None,
}
# The settings of every run (run-spec fields). Each one, the split and seeds it was chosen on and
# how: reports/main/selection.md.
TRAINING = {
    "dim": 96,
    "epochs": 35,
    "batch_size": 512,
    "negatives": 16,
    "lr": 1e-2,
    "eval_every": 5,
    "adversarial_every": 1,  # read by no baseline here (no generator): AFME's is in MODEL_SETTINGS
    "gen_lr": 4e-3,
    "self_negatives": 0.0,
}
# A model's own settings beside TRAINING, each chosen on validation by the declared grid that
# gives every model the same budget (afme_lib/experiments/selection.py, selection.md): the
# cold-entity training that every model reading features can take, so that AFME's is not the
# only one; AFME's cross-check margin and MoIEn schedule (selection.RECHECKS); and a shared
# setting where a model's own check picks another value than TRAINING's
# (selection.SHARED_RECHECKS: dim). How each value was chosen: reports/main/selection.md. A
# model absent here won with its own default and TRAINING's. (adversarial_every is AFME's alone: the baselines have
# no generator, so TRAINING's value changes none of their runs, and it stays as it was so their
# cached runs keep their key.)
MODEL_SETTINGS: dict[str, dict] = {
    "afme": {"cross_check_margin": 1.5, "adversarial_every": 2, "dim": 128},
    "rotate": {"lr": 0.03, "dim": 128},
    "mm-concat": {"structure_shuffle": 0.2},
    "native": {"structure_shuffle": 0.2},
    "ikrl": {"dim": 48},
}
# Choices of the validation checks (selection.py) that the main job does not train with yet:
# {model: {run-spec field: value}}. Adopting one changes that model's runs, so it waits until the
# claims over seeds (seeds.md, seeds-held-out.md) can be judged again at it; until then the main
# job keeps the value above and its page names the choice.
PENDING_SETTINGS: dict[str, dict] = {}
# What the weights are averaged over, as notebook 04's defaults: the items of attribute triples.
PROFILE_SPLIT, PROFILE_POSITIONS = "train", ("head",)
# The baselines that read features: "AFME beats" claims compare with the best of them.
FEATURE_BASELINES = ("mm-concat", "native", "ikrl")
# The claims' thresholds (:func:`claims`), judged on the split a page names (test for the report).
CLAIMS = {
    "oracle_share": 0.7,  # AFME's cold/attribute MRR at least this share of the rule oracle's
    "margin_over_rotate": 0.3,  # ... and this much (a fraction) above RotatE's
    "min_auc": 0.9,  # AFME's modality weights rank the informative modalities first at this AUC
}
# Over seeds (:func:`judge`), a claim holds when it holds on at least this share of the seeds and
# its mean margin is larger than this many standard errors of the mean.
HOLD_SHARE, MIN_STANDARD_ERRORS = 0.8, 2.0
# The seeds the claims are judged on over seeds: no setting of the main job and no model default
# was chosen on them (reports/main/selection.md).
CLAIM_SEEDS = (10, 11, 12, 13, 14)


# --- the study: runs and the numbers of the report ----------------------------------------------
@dataclass
class Study:
    """Everything the report says, computed from the run folders of one seed."""

    runs: dict  # {name: Run}: baselines, "afme", then the ablations by name
    table: pd.DataFrame  # slices.slice_table: MRR % per slice of every run and reference
    ablation: pd.DataFrame  # slices.ablation_summary: each ablation on its judged slice
    agreement: pd.DataFrame  # modality_weights.truth_agreement's per-relation table
    score: dict  # its summary (auc, gap, top1, ...)
    weights: pd.DataFrame  # AFME's mean weight per relation and token


def own_settings(model: str, training: dict) -> dict:
    """``model``'s own settings (:data:`MODEL_SETTINGS`) that hold under the shared ``training``
    ones: all of them at the main job's :data:`TRAINING`; a shared setting a caller changed (``--dim
    8`` for a quick run) applies to every model in place of a model's own value for it."""
    return {
        k: v for k, v in MODEL_SETTINGS.get(model, {}).items() if training.get(k, TRAINING.get(k)) == TRAINING.get(k)
    }


def settings_text(training: dict) -> str:
    """The settings every run shares, then each model's own (:func:`own_settings`), as pages show them."""
    text = ", ".join(f"{k} {v}" for k, v in training.items() if v != {})
    own = per_model_text({model: own_settings(model, training) for model in MODEL_SETTINGS})
    return f"{text}; {own}" if own else text


def per_model_text(settings: dict[str, dict]) -> str:
    """``{model: {field: value}}`` as pages show it: "afme: dim 128, ...; rotate: ..." (models
    without settings left out)."""
    return "; ".join(
        f"{model}: " + ", ".join(f"{k} {v}" for k, v in own.items()) for model, own in settings.items() if own
    )


def model_spec(model: str, dataset: str, seed: int, training: dict, **changes) -> RunSpec:
    """The main job's run of ``model`` on ``dataset`` at ``seed``: the shared ``training``
    settings, the model's own (:func:`own_settings`), then ``changes`` (run-spec fields)."""
    return RunSpec.from_fields(
        {
            **training,
            "dataset": dataset,
            "model": model,
            "seed": seed,
            "progress": False,
            **own_settings(model, training),
            **changes,
        }
    )


def run_specs(dataset: str, seed: int, training: dict) -> dict[str, RunSpec]:
    """``{name: RunSpec}`` of every run of the study (AFME is the ``full`` variant)."""
    specs = {name: model_spec(name, dataset, seed, training) for name in BASELINES}
    for variant in ablations.NAMES:
        name = "afme" if variant == ablations.FULL else variant
        specs[name] = model_spec("afme", dataset, seed, training, **ablations.overrides(variant))
    return specs


def study(
    dataset: str, seed: int, training: dict, runs_root: str | Path, workers: int = 1, split: str = "test"
) -> Study:
    """Train (or reuse) the study's runs and compute the report's numbers on ``split`` (``valid``
    holds every slice too: what a choice of settings reads)."""
    runs = {
        name: open_run(folder)
        for name, folder in run_many(run_specs(dataset, seed, training), workers, runs_root).items()
    }
    table = comparisons.slice_table(runs, split)
    by_variant = {
        (ablations.FULL if name == "afme" else name, seed): run for name, run in runs.items() if name not in BASELINES
    }
    summary = comparisons.ablation_summary(comparisons.slice_results(by_variant, split))
    afme = runs["afme"]
    kg = afme.trainer.dataset
    profile = modality_weights.relation_profile(afme.model, kg, PROFILE_SPLIT, PROFILE_POSITIONS)
    truth = modality_weights.truth_matrix(afme.truth, kg.relation_names, afme.model.token_names[1:])
    agreement, score = modality_weights.truth_agreement(profile.weights, truth)
    return Study(runs, table, summary, agreement, score, profile.weights)


@dataclass
class Claim:
    text: str  # the claim, with its threshold
    value: str  # what was measured
    margin: float  # how far past its threshold, in the claim's own unit (< 0: not met)
    strict: bool = False  # met only above the threshold (a "lowers" or "beats" claim), not at it

    @property
    def met(self) -> bool:
        return self.margin > 0 if self.strict else self.margin >= 0


def claims(s: Study) -> list[Claim]:
    """The claims (thresholds in :data:`CLAIMS`) on one seed's study, each with its numbers and its
    margin past the threshold."""
    cold = ablations.COLD_ATTRIBUTE
    afme, rotate = s.table.loc["afme", cold], s.table.loc["rotate", cold]
    rule, feature = s.table.loc[slices.RULE, cold], s.table.loc[slices.FEATURES, cold]
    readers = [b for b in FEATURE_BASELINES if b in s.table.index]
    out = [
        Claim(
            f"AFME ≥ {CLAIMS['oracle_share']} × the rule oracle's MRR on {cold}",
            f"{afme:.2f} % vs {rule:.2f} % ({afme / rule:.2f} ×; {afme / feature:.2f} × the feature oracle's "
            f"{feature:.2f} %)",
            afme / rule - CLAIMS["oracle_share"],
        ),
        Claim(
            f"AFME ≥ RotatE + {100 * CLAIMS['margin_over_rotate']:.0f} points of MRR on {cold}",
            f"{afme:.2f} % vs {rotate:.2f} % ({afme - rotate:+.2f} points)",
            afme - rotate - 100 * CLAIMS["margin_over_rotate"],
        ),
    ]
    if readers:
        best = max(readers, key=lambda b: s.table.loc[b, cold])
        out.append(
            Claim(
                f"AFME beats the best feature-reading baseline on {cold}",
                f"{afme:.2f} % vs {best} {s.table.loc[best, cold]:.2f} % ({afme - s.table.loc[best, cold]:+.2f} points)",
                afme - s.table.loc[best, cold],
                strict=True,
            )
        )
    out.append(
        Claim(
            f"weight–truth AUC ≥ {CLAIMS['min_auc']}",
            f"{s.score['auc']:.3f} over {s.score['relations_scored']} relations",
            s.score["auc"] - CLAIMS["min_auc"],
        )
    )
    for variant, row in s.ablation.iterrows():
        change = row["change (points)"]
        out.append(
            Claim(
                f"{variant} lowers MRR on {row['slice']}",
                f"{row['MRR %']:.2f} % vs full {row['full MRR %']:.2f} % ({change:+.2f} points)",
                -change,
                strict=True,
            )
        )
    return out


@dataclass
class Verdict:
    """One claim over seeds: its margin on each seed and whether it holds (:data:`HOLD_SHARE` of
    the seeds met, mean margin above :data:`MIN_STANDARD_ERRORS` standard errors)."""

    text: str
    margins: list[float]
    met_on: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.margins))

    @property
    def standard_error(self) -> float:
        """Sample standard deviation over sqrt(seeds); NaN with one seed (no spread to judge)."""
        n = len(self.margins)
        return float(np.std(self.margins, ddof=1) / math.sqrt(n)) if n > 1 else math.nan

    @property
    def holds(self) -> bool:
        n = len(self.margins)
        return (
            n > 1
            and self.met_on >= math.ceil(HOLD_SHARE * n - 1e-9)
            and self.mean > MIN_STANDARD_ERRORS * self.standard_error
        )


def judge(found: dict[int, list[Claim]]) -> list[Verdict]:
    """Each claim of ``found`` ({seed: claims of that seed's study}, the same claims for every
    seed) judged over the seeds."""
    seeds = list(found)
    verdicts = []
    for claim in found[seeds[0]]:
        per_seed = [next(c for c in found[seed] if c.text == claim.text) for seed in seeds]
        verdicts.append(Verdict(claim.text, [c.margin for c in per_seed], sum(c.met for c in per_seed)))
    return verdicts


def claim_lines(found: list[Claim]) -> list[str]:
    lines = ["| claim | measured | |", "|---|---|---|"]
    lines += [f"| {c.text} | {c.value} | {'met' if c.met else '**not met**'} |" for c in found]
    return lines


def reading(s: Study, found: list[Claim]) -> str:
    """The report's paragraph of reading, every figure in it taken from the study."""
    cold, t = ablations.COLD_ATTRIBUTE, s.table
    afme, rotate = t.loc["afme", cold], t.loc["rotate", cold]
    readers = ", ".join(f"{b} {t.loc[b, cold]:.1f} %" for b in FEATURE_BASELINES if b in t.index)
    rule, feature, random = (t.loc[r, cold] for r in (slices.RULE, slices.FEATURES, slices.RANDOM))
    best_structural = max([m for m in (*BASELINES, "afme") if m in t.index], key=lambda m: t.loc[m, "warm/structural"])
    text = (
        f"On the {int(t.loc['queries', cold])} cold attribute queries, which only an item's features can answer, "
        f"AFME reaches {afme:.1f} % MRR: {afme / feature:.0%} of the feature oracle ({feature:.1f} %, a decoder "
        f"that reads the features perfectly) and {afme / rule:.0%} of the rule oracle ({rule:.1f} %), against "
        f"{rotate:.1f} % for structure-only RotatE, {readers} for the baselines that read features, and "
        f"{random:.1f} % for a random ranking. "
    )
    states = [c for c in t.columns if c.startswith(cold + "/")]
    if states:
        parts = [
            f"{c.rsplit('/', 1)[1]} {t.loc['afme', c]:.1f} % (feature oracle {t.loc[slices.FEATURES, c]:.1f} %)"
            for c in states
        ]
        text += f"By the state of the informative modality's row AFME scores {', '.join(parts)}. "
    best, rule_structural = t.loc[best_structural, "warm/structural"], t.loc[slices.RULE, "warm/structural"]
    text += (
        f"On structural relations between warm items, which no modality informs, the best of the models is "
        f"{best_structural} ({best:.1f} %; rule oracle {rule_structural:.1f} %"
        + (
            "; the rule oracle ties every member of an answer cell, which memorising the training links beats"
            if best > rule_structural
            else ""
        )
        + "). "
    )
    text += (
        f"AFME's weights put the informative modalities first with an AUC of {s.score['auc']:.2f} over "
        f"{s.score['relations_scored']} attribute relations. "
    )
    lower = [v for v, row in s.ablation.iterrows() if row["change (points)"] < 0]
    higher = [v for v in s.ablation.index if v not in lower]
    if lower:
        text += f"Switching a component off lowers MRR on its slice for {', '.join(lower)}"
        text += f"; it does not for {', '.join(higher)}. " if higher else ". "
    else:
        text += "No ablation lowers MRR on its slice. "
    met = sum(c.met for c in found)
    text += (
        f"{met} of the {len(found)} claims below are met on this seed; one seed says little about a difference "
        "of a few points (the section over seeds below judges them on seeds and a configuration no choice was "
        "made on)."
    )
    return text


# --- the claims over seeds ------------------------------------------------------------------------
def seed_studies(
    preset: str,
    seeds,
    training: dict,
    runs_root: str | Path = CACHE_ROOT,
    data_root: str | Path = DATA_ROOT,
    workers: int = 1,
    split: str = "test",
) -> dict[int, Study]:
    """``{seed: Study}``: the study of :func:`main` for each seed (the generator's and the training's)."""
    return {
        seed: study(str(synthetic_folder(preset, seed, data_root)), seed, training, runs_root, workers, split)
        for seed in seeds
    }


def verdict_lines(verdicts: list[Verdict]) -> list[str]:
    """The table of claims over seeds: seeds met, mean margin ± standard error, holds or not."""
    lines = ["| claim | seeds met | mean margin ± s.e. | holds |", "|---|---:|---:|---|"]
    for v in verdicts:
        se = "n/a" if math.isnan(v.standard_error) else f"{v.standard_error:.3g}"
        lines.append(
            f"| {v.text} | {v.met_on} of {len(v.margins)} | {v.mean:+.3g} ± {se} | "
            f"{'holds' if v.holds else '**does not hold**'} |"
        )
    return lines


def seeds_page_name(preset: str, split: str = "test") -> str:
    """``seeds.md`` for the default preset's test split; ``-<preset>`` for another preset and
    ``-valid`` for the validation split are added to the name."""
    return "seeds" + ("" if preset == "default" else f"-{preset}") + ("" if split == "test" else f"-{split}") + ".md"


def training_seconds(studies: dict[int, Study]) -> float:
    """Seconds the studies' runs took to train and evaluate, summed over runs (from their metrics)."""
    return sum(
        run.metrics.get("train_seconds", 0.0) + run.metrics.get("eval_seconds", 0.0)
        for s in studies.values()
        for run in s.runs.values()
    )


def seed_claims(studies: dict[int, Study]) -> dict[int, list[Claim]]:
    """``{seed: claims}`` of each seed's study: what :func:`judge`, the seeds page and its summary read."""
    return {seed: claims(s) for seed, s in studies.items()}


def seeds_summary(
    studies: dict[int, Study],
    verdicts: list[Verdict],
    command: str,
    preset: str,
    split: str,
    wall_seconds: float,
    training: dict,
) -> dict:
    """What the main job's page shows of a seeds page (written beside it as JSON): the studies'
    size, time and settings (:func:`settings_text` of ``training``) and the ``verdicts``
    (:func:`judge`) of their claims."""
    return {
        "command": command,
        "settings": settings_text(training),
        "preset": preset,
        "split": split,
        "seeds": list(studies),
        "runs": sum(len(s.runs) for s in studies.values()),
        "training_seconds": round(training_seconds(studies)),
        "wall_seconds": round(wall_seconds),
        "claims": [
            {
                "text": v.text,
                "met_on": int(v.met_on),
                "mean": v.mean,
                "standard_error": v.standard_error,
                "holds": bool(v.holds),
            }
            for v in verdicts
        ],
    }


def seeds_page(
    studies: dict[int, Study],
    found: dict[int, list[Claim]],
    verdicts: list[Verdict],
    command: str,
    preset: str,
    training: dict,
    split: str = "test",
    wall_seconds: float | None = None,
) -> str:
    """``seeds.md``: every claim judged over the seeds (``verdicts``, :func:`judge` of ``found``,
    :func:`seed_claims`), each seed's numbers, and the slice MRRs they rest on (mean ± sample std
    over the seeds), all on ``split``."""
    seeds = list(studies)
    settings = settings_text(training)
    first = studies[seeds[0]].table.loc["queries"]
    counts = ", ".join(f"{c} {int(first[c])}" for c in first.index if c.startswith(ablations.COLD_ATTRIBUTE))
    lines = [
        f"# The main job's claims over seeds on `{preset}`, {split} split",
        "",
        f"Made by `{command}`. Each seed generates its own graph and trains every run with it ({settings}); "
        f"the same runs as `afme main-job --seed N` (shared run cache). MRR in %. Queries of seed {seeds[0]}'s "
        f"{split} split: {counts}.",
        "",
        f"A claim holds when it is met on at least {HOLD_SHARE:.0%} of the seeds and its mean margin past its "
        f"threshold is larger than {MIN_STANDARD_ERRORS:g} standard errors of the mean (margins in the claim's "
        "unit: points of MRR, a share of the rule oracle's MRR, AUC).",
        "",
        f"**{sum(v.holds for v in verdicts)} of {len(verdicts)} claims hold** over seeds "
        f"{', '.join(str(s) for s in seeds)}.",
        "",
        *verdict_lines(verdicts),
        "",
        "## Each seed",
        "",
        "| claim | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for v in verdicts:
        cells = []
        for seed in seeds:
            c = next(c for c in found[seed] if c.text == v.text)
            cells.append(f"{c.value}: {'met' if c.met else '**not met**'}")
        lines.append(f"| {v.text} | " + " | ".join(cells) + " |")
    columns = [c for c in studies[seeds[0]].table.columns if c.startswith(ablations.COLD_ATTRIBUTE)]
    columns.append("warm/structural")
    stacked = pd.concat({seed: s.table for seed, s in studies.items()}).drop(index="queries", level=1)
    mean = stacked.groupby(level=1, sort=False)[columns].mean()
    std = stacked.groupby(level=1, sort=False)[columns].std(ddof=1)
    shown = mean.map("{:.2f}".format) + " ± " + std.map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}")
    lines += ["", f"## {split.capitalize()} MRR (%) by slice, mean ± std over {len(seeds)} seeds", ""]
    lines += slices.markdown(shown.rename_axis("MRR %"))
    runs = sum(len(s.runs) for s in studies.values())
    lines += [
        "",
        "## Time",
        "",
        f"The {runs} runs took {training_seconds(studies):.0f} s to train and evaluate, summed over runs (each "
        f"run's own figure, from the call that trained it; two train at once by default)"
        + (f"; this call took {wall_seconds:.0f} s of wall time." if wall_seconds is not None else "."),
    ]
    return "\n".join(lines) + "\n"


# --- notebooks ----------------------------------------------------------------------------------
def code_fingerprint() -> str:
    """sha1 over the code of every source of the library but this module (what an executed
    notebook shows; comments and docstrings do not count)."""
    package = Path(afme_lib.__file__).parent
    return code_digest([p for p in package.rglob("*.py") if p.name != "main_job.py"], package)


def baseline_settings(model: str, training: dict) -> dict:
    """What a notebook gives the baseline ``model`` beside the AFME spec it derives it from
    (:func:`comparisons.model_runs`): the baseline's own :data:`MODEL_SETTINGS`, and every setting
    AFME has of its own put back to the baseline's value under ``training``, so that the notebook's
    baseline is the main job's run of it."""
    fields = model_spec(model, "synth:default", 0, training).fields()
    return {**{k: fields[k] for k in own_settings("afme", training)}, **own_settings(model, training)}


def notebook_parameters(
    name: str, dataset: str, seed: int, training: dict, runs_root: Path, out: Path, workers: int
) -> dict:
    """The parameters ``name`` is executed with: the shared settings, those it defines."""
    given = {
        "dataset": dataset,
        "features": None,
        "seed": seed,
        "runs_root": str(runs_root),
        "figures_dir": str(out / "figures" / name),
        "workers": workers,
        "progress": False,
        "variants": list(ablations.NAMES) if name == "03_ablations" else None,
        "compare_with": {b: baseline_settings(b, training) for b in BASELINES},
        "seeds": [seed],
        **training,
        **own_settings("afme", training),  # the notebooks' model is AFME: the main job's AFME
    }
    defined = notebook_parameter_names(resolve_path(f"notebooks/{name}.ipynb")) or set()
    return {k: v for k, v in given.items() if (k in defined or k in FIELDS) and v is not None}


def next_notebook(waiting: list[str], trained: set[str], all_trained: bool) -> str | None:
    """The first of ``waiting`` whose runs (:data:`NOTEBOOK_NEEDS`) are all in ``trained`` (every
    run once ``all_trained``), or None while none is ready."""
    for name in waiting:
        needs = NOTEBOOK_NEEDS.get(name)
        if all_trained or (needs is not None and set(needs) <= trained):
            return name
    return None


def execute_notebooks(
    out: Path, params: dict[str, dict], stamp: str, log=print, trained=lambda: (set(), True), poll: float = 2.0
) -> dict[str, dict]:
    """Execute each notebook (papermill) into ``<out>/<name>.ipynb`` and export its HTML, unless the
    executed notebook is complete and its inputs hash as recorded in the manifest; returns the
    manifest's ``notebooks`` part ({name: {"inputs", "seconds", "reused"}}).

    ``trained()`` says which runs are finished and whether all are ((keys, all_done); default:
    all): a notebook is executed once its runs are (:func:`next_notebook`), so that notebooks run
    while the rest of the training does."""
    import papermill  # only here: the report can be written without executing anything

    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    old = manifest.get("notebooks", {})
    done = {}
    waiting = list(params)
    while waiting:
        name = next_notebook(waiting, *trained())
        if name is None:
            time.sleep(poll)
            continue
        waiting.remove(name)
        parameters = params[name]
        source = resolve_path(f"notebooks/{name}.ipynb")
        inputs = hashlib.sha1(json.dumps([source.read_text(), parameters, stamp], sort_keys=True).encode()).hexdigest()
        target = out / f"{name}.ipynb"
        kept = notebook_completed(target) and target.with_suffix(".html").is_file()
        if kept and old.get(name, {}).get("inputs") == inputs:
            done[name] = {**old[name], "reused": True}
            log(f"{name}: unchanged, kept ({old[name]['seconds']:.0f} s when executed)")
            continue
        start = time.perf_counter()
        with quiet_spec_parameters():  # run-spec fields a notebook does not list are expected
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(source.parent),
                progress_bar=False,
            )
        notebook_html(target)  # the static page beside it, drawing its figures offline
        done[name] = {"inputs": inputs, "seconds": round(time.perf_counter() - start, 1), "reused": False}
        atomic.write_json(manifest_path, {**manifest, "notebooks": {**old, **done}})
        log(f"{name}: executed in {done[name]['seconds']:.0f} s")
    return done


# --- the report ---------------------------------------------------------------------------------
def _figure_link(out: Path, notebook: str, name: str) -> str:
    folder = out / "figures" / notebook
    for suffix in (".png", ".html"):
        if (folder / f"{name}{suffix}").is_file():
            rel = f"figures/{notebook}/{name}{suffix}"
            return f"![{name}]({rel})" if suffix == ".png" else f"[{name} (interactive)]({rel})"
    return f"(figure `{name}` not written: run notebook {notebook})"


def weight_lines(s: Study) -> list[str]:
    """AFME's mean weight per relation, the truly informative modalities in bold."""
    cols = list(s.weights.columns)
    lines = [
        "| relation | informative (truth) | " + " | ".join(cols) + " | AUC |",
        "|---|---|" + "---:|" * (len(cols) + 1),
    ]
    for rel, row in s.weights.iterrows():
        info = s.agreement.loc[rel, "informative"] if rel in s.agreement.index else "-"
        marked = info.split(", ")
        cells = [f"**{w:.2f}**" if c in marked else f"{w:.2f}" for c, w in row.items()]
        auc = s.agreement.loc[rel, "auc"] if rel in s.agreement.index else float("nan")
        lines.append(f"| {rel} | {info} | " + " | ".join(cells) + f" | {'–' if pd.isna(auc) else f'{auc:.2f}'} |")
    return lines


def report(
    s: Study, out: Path, command: str, preset: str, seed: int, training: dict, notebooks: dict, seconds: dict
) -> str:
    """The README.md text (see the module docstring)."""
    found = claims(s)
    settings = settings_text(training)
    lines = [
        f"# Main job: AFME, its ablations and the baselines on the synthetic preset `{preset}` (seed {seed})",
        "",
        f"Made by `{command}` (`bash scripts/main.sh`). Every run: {settings}; test metrics from the "
        "best-validation checkpoint, filtered ranking of both sides, realistic ties. MRR in %.",
        "",
        *pending_lines(),
        "## Reading",
        "",
        reading(s, found),
        "",
        "## Notebooks",
        "",
        "Executed with the settings above, on the runs of the tables below (nothing is trained twice). "
        "The notebooks, their pages (open offline) and their figures are written beside this file by the job; "
        "git keeps only this README (`bash scripts/main.sh` writes the rest).",
        "",
        "| notebook | executed | static page | seconds |",
        "|---|---|---|---:|",
    ]
    for name in NOTEBOOKS:
        info = notebooks.get(name, {})
        shown = f"{info['seconds']:.0f}" + (" (kept)" if info.get("reused") else "") if info else "not executed"
        lines.append(f"| {name} | [{name}.ipynb]({name}.ipynb) | [{name}.html]({name}.html) | {shown} |")
    lines += [
        "",
        "## Test MRR (%) by slice",
        "",
        "Slices: the triple's item group (warm: attribute triples in train; cold: attribute triples held out, "
        "so only features answer `cold/attribute`; zero-shot: no training triple) × relation kind, and the "
        "cold attribute queries by the state of the item's row in the informative modality (clean, corrupted, "
        "missing). Rule oracle: knows the generator's rules. Feature oracle: a decoder fitted on the warm "
        "items' features, reading every modality that encodes the attribute. Random ranking: the expected "
        "MRR of a uniformly random rank among the filtered candidates. `queries`: both sides of each triple.",
        "",
    ]
    lines += slices.markdown(s.table)
    lines += [
        "",
        "## Each ablation on the slice built to need it",
        "",
        "Denoising on cold attribute queries with a corrupted informative row, the GAN on those with a missing "
        "one, the other components on all cold attribute queries (`afme_lib/core/ablations.py`). One seed: no "
        "spread; see `seeds.md` for the claims over seeds.",
        "",
    ]
    table = s.ablation[["slice", "MRR %", "full MRR %"]].assign(
        **{"change (points)": s.ablation["change (points)"].map("{:+.2f}".format)}
    )
    lines += slices.markdown(table.rename_axis("ablation"))
    lines += [
        "",
        "## AFME's modality weights against the truth",
        "",
        f"Mean fusion weight (convex shares of structure and each modality) over the {PROFILE_POSITIONS[0]}s "
        f"of each relation's {PROFILE_SPLIT} triples; bold: the modalities the generator encodes the "
        "relation's attribute in. AUC " + modality_weights.agreement_line(s.score) + ".",
        "",
        _figure_link(out, "04_modality_contributions", "modality_weights")
        + " · "
        + _figure_link(out, "04_modality_contributions", "weights_vs_truth"),
        "",
    ]
    lines += weight_lines(s)
    lines += ["", "## The claims on this seed", ""] + claim_lines(found)
    lines += over_seeds_lines(out, training)
    lines += [
        "",
        "## Time",
        "",
        f"Wall-clock seconds on this machine ({usable_cores()} cores; load average over the last minute when "
        f"the report was written: {os.getloadavg()[0]:.1f}). A reused run or notebook shows the time of the "
        "call that made it. Notebooks execute as soon as the runs they read are trained, while the rest "
        "train, so the phases overlap: the last line is the wall time.",
        "",
        "| phase | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()]
    return "\n".join(lines) + "\n"


def pending_lines() -> list[str]:
    """A paragraph naming the validation choices the runs do not have yet (:data:`PENDING_SETTINGS`)."""
    if not PENDING_SETTINGS:
        return []
    choices = per_model_text(PENDING_SETTINGS)
    return [
        f"Chosen on validation but not yet trained with ({choices}; `selection.md`): the claims over seeds are "
        "to be judged at them before the main job takes them, so these runs keep the settings above.",
        "",
    ]


def over_seeds_lines(out: Path, training: dict) -> list[str]:
    """The claims over seeds, as the seeds benchmark last judged them (the JSON beside each seeds
    page): seeds met per claim and configuration, with each page's run time; a page judged at
    other settings than ``training`` (:func:`settings_text`), or at unrecorded ones, is said to be
    so, with the command that judges it again."""
    found = sorted(out.glob("seeds*.json"), key=lambda p: (p.stem != "seeds", p.name))  # default first
    summaries = [{**json.loads(p.read_text()), "page": p.with_suffix(".md").name} for p in found]
    if not summaries:
        return ["", "## The claims over seeds", "", "Not judged yet: `python benchmarks/main_job_seeds.py`."]
    lines = [
        "",
        "## The claims over seeds",
        "",
        "Judged by the seeds benchmark on seeds and configurations no choice was made on (`selection.md`), "
        f"read from the JSON beside each page. A claim holds when it is met on at least {HOLD_SHARE:.0%} of the "
        f"seeds and its mean margin exceeds {MIN_STANDARD_ERRORS:g} standard errors; each page gives every "
        "seed's numbers and the slice MRRs as mean ± std.",
        "",
        "| page | configuration | split | seeds | claims that hold | runs | training, summed over runs (s) | "
        "settings | command |",
        "|---|---|---|---|---:|---:|---:|---|---|",
    ]
    current = settings_text(training)
    stale = [m for m in summaries if m.get("settings") != current]
    for m in summaries:
        held = sum(c["holds"] for c in m["claims"])
        page = m["page"]
        settings = "**other than this page's**" if m in stale else "this page's"
        lines.append(
            f"| [{page}]({page}) | `{m['preset']}` | {m['split']} | {', '.join(map(str, m['seeds']))} | "
            f"{held} of {len(m['claims'])} | {m['runs']} | {m['training_seconds']} | {settings} | `{m['command']}` |"
        )
    for m in stale:
        lines += [
            "",
            f"**{m['page']} was judged at other settings than this page's** "
            f"({m.get('settings', 'not recorded')}): its verdicts are not evidence for the runs above until "
            f"`{m['command']}` judges them again (finished runs are reused).",
        ]
    texts = list(dict.fromkeys(c["text"] for m in summaries for c in m["claims"]))
    lines += ["", "| claim | " + " | ".join(f"`{m['preset']}`" for m in summaries) + " |"]
    lines.append("|---|" + "---|" * len(summaries))
    for text in texts:
        cells = []
        for m in summaries:
            c = next((c for c in m["claims"] if c["text"] == text), None)
            cells.append(
                "–"
                if c is None
                else f"{c['met_on']} of {len(m['seeds'])} seeds, {'holds' if c['holds'] else '**does not hold**'}"
            )
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return lines + diagnosis_lines(out)


# The claim a diagnosis page is read for: where the held-out configuration turned it.
DIAGNOSED_CLAIM = "AFME beats the best feature-reading baseline on cold/attribute"


def diagnosis_lines(out: Path) -> list[str]:
    """The diagnosis pages under ``<out>/diagnosis/`` (seeds benchmark runs on a configuration
    with one of ``held-out``'s differences, read on validation): per page, the claims that hold
    and AFME's margin over the best feature-reading baseline; nothing when there are none."""
    pages = [(p, json.loads(p.read_text())) for p in sorted((out / DIAGNOSIS).glob("*.json"))]
    pages = [(p, m) for p, m in pages if "claims" in m]
    if not pages:
        return []
    lines = [
        "",
        "Diagnosis: `default` with one of `held-out`'s differences at a time "
        "(`afme_lib/experiments/presets.py`), the claims judged the same way on each one's validation "
        "split, to see which difference turns a claim; no setting is chosen on these configurations.",
        "",
        "| page | configuration | split | seeds | claims that hold | AFME − best feature reader on "
        "cold/attribute (points, mean ± s.e.) | command |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for path, m in pages:
        held = sum(c["holds"] for c in m["claims"])
        gap = next((c for c in m["claims"] if c["text"] == DIAGNOSED_CLAIM), None)
        gap_text = "–" if gap is None else f"{gap['mean']:+.2f} ± {gap['standard_error']:.2f}"
        page = f"{DIAGNOSIS}/{path.with_suffix('.md').name}"
        lines.append(
            f"| [{page}]({page}) | `{m['preset']}` | {m['split']} | {', '.join(map(str, m['seeds']))} | "
            f"{held} of {len(m['claims'])} | {gap_text} | `{m['command']}` |"
        )
    return lines


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every command that trains the main job's runs shares."""
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"], help=f"(default: {TRAINING['epochs']})")
    parser.add_argument("--dim", type=int, default=TRAINING["dim"], help=f"(default: {TRAINING['dim']})")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once (default: 2)")
    parser.add_argument(
        "--runs-root", default=CACHE_ROOT, help=f"run cache, shared with the notebooks (default: {CACHE_ROOT})"
    )
    parser.add_argument(
        "--data-root", default=DATA_ROOT, help=f"where the synthetic folders are generated (default: {DATA_ROOT})"
    )


# --- the command --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="afme main-job", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="default", help="synthetic preset (default: default)")
    parser.add_argument("--seed", type=int, default=0, help="generator and training seed (default: 0)")
    parser.add_argument("--out", default="reports/main", help="report folder (default: reports/main)")
    add_run_arguments(parser)
    parser.add_argument("--no-notebooks", action="store_true", help="train and write README.md only")
    parser.add_argument("--fresh", action="store_true", help="delete this report's executed notebooks first")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    out = resolve_path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_root = resolve_path(args.runs_root)
    training = {**TRAINING, "epochs": args.epochs, "dim": args.dim}
    dataset = str(synthetic_folder(args.preset, args.seed, args.data_root))
    specs = run_specs(dataset, args.seed, training)
    folders = {name: cache_folder(spec.resolve(), runs_root) for name, spec in specs.items()}
    fresh = [name for name, folder in folders.items() if not RunFolder(folder).finished]
    start = time.perf_counter()
    notebooks = {}

    def train() -> float:
        run_many(specs, args.workers, runs_root)
        return time.perf_counter() - start

    with ThreadPoolExecutor(1) as background:  # training in the background, notebooks as their runs finish
        training_done = background.submit(train)

        def finished_runs() -> tuple[set[str], bool]:
            if training_done.done():
                training_done.result()  # a failed run ends the job here, with its message
                return set(specs), True
            return {name for name, folder in folders.items() if RunFolder(folder).finished}, False

        if not args.no_notebooks:
            params = {
                name: notebook_parameters(name, dataset, args.seed, training, runs_root, out, args.workers)
                for name in NOTEBOOKS
            }
            stamp = json.dumps([code_fingerprint(), (Path(dataset) / STAMP_FILE).read_text()])
            notebooks = execute_notebooks(out, params, stamp, trained=finished_runs)
        training_wall = training_done.result()
    start = time.perf_counter()
    s = study(dataset, args.seed, training, runs_root, args.workers)
    if fresh:
        seconds = {f"training {len(fresh)} of the {len(specs)} runs, {args.workers} at a time": training_wall}
    else:  # trained by an earlier call or a benchmark sharing the cache: what they took, run by run
        seconds = {
            f"training: none, all {len(specs)} runs reused (their own times, summed over runs)": training_seconds(
                {args.seed: s}
            )
        }
    seconds["slice tables and weights"] = time.perf_counter() - start
    if notebooks:
        seconds.update(
            {f"notebook {k}" + (" (when executed)" if v["reused"] else ""): v["seconds"] for k, v in notebooks.items()}
        )
    seconds["this call, in all"] = time.perf_counter() - began
    command = "afme main-job " + " ".join(argv if argv is not None else sys.argv[1:])
    write_page(
        out / "README.md",
        report(s, out, command.strip(), args.preset, args.seed, training, notebooks, seconds),
        keep_reading=False,
    )  # its reading is generated from the numbers
    print(slices.markdown(s.table)[0])
    print("\n".join(claim_lines(claims(s))))
    print(f"\nreport written to {out / 'README.md'} ({seconds['this call, in all']:.0f} s)")
    return 0
