"""afme_lib.analysis.slices: slice masks, slice MRR against the oracle module's labels, the
random ranking of a slice against the random baseline of its triples, and the ablation summary by hand."""

import numpy as np
import pandas as pd
import pytest

from afme_lib.analysis import slices
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import read_metadata
from afme_lib.data.synthetic_oracle import mrr_by_label, oracle_ranks, oracle_summary, slice_labels, stress_labels
from afme_lib.engine.evaluation import random_baseline


def test_masks_partition_the_queries_and_the_cold_attribute_ones(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    masks = slices.slice_masks(ds, meta)
    labels = slice_labels(ds, meta)
    top = [k for k in masks if k != "all" and k.count("/") == 1]
    assert set(top) == set(labels.tolist())  # every group/kind present, and only those
    assert list(masks)[:2] == ["all", "warm/structural"] and masks["all"].all()
    assert sum(masks[k].astype(int) for k in top).tolist() == [1] * len(labels)  # a partition
    states = [k for k in masks if k.startswith("cold/attribute/")]
    assert states == ["cold/attribute/clean", "cold/attribute/corrupted", "cold/attribute/missing"]
    assert (sum(masks[k].astype(int) for k in states) == masks["cold/attribute"]).all()
    stress = stress_labels(ds, meta)
    for k in states:
        assert (stress[masks[k]] == k.rsplit("/", 1)[1]).all()
    assert slices.slice_counts(masks)["all"] == 2 * len(labels)


def test_slice_mrr_equals_mrr_by_label(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    rng = np.random.default_rng(0)
    n = len(ds.split("test"))
    ranks = {"tail": rng.integers(1, 50, n).astype(float), "head": rng.integers(1, 50, n).astype(float)}
    ranks["tail"][:3] = np.nan  # a ranker without an answer for some queries (feature oracles on structure)
    got = slices.slice_mrr(ranks, slices.slice_masks(ds, meta))
    labels = slice_labels(ds, meta)
    want = mrr_by_label(ranks, labels)
    cold = labels == "cold/attribute"
    stress = np.where(cold, np.char.add("cold/attribute/", stress_labels(ds, meta).astype(str)), "").astype(object)
    want.update({k: v for k, v in mrr_by_label(ranks, stress).items() if k.startswith("cold/")})
    assert got == pytest.approx(want)


def test_oracle_rows_agree_with_oracle_summary(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    store = FeatureStore.load(tiny_synth, ds.num_entities)
    masks = slices.slice_masks(ds, meta)
    rows = slices.reference_rows(ds, store, meta, masks)
    summary = oracle_summary(ds, store, meta)
    for label, value in summary["rule"].items():
        assert rows[slices.RULE][label] == pytest.approx(value)
    for label, value in summary["features"]["all"].items():
        assert rows[slices.FEATURES][label] == pytest.approx(value, nan_ok=True)
    assert rows[slices.RULE]["cold/attribute/corrupted"] == pytest.approx(
        slices.slice_mrr(oracle_ranks(ds, meta), {"x": masks["cold/attribute/corrupted"]})["x"]
    )


def test_random_ranking_of_each_slice_is_the_random_baseline_of_its_triples(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    masks = slices.slice_masks(ds, meta)
    got = slices.random_mrr(ds, masks)
    assert got == {
        label: pytest.approx(random_baseline(ds, "test", triples_mask=mask)["mrr"]) for label, mask in masks.items()
    }
    assert got["all"] == pytest.approx(random_baseline(ds, "test")["mrr"])


def test_slice_table_and_markdown():
    rows = {"m": {"all": 0.5, "cold/attribute": 0.25}, slices.FEATURES: {"all": 0.75, "cold/attribute": float("nan")}}
    table = slices.slice_table(rows, {"all": 10, "cold/attribute": 4})
    assert table.loc["m", "all"] == 50.0 and table.loc["queries", "cold/attribute"] == 4
    assert slices.markdown(table) == [
        "| MRR % | all | cold/attribute |",
        "|---|---:|---:|",
        "| m | 50.00 | 25.00 |",
        "| feature oracle | 75.00 | – |",
        "| queries | 10 | 4 |",
    ]
    assert slices.comparison_lines(table, "m", "all") == [
        "m: 50.00 % MRR on all queries (10 queries).",
        "- 67 % of the feature oracle (75.00 %)",
    ]


def test_ablation_summary_by_hand():
    results = pd.DataFrame(
        [
            {"variant": "full", "seed": 0, "a": 0.50, "b": 0.30},
            {"variant": "full", "seed": 1, "a": 0.60, "b": 0.40},
            {"variant": "x", "seed": 0, "a": 0.40, "b": 0.35},
            {"variant": "x", "seed": 1, "a": 0.55, "b": 0.45},
            {"variant": "y", "seed": 0, "a": 0.70, "b": 0.10},
        ]
    )
    summary = slices.ablation_summary(results, {"x": "a", "y": "b"})
    assert list(summary.index) == ["x", "y"]
    x, y = summary.loc["x"], summary.loc["y"]
    assert (x["slice"], x["seeds"], x["lower in every seed"]) == ("a", 2, True)
    assert x["MRR %"] == pytest.approx(47.5) and x["full MRR %"] == pytest.approx(55.0)
    assert x["std"] == pytest.approx(100 * np.std([0.40, 0.55], ddof=1))
    assert x["change (points)"] == pytest.approx(-7.5)
    assert y["seeds"] == 1 and np.isnan(y["std"]) and y["change (points)"] == pytest.approx(10 - 35)
    assert y["lower in every seed"]  # seed 0: 0.10 < 0.30
    assert slices.ablation_lines(summary)[1] == (
        "y on b: 10.00 % against the full model's 35.00 ± 7.07 % (-25.00 points; lower in every seed, 1 seed)."
    )
    table = slices.mean_std_table(results)
    assert table.loc["x", "a"] == "47.50 ± 10.61" and table.loc["y", "a"] == "70.00 ± n/a"
