"""Image features: folder matching, a random ResNet-18 against a per-image reference, corrupt files,
resumable extraction, weights files, CLI. Images are 64x64 PNGs the tests write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from afme_lib.core.errors import AfmeError, DataFormatError
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.openke import write_id_map, write_triples
from afme_lib.extraction.image import build_backbone, extract_image_features, find_entity_images
from afme_lib.interfaces.cli import main

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*with random weights:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*match no entity:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*could not be decoded:UserWarning"),
]  # asserted where it matters

NAMES = ["Golden_Retriever", "http://www.wikidata.org/entity/Q42", "Libreville", "zebra", "nobody home", "Cat"]
FAST = dict(backbone="resnet18", image_size=64, workers=0, batch_size=3, progress=False)


def _png(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def kg(tmp_path_factory) -> tuple[Path, Path]:
    """An OpenKE folder with NAMES and an images folder using every supported spelling."""
    root = tmp_path_factory.mktemp("img")
    data = root / "kg"
    data.mkdir()
    write_id_map(data / "entity2id.txt", NAMES)
    write_id_map(data / "relation2id.txt", ["r0"])
    for split in ("train", "valid", "test"):
        write_triples(data / f"{split}2id.txt", np.array([[0, 1, 0], [2, 3, 0]], dtype=np.int64))
    images = root / "images"
    for folder in ("Golden_Retriever", "Q42", "Cat", "Atlantis"):
        (images / folder).mkdir(parents=True)
    _png(images / "Golden_Retriever" / "a.png", 0)  # exact name, two images
    _png(images / "Golden_Retriever" / "b.png", 1)
    (images / "Golden_Retriever" / "notes.txt").write_text("not an image extension: ignored")
    _png(images / "Q42" / "x.png", 2)  # URI tail
    _png(images / "Q42" / "y.png", 3)
    (images / "Q42" / "broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")  # corrupt: skipped
    _png(images / "3.png", 4)  # top-level file named by id (zebra)
    (images / "Cat" / "only.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # the cat's only image is bad
    _png(images / "Atlantis" / "z.png", 5)  # matches no entity
    return data, images


def _reference(images: dict[int, list[Path]], model, transform, n: int, dim: int) -> torch.Tensor:
    """Each image alone through the backbone, averaged per entity by hand."""
    out = torch.zeros(n, dim)
    with torch.no_grad():
        for entity, paths in images.items():
            feats = [model(transform(Image.open(p).convert("RGB"))[None])[0] for p in paths]
            out[entity] = torch.stack(feats).mean(0)
    return out


def test_images_are_matched_by_name_uri_tail_and_id(kg):
    data, images = kg
    files, found = find_entity_images(images, NAMES)
    rel = [[p.relative_to(images).as_posix() for p in f] for f in files]
    assert rel == [
        ["Golden_Retriever/a.png", "Golden_Retriever/b.png"],
        ["Q42/broken.jpg", "Q42/x.png", "Q42/y.png"],
        [],
        ["3.png"],
        [],
        ["Cat/only.png"],
    ]
    assert found == {"unmatched": 1, "unmatched_examples": ["Atlantis"], "images": 7, "entities_with_images": 4}
    assert [len(f) for f in find_entity_images(images, NAMES, max_images=1)[0]] == [1, 1, 0, 1, 0, 1]
    with pytest.raises(DataFormatError, match="images folder not found"):
        find_entity_images(images / "missing", NAMES)


def test_features_are_mean_backbone_features_and_corrupt_files_are_skipped(kg, tmp_path):
    data, images = kg
    with pytest.warns(UserWarning) as record:
        result = extract_image_features(data, images, tmp_path / "o", weights="none", **FAST)
    messages = [str(w.message) for w in record]
    assert f"{images}: 1 folder(s)/file(s) match no entity of kg and were skipped (e.g. 'Atlantis')" in messages
    assert (
        "2 image file(s) could not be decoded and were skipped, e.g. Q42/broken.jpg (UnidentifiedImageError: "
        "cannot identify image file 'broken.jpg'); Cat/only.png (OSError: Truncated File Read) "
        "(more in kg-visual.json)"
    ) in messages
    assert result.path.name == "kg-visual.pth"
    model, dim, transform, _ = build_backbone("resnet18", "none", 64, seed=0)
    assert dim == 512
    ref = _reference(
        {
            0: [images / "Golden_Retriever" / "a.png", images / "Golden_Retriever" / "b.png"],
            1: [images / "Q42" / "x.png", images / "Q42" / "y.png"],
            3: [images / "3.png"],
        },
        model,
        transform,
        len(NAMES),
        dim,
    )
    store = FeatureStore.load(tmp_path / "o", len(NAMES), verbose=False)
    assert store.masks["image"].tolist() == [True, True, False, True, False, False]  # the cat's only image is corrupt
    torch.testing.assert_close(store.features["image"], ref, atol=1e-5, rtol=1e-4)
    info = json.loads(result.sidecar.read_text())
    assert info["stats"]["images_read"] == 5 and info["stats"]["images_skipped"] == 2
    assert [s.split(" ")[0] for s in info["stats"]["skipped_files"]] == ["Q42/broken.jpg", "Cat/only.png"]
    assert (info["present"], info["missing"], info["unmatched"]) == (3, 3, 1)
    assert info["settings"]["weights"] == "random init (seed 0)" and info["settings"]["backbone"] == "resnet18"


def test_interrupted_extraction_resumes_to_the_uninterrupted_result(kg, tmp_path):
    data, images = kg
    whole = extract_image_features(data, images, tmp_path / "whole", weights="none", chunk_size=2, **FAST)
    calls: list[int] = []

    def stop_after_first(k):
        calls.append(k)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_image_features(
            data, images, tmp_path / "cut", weights="none", chunk_size=2, after_chunk=stop_after_first, **FAST
        )
    assert sorted(p.name for p in (tmp_path / "cut" / ".partial" / "image").glob("chunk-*")) == ["chunk-00000.pt"]
    with pytest.warns(UserWarning, match="could not be decoded"):
        resumed = extract_image_features(
            data, images, tmp_path / "cut", weights="none", chunk_size=2, after_chunk=calls.append, **FAST
        )
    assert calls == [0, 1, 2]  # chunk 0 was not computed again
    assert torch.equal(torch.load(resumed.path, weights_only=True), torch.load(whole.path, weights_only=True))
    assert resumed.info["stats"]["images_skipped"] == 2  # counts of the first session's chunk are kept
    assert not (tmp_path / "cut" / ".partial").exists()


def test_weights_file_is_loaded(kg, tmp_path):
    data, images = kg
    source = build_backbone("resnet18", "none", seed=1)[0]
    import torchvision

    full = torchvision.models.resnet18(num_classes=10)  # a fine-tuned head of another size is ignored
    full.load_state_dict({**source.state_dict(), "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)})
    plain, nested = tmp_path / "plain.pth", tmp_path / "nested.pth"
    torch.save(full.state_dict(), plain)
    torch.save({"state_dict": {f"module.{k}": v for k, v in full.state_dict().items()}, "epoch": 3}, nested)
    for path in (plain, nested):
        model, dim, _, record = build_backbone("resnet18", path, 64)
        assert dim == 512 and record.startswith(f"file {path.name} sha256:")
        for (k, a), b in zip(model.state_dict().items(), source.state_dict().values()):
            assert torch.equal(a, b), k
    result = extract_image_features(data, images, tmp_path / "o", weights=plain, **FAST)
    seeded = extract_image_features(data, images, tmp_path / "o1", weights="none", seed=1, **FAST)
    assert torch.equal(torch.load(result.path, weights_only=True), torch.load(seeded.path, weights_only=True))


def test_bad_weights_and_backbones_are_reported(tmp_path):
    wrong = tmp_path / "resnet34.pth"
    torch.save(build_backbone("resnet34", "none")[0].state_dict(), wrong)
    with pytest.raises(DataFormatError, match=r"resnet34\.pth: not a resnet18 state dict: .*Unexpected key"):
        build_backbone("resnet18", wrong)
    pickled = tmp_path / "obj.pth"
    torch.save({"opt": object}, pickled)
    with pytest.raises(DataFormatError, match=r"obj\.pth: cannot load as a state dict"):
        build_backbone("resnet18", pickled)
    with pytest.raises(DataFormatError, match="weights file not found"):
        build_backbone("resnet18", tmp_path / "none.pth")
    with pytest.raises(AfmeError, match="unknown torchvision backbone 'resnet5'"):
        build_backbone("resnet5", "none")


def test_backbone_dims_and_classifier_removal():
    assert build_backbone("resnet50", "none")[1] == 2048  # the default backbone: penultimate layer
    model, dim, _, _ = build_backbone("mobilenet_v3_small", "none", 64)  # a Sequential classifier
    assert dim == 1024 and model(torch.zeros(1, 3, 64, 64)).shape == (1, 1024)


def test_cli_image_command(kg, tmp_path, capsys):
    data, images = kg
    weights = tmp_path / "w.pth"
    torch.save(build_backbone("resnet18", "none", seed=2)[0].state_dict(), weights)
    argv = [
        "features",
        "image",
        "--dataset",
        str(data),
        "--images",
        str(images),
        "--out",
        str(tmp_path / "o"),
        "--backbone",
        "resnet18",
        "--weights",
        str(weights),
        "--image-size",
        "64",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--quiet",
    ]
    with pytest.warns(UserWarning, match="could not be decoded"):
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'o' / 'kg-visual.pth'} (6 entities x 512: 3 present, 3 missing)" in out
    assert "skipped 2 undecodable image file(s)" in out
    assert FeatureStore.load(tmp_path / "o", len(NAMES), verbose=False).masks["image"].sum() == 3
    assert main(argv) == 0 and "nothing to do" in capsys.readouterr().out
