"""The synthetic generator (v2): determinism, loadable files, slice bookkeeping, and a ground
truth that holds (attribute relations decided by the features of the modalities that encode
them, structural ones by the block model)."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from afme_lib.core.errors import AfmeError
from afme_lib.data.dataset import load_dataset, triple_keys
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import CATEGORIES, relation_categories
from afme_lib.data.synthetic import (
    PRESETS,
    ModalitySpec,
    SynthConfig,
    generate,
    read_metadata,
    value_entity_ids,
    write_synthetic,
)


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
    return np.array(meta["entity_attributes"]).T  # [N, A], -1 where an entity has no value


def _items(meta) -> np.ndarray:
    return np.arange(meta["counts"]["items"])


def _clean_rows(meta, modality: str) -> np.ndarray:
    """Item ids whose row in ``modality`` is neither missing nor degraded."""
    rec = meta["modalities"][modality]
    bad = set(rec["missing"]["ids"]) | set(rec["corrupted"]["ids"])
    return np.array([i for i in _items(meta) if i not in bad])


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
    assert len(names) == 11  # 2 id maps + 3 splits + entity2group.txt + 4 feature files + metadata.json
    for name in names:
        assert (tiny_folder / name).read_bytes() == (again / name).read_bytes(), name
    for name in (
        "train2id.txt",
        "entity2group.txt",
        "synth-tiny-textual.pth",
        "synth-tiny-visual.pth",
        "metadata.json",
    ):
        assert (tiny_folder / name).read_bytes() != (other / name).read_bytes(), name


def test_written_folder_loads_with_groups_shapes_and_masks(tiny_folder):
    meta = read_metadata(tiny_folder)
    ds = load_dataset(tiny_folder)
    cfg = SynthConfig.from_dict(meta["config"])
    n, n_items = cfg.num_entities, cfg.num_items
    assert ds.num_entities == n == meta["counts"]["entities"] == n_items + sum(cfg.attribute_values)
    assert ds.num_relations == len(meta["relations"]) == len(cfg.attribute_values) + len(cfg.structural_relations)
    assert ds.relation_names == [r["name"] for r in meta["relations"]]
    assert ds.entity_groups == meta["entity_groups"]
    assert meta["group_counts"] == {"warm": 225, "cold": 60, "zero-shot": 15, "value": 17}
    types = meta["entity_types"]
    for i in range(n_items):
        assert re.fullmatch(rf"e{i:05d}_type{types[i]}", ds.entity_names[i])
    for a, ids in enumerate(value_entity_ids(cfg)):
        assert [ds.entity_names[i] for i in ids] == [f"attr{a}=v{v:02d}" for v in range(cfg.attribute_values[a])]

    store = FeatureStore.load(tiny_folder, n, verbose=False)
    assert sorted(store.modalities) == ["audio", "image", "numeric", "text"]
    values = np.arange(n_items, n)
    for m, rec in meta["modalities"].items():
        assert store.features[m].shape == (n, rec["dim"])
        mask = store.masks[m].numpy()
        assert np.flatnonzero(~mask[:n_items]).tolist() == rec["missing"]["ids"]
        assert len(rec["missing"]["ids"]) == rec["missing"]["count"]
        assert mask[rec["corrupted"]["ids"]].all()  # degraded rows are present, just wrong
        assert not mask[values].any()  # value entities carry no features by default
        assert (tiny_folder / rec["file"]).is_file()


def test_value_features_give_a_value_entity_its_own_prototype_in_its_attributes_modalities():
    cfg = replace(PRESETS["tiny"], value_features=True)
    ds, store, meta = generate(cfg)
    attrs = _attrs(meta)
    for m, rec in meta["modalities"].items():
        mask = store.masks[m].numpy()
        owns = np.concatenate([value_entity_ids(cfg)[a] for a in rec["attributes"]]) if rec["attributes"] else []
        np.testing.assert_array_equal(np.flatnonzero(mask[cfg.num_items :]) + cfg.num_items, np.sort(owns))
        for a in rec["attributes"]:  # "Comedy" looks like the comedies: nearest to their mean row
            x = store.features[m].double().numpy()
            items = _clean_rows(meta, m)
            means = np.stack([x[items[attrs[items, a] == v]].mean(0) for v in range(cfg.attribute_values[a])])
            ids = value_entity_ids(cfg)[a]
            nearest = ((x[ids][:, None] - means[None]) ** 2).sum(-1).argmin(1)
            np.testing.assert_array_equal(nearest, attrs[ids, a])


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_splits_are_disjoint_and_slices_are_kept_apart(preset, tiny, default):
    ds, _, meta = tiny if preset == "tiny" else default
    n, r = ds.num_entities, ds.num_relations
    keys = {s: triple_keys(ds.split(s), n, r) for s in ("train", "valid", "test")}
    for s, k in keys.items():
        assert len(np.unique(k)) == len(k) > 0, s
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        assert not np.intersect1d(keys[a], keys[b]).size
    assert (ds.all_true[:, 0] != ds.all_true[:, 2]).all()  # no self-loops

    group = np.array(meta["entity_groups"])
    kinds = np.array([rec["kind"] for rec in meta["relations"]])
    train = ds.train.numpy()
    train_kind = kinds[train[:, 1]]
    # cold items: structural triples only in train, every attribute triple held out
    assert not ((train_kind == "attribute") & (group[train[:, 0]] == "cold")).any()
    cold = np.flatnonzero(group == "cold")
    assert set(cold) <= set(train[:, [0, 2]].ravel().tolist())  # ... and at least one structural triple each
    held = torch.cat([ds.valid, ds.test]).numpy()
    held_attr = held[kinds[held[:, 1]] == "attribute"]
    assert set(np.unique(held_attr[:, 0])) == set(np.flatnonzero(np.isin(group, ["cold", "zero-shot"])))
    # warm items keep every attribute triple in train
    warm_attr = train[(train_kind == "attribute") & (group[train[:, 0]] == "warm")]
    assert len(warm_attr) == (group == "warm").sum() * (kinds == "attribute").sum()
    # zero-shot items never appear in train
    assert not np.isin(train[:, [0, 2]], np.flatnonzero(group == "zero-shot")).any()
    # every cold / zero-shot item's held-out triples are all in one split, and both splits get some
    for g in ("cold", "zero-shot"):
        members = np.flatnonzero(group == g)
        in_valid = np.isin(members, ds.valid.numpy()[:, [0, 2]])
        in_test = np.isin(members, ds.test.numpy()[:, [0, 2]])
        assert in_valid.any() and in_test.any()
        attr_valid = np.isin(members, ds.valid.numpy()[kinds[ds.valid[:, 1].numpy()] == "attribute", 0])
        attr_test = np.isin(members, ds.test.numpy()[kinds[ds.test[:, 1].numpy()] == "attribute", 0])
        assert (attr_valid ^ attr_test).all()
    # every relation and every value entity is seen in train
    assert set(train[:, 1]) == set(range(r))
    assert set(np.flatnonzero(group == "value")) <= set(train[:, 2].tolist())


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_metadata_ground_truth_holds_for_every_triple(preset, tiny, default):
    ds, _, meta = tiny if preset == "tiny" else default
    cfg = SynthConfig.from_dict(meta["config"])
    attrs, types = _attrs(meta), np.array(meta["entity_types"])
    community = np.array(meta["entity_communities"])
    triples = ds.all_true.numpy()
    items = _items(meta)
    for rec in meta["relations"]:
        sub = triples[triples[:, 1] == rec["id"]]
        assert sum(rec["triples"].values()) == len(sub) > 0
        assert rec["category"] == rec["intended_category"], rec["name"]
        if rec["kind"] == "attribute":
            a = rec["attribute"]
            assert rec["informative_modalities"] == [m for m, s in cfg.modalities.items() if a in s.attributes]
            assert rec["weak_modalities"] == [m for m, s in cfg.modalities.items() if a in s.weak]
            # every item has exactly one triple, to the value entity of its value
            np.testing.assert_array_equal(np.sort(sub[:, 0]), items)
            np.testing.assert_array_equal(sub[:, 2], value_entity_ids(cfg)[a][attrs[sub[:, 0], a]])
        else:
            assert rec["informative_modalities"] == [] and rec["attribute"] is None
            c_map = np.array(rec["community_map"])
            np.testing.assert_array_equal(c_map, (np.arange(cfg.num_communities) + c_map[0]) % cfg.num_communities)
            np.testing.assert_array_equal(community[sub[:, 2]], c_map[community[sub[:, 0]]])
            assert (
                np.isin(types[sub[:, 0]], rec["head_types"]).all()
                and np.isin(types[sub[:, 2]], rec["tail_types"]).all()
            )
    for labels, k in [
        (types[items], cfg.num_types),
        (community[items], cfg.num_communities),
        *((attrs[items, a], k) for a, k in enumerate(cfg.attribute_values)),
    ]:
        counts = np.bincount(labels, minlength=k)
        assert len(counts) == k and counts.max() - counts.min() <= 1  # balanced


def test_strong_and_weak_modalities_decode_the_attribute_and_the_rest_do_not(default):
    """Ridge probe from an item's clean row to its value of each attribute, on held-out items."""
    ds, store, meta = default
    attrs = _attrs(meta)
    for a, k in enumerate(meta["attribute_values"]):
        for m, rec in meta["modalities"].items():
            clean = _clean_rows(meta, m)
            x = store.features[m].double().numpy()[clean]
            y = attrs[clean, a]
            fold = clean % 2 == 0
            acc = _ridge_accuracy(x[fold], y[fold], x[~fold], y[~fold], k)
            if a in rec["attributes"]:
                assert acc > 0.95, (a, m, acc)
            elif a in rec["weak"]:
                assert acc > 0.4, (a, m, acc)  # a second source (its oracle is weaker: see test_synthetic_oracle)
            else:
                assert acc < 1 / k + 0.1, (a, m, acc)


def test_corrupted_rows_carry_no_signal_and_scales_differ(default):
    ds, store, meta = default
    attrs = _attrs(meta)
    x = store.features["image"].double().numpy()
    rec = meta["modalities"]["image"]
    clean, corrupted = _clean_rows(meta, "image"), np.array(rec["corrupted"]["ids"])
    a, k = rec["attributes"][0], meta["attribute_values"][rec["attributes"][0]]
    fit = (x[clean[::2]], attrs[clean[::2], a])
    assert _ridge_accuracy(*fit, x[clean[1::2]], attrs[clean[1::2], a], k) > 0.95
    assert _ridge_accuracy(*fit, x[corrupted], attrs[corrupted, a], k) < 1 / k + 0.1
    norms = np.linalg.norm(x, axis=1)
    assert abs(norms[corrupted].mean() / norms[clean].mean() - 1) < 0.1  # the norm does not give them away

    def rms(m):
        f = store.features[m][store.masks[m]]
        return float(f.pow(2).mean().sqrt())

    assert 7 < rms("image") / rms("text") < 13  # modality scales differ on purpose
    assert rms("numeric") < 0.2 * rms("text")


def test_swap_corruption_copies_another_items_clean_row():
    cfg = PRESETS["tiny"]
    swapped = replace(cfg, modalities={**cfg.modalities, "text": replace(cfg.modalities["text"], corruption="swap")})
    _, store, meta = generate(swapped)
    rec = meta["modalities"]["text"]
    x = store.features["text"].numpy()
    corrupted = rec["corrupted"]["ids"]
    others = np.setdiff1d(_items(meta), corrupted)
    for i in corrupted:  # plausible content: exactly some other item's row
        assert (np.abs(x[others] - x[i]).max(1) == 0).any()


def test_default_preset_has_the_size_and_composition_of_the_main_job(default):
    ds, store, meta = default
    assert 1000 <= ds.num_entities <= 1500 and ds.num_relations == 12
    assert 10_000 <= len(ds.all_true) <= 16_000
    assert sorted(store.modalities) == ["audio", "image", "numeric", "text"]
    cats = relation_categories(ds.train, ds.num_relations)
    assert {c for c, rec in zip(cats, meta["relations"]) if rec["kind"] == "structural"} == set(CATEGORIES)
    strong = {m: rec["attributes"] for m, rec in meta["modalities"].items()}
    assert strong["numeric"] == [] and not meta["modalities"]["numeric"]["weak"]  # pure noise
    # every attribute relation: one strong modality, one weak second source; equal counts per modality
    attr_rels = [rec for rec in meta["relations"] if rec["kind"] == "attribute"]
    assert all(len(rec["informative_modalities"]) == 1 and len(rec["weak_modalities"]) == 1 for rec in attr_rels)
    assert sorted(len(v) for m, v in strong.items() if m != "numeric") == [2, 2, 2]
    assert meta["group_counts"]["cold"] == 180 and meta["group_counts"]["zero-shot"] == 60


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
    small = replace(
        PRESETS["tiny"],
        name="synth-small",
        num_items=120,
        attribute_values=(4,),
        value_features=False,
        modalities={"text": ModalitySpec((0,), dim=8, missing=0.1)},
    )
    write_synthetic(folder, small)
    assert not list(folder.glob("synth-tiny-*"))  # stale feature files are gone
    store = FeatureStore.load(folder, 124, verbose=False)
    assert store.modalities == ["text"] and int((~store.masks["text"][:120]).sum()) == 12
    assert load_dataset(folder).num_entities == 124

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(
        AfmeError, match="folder is not empty and holds no synthetic dataset; refusing to write into it"
    ):
        write_synthetic(foreign, "tiny")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"structural_relations": ("1-2",)}, r"unknown category '1-2'"),
        (
            {"modalities": {"text": ModalitySpec((5,), dim=4)}},
            r"modality 'text' encodes attributes \[5\] outside \[0, 3\)",
        ),
        ({"modalities": {"text": ModalitySpec((0,), dim=4, weak=(0,))}}, r"both strong and weak"),
        ({"modalities": {"text": ModalitySpec((0,), dim=4, corruption="blur")}}, r"corruption 'blur' not one of"),
        ({"modalities": {"my-text": ModalitySpec((0,), dim=4)}}, r"modality name 'my-text'"),
        ({"fanout": 2.0}, r"fanout 2.0 < 2.5"),
        ({"cold_fraction": 0.6, "zero_shot_fraction": 0.4}, r"sum below 0.9"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, r"sum below 1"),
        ({"sibling_groups": 200}, r"sibling_groups x sibling_size <= num_items"),
        ({"sibling_groups": 2, "sibling_size": 1}, r"need sibling_size >= 2"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        generate(replace(PRESETS["tiny"], **change))


def test_unknown_preset_is_named():
    with pytest.raises(
        ValueError, match=r"unknown synthetic preset 'huge'; expected one of \['default', 'siblings', 'tiny'\]"
    ):
        generate("huge")


def test_siblings_share_attributes_and_near_duplicate_rows_and_link_every_other_member():
    """The siblings preset: groups of sibling_size items with equal attributes, each member's
    nearest other item (every modality that encodes something) one of its siblings, and the
    sibling relation holding every ordered pair of distinct members exactly once, no loop."""
    cfg = PRESETS["siblings"]
    ds, store, meta = generate("siblings")
    rel = next(r for r in meta["relations"] if r["kind"] == "sibling")
    group = np.array(rel["groups"])
    members = np.flatnonzero(group >= 0)
    assert len(members) == cfg.sibling_groups * cfg.sibling_size
    assert np.bincount(group[members]).tolist() == [cfg.sibling_size] * cfg.sibling_groups
    attrs = _attrs(meta)
    for g in range(cfg.sibling_groups):
        assert (attrs[group == g] == attrs[group == g][0]).all()
    for m, spec in cfg.modalities.items():
        if not spec.attributes:
            continue
        clean = _clean_rows(meta, m)  # corrupted and missing rows resemble no one
        x = store.features[m][clean].double()
        dist = torch.cdist(x, x).fill_diagonal_(float("inf"))
        nearest = clean[dist.argmin(1).numpy()]
        in_group = group[clean] >= 0
        assert (group[nearest[in_group]] == group[clean[in_group]]).mean() > 0.99, m
    triples = torch.cat([ds.train, ds.valid, ds.test])
    links = {tuple(t) for t in triples[triples[:, 1] == rel["id"]].tolist()}
    want = {(a, rel["id"], b) for a in members for b in members if a != b and group[a] == group[b]}
    assert links == want and len(triples[triples[:, 1] == rel["id"]]) == len(want)
    assert len(ds.test) == int((ds.test[:, 1] == rel["id"]).sum()) > 0  # every held-out triple is a sibling one


def test_sibling_groups_leave_the_other_presets_as_they_were():
    """Presets without sibling groups draw nothing from the siblings' stream."""
    ds, store, _ = generate("tiny")
    ds2, store2, _ = generate(replace(PRESETS["tiny"], sibling_groups=0, sibling_noise=0.5))
    assert torch.equal(ds.train, ds2.train) and torch.equal(store.features["text"], store2.features["text"])
