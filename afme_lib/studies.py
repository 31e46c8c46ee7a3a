"""Studies over several runs, as the notebooks and the main job show them: a model beside its
baselines, AFME and its named ablations over seeds, test MRR by slice, robustness curves.

Every run comes from :func:`afme_lib.workbench.notebook_run` (trained once, cached by its settings
and shared); :func:`~afme_lib.workbench.train_all` trains several at a time. The numbers come from
the run folders and :mod:`afme_lib.analysis` (slices, robustness), never from notebook outputs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from afme_lib import ablations
from afme_lib.analysis import robustness, slices
from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.errors import AfmeError
from afme_lib.metric_names import RANK_METRICS
from afme_lib.pipeline import load_inputs
from afme_lib.workbench import NOTEBOOK_RUNS, Run, prepare_dataset, train_all, train_or_reuse


# --- runs -----------------------------------------------------------------------------------------
def model_runs(dataset: str, features: str | Path | None = None, model: str = "afme", compare_with=(),
               switches: dict | None = None, run_dir: str | Path | None = None, runs_root: str | Path = NOTEBOOK_RUNS,
               workers: int = 1, **params) -> dict[str, Run]:
    """``{name: Run}`` of ``model`` (with the ablation ``switches`` and, when given, in ``run_dir``)
    and of each model of ``compare_with`` beside it, all with ``params`` (notebook 02), trained
    ``workers`` at a time (:func:`train_all`)."""
    common = {"dataset": dataset, "features": features, "runs_root": runs_root, **params}
    jobs = {model: {**common, "model": model, "run_dir": run_dir, **(switches or {})}}
    jobs.update({name: {**common, "model": name} for name in compare_with if name != model})
    return train_all(jobs, workers)


def variant_runs(dataset: str, variants=ablations.NAMES, features: str | Path | None = None,
                 run_dirs: dict | None = None, runs_root: str | Path = NOTEBOOK_RUNS, workers: int = 1,
                 **params) -> dict[str, Run]:
    """``{variant: Run}`` of AFME and the named ablations (:mod:`afme_lib.ablations`) trained
    with ``params`` (:func:`train_all` with ``workers``). ``run_dirs`` ``{variant: run
    folder}``: runs trained elsewhere, used instead (they must be on the same dataset and features)."""
    return {variant: run for (variant, _), run in
            ablation_runs(dataset, variants, [params.pop("seed", 0)], features, runs_root, workers, run_dirs,
                          **params).items()}


def ablation_runs(dataset: str, variants=ablations.NAMES, seeds=(0,), features: str | Path | None = None,
                  runs_root: str | Path = NOTEBOOK_RUNS, workers: int = 1, run_dirs: dict | None = None,
                  **params) -> dict[tuple[str, int], Run]:
    """``{(variant, seed): Run}``: AFME and the named ablations with ``params``, once per
    training seed (:func:`train_all` with ``workers``). ``run_dirs`` ``{variant: run folder}``
    (one seed only): runs trained elsewhere, used instead; they must be on the same dataset and features."""
    variants = ablations.check_names(variants)
    data, found = prepare_dataset(dataset, features)
    given = {}
    for variant, folder in (run_dirs or {}).items():
        if len(seeds) != 1:
            raise AfmeError("run_dirs stands for one training seed; give one seed with it")
        run = Run.open(folder)
        if (run.dataset, run.features) != (data, found):
            raise AfmeError(f"run_dirs[{variant!r}] was trained on {run.dataset} (features {run.features}), "
                            f"not on {data} (features {found})")
        given[variant, seeds[0]] = run
    jobs = {(variant, seed): {"dataset": data, "features": found, "runs_root": runs_root, **params, "model": "afme",
                              "seed": seed, **ablations.overrides(variant)}
            for seed in seeds for variant in variants if (variant, seed) not in given}
    trained = train_all(jobs, workers)
    return {(variant, seed): given.get((variant, seed)) or trained[variant, seed]
            for seed in seeds for variant in variants}


def grid_runs(results: pd.DataFrame) -> dict[tuple[str, int], Run]:
    """``{(variant, seed): Run}`` of an ablation grid's results (``afme_lib.grid.read_results``
    of its report folder); cells that did not finish are left out."""
    done = results[results["status"] == "ok"]
    return {(row["variant"], int(row["seed"])): Run.open(row["run_dir"]) for _, row in done.iterrows()}


# --- slices -------------------------------------------------------------------------------------
def _shared_inputs(runs) -> Run:
    """The first run; every run must be on its dataset (the slices are that dataset's)."""
    runs = list(runs)
    first = runs[0]
    for run in runs[1:]:
        if run.dataset != first.dataset:
            raise AfmeError(f"runs on different datasets cannot share a slice table: {first.dataset} and {run.dataset}")
    return first


def run_slice_mrr(run: Run, split: str = "test") -> dict[str, float]:
    """A synthetic run's MRR per slice of ``split`` (:mod:`afme_lib.analysis.slices`)."""
    if run.truth is None:
        raise AfmeError(f"{run.dataset} has no metadata.json: slices need a synthetic dataset's ground truth")
    trainer = run.trainer
    masks = slices.slice_masks(trainer.dataset, run.truth, split)
    return slices.slice_mrr(slices.model_ranks(trainer.model, trainer.dataset, split, trainer.filter_index), masks)


def slice_table(runs: dict[str, Run], split: str = "test") -> pd.DataFrame:
    """MRR (%) per slice of each named run, then the rule oracle, the feature oracle and the
    random ranking on the same queries, and a last row counting them."""
    first = _shared_inputs(runs.values())
    if first.truth is None:
        raise AfmeError(f"{first.dataset} has no metadata.json: slices need a synthetic dataset's ground truth")
    kg = first.trainer.dataset
    masks = slices.slice_masks(kg, first.truth, split)
    rows = {name: run_slice_mrr(run, split) for name, run in runs.items()}
    store = next((run.store for run in runs.values() if run.features), None)
    rows.update(slices.reference_rows(kg, store, first.truth, masks, split, first.trainer.filter_index))
    return slices.slice_table(rows, slices.slice_counts(masks))


def slice_results(runs: dict[tuple[str, int], Run], split: str = "test") -> pd.DataFrame:
    """One row per ``(variant, seed)`` run: those two columns, then the MRR (fraction) of every slice."""
    _shared_inputs(runs.values())
    rows = [{"variant": variant, "seed": seed, **run_slice_mrr(run, split)} for (variant, seed), run in runs.items()]
    return pd.DataFrame(rows)


def ablation_summary(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`afme_lib.analysis.slices.ablation_summary` with each ablation judged on its slice
    (:func:`afme_lib.ablations.judged_slice`)."""
    judged = {v: ablations.judged_slice(v) for v in results["variant"].unique()}
    return slices.ablation_summary(results, judged, ablations.FULL)


# --- robustness: experiments that train ----------------------------------------------------------
def curve_train_time(dataset: str, features: str, model_cfg: ModelConfig, train_cfg: TrainConfig, kind: str, levels,
                     out_root: str | Path, modalities=None, clean_metrics: dict | None = None) -> pd.DataFrame:
    """Train-time robustness (:mod:`afme_lib.analysis.robustness`): one row per level, a model
    trained and evaluated with the features corrupted by ``kind`` at that level.

    ``dataset`` / ``features`` are folders (as from :func:`prepare_dataset`); the corruption seed is
    the training seed. Runs go to ``<out_root>/<kind>-<level>`` and are reused when finished
    (:func:`train_or_reuse`). Level 0 reuses ``clean_metrics`` (the clean run's metrics.json) when
    given instead of training again.
    """
    out_root = Path(out_root)
    data, store = None, None
    rows = []
    for level in levels:
        if level == 0 and clean_metrics is not None:
            metrics = clean_metrics
        else:
            if store is None:
                data, store = load_inputs(dataset, features, modalities=model_cfg.modalities)
            folder = robustness.corrupted_feature_folder(store, out_root / "features", data.name, kind, level,
                                                         modalities, train_cfg.seed, source=str(Path(features).resolve()))
            metrics = train_or_reuse(dataset, str(folder), model_cfg, train_cfg, out_root / f"{kind}-{level:g}")
        rows.append({"kind": kind, "level": float(level), "seed": train_cfg.seed,
                     **{k: metrics["test"][k] for k in RANK_METRICS}})
    return pd.DataFrame(rows, columns=robustness.COLUMNS)


def robustness_curves(runs: dict[str, Run], levels: dict[str, list], modalities=None, seeds=(0,),
                      train_time: bool = False) -> pd.DataFrame:
    """MRR as the features degrade, for every named run (notebook 05): one frame with columns
    ``variant``, ``phase`` ("test time" / "train time"), ``kind``, ``level``, ``seed`` and the rank metrics.

    ``levels``: ``{kind: [levels]}`` with kind ``noise`` or ``missing``
    (:mod:`afme_lib.analysis.robustness`). Test time: each trained model evaluated with its
    features corrupted, once per corruption seed in ``seeds``. ``train_time``: also one model
    trained per variant, kind and level > 0 on corrupted features (level 0 is the run itself),
    cached under ``<run folder>/train-time/``.
    """
    parts = []
    for variant, run in runs.items():
        if run.store is None:
            raise AfmeError(f"{run.path} was trained without features: there is nothing to corrupt")
        trainer = run.trainer
        for kind, kind_levels in levels.items():
            curve = robustness.curve_test_time(trainer.model, trainer.dataset, run.store, kind, kind_levels, modalities,
                                               seeds, filter_index=trainer.filter_index)
            parts.append(curve.assign(variant=variant, phase="test time"))
            if train_time:
                curve = curve_train_time(run.dataset, run.features, run.model_cfg, run.train_cfg, kind, kind_levels,
                                         run.path / "train-time", modalities, clean_metrics=run.metrics)
                parts.append(curve.assign(variant=variant, phase="train time"))
    return pd.concat(parts, ignore_index=True)
