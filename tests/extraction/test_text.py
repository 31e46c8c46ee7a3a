"""Text features: name cleaning, texts files, the real MiniLM encoder (offline), resumable extraction, CLI."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network from these tests
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from afme_lib.core.errors import AfmeError, DataFormatError  # noqa: E402
from afme_lib.data.feature_store import FeatureStore  # noqa: E402
from afme_lib.data.openke import write_id_map, write_triples  # noqa: E402
from afme_lib.engine.device import effective_amp  # noqa: E402
from afme_lib.extraction.names import (  # noqa: E402
    clean_entity_name,
    dataset_entities,
    entity_key_index,
    id_fraction,
    looks_like_id,
    resolve_key,
)
from afme_lib.extraction.text import TextEncoder, extract_text_features, name_texts, packaged_minilm_path, read_texts  # noqa: E402
from afme_lib.interfaces.cli import main  # noqa: E402

NAMES = [
    "Steve_Adams_(footballer,_born_1980)",
    "Libreville",
    "sulfacetic acid",
    "Quebec_City",
    "http://www.wikidata.org/entity/Q42",
    "golden retriever",
    "Beyonc%C3%A9",
]


def kg_folder(root: Path, names: list[str]) -> Path:
    """A minimal OpenKE folder holding ``names`` (features need only entity2id.txt; the rest makes it loadable)."""
    root.mkdir(parents=True, exist_ok=True)
    write_id_map(root / "entity2id.txt", names)
    write_id_map(root / "relation2id.txt", ["r0"])
    triples = np.array([[0, 1, 0], [1, 2, 0]], dtype=np.int64)
    for split in ("train", "valid", "test"):
        write_triples(root / f"{split}2id.txt", triples)
    return root


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(device="cpu", batch_size=3)  # the packaged MiniLM, loaded once


@pytest.fixture(scope="module")
def minilm(encoder):
    return encoder._load()  # (tokenizer, model), for hand-made references


# --- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Steve_Adams_(footballer,_born_1980)", "Steve Adams (footballer, born 1980)"),  # MKG-Y
        ("Rivière-Koksoak,_Quebec", "Rivière-Koksoak, Quebec"),
        ("Hail!_Hail!_Rock_'n'_Roll", "Hail! Hail! Rock 'n' Roll"),
        ("sulfacetic acid", "sulfacetic acid"),  # TIVA
        ("find food to \\eat", "find food to eat"),
        ("约瑟夫·维萨里奥诺维奇·斯大林", "约瑟夫·维萨里奥诺维奇·斯大林"),  # KVC16K
        ("http://www.wikidata.org/entity/Q370252", "Q370252"),  # MKG-W
        ("<http://yago-knowledge.org/resource/Albert_Einstein>", "Albert Einstein"),
        ("http://example.org/onto#Blue_Whale", "Blue Whale"),
        ("Beyonc%C3%A9", "Beyoncé"),
        ("100%_Pure", "100% Pure"),  # not an escape
        ("Caf%E9", "Caf%E9"),  # Latin-1 escape, not UTF-8: kept as written
        ("  a__b  ", "a b"),
    ],
)
def test_clean_entity_name(raw, clean):
    assert clean_entity_name(raw) == clean


def test_identifiers_are_told_from_names():
    assert [looks_like_id(t) for t in ["Q370252", "P31", "/m/027rn", "12345", "Q-ship", "Queen", "1984 (film)"]] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert id_fraction(["Q1", "Q2", "Paris", None, ""]) == pytest.approx(2 / 3)
    assert id_fraction([None]) == 0.0


def test_key_index_exact_names_win_and_ambiguous_alternates_are_dropped():
    names = ["http://x.org/A_b", "A_b", "http://y.org/Q7", "C d", "http://z.org/C_d", "Z"]
    index = entity_key_index(names)
    assert index["A_b"] == 1  # exact name beats entity 0's URI tail
    assert index["Q7"] == 2  # URI tail
    assert index["http://x.org/A_b"] == 0
    assert "A b" not in index  # the cleaned text of both 0 and 1: ambiguous, dropped
    assert index["C d"] == 3  # exact name; "C_d" is the alternate of both 3 and 4: dropped
    assert "C_d" not in index
    assert resolve_key("Z", index, 6) == 5 and resolve_key("4", index, 6) == 4
    assert resolve_key("6", index, 6) is None and resolve_key("nobody", index, 6) is None


# --- texts files ----------------------------------------------------------------------------------
def test_read_texts_tsv_matches_names_alternates_and_ids(tmp_path):
    path = tmp_path / "texts.tsv"
    path.write_text(
        "5\n"  # an OpenKE-style count line is skipped
        "Libreville\tcapital of Gabon\n"
        "Q42\tauthor of a   guide\n"  # URI tail of entity 4, whitespace squeezed
        "2\tan acid\n"  # id
        "Quebec City\t\n"  # cleaned spelling of entity 3, empty text: no text
        "Atlantis\tnowhere\n",
        encoding="utf-8",
    )
    texts, stats = read_texts(path, NAMES)
    assert texts == [None, "capital of Gabon", "an acid", None, "author of a guide", None, None]
    assert stats == {"unmatched_keys": 1, "unmatched_examples": ["Atlantis"]}


def test_read_texts_json_object_and_list(tmp_path):
    path = tmp_path / "texts.json"
    path.write_text(json.dumps({"Libreville": "city", "6": "singer", "golden_retriever": None}))
    assert read_texts(path, NAMES)[0] == [None, "city", None, None, None, None, "singer"]
    path.write_text(json.dumps(["a", "", None, "d", "e", "f", "g"]))
    assert read_texts(path, NAMES)[0] == ["a", None, None, "d", "e", "f", "g"]


def test_read_texts_errors_name_file_and_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("Libreville\tcity\nno tab here\n")
    with pytest.raises(DataFormatError, match=r"t\.tsv:2: expected 'entity<TAB>text'$"):
        read_texts(path, NAMES)
    path.write_text("Libreville\tcity\n1\tagain\n")
    with pytest.raises(DataFormatError, match=r"t\.tsv:2: second text for entity 1 \('Libreville'; first at line 1\)$"):
        read_texts(path, NAMES)
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"Libreville": 3}))
    with pytest.raises(DataFormatError, match=r"t\.json: text for 'Libreville' is a int, expected a string$"):
        read_texts(bad, NAMES)
    bad.write_text("{oops")
    with pytest.raises(DataFormatError, match=r"t\.json:1: invalid JSON"):
        read_texts(bad, NAMES)


# --- the encoder ----------------------------------------------------------------------------------
TEXTS = [
    "dog",
    "Steve Adams (footballer, born 1980)",
    "puppy",
    "a long text about the history of the city of Quebec and its festivals of military bands",
    "carburetor",
]


def _one_by_one(minilm, texts, pooling):
    """Reference: each text alone (no padding at all), pooled by hand."""
    tokenizer, model = minilm
    rows = []
    with torch.no_grad():
        for text in texts:
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
            rows.append(hidden.mean(0) if pooling == "mean" else hidden[0])
    return torch.stack(rows)


def test_defaults_follow_the_packaged_sentence_transformers_config(encoder):
    assert packaged_minilm_path().is_dir()
    assert encoder.settings == {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "pooling": "mean",
        "normalize": True,
        "max_length": 256,
        "amp": "none",
    }
    assert encoder.dim == 384


def test_batched_mean_pooling_equals_unpadded_reference(encoder, minilm):
    # batches of 3 mix short and long texts, so padding is exercised
    ours = encoder.encode(TEXTS)
    ref = torch.nn.functional.normalize(_one_by_one(minilm, TEXTS, "mean"), dim=-1)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)


def test_cls_pooling_without_normalisation(minilm):
    enc = TextEncoder(pooling="cls", normalize=False, device="cpu", batch_size=4)
    enc._loaded = minilm  # same weights, no second load
    torch.testing.assert_close(enc.encode(TEXTS), _one_by_one(minilm, TEXTS, "cls"), atol=2e-5, rtol=1e-4)


def test_minilm_features_carry_meaning(encoder):
    dog, puppy, carburetor = encoder.encode(["dog", "puppy", "carburetor"])
    assert dog @ puppy > dog @ carburetor + 0.2


def test_autocast_only_on_gpu():
    assert effective_amp(torch.device("cpu"), "bf16") == "none"  # CPU features stay float32
    assert effective_amp(torch.device("cpu"), "auto") == "none"
    assert effective_amp(torch.device("cuda"), "fp16") == "fp16"
    with pytest.raises(ValueError, match="unknown amp mode 'fp8'"):
        effective_amp(torch.device("cpu"), "fp8")


def test_bad_model_and_pooling_are_reported(tmp_path):
    with pytest.raises(AfmeError, match="not a model folder"):
        TextEncoder(str(tmp_path / "nothing-here"))
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        TextEncoder(pooling="max")


# --- extraction -----------------------------------------------------------------------------------
def test_extraction_writes_loadable_features_and_sidecar(tmp_path, encoder):
    data = kg_folder(tmp_path / "kg", NAMES)
    texts = tmp_path / "texts.tsv"
    texts.write_text("Libreville\tcapital of Gabon\nQ42\tDouglas Adams, writer\n0\tEnglish footballer\n")
    result = extract_text_features(data, tmp_path / "out", texts=texts, encoder=encoder, progress=False)
    assert result.path == tmp_path / "out" / "kg-textual.pth" and not result.reused
    store = FeatureStore.load(tmp_path / "out", len(NAMES), verbose=False)
    assert store.masks["text"].tolist() == [True, True, False, False, True, False, False]
    expected = torch.zeros(len(NAMES), 384)
    expected[[0, 1, 4]] = encoder.encode(["English footballer", "capital of Gabon", "Douglas Adams, writer"])
    torch.testing.assert_close(store.features["text"], expected, atol=1e-6, rtol=1e-5)
    info = json.loads(result.sidecar.read_text())
    assert info["settings"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (info["settings"]["pooling"], info["dim"], info["present"], info["missing"]) == ("mean", 384, 3, 4)
    assert info["text_source"] == "file texts.tsv" and info["unmatched_keys"] == 0
    assert not (tmp_path / "out" / ".partial").exists()


def test_name_texts_and_the_id_warning(tmp_path, encoder):
    wikidata = [f"http://www.wikidata.org/entity/Q{i}" for i in (1, 5, 42)]
    with pytest.warns(UserWarning, match=r"100% of the texts are identifiers \(e\.g\. 'Q1'\), not names"):
        result = extract_text_features(
            kg_folder(tmp_path / "W", wikidata), tmp_path / "o", encoder=encoder, progress=False
        )
    assert result.info["id_share"] == 1.0
    assert name_texts(NAMES)[0] == "Steve Adams (footballer, born 1980)"


def test_unknown_script_warning(tmp_path, encoder):
    with pytest.warns(
        UserWarning,
        match=r"kvc: \d+% of the text tokens are unknown to the vocabulary of "
        r"sentence-transformers/all-MiniLM-L6-v2",
    ):
        result = extract_text_features(
            kg_folder(tmp_path / "kvc", ["约瑟夫·维萨里奥诺维奇·斯大林", "厦门大学", "欧式家具"]),
            tmp_path / "o",
            encoder=encoder,
            progress=False,
        )
    assert result.info["unk_token_share"] > 0.5
    assert encoder.unk_share(["golden retriever", "Libreville"]) == 0.0


def test_interrupted_extraction_resumes_to_the_uninterrupted_result(tmp_path, encoder, monkeypatch):
    data = kg_folder(tmp_path / "kg", NAMES)
    whole = extract_text_features(data, tmp_path / "whole", encoder=encoder, chunk_size=2, progress=False)

    def stop_after_second(k):
        if k == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_text_features(
            data, tmp_path / "cut", encoder=encoder, chunk_size=2, progress=False, after_chunk=stop_after_second
        )
    partial = tmp_path / "cut" / ".partial" / "text"
    assert sorted(p.name for p in partial.glob("chunk-*.pt")) == ["chunk-00000.pt", "chunk-00001.pt"]
    assert not (tmp_path / "cut" / "kg-textual.pth").exists()

    seen: list[str] = []
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts: seen.extend(texts) or real(texts))
    resumed = extract_text_features(data, tmp_path / "cut", encoder=encoder, chunk_size=2, progress=False)
    assert seen == name_texts(NAMES)[4:]  # only chunks 2 and 3 were encoded
    assert torch.equal(torch.load(resumed.path, weights_only=True), torch.load(whole.path, weights_only=True))

    seen.clear()  # finished with the same settings: reused, nothing encoded
    assert extract_text_features(data, tmp_path / "cut", encoder=encoder, chunk_size=5, progress=False).reused
    assert seen == []


def test_other_settings_refuse_to_overwrite_and_stale_chunks_are_dropped(tmp_path, encoder, minilm):
    data = kg_folder(tmp_path / "kg", NAMES)
    extract_text_features(data, tmp_path / "o", encoder=encoder, progress=False)
    cls = TextEncoder(pooling="cls", device="cpu")
    cls._loaded = minilm
    with pytest.raises(
        AfmeError,
        match=r"kg-textual\.pth already exists, made with other settings "
        r"\(differing: pooling\); pass --overwrite",
    ):
        extract_text_features(data, tmp_path / "o", encoder=cls, progress=False)
    # a half-finished mean-pooling run, then a cls run in the same folder: its chunks are stale
    with pytest.raises(KeyboardInterrupt):
        extract_text_features(
            data,
            tmp_path / "p",
            encoder=encoder,
            chunk_size=3,
            progress=False,
            after_chunk=lambda k: (_ for _ in ()).throw(KeyboardInterrupt),
        )
    with pytest.warns(UserWarning, match=r"discarding 1 finished chunk\(s\)"):
        result = extract_text_features(data, tmp_path / "p", encoder=cls, chunk_size=3, progress=False)
    values = torch.load(result.path, weights_only=True)
    torch.testing.assert_close(values, cls.encode(name_texts(NAMES)), atol=1e-6, rtol=1e-5)
    result = extract_text_features(data, tmp_path / "o", encoder=cls, overwrite=True, progress=False)
    assert result.info["settings"]["pooling"] == "cls"


def test_a_second_text_file_in_the_folder_is_refused(tmp_path, encoder):
    data = kg_folder(tmp_path / "kg", NAMES)
    (tmp_path / "o").mkdir()
    torch.save(torch.ones(len(NAMES), 3), tmp_path / "o" / "text.pt")
    with pytest.raises(AfmeError, match=r"already holds text\.pt for modality 'text'"):
        extract_text_features(data, tmp_path / "o", encoder=encoder, progress=False)


def test_cli_text_command(tmp_path, capsys):
    data = kg_folder(tmp_path / "kg", NAMES)
    argv = ["features", "text", "--dataset", str(data), "--out", str(tmp_path / "o"), "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert (
        f"wrote {tmp_path / 'o' / 'kg-textual.pth'} (7 entities x 384: 7 present, 0 missing)" in capsys.readouterr().out
    )
    assert FeatureStore.load(tmp_path / "o", len(NAMES)).masks["text"].all()
    assert main(argv) == 0
    assert "already holds these features (same settings); nothing to do" in capsys.readouterr().out
    assert main(argv + ["--pooling", "cls"]) == 2
    assert "differing: pooling" in capsys.readouterr().err


# --- the shared benchmarks' names -----------------------------------------------------------------
def test_shared_benchmark_names(shared_datasets):
    expected = {
        "MKG-Y": (False, "Gilles Mbang Ondo"),
        "TIVA": (False, "freon"),
        "KVC16K": (False, "欧式家具"),
        "MKG-W": (True, "Q370252"),
    }
    for name, (ids, first) in expected.items():
        canonical, names = dataset_entities(name, data_dir=shared_datasets)
        texts = name_texts(names)
        assert canonical == name and texts[0] == first
        assert (id_fraction(texts) > 0.99) == ids and (id_fraction(texts) < 0.01) != ids
        assert all(texts)  # cleaning never empties a name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataset_entities(shared_datasets / "Kuai16K")[0] == "KVC16K"
