"""Comparisons over several runs, as the notebooks and the main job show them: a model beside its
baselines, AFME and its named ablations over seeds, test MRR by slice, robustness curves.

Every run comes from :func:`afme_lib.experiments.run.run_many` (trained once, cached by its spec
and shared, several at a time). The numbers come from the run folders and
:mod:`afme_lib.analysis` (slices, robustness), never from notebook outputs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from afme_lib.analysis import robustness, slices
from afme_lib.core import ablations
from afme_lib.core.errors import AfmeError
from afme_lib.core.metric_names import RANK_METRICS
from afme_lib.experiments.run import CACHE_ROOT, Run, open_run, run, run_many
from afme_lib.experiments.spec import RunSpec, load_inputs


# --- runs -----------------------------------------------------------------------------------------
def model_runs(
    spec: RunSpec,
    compare_with=(),
    run_dir: str | Path | None = None,
    runs_root: str | Path = CACHE_ROOT,
    workers: int = 1,
) -> dict[str, Run]:
    """``{name: Run}`` of ``spec`` (in ``run_dir`` when given) and of each model of ``compare_with``
    beside it with the same settings but AFME's switches (all on: notebook 02 switches a component
    off for the model, not for its baselines), trained ``workers`` at a time. ``compare_with`` is a
    list of model names, or ``{name: {field: value}}`` to give a baseline settings of its own (the
    main job's :data:`~afme_lib.experiments.main_job.MODEL_SETTINGS`)."""
    name = spec.model.name
    plain = {ablation.switch: True for ablation in ablations.ABLATIONS.values()}
    own = compare_with if isinstance(compare_with, dict) else dict.fromkeys(compare_with, {})
    others = {
        other: spec.for_model(other, **plain, **(settings or {})) for other, settings in own.items() if other != name
    }
    if run_dir is not None:
        runs = {name: open_run(run(spec, run_dir))}
        return {**runs, **{k: open_run(f) for k, f in run_many(others, workers, runs_root).items()}}
    folders = run_many({name: spec, **others}, workers, runs_root)
    return {key: open_run(folder) for key, folder in folders.items()}


def ablation_runs(
    spec: RunSpec,
    variants=ablations.NAMES,
    seeds=(0,),
    runs_root: str | Path = CACHE_ROOT,
    workers: int = 1,
    run_dirs: dict | None = None,
) -> dict[tuple[str, int], Run]:
    """``{(variant, seed): Run}``: AFME (``spec`` with ``model: afme``) and its named ablations
    (:mod:`afme_lib.core.ablations`), once per training seed, trained ``workers`` at a time.
    ``run_dirs`` ``{variant: run folder}`` (one seed only): runs trained elsewhere, used instead;
    they must be on the spec's dataset and features."""
    variants = ablations.check_names(variants)
    resolved = spec.for_model("afme").resolve()
    given = {}
    for variant, folder in (run_dirs or {}).items():
        if len(seeds) != 1:
            raise AfmeError("run_dirs stands for one training seed; give one seed with it")
        done = open_run(folder)
        if (done.dataset, done.features) != (resolved.dataset, resolved.features):
            raise AfmeError(
                f"run_dirs[{variant!r}] was trained on {done.dataset} (features {done.features}), "
                f"not on {resolved.dataset} (features {resolved.features})"
            )
        given[variant, seeds[0]] = done
    specs = {
        (variant, seed): spec.for_model("afme", seed=seed, **ablations.overrides(variant))
        for seed in seeds
        for variant in variants
        if (variant, seed) not in given
    }
    trained = {key: open_run(folder) for key, folder in run_many(specs, workers, runs_root).items()}
    return {
        (variant, seed): given.get((variant, seed)) or trained[variant, seed] for seed in seeds for variant in variants
    }


def variant_runs(
    spec: RunSpec,
    variants=ablations.NAMES,
    run_dirs: dict | None = None,
    runs_root: str | Path = CACHE_ROOT,
    workers: int = 1,
) -> dict[str, Run]:
    """``{variant: Run}`` of AFME and the named ablations at the spec's seed (:func:`ablation_runs`)."""
    runs = ablation_runs(spec, variants, [spec.train.seed], runs_root, workers, run_dirs)
    return {variant: done for (variant, _), done in runs.items()}


def grid_runs(results: pd.DataFrame) -> dict[tuple[str, int], Run]:
    """``{(variant, seed): Run}`` of an ablation grid's results (``afme_lib.experiments.grid.read_results``
    of its report folder); cells that did not finish are left out."""
    done = results[results["status"] == "ok"]
    return {(row["variant"], int(row["seed"])): open_run(row["run_dir"]) for _, row in done.iterrows()}


# --- slices -------------------------------------------------------------------------------------
def _shared_inputs(runs) -> Run:
    """The first run; every run must be on its dataset (the slices are that dataset's)."""
    runs = list(runs)
    first = runs[0]
    for other in runs[1:]:
        if other.dataset != first.dataset:
            raise AfmeError(
                f"runs on different datasets cannot share a slice table: {first.dataset} and {other.dataset}"
            )
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
    (:func:`afme_lib.core.ablations.judged_slice`)."""
    judged = {v: ablations.judged_slice(v) for v in results["variant"].unique()}
    return slices.ablation_summary(results, judged, ablations.FULL)


# --- robustness: experiments that train ----------------------------------------------------------
def curve_train_time(
    spec: RunSpec, kind: str, levels, out_root: str | Path, modalities=None, clean_metrics: dict | None = None
) -> pd.DataFrame:
    """Train-time robustness (:mod:`afme_lib.analysis.robustness`): one row per level, ``spec``
    trained and evaluated with its features corrupted by ``kind`` at that level.

    The corruption seed is the training seed. Runs go to ``<out_root>/<kind>-<level>`` and are
    reused when finished. Level 0 reuses ``clean_metrics`` (the clean run's metrics.json) when
    given instead of training again.
    """
    out_root = Path(out_root)
    resolved = spec.resolve()
    data, store = None, None
    rows = []
    for level in levels:
        if level == 0 and clean_metrics is not None:
            metrics = clean_metrics
        else:
            if store is None:
                data, store = load_inputs(resolved.dataset, resolved.features, modalities=spec.model.modalities)
            folder = robustness.corrupted_feature_folder(
                store,
                out_root / "features",
                data.name,
                kind,
                level,
                modalities,
                spec.train.seed,
                source=str(resolved.features),
            )
            metrics = run(
                spec.with_fields(dataset=resolved.dataset, features=str(folder)), out_root / f"{kind}-{level:g}"
            ).metrics
        rows.append(
            {
                "kind": kind,
                "level": float(level),
                "seed": spec.train.seed,
                **{k: metrics["test"][k] for k in RANK_METRICS},
            }
        )
    return pd.DataFrame(rows, columns=robustness.COLUMNS)


def robustness_curves(
    runs: dict[str, Run], levels: dict[str, list], modalities=None, seeds=(0,), train_time: bool = False
) -> pd.DataFrame:
    """MRR as the features degrade, for every named run (notebook 05): one frame with columns
    ``variant``, ``phase`` ("test time" / "train time"), ``kind``, ``level``, ``seed`` and the rank metrics.

    ``levels``: ``{kind: [levels]}`` with kind ``noise`` or ``missing``
    (:mod:`afme_lib.analysis.robustness`). Test time: each trained model evaluated with its
    features corrupted, once per corruption seed in ``seeds``. ``train_time``: also one model
    trained per variant, kind and level > 0 on corrupted features (level 0 is the run itself),
    cached under ``<run folder>/train-time/``.
    """
    parts = []
    for variant, done in runs.items():
        if done.store is None:
            raise AfmeError(f"{done.path} was trained without features: there is nothing to corrupt")
        trainer = done.trainer
        for kind, kind_levels in levels.items():
            curve = robustness.curve_test_time(
                trainer.model,
                trainer.dataset,
                done.store,
                kind,
                kind_levels,
                modalities,
                seeds,
                filter_index=trainer.filter_index,
            )
            parts.append(curve.assign(variant=variant, phase="test time"))
            if train_time:
                curve = curve_train_time(
                    done.spec, kind, kind_levels, done.path / "train-time", modalities, clean_metrics=done.metrics
                )
                parts.append(curve.assign(variant=variant, phase="train time"))
    return pd.concat(parts, ignore_index=True)
