"""afme_lib.experiments.comparisons on the tiny preset (one epoch): a model beside its baselines, ablations over
seeds and their slices, the slice table of runs, robustness curves."""

from __future__ import annotations

import pytest

from afme_lib.analysis import slices
from afme_lib.core.config import ModelConfig
from afme_lib.experiments import comparisons
from afme_lib.experiments.spec import RunSpec

TINY = {"dim": 8, "epochs": 1, "batch_size": 2048, "negatives": 2, "eval_every": 1, "progress": False}


def tiny(dataset, **fields) -> RunSpec:
    return RunSpec.from_fields({"dataset": str(dataset), "model": "afme", **TINY, **fields})


def test_ablation_runs_slices_and_summary(tiny_synth, tmp_path):
    runs = comparisons.ablation_runs(tiny(tiny_synth), ["full", "w/o GAN"], [0, 1], runs_root=tmp_path)
    assert list(runs) == [("full", 0), ("w/o GAN", 0), ("full", 1), ("w/o GAN", 1)]
    assert [r.model_cfg.gan for r in runs.values()] == [True, False, True, False]
    assert [r.train_cfg.seed for r in runs.values()] == [0, 0, 1, 1]
    results = comparisons.slice_results(runs)
    assert list(results.columns[:3]) == ["variant", "seed", "all"] and "cold/attribute/missing" in results
    trainer = runs["full", 0].trainer
    masks = slices.slice_masks(trainer.dataset, runs["full", 0].truth)
    ranks = slices.model_ranks(trainer.model, trainer.dataset, "test", trainer.filter_index)
    assert results.iloc[0, 2:].to_dict() == pytest.approx(slices.slice_mrr(ranks, masks))
    assert results.iloc[0]["all"] == pytest.approx(runs["full", 0].metrics["test"]["mrr"])
    summary = comparisons.ablation_summary(results)
    assert list(summary.index) == ["w/o GAN"] and summary.loc["w/o GAN", "slice"] == "cold/attribute/missing"
    given = comparisons.ablation_runs(
        tiny(tiny_synth), ["full"], [0], runs_root=tmp_path / "other", run_dirs={"full": runs["full", 0].path}
    )
    assert given["full", 0].path == runs["full", 0].path  # used as given, nothing trained
    assert not (tmp_path / "other").exists()


def test_slice_table_of_runs_ends_with_the_references(tiny_synth, tmp_path):
    runs = comparisons.model_runs(tiny(tiny_synth), ["rotate"], runs_root=tmp_path)
    table = comparisons.slice_table(runs)
    assert list(table.index) == ["afme", "rotate", slices.RULE, slices.FEATURES, slices.RANDOM, "queries"]
    assert table.loc["afme", "all"] == pytest.approx(100 * runs["afme"].metrics["test"]["mrr"], abs=0.006)
    assert table.loc[slices.RULE, "cold/attribute"] == 100.0


def test_robustness_curves_of_runs(tiny_synth, tmp_path):
    runs = comparisons.variant_runs(tiny(tiny_synth), ["full"], runs_root=tmp_path)
    curves = comparisons.robustness_curves(runs, {"noise": [0.0, 2.0], "missing": [0.0, 1.0]}, seeds=[0, 1])
    assert list(curves.groupby(["kind", "level"], sort=False).size().items()) == [
        (("noise", 0.0), 1),
        (("noise", 2.0), 2),
        (("missing", 0.0), 1),
        (("missing", 1.0), 2),
    ]
    assert set(curves["variant"]) == {"full"} and set(curves["phase"]) == {"test time"}
    clean = curves[curves["level"] == 0]["mrr"]
    assert clean.tolist() == pytest.approx([runs["full"].metrics["test"]["mrr"]] * 2)


def test_model_runs_train_the_model_with_its_switches_and_the_baselines_without(tiny_synth, tmp_path):
    runs = comparisons.model_runs(tiny(tiny_synth, gan=False), ["rotate", "afme"], runs_root=tmp_path)
    assert list(runs) == ["afme", "rotate"]  # the model itself is not trained twice
    assert runs["afme"].model_cfg.gan is False and runs["rotate"].model_cfg == ModelConfig(name="rotate", dim=8)
    mine = comparisons.model_runs(tiny(tiny_synth, model="rotate"), [], run_dir=tmp_path / "mine", runs_root=tmp_path)
    assert mine["rotate"].path == tmp_path / "mine"  # a grid cell's run_dir


def test_model_runs_give_a_baseline_its_own_settings(tiny_synth, tmp_path):
    runs = comparisons.model_runs(
        tiny(tiny_synth), {"rotate": {}, "mm-concat": {"structure_shuffle": 0.2}}, runs_root=tmp_path
    )
    assert set(runs) == {"afme", "rotate", "mm-concat"}
    assert runs["mm-concat"].model_cfg.structure_shuffle == 0.2
    assert runs["afme"].model_cfg.structure_shuffle is None and runs["rotate"].model_cfg.structure_shuffle is None
