"""Features kept in host memory (pinned or memory-mapped) and gathered per batch give exactly
the scores, losses and metrics of device-resident features; mapping never modifies the files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import trained

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore, feature_shapes, gather_rows
from afme_lib.engine.evaluation import evaluate
from afme_lib.engine.run_folder import read_log
from afme_lib.engine.training import Trainer
from afme_lib.models.registry import create_model

SMALL = dict(dim=16, attention_layers=1, attention_heads=2, noise_dim=8)


@pytest.fixture(scope="module")
def stores(tiny_synth, tmp_path_factory):
    data = load_dataset(tiny_synth)
    resident = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    return data, {
        "device": resident,
        "pinned": resident.offload("pinned"),
        "mmap-load": FeatureStore.load(tiny_synth, data.num_entities, verbose=False, mmap=True),
        "mmap-offload": resident.offload("mmap", tmp_path_factory.mktemp("mapped")),
    }


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_placement_holds_the_same_features_and_masks(stores):
    _, by_placement = stores
    resident = by_placement["device"]
    for name, store in by_placement.items():
        assert store.placement == name.split("-")[0]
        assert store.modalities == resident.modalities
        for m in resident.modalities:
            assert torch.equal(store.features[m], resident.features[m]), (name, m)
            assert torch.equal(store.masks[m], resident.masks[m]), (name, m)
    assert resident.nbytes() == sum(4 * f.numel() + f.shape[0] for f in resident.features.values())


@pytest.mark.parametrize("model", ["afme", "ikrl", "mm-concat"])
def test_host_features_give_the_same_scores(stores, model):
    data, by_placement = stores
    cfg = ModelConfig(name=model, **SMALL)
    h, r, t = data.test[:, 0], data.test[:, 1], data.test[:, 2]
    outputs = {}
    for name, store in by_placement.items():
        torch.manual_seed(0)
        net = create_model(cfg, data.num_entities, data.num_relations, store).eval()
        has_buffers = any(n.startswith("inputs.features_") for n, _ in net.named_buffers())
        assert has_buffers == (name == "device")  # host tables are not buffers: .to(device) leaves them
        with torch.no_grad():
            table = net.entity_table(3) if net.relation_conditioned else net.entity_table()
            outputs[name] = (net.score(h, r, t), table)
    for name, (scores, table) in outputs.items():
        assert torch.equal(scores, outputs["device"][0]), name
        assert torch.equal(table, outputs["device"][1]), name


def test_training_and_evaluation_are_identical_with_host_features(stores):
    data, by_placement = stores
    cfg = ModelConfig(name="afme", **SMALL)
    train = TrainConfig(epochs=1, batch_size=1024, negatives=2, lr=0.02, eval_every=0, device="cpu", progress=False)
    results = {}
    for name in ("device", "pinned", "mmap-load"):
        trainer = Trainer(data, cfg, train, None, by_placement[name])
        losses = trainer.train_epoch(1)
        results[name] = (losses, evaluate(trainer.model, data, "valid", filter_index=trainer.filter_index))
    assert results["pinned"] == results["device"] and results["mmap-load"] == results["device"]


def test_run_records_the_placement_and_gets_the_same_metrics(tiny_synth, tmp_path):
    cfg = ModelConfig(name="mm-concat", dim=16)
    train = TrainConfig(epochs=1, batch_size=512, negatives=4, eval_every=1, device="cpu", progress=False)
    metrics = {}
    for placement in ("auto", "mmap"):
        out = tmp_path / placement
        metrics[placement] = trained(
            str(tiny_synth), cfg, train, out, features=str(tiny_synth), feature_placement=placement
        )
        assert json.loads((out / "config.json").read_text())["feature_placement"] == placement
    strip = lambda m: {k: v for k, v in m.items() if not k.endswith("_seconds")}  # noqa: E731
    assert strip(metrics["mmap"]) == strip(metrics["auto"])
    assert [r["loss"] for r in read_log(tmp_path / "mmap")] == [r["loss"] for r in read_log(tmp_path / "auto")]


@pytest.mark.parametrize("suffix", [".pth", ".npy"])
def test_mapping_a_file_with_missing_rows_leaves_the_file_untouched(tmp_path, suffix):
    values = torch.randn(6, 3)
    values[1] = float("nan")  # non-finite: missing, zeroed in the store
    values[4] = 0.0  # all zero: missing
    path = tmp_path / f"toy-visual{suffix}"
    torch.save(values, path) if suffix == ".pth" else np.save(path, values.numpy())
    before = sha(path)
    mapped = FeatureStore.load(tmp_path, 6, verbose=False, mmap=True)
    loaded = FeatureStore.load(tmp_path, 6, verbose=False)
    assert torch.equal(mapped.masks["image"], torch.tensor([True, False, True, True, False, True]))
    assert torch.equal(mapped.features["image"], loaded.features["image"])
    assert not torch.isnan(mapped.features["image"]).any()
    assert sha(path) == before  # missing rows were zeroed copy-on-write, not in the file
    assert feature_shapes(tmp_path) == {"image": (6, 3)}


def test_legacy_pth_files_are_read_instead_of_mapped(tmp_path):
    values = torch.randn(4, 2)
    torch.save(values, tmp_path / "x-textual.pth", _use_new_zipfile_serialization=False)
    store = FeatureStore.load(tmp_path, 4, mmap=True)
    assert torch.equal(store.features["text"], values) and store.placement == "mmap"


def test_gather_rows_on_the_cpu_and_bad_placements(tmp_path):
    table = torch.arange(20.0).view(10, 2)
    ids = torch.tensor([3, 3, 0, 9])
    assert torch.equal(gather_rows(table, ids), table[ids])
    store = FeatureStore(10)
    store.add("text", table + 1)
    with pytest.raises(ValueError, match="unknown placement 'gpu'; expected one of device, pinned, mmap"):
        store.offload("gpu")
    with pytest.raises(ValueError, match="placement 'mmap' needs a folder to write the mapped files to"):
        store.offload("mmap")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pinned_features_on_cuda_match_resident_ones(stores):
    data, by_placement = stores
    pinned = by_placement["pinned"]
    assert all(f.is_pinned() for f in pinned.features.values())
    ids = torch.randint(data.num_entities, (500,), device="cuda")
    for m in pinned.modalities:
        assert torch.equal(gather_rows(pinned.features[m], ids).cpu(), pinned.features[m][ids.cpu()])
    cfg = ModelConfig(name="afme", **SMALL)
    outs = []
    for store in (by_placement["device"], pinned):
        torch.manual_seed(0)
        net = create_model(cfg, data.num_entities, data.num_relations, store).cuda().eval()
        with torch.no_grad():
            outs.append(net.entity_table(1))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
