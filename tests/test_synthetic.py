"""The synthetic generator: determinism, loadable files, clean splits, and a ground truth that holds."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from afme_lib.data.dataset import load_dataset, triple_keys
from afme_lib.data.features import FeatureStore
from afme_lib.data.filters import CATEGORIES, FilterIndex, relation_categories
from afme_lib.data.synthetic import (
    PRESETS,
    ModalitySpec,
    SynthConfig,
    generate,
    read_metadata,
    write_synthetic,
)
from afme_lib.errors import AfmeError


@pytest.fixture(scope="module")
def tiny():
    return generate("tiny")


@pytest.fixture(scope="module")
def default():
    return generate("default")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("synth") / "tiny", "tiny", seed=7)


def _attrs(meta) -> np.ndarray:
    return np.array(meta["entity_attributes"]).T  # [N, A]


def _clean_rows(meta, modality: str, n: int) -> np.ndarray:
    rec = meta["modalities"][modality]
    clean = np.ones(n, dtype=bool)
    clean[rec["missing"]["ids"] + rec["corrupted"]["ids"]] = False
    return clean


def _assert_cyclic_shift(mapping: np.ndarray, k: int) -> None:
    """Maps must be v -> (v + s) mod k: shifts commute, so diagonal scorers can represent them."""
    assert len(mapping) == k
    np.testing.assert_array_equal(mapping, (np.arange(k) + mapping[0]) % k)


def _ridge_accuracy(x_train, y_train, x_test, y_test, k: int) -> float:
    """Closed-form ridge regression onto one-hot labels; accuracy of the argmax on the test rows."""
    scale = x_train.std()
    xs = [np.c_[x / scale, np.ones(len(x))] for x in (x_train, x_test)]
    w = np.linalg.solve(xs[0].T @ xs[0] + np.eye(xs[0].shape[1]), xs[0].T @ np.eye(k)[y_train])
    return float(((xs[1] @ w).argmax(1) == y_test).mean())


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, tiny_folder):
    again = write_synthetic(tmp_path / "again", "tiny", seed=7)
    other = write_synthetic(tmp_path / "other", "tiny", seed=8)
    names = sorted(p.name for p in tiny_folder.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert len(names) == 9  # 2 id maps + 3 splits + 3 feature files + metadata.json
    for name in names:
        assert (tiny_folder / name).read_bytes() == (again / name).read_bytes(), name
    for name in ("train2id.txt", "synth-tiny-textual.pth", "synth-tiny-visual.pth", "metadata.json"):
        assert (tiny_folder / name).read_bytes() != (other / name).read_bytes(), name


def test_written_folder_loads_with_the_right_shapes_and_masks(tiny_folder):
    meta = read_metadata(tiny_folder)
    ds = load_dataset(tiny_folder)
    n = meta["config"]["num_entities"]
    assert ds.num_entities == n and ds.num_relations == len(meta["relations"]) == 8
    assert ds.relation_names == [r["name"] for r in meta["relations"]]
    assert ds.counts() == {k: v for k, v in meta["counts"].items() if k != "isolated_entities"}
    assert 2000 <= len(ds.train) <= 3000
    types = meta["entity_types"]
    for i, name in enumerate(ds.entity_names):
        assert re.fullmatch(rf"e{i:05d}_type{types[i]}", name), name

    store = FeatureStore.load(tiny_folder, n, verbose=False)
    assert sorted(store.modalities) == ["audio", "image", "text"]
    for m, rec in meta["modalities"].items():
        assert store.features[m].shape == (n, meta["config"]["modalities"][m]["dim"]) == (n, rec["dim"])
        missing = (~store.masks[m]).nonzero().flatten().tolist()
        assert missing == rec["missing"]["ids"] and len(missing) == rec["missing"]["count"] > 0
        corrupted = rec["corrupted"]["ids"]
        assert len(corrupted) == rec["corrupted"]["count"] > 0
        assert store.masks[m][corrupted].all()  # degraded rows are present, just wrong
        assert (tiny_folder / rec["file"]).is_file()


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_splits_are_disjoint_duplicate_free_and_covered_by_train(preset, tiny, default):
    ds, _, meta = tiny if preset == "tiny" else default
    n, r = ds.num_entities, ds.num_relations
    keys = {s: triple_keys(ds.split(s), n, r) for s in ("train", "valid", "test")}
    for s, k in keys.items():
        assert len(np.unique(k)) == len(k), f"duplicate triples in {s}"
        assert len(k) > 0
    assert not np.intersect1d(keys["train"], keys["valid"]).size
    assert not np.intersect1d(keys["train"], keys["test"]).size
    assert not np.intersect1d(keys["valid"], keys["test"]).size
    assert (ds.all_true[:, 0] != ds.all_true[:, 2]).all()  # no self-loops
    train_entities = set(ds.train[:, [0, 2]].flatten().tolist())
    train_relations = set(ds.train[:, 1].tolist())
    assert train_entities == set(range(n)) and meta["counts"]["isolated_entities"] == 0
    for s in ("valid", "test"):
        assert set(ds.split(s)[:, [0, 2]].flatten().tolist()) <= train_entities
        assert set(ds.split(s)[:, 1].tolist()) <= train_relations
    held = (len(ds.valid) + len(ds.test)) / len(ds.all_true)
    assert 0.17 < held <= 0.2 + 1 / len(ds.all_true)  # the configured 10 % + 10 % (rounded), minus the few kept for coverage


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_metadata_ground_truth_holds_for_every_triple(preset, tiny, default):
    ds, _, meta = tiny if preset == "tiny" else default
    cfg = meta["config"]
    attrs, types = _attrs(meta), np.array(meta["entity_types"])
    community = np.array(meta["entity_communities"])
    triples = ds.all_true.numpy()
    kinds = {rec["kind"] for rec in meta["relations"]}
    assert kinds == {"attribute", "structural"}
    for rec in meta["relations"]:
        sub = triples[triples[:, 1] == rec["id"]]
        assert sum(rec["triples"].values()) == len(sub) > 0
        assert rec["category"] == rec["intended_category"], rec["name"]
        community_map = np.array(rec["community_map"])
        _assert_cyclic_shift(community_map, meta["num_communities"])
        np.testing.assert_array_equal(community[sub[:, 2]], community_map[community[sub[:, 0]]])
        if rec["kind"] == "attribute":
            a = rec["attribute"]
            encoders = [m for m, spec in cfg["modalities"].items() if a in spec["attributes"]]
            assert rec["informative_modalities"] == encoders and encoders
            assert rec["name"].startswith(f"r{rec['id']:02d}_attr{a}_")
            value_map = np.array(rec["value_map"])
            _assert_cyclic_shift(value_map, meta["attribute_values"][a])
            np.testing.assert_array_equal(attrs[sub[:, 2], a], value_map[attrs[sub[:, 0], a]])
        else:
            assert rec["informative_modalities"] == [] and rec["attribute"] is None
            assert rec["name"].startswith(f"r{rec['id']:02d}_struct_")
            assert np.isin(types[sub[:, 0]], rec["head_types"]).all()
            assert np.isin(types[sub[:, 2]], rec["tail_types"]).all()
    for m, rec in meta["modalities"].items():
        assert rec["attributes"] == list(cfg["modalities"][m]["attributes"])
        assert not set(rec["missing"]["ids"]) & set(rec["corrupted"]["ids"])
    # types, communities and every attribute's values are balanced over entities
    for labels, k in [(types, meta["num_types"]), (community, meta["num_communities"]),
                      *((attrs[:, a], k) for a, k in enumerate(meta["attribute_values"]))]:
        counts = np.bincount(labels, minlength=k)
        assert len(counts) == k and counts.max() - counts.min() <= 1


def test_informative_modality_predicts_the_tail_attribute_and_others_do_not(tiny):
    """Ridge probe: head's clean features -> tail's value of a(r), on heads unseen by the probe."""
    ds, store, meta = tiny
    attrs, triples = _attrs(meta), ds.all_true.numpy()
    checked = 0
    for rec in meta["relations"]:
        if rec["kind"] != "attribute":
            continue
        a = rec["attribute"]
        k = meta["attribute_values"][a]
        for m in meta["modalities"]:
            sub = triples[(triples[:, 1] == rec["id"]) & _clean_rows(meta, m, ds.num_entities)[triples[:, 0]]]
            x = store.features[m].double().numpy()[sub[:, 0]]
            y = attrs[sub[:, 2], a]
            fold = sub[:, 0] % 2 == 0  # split by head: no head is in both halves
            acc = _ridge_accuracy(x[fold], y[fold], x[~fold], y[~fold], k)
            if m in rec["informative_modalities"]:
                assert acc > 0.7, (rec["name"], m, acc)
            else:
                assert acc < 1 / k + 0.2, (rec["name"], m, acc)
            checked += 1
    assert checked == 6 * 3


def _oracle_mrr(ds, meta, use_community: bool, use_attribute: bool) -> dict[str, float]:
    """Filtered tail MRR on test of a ranker that knows the hidden cells and the training popularity.

    score(t) = [t is in the allowed cell] + 1e-3 * (times t is a training tail of r); ties share
    the mean rank. The cell is the community the relation maps to (``use_community``) and,
    for attribute relations, the attribute value it maps to (``use_attribute``; the
    modalities' share); structural relations always know their tail types.
    """
    attrs, community, types = _attrs(meta), np.array(meta["entity_communities"]), np.array(meta["entity_types"])
    train, (h, r, t) = ds.train.numpy(), ds.test.numpy().T
    score = np.zeros((len(h), ds.num_entities))
    for rec in meta["relations"]:
        rows = np.flatnonzero(r == rec["id"])
        ok = np.ones((len(rows), ds.num_entities), dtype=bool)
        if use_community:
            ok &= community[None, :] == np.array(rec["community_map"])[community[h[rows]]][:, None]
        if rec["kind"] == "structural":
            ok &= np.isin(types, rec["tail_types"])[None, :]
        elif use_attribute:
            a = rec["attribute"]
            ok &= attrs[None, :, a] == np.array(rec["value_map"])[attrs[h[rows], a]][:, None]
        popularity = np.bincount(train[train[:, 1] == rec["id"], 2], minlength=ds.num_entities)
        score[rows] = ok + 1e-3 * popularity[None, :]
    target = score[np.arange(len(h)), t].copy()
    q_rows, answers = FilterIndex.from_dataset(ds).known_answers(torch.from_numpy(h), torch.from_numpy(r), "tail")
    score[q_rows.numpy(), answers.numpy()] = -np.inf  # filtered: other true tails do not count
    rank = (score > target[:, None]).sum(1) + ((score == target[:, None]).sum(1) + 1) / 2
    kinds = np.array([meta["relations"][i]["kind"] for i in r])
    return {k: float((1 / rank[kinds == k]).mean()) for k in ("attribute", "structural")}


def test_held_out_links_are_predictable_from_structure_and_features_together(tiny):
    """The hidden cells make test triples predictable; on attribute relations both halves are needed."""
    ds, _, meta = tiny
    full = _oracle_mrr(ds, meta, use_community=True, use_attribute=True)
    structure_only = _oracle_mrr(ds, meta, use_community=True, use_attribute=False)
    features_only = _oracle_mrr(ds, meta, use_community=False, use_attribute=True)
    assert full["attribute"] > 0.4 and full["structural"] > 0.15
    assert full["attribute"] > 3 * structure_only["attribute"]
    assert full["attribute"] > 3 * features_only["attribute"]
    assert structure_only["structural"] == full["structural"]  # no modality informs structural relations


def test_corrupted_rows_carry_no_signal_and_scales_differ(default):
    ds, store, meta = default
    n, attrs = ds.num_entities, _attrs(meta)
    x = store.features["image"].double().numpy()
    rec = meta["modalities"]["image"]
    clean = _clean_rows(meta, "image", n)
    corrupted = np.array(rec["corrupted"]["ids"])
    a = rec["attributes"][1]
    k = meta["attribute_values"][a]
    train = clean & (np.arange(n) % 2 == 0)
    test_clean = clean & (np.arange(n) % 2 == 1)
    fit = (x[train], attrs[train, a])
    assert _ridge_accuracy(*fit, x[test_clean], attrs[test_clean, a], k) > 0.9
    assert _ridge_accuracy(*fit, x[corrupted], attrs[corrupted, a], k) < 1 / k + 0.1
    # Degraded rows have the spread of clean ones, so their norm does not give them away.
    norms = np.linalg.norm(x, axis=1)
    assert abs(norms[corrupted].mean() / norms[clean].mean() - 1) < 0.1
    # Modality scale is deliberately different: image rows are ~10x text rows per dimension.
    def rms(m):
        f = store.features[m][store.masks[m]]
        return float(f.pow(2).mean().sqrt())
    assert 7 < rms("image") / rms("text") < 13
    assert rms("numeric") < 0.2 * rms("text")


def test_default_preset_covers_every_category_and_the_size_of_the_main_job(default):
    ds, store, meta = default
    cats = relation_categories(ds.train, ds.num_relations)
    assert set(cats) == set(CATEGORIES)
    for kind in ("attribute", "structural"):
        assert {c for c, rec in zip(cats, meta["relations"]) if rec["kind"] == kind} == set(CATEGORIES), kind
    assert 1000 <= ds.num_entities <= 1500 and 16 <= ds.num_relations <= 24  # a few CPU-minutes of training
    assert 8_000 <= len(ds.all_true) <= 15_000
    assert sorted(store.modalities) == ["audio", "image", "numeric", "text"]
    assert all(32 <= f.shape[1] <= 128 for f in store.features.values())
    # one modality encodes nothing: no relation lists it as informative
    assert meta["modalities"]["numeric"]["attributes"] == []
    assert not any("numeric" in rec["informative_modalities"] for rec in meta["relations"])


def test_tiny_generation_is_fast():
    generate("tiny", seed=1)  # warm-up (imports, allocator)
    start = time.perf_counter()
    generate("tiny", seed=2)
    assert time.perf_counter() - start < 0.5


def test_config_round_trips_through_metadata_and_regenerates_the_same_graph(tiny_folder):
    meta = read_metadata(tiny_folder)
    cfg = SynthConfig.from_dict(meta["config"])
    assert cfg == replace(PRESETS["tiny"], seed=7)
    ds, _, _ = generate(cfg)
    loaded = load_dataset(tiny_folder)
    for split in ("train", "valid", "test"):
        assert torch.equal(ds.split(split), loaded.split(split))


def test_feature_settings_leave_the_graph_and_other_modalities_unchanged(tiny):
    ds, store, _ = tiny
    cfg = PRESETS["tiny"]
    noisier = replace(cfg, modalities={**cfg.modalities, "audio": replace(cfg.modalities["audio"], noise=3.0)})
    ds2, store2, _ = generate(noisier)
    assert torch.equal(ds.train, ds2.train) and torch.equal(ds.test, ds2.test)
    assert torch.equal(store.features["text"], store2.features["text"])
    assert not torch.equal(store.features["audio"], store2.features["audio"])


def test_rewriting_a_synthetic_folder_replaces_it_and_a_foreign_folder_is_refused(tmp_path):
    folder = write_synthetic(tmp_path / "s", "tiny")
    small = replace(PRESETS["tiny"], name="synth-small", num_entities=120,
                    modalities={"text": ModalitySpec((0,), dim=8, missing=0.1)})
    write_synthetic(folder, small)
    assert not list(folder.glob("synth-tiny-*"))  # stale feature files are gone
    store = FeatureStore.load(folder, 120, verbose=False)
    assert store.modalities == ["text"] and int((~store.masks["text"]).sum()) == 12
    assert load_dataset(folder).num_entities == 120

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(AfmeError, match="folder is not empty and holds no synthetic dataset; refusing to write into it"):
        write_synthetic(foreign, "tiny")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attribute_relations": ((9, "1-1"),)}, r"attribute relation on attribute 9 outside \[0, 4\)"),
        ({"structural_relations": ("1-2",)}, r"unknown category '1-2'"),
        ({"modalities": {"text": ModalitySpec((5,), dim=4)}}, r"modality 'text' encodes attributes \[5\] outside \[0, 4\)"),
        ({"modalities": {"my-text": ModalitySpec((0,), dim=4)}}, r"modality name 'my-text'"),
        ({"fanout": 2.0}, r"fanout 2.0 < 2.5"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, r"sum below 1"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        generate(replace(PRESETS["tiny"], **change))


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match=r"unknown synthetic preset 'huge'; expected one of \['default', 'tiny'\]"):
        generate("huge")
