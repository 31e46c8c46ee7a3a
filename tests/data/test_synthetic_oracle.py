"""The synthetic graph's oracles against brute-force loops that build each query's candidate set
explicitly, and the slice bookkeeping the reports rely on."""

import numpy as np
import pytest

from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import generate, read_metadata
from afme_lib.data.synthetic_oracle import (
    feature_oracle_ranks,
    mrr_by_label,
    oracle_mrr_by_kind,
    oracle_ranks,
    oracle_summary,
    slice_labels,
    stress_labels,
)


def _known(ds):
    known = {}
    for h, r, t in ds.all_true.tolist():
        known.setdefault(("tail", h, r), set()).add(t)
        known.setdefault(("head", t, r), set()).add(h)
    return known


def _rule_brute_force(ds, meta, split):
    comm = np.array(meta["entity_communities"])
    attrs = np.array(meta["entity_attributes"]).T
    types = np.array(meta["entity_types"])
    items = comm >= 0
    known = _known(ds)
    out = {"tail": [], "head": []}
    for h, r, t in ds.split(split).tolist():
        rel = meta["relations"][r]
        for side, query, answer in (("tail", h, t), ("head", t, h)):
            if rel["kind"] == "attribute":
                a = rel["attribute"]
                value = attrs[query, a]
                cand = (attrs[:, a] == value) & (~items if side == "tail" else items)
            elif rel["kind"] == "sibling":
                group = np.array(rel["groups"])
                cand = (group == group[query]) & (np.arange(len(group)) != query)  # never itself
            else:
                c_map = list(rel["community_map"])
                want = c_map[comm[query]] if side == "tail" else c_map.index(comm[query])
                cand = (comm == want) & np.isin(types, rel["tail_types"] if side == "tail" else rel["head_types"])
            assert cand[answer], "the ground truth must hold for every triple"
            cand[list(known[(side, query, r)] - {answer})] = False
            n = int(cand.sum())  # the answer ties with the n - 1 other candidates left
            out[side].append((1 + n) / 2)
    return {s: np.array(v) for s, v in out.items()}


@pytest.mark.parametrize("split", ["valid", "test"])
def test_rule_oracle_ranks_match_brute_force(tiny_synth, split):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    got, want = oracle_ranks(ds, meta, split), _rule_brute_force(ds, meta, split)
    for side in ("tail", "head"):
        np.testing.assert_allclose(got[side], want[side])


def test_rule_oracle_knows_no_item_is_its_own_sibling():
    ds, _, meta = generate("siblings")
    got, want = oracle_ranks(ds, meta, "test"), _rule_brute_force(ds, meta, "test")
    for side in ("tail", "head"):
        np.testing.assert_allclose(got[side], want[side])
        assert (got[side] == 1).all()  # the other members are known answers: the target alone is left


def _feature_brute_force(ds, store, meta, modalities, split):
    """Nearest-class-mean posteriors fitted on warm items, then each query ranked by a loop."""
    attrs = np.array(meta["entity_attributes"]).T
    items = np.array(meta["entity_communities"]) >= 0
    warm = np.array(ds.entity_groups) == "warm"
    known = _known(ds)
    out = {"tail": [], "head": []}
    for h, r, t in ds.split(split).tolist():
        rel = meta["relations"][r]
        if rel["kind"] != "attribute":
            out["tail"].append(np.nan)
            out["head"].append(np.nan)
            continue
        a, k = rel["attribute"], meta["attribute_values"][rel["attribute"]]
        names = modalities or rel["informative_modalities"] + rel["weak_modalities"]
        logp = np.zeros((ds.num_entities, k))
        for m in names:
            x = store.features[m].double().numpy()
            present = store.masks[m].numpy() & items
            fit = present & warm
            means = np.stack([x[fit & (attrs[:, a] == v)].mean(0) for v in range(k)])
            var = np.mean([(x[i] - means[attrs[i, a]]) ** 2 for i in np.flatnonzero(fit)])
            for i in range(ds.num_entities):
                if present[i]:
                    s = -((x[i] - means) ** 2).sum(1) / (2 * var)
                    logp[i] += s - np.logaddexp.reduce(s)
                else:
                    logp[i] += -np.log(k)
        v_true = attrs[t, a]
        tail_scores = logp[h]
        out["tail"].append(
            (1 + (tail_scores > tail_scores[v_true]).sum() + (tail_scores >= tail_scores[v_true]).sum()) / 2
        )
        others = [i for i in np.flatnonzero(items) if i not in known[("head", t, r)] or i == h]
        s = logp[others, v_true]
        s_h = logp[h, v_true]
        out["head"].append((1 + (s > s_h).sum() + (s >= s_h).sum()) / 2)
    return {s: np.array(v) for s, v in out.items()}


@pytest.mark.parametrize("modalities", [None, ["image"]])
def test_feature_oracle_ranks_match_brute_force(tiny_synth, modalities):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    store = FeatureStore.load(tiny_synth, ds.num_entities, verbose=False)
    got = feature_oracle_ranks(ds, store, meta, modalities, "test")
    want = _feature_brute_force(ds, store, meta, modalities, "test")
    for side in ("tail", "head"):
        np.testing.assert_allclose(got[side], want[side], rtol=1e-9)


def test_slices_and_mrr_by_label_pool_both_sides(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    labels = slice_labels(ds, meta, "test")
    group = np.array(meta["entity_groups"])
    kinds = np.array([r["kind"] for r in meta["relations"]])
    for (h, r, t), label in zip(ds.test.tolist(), labels):
        g = "zero-shot" if "zero-shot" in (group[h], group[t]) else "cold" if "cold" in (group[h], group[t]) else "warm"
        assert label == f"{g}/{kinds[r]}"
    ranks = oracle_ranks(ds, meta)
    mrr = mrr_by_label(ranks, labels)
    cold = labels == "cold/attribute"
    assert mrr["cold/attribute"] == pytest.approx(
        np.mean(1 / np.concatenate([ranks["tail"][cold], ranks["head"][cold]]))
    )
    assert mrr["all"] == pytest.approx(oracle_mrr_by_kind(ds, meta)["all"])


def test_default_oracles_show_what_the_benchmark_is_built_for():
    """On `default`: the rule oracle answers cold items' attribute queries exactly; the features of
    the informative modality carry most of it, uninformative ones next to nothing."""
    ds, store, meta = generate("default")
    summary = oracle_summary(ds, store, meta)
    assert summary["rule"]["cold/attribute"] == 1.0 and summary["rule"]["zero-shot/attribute"] == 1.0
    assert summary["features"]["all"]["cold/attribute"] >= 0.75
    for rel in meta["relations"]:
        if rel["kind"] != "attribute":
            continue
        by_modality = summary["features_by_relation"][rel["name"]]
        strong, weak = by_modality[rel["informative_modalities"][0]], by_modality[rel["weak_modalities"][0]]
        others = [
            v
            for m, v in by_modality.items()
            if m not in ("all", *rel["informative_modalities"], *rel["weak_modalities"])
        ]
        assert strong >= 0.75 and strong > weak > 2 * max(others), (rel["name"], by_modality)
        assert strong > 4 * max(others)


def test_stress_labels_name_the_state_of_the_informative_row(tiny_synth):
    ds, meta = load_dataset(tiny_synth), read_metadata(tiny_synth)
    labels = stress_labels(ds, meta, "test")
    for (h, r, _t), label in zip(ds.test.tolist(), labels):
        rel = meta["relations"][r]
        if rel["kind"] != "attribute":
            assert label == ""
            continue
        rec = meta["modalities"][rel["informative_modalities"][0]]
        want = "corrupted" if h in rec["corrupted"]["ids"] else "missing" if h in rec["missing"]["ids"] else "clean"
        assert label == want
    assert {"clean", "corrupted", "missing"} <= set(labels.tolist())
