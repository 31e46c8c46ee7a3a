"""KGDataset / load_dataset on hand-made folders and on the four shared benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from afme_lib.core.errors import DataFormatError
from afme_lib.data.dataset import SPLITS, load_dataset, triple_keys


def _make_folder(
    root: Path,
    *,
    train="3\n0 1 0\n1 2 1\n2 0 0\n",
    valid="1\n0 2 1\n",
    test="1\n2 1 1\n",
    categories: dict[str, str] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "entity2id.txt").write_text("3\nalpha one\t0\nbeta\t1\ngamma\t2\n", encoding="utf-8")
    (root / "relation2id.txt").write_text("2\nlikes 0\nknows 1\n", encoding="utf-8")
    for name, text in (("train2id.txt", train), ("valid2id.txt", valid), ("test2id.txt", test)):
        if text is not None:
            (root / name).write_text(text, encoding="utf-8")
    for filename, text in (categories or {}).items():
        (root / filename).write_text(text, encoding="utf-8")
    return root


def test_load_small_folder(tmp_path):
    ds = load_dataset(_make_folder(tmp_path / "toy"))
    assert ds.name == "toy" and ds.path == tmp_path / "toy"
    assert ds.entity_names == ["alpha one", "beta", "gamma"]
    assert ds.relation_names == ["likes", "knows"]
    assert ds.counts() == {"entities": 3, "relations": 2, "train": 3, "valid": 1, "test": 1}
    # file rows are head tail relation; inside: (head, relation, tail)
    assert ds.train.tolist() == [[0, 0, 1], [1, 1, 2], [2, 0, 0]]
    assert ds.valid.tolist() == [[0, 1, 2]] and ds.test.tolist() == [[2, 1, 1]]
    for split in SPLITS:
        assert ds.split(split).dtype == torch.int64 and ds.split(split) is getattr(ds, split)
    assert ds.all_true.tolist() == ds.train.tolist() + ds.valid.tolist() + ds.test.tolist()
    assert ds.shipped_test_categories == {}
    assert load_dataset(tmp_path / "toy", name="Toy-KG").name == "Toy-KG"


def test_unknown_split(tmp_path):
    ds = load_dataset(_make_folder(tmp_path / "toy"))
    with pytest.raises(ValueError, match=r"unknown split 'dev'; expected one of \('train', 'valid', 'test'\)"):
        ds.split("dev")


def test_shipped_category_files_are_read_and_validated(tmp_path):
    root = _make_folder(
        tmp_path / "toy", test="2\n2 1 1\n0 1 0\n", categories={"1-1.txt": "1\n2 1 1\n", "n-n.txt": "1\n0 1 0\n"}
    )
    ds = load_dataset(root)
    assert sorted(ds.shipped_test_categories) == ["1-1", "N-N"]
    assert ds.shipped_test_categories["1-1"].tolist() == [[2, 1, 1]]
    assert ds.shipped_test_categories["N-N"].tolist() == [[0, 0, 1]]
    (root / "n-1.txt").write_text("1\n0 1 7\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        load_dataset(root)
    assert str(info.value) == f"{root / 'n-1.txt'}:2: relation id 7 out of range [0, 2)"


def test_missing_folder(tmp_path):
    with pytest.raises(DataFormatError) as info:
        load_dataset(tmp_path / "absent")
    assert str(info.value) == f"{tmp_path / 'absent'}: dataset folder not found"


def test_missing_split_file(tmp_path):
    root = _make_folder(tmp_path / "toy", valid=None)
    with pytest.raises(DataFormatError) as info:
        load_dataset(root)
    assert str(info.value) == f"{root / 'valid2id.txt'}: file not found"


def test_empty_training_split(tmp_path):
    root = _make_folder(tmp_path / "toy", train="0\n")
    with pytest.raises(DataFormatError) as info:
        load_dataset(root)
    assert str(info.value) == f"{root / 'train2id.txt'}: no training triples"


def test_triple_ids_checked_against_id_maps(tmp_path):
    # entity2id holds 3 entities: tail 3 is out of range, whatever the triple file says
    root = _make_folder(tmp_path / "toy", test="1\n0 3 1\n")
    with pytest.raises(DataFormatError) as info:
        load_dataset(root)
    assert str(info.value) == f"{root / 'test2id.txt'}:2: tail id 3 out of range [0, 3)"


def test_triple_keys_unique_per_triple():
    n_ent, n_rel = 7, 3
    every = torch.cartesian_prod(torch.arange(n_ent), torch.arange(n_rel), torch.arange(n_ent))
    keys = triple_keys(every, n_ent, n_rel)
    assert keys.dtype == np.int64
    # (h * R + r) * N + t enumerates all triples once, in lexicographic order
    np.testing.assert_array_equal(keys, np.arange(n_ent * n_rel * n_ent))
    big = torch.tensor([[70_000, 900, 69_999]], dtype=torch.int32)  # would overflow in int32
    assert triple_keys(big, 70_000, 1_000).tolist() == [(70_000 * 1_000 + 900) * 70_000 + 69_999]


# ---------------------------------------------------------------- shared benchmarks

BENCHMARKS = {
    # name: (entities, relations, train, valid, test), README counts
    "MKG-W": (15000, 169, 34196, 4276, 4274),
    "MKG-Y": (15000, 28, 21310, 2665, 2663),
    "TIVA": (11858, 16, 20071, 2000, 2000),
    "Kuai16K": (16015, 4, 180190, 22523, 22525),
}

# One known row per benchmark: (split, row index, file line "head tail relation").
KNOWN_ROWS = {
    "MKG-W": ("test", -1, (12225, 46, 13)),
    "MKG-Y": ("train", -1, (8002, 12760, 9)),
    "TIVA": ("valid", -1, (727, 3, 0)),
    "Kuai16K": ("train", 0, (1000, 7283, 2)),
}

KNOWN_NAMES = {
    "MKG-W": ({0: "http://www.wikidata.org/entity/Q370252"}, {0: "http://www.wikidata.org/entity/P161"}),
    "MKG-Y": ({0: "Gilles_Mbang_Ondo", 14999: "Tatjana_(film)"}, {0: "wasBornIn"}),
    "TIVA": ({1: "organic compound", 11857: "triiodophenol"}, {0: "0"}),
    "Kuai16K": ({0: "欧式家具", 16014: "制作过程"}, {3: "3"}),
}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shared_benchmark_loads_with_readme_counts(shared_datasets, name):
    ds = load_dataset(shared_datasets / name)
    entities, relations, train, valid, test = BENCHMARKS[name]
    assert ds.counts() == {"entities": entities, "relations": relations, "train": train, "valid": valid, "test": test}
    split, row, (head, tail, relation) = KNOWN_ROWS[name]
    assert ds.split(split)[row].tolist() == [head, relation, tail]
    ent_names, rel_names = KNOWN_NAMES[name]
    assert {i: ds.entity_names[i] for i in ent_names} == ent_names
    assert {i: ds.relation_names[i] for i in rel_names} == rel_names
    # the shipped category files split the test set exactly
    assert sum(len(p) for p in ds.shipped_test_categories.values()) == test
