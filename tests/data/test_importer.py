"""Importing named triples: ids, the leak-free split, numeric attributes, the import folder
(afme_lib/data/importer.py, splitting.py, numeric.py, examples.py; afme_lib/extraction/kg_import.py).

The real example is PyKEEN's Nations as the installed package ships it; the test-made one adds
texts and PNG images written by PIL."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from afme_lib.analysis import modality_weights
from afme_lib.core.errors import DataFormatError
from afme_lib.data.dataset import KGDataset, load_dataset
from afme_lib.data.examples import pykeen_nations
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.importer import assign_ids, read_named_triples
from afme_lib.data.leakage import leakage_counts, pair_shortcuts, unseen_entity_rows
from afme_lib.data.numeric import read_attributes, standardise
from afme_lib.data.splitting import parse_fractions, split_triples
from afme_lib.experiments.run import open_run, run
from afme_lib.experiments.spec import RunSpec
from afme_lib.extraction import kg_import
from afme_lib.extraction.kg_import import IMPORT_FILE, import_kg
from afme_lib.models.registry import model_class, model_names


@pytest.fixture(scope="module")
def nations() -> dict[str, Path]:
    return pykeen_nations()


@pytest.fixture(scope="module")
def nations_import(nations, tmp_path_factory):
    out = tmp_path_factory.mktemp("import") / "nations"
    return import_kg(
        nations["triples"],
        out,
        valid=nations["valid"],
        test=nations["test"],
        numeric=nations["numeric"],
        progress=False,
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _leftovers(folder: Path, inputs: set[str]) -> list[str]:
    """What an import left beside its input files (the output folder, a staging folder ...)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in inputs)


# --- the packaged example ------------------------------------------------------------------------
def test_nations_ships_with_pykeen_as_named_triples_and_numeric_literals(nations):
    sizes = {k: len(read_named_triples(nations[k])) for k in ("triples", "valid", "test")}
    assert sizes == {"triples": 1592, "valid": 199, "test": 201}
    rows = [line.split("\t") for line in nations["numeric"].read_text().splitlines()]
    assert len(rows) == 26 and {r[1] for r in rows} == {"area", "population"}
    assert all(float(r[2]) > 0 for r in rows)


def test_the_nations_import_reads_back_with_its_numeric_modality(nations_import):
    kg = load_dataset(nations_import.path)
    assert kg.counts() == {"entities": 14, "relations": 55, "train": 1592, "valid": 199, "test": 201}
    assert kg.entity_names == sorted(kg.entity_names) and "ussr" in kg.entity_names
    store = FeatureStore.load(kg.path, kg.num_entities, verbose=False)
    assert store.modalities == ["numeric"] and tuple(store.features["numeric"].shape) == (14, 2)
    # the USSR has no literal: a missing row, not a row of zeros read as "average"
    missing = [kg.entity_names[i] for i in (~store.masks["numeric"]).nonzero().flatten().tolist()]
    assert missing == ["ussr"]
    present = store.features["numeric"][store.masks["numeric"]].double()
    assert torch.allclose(present.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(present.std(0), torch.ones(2, dtype=torch.float64), atol=1e-6)
    info = json.loads((kg.path / IMPORT_FILE).read_text())
    assert info["modalities"]["numeric"]["attributes"] == ["area", "population"]
    assert set(info["stamp"]["inputs"]) == {"triples", "valid", "test", "numeric"}
    assert not list(kg.path.parent.glob(".*"))  # no staging folder left beside it


FEATURE_MODELS = [m for m in model_names() if model_class(m).reads_features]


@pytest.mark.filterwarnings("ignore::UserWarning")  # one epoch: self-answer and similar notes
@pytest.mark.parametrize("model", FEATURE_MODELS)
def test_every_model_that_reads_features_reads_the_numeric_modality(nations_import, tmp_path, model):
    folder = run(
        RunSpec.from_fields(
            {
                "dataset": str(nations_import.path),
                "model": model,
                "dim": 8,
                "epochs": 1,
                "eval_every": 0,
                "progress": False,
            }
        ),
        tmp_path / model,
    )
    opened = open_run(folder)
    assert opened.model.inputs.names == ["numeric"] and opened.model.inputs.feature_dims == [2]
    if model == "afme":  # its modality-weights view shows numeric beside structure
        profile = modality_weights.relation_profile(opened.model, opened.trainer.dataset, "train", ["head"])
        assert list(profile.weights.columns) == ["structure", "numeric"]


def test_a_second_import_of_the_same_inputs_does_nothing(nations, nations_import):
    before = {p.name: p.stat().st_mtime_ns for p in nations_import.path.iterdir()}
    again = import_kg(
        nations["triples"],
        nations_import.path,
        valid=nations["valid"],
        test=nations["test"],
        numeric=nations["numeric"],
        progress=False,
    )
    assert again.reused and again.info == nations_import.info
    assert {p.name: p.stat().st_mtime_ns for p in nations_import.path.iterdir()} == before


def test_other_inputs_replace_an_earlier_import_whole(nations, tmp_path):
    out = tmp_path / "kg"
    import_kg(nations["triples"], out, valid=nations["valid"], test=nations["test"], numeric=nations["numeric"])
    result = import_kg(nations["triples"], out, valid=nations["valid"], test=nations["test"])
    assert not result.reused and not list(out.glob("*.pth")) and result.info["modalities"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kg"]


def test_a_folder_named_after_the_inputs(nations, tmp_path):
    first = import_kg(nations["triples"], root=tmp_path, name="nations", valid=nations["valid"], test=nations["test"])
    split = import_kg(nations["triples"], root=tmp_path, name="nations")
    assert first.path.name == split.path.name == "nations" and first.path.parent != split.path.parent
    assert import_kg(nations["triples"], root=tmp_path, name="nations").reused


# --- reading and ids ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("a\tr\tb\n\na\tr\n", 3, "expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', got 2: 'a\\tr'"),
        ("a\tr\tb\tc\n", 1, "expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', got 4: 'a\\tr\\tb\\tc'"),
        ("a r b\n", 1, "expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', got 1: 'a r b'"),
        ("a\t \tb\n", 1, "empty relation in 'a\\t \\tb'"),
        ("\n  \n", None, "empty file: no triples"),
    ],
)
def test_a_malformed_triples_file_is_refused_with_file_and_line(tmp_path, text, line, problem):
    path = _write(tmp_path / "kg.tsv", text)
    with pytest.raises(DataFormatError) as info:
        read_named_triples(path)
    assert (info.value.path, info.value.line, info.value.problem) == (path, line, problem)


def test_ids_are_the_sorted_training_names(tmp_path):
    train = read_named_triples(_write(tmp_path / "t.tsv", "zeta\tlikes\talpha\n alpha \tknows\tmid\n"))
    graph = assign_ids(train)
    assert graph.entity_names == ["alpha", "mid", "zeta"] and graph.relation_names == ["knows", "likes"]
    assert graph.splits["train"].tolist() == [[2, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "alpha\tknows\tomega",
            "tail 'omega' does not occur in the training triples (t.tsv): every valid and test entity must be trained",
        ),
        (
            "alpha\thates\tmid",
            "relation 'hates' does not occur in the training triples (t.tsv): every valid and test relation must be trained",
        ),
    ],
)
def test_a_valid_entity_or_relation_unseen_in_train_is_refused(tmp_path, row, problem):
    train = read_named_triples(_write(tmp_path / "t.tsv", "zeta\tlikes\talpha\nalpha\tknows\tmid\n"))
    valid = read_named_triples(_write(tmp_path / "v.tsv", f"zeta\tlikes\tmid\n{row}\n"))
    with pytest.raises(DataFormatError) as info:
        assign_ids(train, {"valid": valid})
    assert (info.value.path, info.value.line, info.value.problem) == (valid.path, 2, problem)


# --- the split ----------------------------------------------------------------------------------
def _graph_of(nations) -> tuple[np.ndarray, int, int]:
    """All 1,992 Nations triples as ids (the given train split already holds every entity)."""
    graph = assign_ids(read_named_triples(nations["triples"]))
    rows = [graph.splits["train"]]
    for split in ("valid", "test"):
        rows.append(
            assign_ids(read_named_triples(nations["triples"]), {split: read_named_triples(nations[split])}).splits[
                split
            ]
        )
    return np.concatenate(rows), len(graph.entity_names), len(graph.relation_names)


def _check_no_leak(splits: dict, n: int, r: int) -> None:
    train = torch.from_numpy(splits["train"])
    for split in ("valid", "test"):
        rows = torch.from_numpy(splits[split])
        shortcuts = pair_shortcuts(rows, train, n, r)
        assert shortcuts["pair_in_train"] == shortcuts["reversed_pair"] == 0
        assert unseen_entity_rows(rows, train, n) == 0
        assert set(splits[split][:, 1].tolist()) <= set(splits["train"][:, 1].tolist())


def test_the_split_holds_out_whole_entity_pairs_and_keeps_every_entity_and_relation(nations):
    triples, n, r = _graph_of(nations)
    doubled = np.concatenate([triples, triples[:7]])  # seven duplicate rows
    splits, report = split_triples(doubled, n, r, (0.8, 0.1, 0.1), seed=0)
    assert len(triples) == 1992 and report["duplicates_dropped"] == 7
    assert sum(len(s) for s in splits.values()) == len(triples)
    _check_no_leak(splits, n, r)
    assert set(splits["train"][:, [0, 2]].ravel().tolist()) == set(range(n))
    for split in ("valid", "test"):  # whole pairs of ~22 triples: near the asked size, not on it
        assert abs(len(splits[split]) - report["asked"][split]) <= 40
    kg = KGDataset(
        "n",
        None,
        [str(i) for i in range(n)],
        [str(i) for i in range(r)],
        *(torch.from_numpy(splits[s]) for s in ("train", "valid", "test")),
    )
    assert all(v["rows"] == 0 for v in leakage_counts(kg).values())
    again, _ = split_triples(doubled, n, r, (0.8, 0.1, 0.1), seed=0)
    other, _ = split_triples(doubled, n, r, (0.8, 0.1, 0.1), seed=1)
    assert all(np.array_equal(again[s], splits[s]) for s in splits)
    assert not np.array_equal(other["test"], splits["test"])


@pytest.mark.parametrize("seed", range(4))
def test_the_split_of_a_sparse_graph_never_takes_the_last_training_triple(seed):
    rng = np.random.default_rng(seed)
    n, r = 60, 9
    triples = np.stack([rng.integers(0, n, 150), rng.integers(0, r, 150), rng.integers(0, n, 150)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a graph this sparse may hold out less than asked
        splits, report = split_triples(triples, n, r, (0.7, 0.15, 0.15), seed=seed)
    _check_no_leak(splits, n, r)
    used = set(triples[:, [0, 2]].ravel().tolist())
    assert set(splits["train"][:, [0, 2]].ravel().tolist()) == used
    assert set(splits["train"][:, 1].tolist()) == set(triples[:, 1].tolist())
    assert report["held_out"]["valid"] + report["held_out"]["test"] > 0


def test_the_exact_pass_tops_up_what_the_conservative_one_refused():
    chain = np.array([[i, 0, i + 1] for i in range(99)])  # each inner entity has two triples, the ends one
    splits, report = split_triples(chain, 100, 1, (0.6, 0.2, 0.2), seed=0)
    assert report["held_out"] == report["asked"] == {"valid": 20, "test": 20}  # the vectorised pass alone: 35
    assert set(splits["train"][:, [0, 2]].ravel().tolist()) == set(range(100))


def test_a_graph_with_nothing_to_hold_out_says_so():
    star = np.array([[0, 0, leaf] for leaf in range(1, 21)])  # every leaf has one triple
    with pytest.warns(UserWarning, match="only 0 of 20 triples"):
        splits, _ = split_triples(star, 21, 1)
    assert len(splits["train"]) == 20 and len(splits["valid"]) == len(splits["test"]) == 0


@pytest.mark.parametrize("text", ["0.8/0.2", "0.8/0.1/0.2", "1/0/0", "a/b/c", "0.8,0.1,0.1"])
def test_split_shares_must_be_three_positive_shares_summing_to_one(text):
    with pytest.raises(ValueError, match="TRAIN/VALID/TEST"):
        parse_fractions(text)


# --- numeric attributes -------------------------------------------------------------------------
INDEX = {"a": 0, "b": 1, "c": 2, "d": 3}


def test_numeric_attributes_one_column_each_standardised_on_train_entities(tmp_path):
    path = _write(
        tmp_path / "lit.csv",
        "entity,attribute,value\na,height,1\nb,height,3\nc,height,100\na,weight,2.5\nb,weight,4\nb,weight,6\n",
    )
    with pytest.warns(UserWarning, match="1 \\(entity, attribute\\) pair\\(s\\) hold several values; averaged"):
        values, present, attributes, stats = read_attributes(path, INDEX, 4)
    assert attributes == ["height", "weight"] and stats["averaged"] == 1  # b's two weights
    assert values[1, 1] == 5.0 and not present[2, 1] and not present[3].any()
    train = np.array([True, True, False, True])  # c is in no training triple: its 100 is not a statistic
    table, info = standardise(values, present, train)
    assert info["mean"] == [2.0, 3.75]
    assert table[0, 0] == pytest.approx(-1 / np.sqrt(2)) and table[2, 0] == pytest.approx(98 / np.sqrt(2))
    assert table[2, 1] == 0  # a present row lacking weight: the training mean
    assert not table[3].any()  # no attribute at all: the all-zero row the feature store reads as missing
    store = FeatureStore(4)
    store.add("numeric", torch.from_numpy(table))
    assert store.masks["numeric"].tolist() == [True, True, True, False]


def test_numeric_rows_for_unknown_entities_are_skipped_and_counted(tmp_path):
    path = _write(tmp_path / "lit.tsv", "a\tsize\t1\nghost\tsize\t2\nb\tsize\t3\nghost\tage\t4\n")
    with pytest.warns(UserWarning, match="2 row\\(s\\) name an entity the graph lacks"):
        _, present, _, stats = read_attributes(path, INDEX, 4)
    assert stats["unmatched_rows"] == 2 and stats["unmatched_examples"] == ["ghost"]
    assert present[:, 0].tolist() == [True, True, False, False]


@pytest.mark.parametrize(
    ("name", "text", "line", "problem"),
    [
        ("lit.tsv", "a\tsize\t1\nb\tsize\tlarge\n", 2, "value 'large' of 'size' for 'b' is not a finite number"),
        ("lit.tsv", "a\tsize\t1\nb\tsize\tnan\n", 2, "value 'nan' of 'size' for 'b' is not a finite number"),
        ("lit.tsv", "a\tsize\t1\nb\tsize\n", 2, "expected 3 tab-separated fields 'entity, attribute, value', got 2"),
        ("lit.csv", "a,size,1\nb,size,1,2\n", 2, "expected 3 comma-separated fields 'entity, attribute, value', got 4"),
        ("lit.tsv", "\n\n", 1, "empty file: expected 'entity, attribute, value' rows"),
    ],
)
def test_a_malformed_numeric_file_is_refused_with_file_and_line(tmp_path, name, text, line, problem):
    path = _write(tmp_path / name, text)
    with pytest.raises(DataFormatError) as info:
        read_attributes(path, INDEX, 4)
    assert (info.value.line, info.value.problem) == (line, problem)


# --- bad input leaves nothing behind ------------------------------------------------------------
GOOD = "a\tr\tb\nb\tr\tc\nc\ts\ta\na\ts\tc\nb\ts\ta\n"
BAD_CASES = {
    "wrong field count": ({"triples": "a\tr\tb\nb\tr\n"}, "kg.tsv:2: expected 3 tab-separated fields"),
    "valid entity unseen in train": (
        {"valid": "a\tr\tzed\n", "test": "a\tr\tc\n"},
        "valid.tsv:1: tail 'zed' does not occur in the training triples",
    ),
    "non-numeric value": ({"numeric": "a\tsize\t1\nb\tsize\tbig\n"}, "numeric.tsv:2: value 'big'"),
    "empty triples file": ({"triples": ""}, "kg.tsv:1: empty file"),
    "empty numeric file": ({"numeric": "\n"}, "numeric.tsv:1: empty file"),
    "empty texts file": ({"texts": ""}, "texts.tsv:1: empty file"),
    "no attribute matches": ({"numeric": "x\tsize\t1\n"}, "numeric.tsv: no attribute row names an entity"),
}


@pytest.mark.filterwarnings("ignore:.*name an entity the graph lacks")
@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_refused_before_anything_is_written(tmp_path, case):
    files, message = BAD_CASES[case]
    names = {
        "triples": "kg.tsv",
        "valid": "valid.tsv",
        "test": "test.tsv",
        "numeric": "numeric.tsv",
        "texts": "texts.tsv",
    }
    given = {"triples": GOOD, **files}
    paths = {k: _write(tmp_path / names[k], text) for k, text in given.items()}
    with pytest.raises(DataFormatError) as info:
        import_kg(paths.pop("triples"), tmp_path / "out", **paths, progress=False)
    assert str(info.value).startswith(str(tmp_path / message.split(":")[0])) and message.split(":", 1)[1] in str(
        info.value
    )
    assert _leftovers(tmp_path, {names[k] for k in given}) == []


def test_an_import_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="holds no import"):
        import_kg(_write(tmp_path / "kg.tsv", GOOD), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


# --- texts and images: a test-made example -----------------------------------------------------
def _picture_inputs(folder: Path) -> dict:
    from PIL import Image

    names = ["Ada_Lovelace", "Alan_Turing", "Grace_Hopper", "Edsger_Dijkstra", "Barbara_Liskov", "Donald_Knuth"]
    rows = [f"{names[i]}\t{rel}\t{names[(i + j) % 6]}" for i in range(6) for j, rel in ((1, "met"), (2, "cited"))]
    images = folder / "images"
    for i, name in enumerate(names[:3] + ["Nobody"]):  # "Nobody" is no entity of the graph
        (images / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), (40 * i, 200 - 40 * i, 90)).save(images / name / "photo.png")
    (images / names[0] / "broken.png").write_bytes(b"not a png")  # undecodable: skipped and counted
    texts = [f"{n}\t{n.replace('_', ' ')}, a computer scientist" for n in names[:4]] + ["Nobody\tnot in the graph"]
    return {
        "triples": _write(folder / "kg.tsv", "\n".join(rows) + "\n"),
        "texts": _write(folder / "texts.tsv", "\n".join(texts) + "\n"),
        "images": images,
        "numeric": _write(
            folder / "born.csv", "entity,attribute,value\nAda_Lovelace,born,1815\nAlan_Turing,born,1912\n"
        ),
    }


IMAGE_OPTIONS = {"image_backbone": "resnet18", "image_weights": "none", "device": "cpu", "workers": 0}


def test_texts_images_and_numbers_of_a_test_made_graph_with_an_interrupted_first_try(tmp_path, monkeypatch):
    inputs = _picture_inputs(tmp_path)
    out = tmp_path / "people"
    from afme_lib.extraction import image

    real = image.extract_image_features

    def interrupted(*args, **kwargs):
        raise RuntimeError("killed while encoding images")

    monkeypatch.setattr(image, "extract_image_features", interrupted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="killed"):
            import_kg(inputs.pop("triples"), out, **inputs, progress=False, **IMAGE_OPTIONS)
    staging = tmp_path / ".people.importing"
    assert not out.exists() and (staging / "people-textual.pth").is_file()  # the texts are done: kept for the rerun
    text_info = json.loads((staging / "people-textual.json").read_text())

    monkeypatch.setattr(image, "extract_image_features", real)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = import_kg(tmp_path / "kg.tsv", out, **inputs, progress=False, **IMAGE_OPTIONS)
    assert not staging.exists() and json.loads((out / "people-textual.json").read_text()) == text_info  # resumed
    said = " ".join(str(w.message) for w in seen)
    assert "could not be decoded" in said and "match no entity" in said
    mods = result.info["modalities"]
    assert mods["text"]["present"] == 4 and mods["text"]["unmatched_keys"] == 1
    assert mods["image"]["present"] == 3 and mods["image"]["unmatched"] == 1 and mods["image"]["images_skipped"] == 1
    assert mods["numeric"]["present"] == 2 and mods["numeric"]["attributes"] == ["born"]
    kg = load_dataset(out)
    assert len(kg.valid) and len(kg.test) and kg.num_entities == 6
    store = FeatureStore.load(out, kg.num_entities, verbose=False)
    assert sorted(store.modalities) == ["image", "numeric", "text"]
    assert store.coverage()["image"]["present"] == 3 and store.features["text"].shape[1] == 384
    assert kg_import.import_summary(result.info)[-1].startswith("image: 3 of 6 entities; skipped 1 image file(s)")
