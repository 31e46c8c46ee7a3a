"""Split hygiene (afme_lib/data/leakage.py), cleaned variants (afme_lib/data/clean.py) and the
leakage warning of a training run, on a hand-made split holding each kind of leakage once."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import defaultdict

import numpy as np
import pytest
import torch
from conftest import trained

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.ranking import compute_metrics, rank_targets
from afme_lib.data.clean import MANIFEST, read_manifest, removal_reasons, write_clean
from afme_lib.data.dataset import KGDataset, load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import FilterIndex
from afme_lib.data.leakage import (
    SplitLeakageWarning,
    hygiene_report,
    leakage_message,
    memorisation_metrics,
    memorisation_ranks,
    relation_overlaps,
    warn_split_leakage,
)
from afme_lib.data.openke import write_id_map, write_triples
from afme_lib.data.summary import hygiene_table, hygiene_verdict

# (h, r, t) rows; the comment says what each row is there for. Training (h, t) pairs:
# (0,1) r0, (1,2) r0, (2,3) r1, (3,4) r1, (4,5) r2, (1,0) r2, (2,1) r2, (5,6) r0.
TRAIN = [
    (0, 0, 1),
    (0, 0, 1),  # row 1: duplicate
    (1, 0, 2),
    (2, 1, 3),
    (3, 1, 4),
    (4, 2, 5),
    (1, 2, 0),
    (2, 2, 1),  # r2 holds two reversed pairs of r0: an inverse pattern
    (5, 0, 6),
    (2, 1, 3),
]  # row 9: duplicate
VALID = [
    (0, 0, 1),
    (0, 0, 1),  # rows 0, 1: training triple (twice); (1, 0) is linked in train too
    (6, 1, 7),  # row 2: also a test triple
    (3, 0, 4),  # row 3: (3, 4) linked in train under r1
    (5, 1, 4),  # row 4: reversed (4, 5) linked in train
    (6, 2, 5),  # row 5: reversed (5, 6) linked in train
    (7, 0, 6),
    (7, 0, 6),
]  # row 6 clean, row 7 its duplicate
TEST = [
    (6, 1, 7),  # row 0: also a valid triple
    (2, 1, 3),  # row 1: training triple
    (1, 1, 2),  # row 2: (1, 2) linked under r0, and reversed (2, 1) under r2
    (3, 2, 2),  # row 3: reversed (2, 3) linked
    (7, 2, 0),
    (7, 2, 0),  # row 4 clean, row 5 its duplicate
    (4, 0, 3),
]  # row 6: reversed (3, 4) linked
N_ENT, N_REL = 8, 3


def _toy(name="toy", path=None) -> KGDataset:
    t = lambda rows: torch.tensor(rows, dtype=torch.long)  # noqa: E731
    return KGDataset(
        name, path, [f"e{i}" for i in range(N_ENT)], [f"r{i}" for i in range(N_REL)], t(TRAIN), t(VALID), t(TEST)
    )


@pytest.fixture
def toy_folder(tmp_path):
    """The toy split as an OpenKE folder, with the optional files a release ships."""
    folder = tmp_path / "toy"
    folder.mkdir()
    write_id_map(folder / "entity2id.txt", [f"e{i}" for i in range(N_ENT)])
    write_id_map(folder / "relation2id.txt", [f"r{i}" for i in range(N_REL)])
    for split, rows in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        write_triples(folder / f"{split}2id.txt", np.array(rows))
    write_triples(folder / "1-1.txt", np.array(TEST[:3]))  # category files split the test triples
    write_triples(folder / "n-n.txt", np.array(TEST[3:]))
    (folder / "test2id_all.txt").write_text(
        f"{len(TEST)}\n" + "".join(f"{i % 4}\t{h} {t} {r}\n" for i, (h, r, t) in enumerate(TEST))
    )
    (folder / "type_constrain.txt").write_text("0\n")
    torch.save(torch.arange(N_ENT * 2, dtype=torch.float32).reshape(N_ENT, 2) + 1, folder / "toy-textual.pth")
    (folder / "toy-textual.json").write_text("{}")
    return folder


# --- the report ----------------------------------------------------------------------------------
def test_report_counts_every_kind_of_leakage():
    report = hygiene_report(_toy(), threshold=0.6, min_pairs=2)
    assert report["rows"] == {"train": 10, "valid": 8, "test": 7}
    assert report["distinct"] == {"train": 8, "valid": 6, "test": 6}
    assert report["duplicate_rows"] == {"train": 2, "valid": 2, "test": 1}
    assert report["overlap"] == {
        "valid_in_train": {"triples": 1, "rows": 2},
        "test_in_train": {"triples": 1, "rows": 1},
        "valid_in_test": {"triples": 1, "rows": 1},
    }
    assert report["pair_shortcuts"] == {
        "valid": {"rows": 8, "pair_in_train": 3, "pair_other_relation": 1, "reversed_pair": 4},
        "test": {"rows": 7, "pair_in_train": 2, "pair_other_relation": 1, "reversed_pair": 3},
    }
    # entity 7 occurs in no training row: valid rows 2, 6, 7; test rows 0, 4, 5
    assert report["unseen_entity_rows"] == {"valid": 3, "test": 3}
    # r0 {(0,1), (1,2), (5,6)} and r2 reversed {(5,4), (0,1), (1,2)} share 2 of 3 pairs
    assert report["relation_overlaps"] == {
        "threshold": 0.6,
        "min_pairs": 2,
        "pairs": [
            {
                "kind": "inverse",
                "relations": [0, 2],
                "pairs": [3, 3],
                "shared": 2,
                "share": 0.6667,
                "jaccard": 0.5,
                "names": ["r0", "r2"],
            }
        ],
    }
    # answer co-occurs with the query entity: valid rows 0, 1, 3, 4, 5; test rows 1, 2, 3, 6
    assert report["memorisation"]["valid"]["answer_is_neighbour"] == 5 / 8
    assert report["memorisation"]["test"]["answer_is_neighbour"] == round(4 / 7, 6)
    assert json.loads(json.dumps(report)) == report  # JSON-ready as it is


def test_relation_overlaps_duplicates_threshold_and_min_pairs():
    # r1's pairs are a subset of r0's: share 3/3, Jaccard 3/4; r2 stands alone
    train = torch.tensor(
        [(0, 0, 1), (1, 0, 2), (2, 0, 3), (3, 0, 4), (0, 1, 1), (1, 1, 2), (2, 1, 3), (5, 2, 6), (0, 1, 1)]
    )  # a duplicate row counts once
    assert relation_overlaps(train, 7, 3, threshold=0.8, min_pairs=3) == [
        {"kind": "duplicate", "relations": [0, 1], "pairs": [4, 3], "shared": 3, "share": 1.0, "jaccard": 0.75}
    ]
    assert relation_overlaps(train, 7, 3, threshold=0.8, min_pairs=4) == []
    # a symmetric relation is its own inverse: never listed
    assert relation_overlaps(torch.tensor([(0, 0, 1), (1, 0, 0)]), 2, 1, threshold=0.5, min_pairs=1) == []


def _brute_force_memorisation(data: KGDataset, split: str) -> dict[str, list[float]]:
    """The rule with Python sets, every candidate looked at one by one."""
    neighbours = defaultdict(set)
    for h, _, t in data.train.tolist():
        neighbours[h].add(t)
        neighbours[t].add(h)
    true = {tuple(x) for x in data.all_true.tolist()}
    out = {"tail": [], "head": []}
    for h, r, t in data.split(split).tolist():
        for side, known, target in (("tail", h, t), ("head", t, h)):
            is_true = (
                (lambda c, known=known, r=r: (known, r, c) in true)
                if side == "tail"
                else (lambda c, known=known, r=r: (c, r, known) in true)
            )
            candidates = [c for c in range(data.num_entities) if c == target or not is_true(c)]
            score = {c: float(c in neighbours[known]) for c in candidates}
            higher = sum(score[c] > score[target] for c in candidates)
            at_least = sum(score[c] >= score[target] for c in candidates)
            out[side].append((1 + higher + at_least) / 2)
    return out


@pytest.mark.parametrize("split", ["valid", "test"])
def test_memorisation_ranks_match_a_brute_force_loop(split):
    data = _toy()
    got = memorisation_ranks(data, split)
    want = _brute_force_memorisation(data, split)
    for side in ("tail", "head"):
        assert got[side].tolist() == want[side]
    pooled = torch.tensor(want["tail"] + want["head"], dtype=torch.float64)
    metrics = memorisation_metrics(data, split)
    assert metrics["mrr"] == pytest.approx(float((1 / pooled).mean()), abs=1e-12)
    assert metrics["count"] == 2 * len(data.split(split))


def test_memorisation_ranks_on_the_synthetic_graph_match_brute_force_and_the_evaluator(tiny_synth):
    data = load_dataset(tiny_synth)
    got = memorisation_ranks(data, "test")
    want = _brute_force_memorisation(data, "test")
    assert all(np.array_equal(got[s], want[s]) for s in ("tail", "head"))
    # and the evaluator's own ranking of the rule's 0/1 score matrix agrees
    index = FilterIndex.from_dataset(data)
    adjacency = torch.zeros(data.num_entities, data.num_entities)
    adjacency[data.train[:, 0], data.train[:, 2]] = adjacency[data.train[:, 2], data.train[:, 0]] = 1
    test = data.test
    for side, known, target in (("tail", test[:, 0], test[:, 2]), ("head", test[:, 2], test[:, 0])):
        rows, cols = index.known_answers(known, test[:, 1], side)
        ranks = rank_targets(adjacency[known], target, rows, cols)
        assert np.array_equal(ranks.numpy(), got[side])
    assert (
        memorisation_metrics(data, "test")["mrr"]
        == compute_metrics(torch.from_numpy(np.concatenate([got["tail"], got["head"]])))["mrr"]
    )


def test_table_and_verdict_show_the_counts():
    report = hygiene_report(_toy())
    table = {row["figure"]: row for row in hygiene_table(report)}
    assert table["duplicate rows"] == {
        "figure": "duplicate rows",
        "train": "2 (20.0%)",
        "valid": "2 (25.0%)",
        "test": "1 (14.3%)",
    }
    assert table["rows that are training triples"]["valid"] == "2 (25.0%)"
    assert table["distinct triples also in train"]["test"] == "1 (16.7%)"
    assert table["... under another relation"]["test"] == "1 (14.3%)"
    assert table["rows with an entity unseen in train"]["valid"] == "3 (37.5%)"
    assert table["memorisation-rule MRR"]["test"] == f"{report['memorisation']['test']['mrr']:.3f}"
    assert hygiene_verdict("toy", report) == (
        "toy: 14.3% of test rows are training triples; 14.3% have their (head, tail) pair linked in train under "
        "another relation; 42.9% have it linked reversed; 42.9% hold an entity absent from train (only its features "
        "can place it); 25.0% of valid rows are training triples (checkpoint "
        f"selection then rewards memorisation); a rule that only recalls training neighbours scores test MRR "
        f"{report['memorisation']['test']['mrr']:.3f}. Compare on a cleaned split: afme data clean toy --out toy-clean."
    )


# --- the training warning ------------------------------------------------------------------------
def test_leakage_warning_is_one_line_with_the_counts_and_the_fix(tmp_path):
    data = _toy(path=tmp_path / "toy")
    with pytest.warns(SplitLeakageWarning) as caught:
        warn_split_leakage(data)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "toy: 2 of 8 valid rows (25.0%) and 1 of 7 test rows (14.3%) are training triples, so best-valid "
        "checkpoints and test MRR reward memorisation; train on a cleaned copy: "
        f"afme data clean {tmp_path / 'toy'} --out toy-clean"
    )
    only_test = _toy()
    only_test.valid = only_test.valid[2:]  # no training triple left in valid
    assert leakage_message(only_test).startswith("toy: 1 of 7 test rows (14.3%) are training triples, so")


def test_no_warning_without_leakage(tiny_synth):
    assert leakage_message(load_dataset(tiny_synth)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_split_leakage(load_dataset(tiny_synth))


def test_a_training_run_warns_once_when_test_overlaps_train(tiny_synth, tmp_path):
    leaky = tmp_path / "leaky"
    shutil.copytree(tiny_synth, leaky)
    data = load_dataset(leaky)
    write_triples(leaky / "test2id.txt", torch.cat([data.test, data.train[:5]]).numpy())
    cfg = TrainConfig(epochs=1, batch_size=512, negatives=2, eval_every=0, device="cpu", progress=False)
    with pytest.warns(SplitLeakageWarning) as caught:
        trained(str(leaky), ModelConfig(name="transe", dim=8), cfg, tmp_path / "run")
    leaks = [w for w in caught if issubclass(w.category, SplitLeakageWarning)]
    assert len(leaks) == 1
    assert str(leaks[0].message).startswith(f"leaky: 5 of {len(data.test) + 5} test rows (")
    assert "\n" not in str(leaks[0].message)


# --- cleaning ------------------------------------------------------------------------------------
EXPECTED_REMOVALS = {  # (split, row) -> reason, by hand from the comments on TRAIN / VALID / TEST
    (): {
        ("train", 1): "duplicate",
        ("train", 9): "duplicate",
        ("valid", 0): "in_train",
        ("valid", 1): "in_train",
        ("valid", 2): "in_test",
        ("valid", 7): "duplicate",
        ("test", 1): "in_train",
        ("test", 5): "duplicate",
    },
    ("pair",): {("valid", 3): "pair_in_train", ("test", 2): "pair_in_train"},
    ("reversed",): {
        ("valid", 4): "reversed_pair_in_train",
        ("valid", 5): "reversed_pair_in_train",
        ("test", 2): "reversed_pair_in_train",
        ("test", 3): "reversed_pair_in_train",
        ("test", 6): "reversed_pair_in_train",
    },
}


@pytest.mark.parametrize("options", [(), ("pair",), ("reversed",), ("pair", "reversed")])
def test_clean_removes_exactly_what_the_manifest_lists(toy_folder, tmp_path, options):
    source = load_dataset(toy_folder)
    out = tmp_path / "toy-clean"
    manifest = write_clean(source, out, drop_pair_shortcuts="pair" in options, drop_reversed="reversed" in options)
    expected = dict(EXPECTED_REMOVALS[()])
    for option in options:  # with both, a pair-shortcut row keeps that (first) reason
        expected = {**{k: v for k, v in EXPECTED_REMOVALS[(option,)].items() if k not in expected}, **expected}
    listed = {(split, row): reason for split, row, *_, reason in manifest["removed"]["rows"]}
    assert listed == expected
    assert read_manifest(out) == manifest
    cleaned = load_dataset(out)
    assert cleaned.name == "toy-clean"
    for split in ("train", "valid", "test"):
        original = source.split(split)
        keep = [i for i in range(len(original)) if (split, i) not in listed]
        assert torch.equal(cleaned.split(split), original[keep])  # nothing else removed, order kept
        for s, row, h, r, t, _ in manifest["removed"]["rows"]:
            if s == split:
                assert [h, r, t] == original[row].tolist()
        assert manifest["counts"][split]["after"] == len(keep)
    report = hygiene_report(cleaned)
    assert report["overlap"]["valid_in_train"]["rows"] == report["overlap"]["test_in_train"]["rows"] == 0
    assert report["overlap"]["valid_in_test"]["rows"] == sum(report["duplicate_rows"].values()) == 0
    if "pair" in options:
        assert report["pair_shortcuts"]["test"]["pair_in_train"] == 0
    if "reversed" in options:
        assert report["pair_shortcuts"]["test"]["reversed_pair"] == 0


def test_clean_keeps_ids_and_features_and_filters_the_category_files(toy_folder, tmp_path):
    out = tmp_path / "toy-clean"
    manifest = write_clean(load_dataset(toy_folder), out)
    for name in ("entity2id.txt", "relation2id.txt"):
        assert (out / name).read_bytes() == (toy_folder / name).read_bytes()
    assert manifest["files"] == {
        "filtered": ["1-1.txt", "n-n.txt", "test2id_all.txt"],
        "dropped": ["type_constrain.txt"],
        "linked": ["toy-textual.pth", "toy-textual.json"],
    }
    assert not (out / "type_constrain.txt").exists() and not (out / "1-n.txt").exists()
    assert (out / "toy-textual.pth").is_symlink()
    store = FeatureStore.load(out, N_ENT)
    assert torch.equal(store.features["text"], FeatureStore.load(toy_folder, N_ENT).features["text"])
    cleaned = load_dataset(out)
    # test rows 1 (in train) and 5 (duplicate) are gone from the category files too
    assert cleaned.shipped_test_categories["1-1"].tolist() == [list(TEST[0]), list(TEST[2])]
    assert cleaned.shipped_test_categories["N-N"].tolist() == [list(TEST[3]), list(TEST[4]), list(TEST[6])]
    assert (out / "test2id_all.txt").read_text().split("\n") == [
        "5",
        "0\t6 7 1",
        "2\t1 2 1",
        "3\t3 2 2",
        "0\t7 0 2",
        "2\t4 3 0",
        "",
    ]


def test_clean_refuses_an_unclear_name_the_source_and_a_used_folder(toy_folder, tmp_path):
    data = load_dataset(toy_folder)
    with pytest.raises(Exception, match="must say the split is cleaned"):
        write_clean(data, tmp_path / "toy2")
    used = tmp_path / "toy-clean"
    used.mkdir()
    (used / "x").write_text("")
    with pytest.raises(Exception, match="already exists and is not an empty folder"):
        write_clean(data, used)
    assert not (tmp_path / "toy2").exists() and [p.name for p in used.iterdir()] == ["x"]


def test_removal_reasons_are_empty_for_a_clean_split(tiny_synth):
    reasons = removal_reasons(load_dataset(tiny_synth))
    assert all((r == "").all() for r in reasons.values())


# --- the shared benchmarks -----------------------------------------------------------------------
def test_tiva_figures_of_issue_19(shared_datasets):
    report = hygiene_report(load_dataset(shared_datasets / "TIVA"))
    assert (report["rows"]["train"], report["distinct"]["train"]) == (20071, 11652)
    assert (report["overlap"]["test_in_train"]["triples"], report["distinct"]["test"]) == (1664, 1906)
    assert (report["overlap"]["valid_in_train"]["triples"], report["distinct"]["valid"]) == (1675, 1913)
    assert report["overlap"]["valid_in_test"]["triples"] == 154
    assert round(100 * report["pair_shortcuts"]["test"]["pair_in_train"] / report["rows"]["test"]) == 83


# --- the command line ----------------------------------------------------------------------------
def test_cli_data_info_reports_hygiene_as_json_and_text(toy_folder, capsys):
    from afme_lib.interfaces.cli import main

    assert main(["data", "info", str(toy_folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    want = json.loads(json.dumps(hygiene_report(load_dataset(toy_folder))))
    assert info["hygiene"] == want
    assert set(info["hygiene"]) == {
        "rows",
        "distinct",
        "duplicate_rows",
        "overlap",
        "pair_shortcuts",
        "unseen_entity_rows",
        "relation_overlaps",
        "memorisation",
    }
    assert main(["data", "info", str(toy_folder)]) == 0
    out = capsys.readouterr().out
    assert "\n  rows that are training triples " in out and "2 (25.0%)" in out
    assert out.rstrip().endswith("Compare on a cleaned split: afme data clean toy --out toy-clean.")


def test_cli_data_clean_writes_the_variant_and_says_where_the_manifest_is(toy_folder, tmp_path, capsys):
    from afme_lib.interfaces.cli import main

    out = tmp_path / "toy-clean"
    assert main(["data", "clean", str(toy_folder), "--out", str(out), "--drop-reversed"]) == 0
    assert capsys.readouterr().out == (
        f"wrote {out} (train 10 -> 8, valid 8 -> 2, test 7 -> 2); every removed row and why: {out}/{MANIFEST}\n"
    )
    manifest = read_manifest(out)
    assert manifest["options"] == {"drop_pair_shortcuts": False, "drop_reversed": True}
    assert load_dataset(out).counts()["test"] == 2
    assert main(["data", "clean", str(toy_folder), "--out", str(tmp_path / "plain")]) == 2
    assert capsys.readouterr().err.startswith("afme: error: --out folder name 'plain' must say the split is cleaned")
