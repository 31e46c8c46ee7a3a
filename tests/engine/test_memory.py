"""The memory model against real models and optimisers, the evaluation chunk from a free-memory
figure, feature placement under "auto", and ``afme memory``."""

from __future__ import annotations

import builtins
import json

import pytest
import torch

import afme_lib.engine.device as device
import afme_lib.engine.memory as memory
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.benchmarks import graph_counts
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.device import chunk_for_budget, eval_chunk_budget
from afme_lib.engine.evaluation import default_chunk_size
from afme_lib.engine.memory import measure_layout, plan
from afme_lib.engine.training import Trainer, batch_losses
from afme_lib.interfaces.cli import main, parse_dims
from afme_lib.models.registry import create_model, model_names

DIMS = {"text": 24, "image": 24, "audio": 16, "numeric": 8}  # the tiny preset's feature widths
SMALL = dict(attention_layers=1, attention_heads=2, noise_dim=8)


def model_cfg(name, **kw):
    return ModelConfig(name=name, dim=16, **{**(SMALL if name == "afme" else {}), **kw})


@pytest.fixture(scope="module")
def tiny(tiny_synth):
    data = load_dataset(tiny_synth)
    return data, FeatureStore.load(tiny_synth, data.num_entities, verbose=False)


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# --- parameters and optimiser state -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["transe", "distmult", "complex", "rotate", "ikrl", "mm-concat", "afme"])
def test_parameter_and_adam_bytes_match_a_trained_model(tiny, name):
    """After one epoch every parameter has a gradient and Adam state: the plan's bytes are exact."""
    data, store = tiny
    # adversarial_every=1: the epoch's last batch then trains MoIEn too, so the generator's
    # gradients exist when they are counted (the plan counts the peak, a batch that has them)
    cfg = TrainConfig(
        epochs=1, batch_size=1024, negatives=4, device="cpu", progress=False, eval_every=0, adversarial_every=1
    )
    p = plan(model_cfg(name), cfg, data.num_entities, data.num_relations, DIMS)
    trainer = Trainer(data, model_cfg(name), cfg, None, store)
    trainer.train_epoch(1)
    params = list(trainer.model.parameters())
    assert p.parameters == sum(q.numel() for q in params)
    assert p.parameter_bytes == tensor_bytes(params)
    assert all(q.grad is not None for q in params)
    assert p.gradient_bytes == tensor_bytes(q.grad for q in params)
    optimisers = [o for o in (trainer.optimizer, trainer.critic_optimizer) if o is not None]
    state = [t for o in optimisers for s in o.state.values() for t in s.values()]
    assert p.optimiser_bytes == tensor_bytes(state)
    # the per-entity share is the entity table: 4 bytes per real of a row
    width = trainer.model.entity.weight.shape[1]
    assert p.per_entity["embeddings"] == 4 * width and p.per_entity["optimiser"] == 8 * width


@pytest.mark.parametrize(
    "ablation",
    [
        {"gan": False},
        {"self_attention": False},
        {"relation_context": False},
        {"denoising": False, "dynamic_weights": False},
    ],
)
def test_afme_ablations_count_exactly_at_another_size(ablation):
    """The affine fit holds away from the sizes it was measured at (N=1234, R=17, other widths)."""
    dims = {"image": 40, "text": 12}
    p = plan(model_cfg("afme", **ablation), TrainConfig(), 1234, 17, dims)
    store = FeatureStore(1234)
    for m, d in dims.items():
        store.add(m, torch.randn(1234, d))
    model = create_model(model_cfg("afme", **ablation), 1234, 17, store)
    assert p.parameters == sum(q.numel() for q in model.parameters())
    assert p.layout.tensors == len(list(model.parameters()))


def test_features_count_only_for_models_that_read_them_and_only_on_the_device():
    train = TrainConfig(eval_batch_size=100)
    rotate = plan(model_cfg("rotate"), train, 1000, 5, DIMS)
    assert rotate.per_entity["features"] == 0 and rotate.host_bytes == 0
    resident = plan(model_cfg("mm-concat"), train, 1000, 5, DIMS)
    assert resident.per_entity["features"] == sum(4 * d + 1 for d in DIMS.values())  # rows + presence mask
    pinned = plan(model_cfg("mm-concat"), train, 1000, 5, DIMS, feature_placement="pinned")
    assert pinned.per_entity["features"] == len(DIMS) and pinned.host_bytes == 1000 * 4 * sum(DIMS.values())
    assert resident.peak_bytes - pinned.peak_bytes == 1000 * 4 * sum(DIMS.values())
    only_text = plan(model_cfg("mm-concat", modalities=["text"]), train, 1000, 5, DIMS)
    assert only_text.feature_dims == {"text": 24}
    with pytest.raises(ValueError, match=r"modalities \['video'\] requested but feature widths are known only for"):
        plan(model_cfg("mm-concat", modalities=["video"]), train, 1000, 5, DIMS)


def test_evaluation_bytes_per_entity():
    train = TrainConfig(eval_batch_size=128)
    rotate = plan(model_cfg("rotate"), train, 500, 3, free_bytes=10**9)
    assert rotate.per_entity["evaluation"] == 128 * 5  # float32 score + bool mask; the table is the weight
    assert not rotate.layout.table_copy and rotate.layout.table_copies == 0
    assert rotate.layout.evaluation_cache == rotate.layout.training_cache == (0, 0)
    afme = plan(model_cfg("afme"), train, 500, 3, DIMS, free_bytes=10**9)
    assert afme.layout.table_copy and afme.layout.table_width == 16
    assert afme.layout.table_copies == 2  # the query table (MoIEn's completions) beside the candidates'
    assert afme.per_entity["evaluation"] == 128 * 5 + 2 * 4 * 16 + afme.layout.evaluation_cache[0]


def afme_on_random_features(n: int, **kw):
    torch.manual_seed(0)
    store = FeatureStore(n)
    for modality, width in DIMS.items():
        store.add(modality, torch.randn(n, width))
    return create_model(model_cfg("afme", **kw), n, 3, store)


@pytest.mark.parametrize("n", [300, 700])
def test_afme_caches_are_counted_as_a_real_model_holds_them(n):
    """The plan's training cache (the epoch's cross-check table) and evaluation figures (the
    per-entity tensors of every entity, two relation tables) equal what an AFME of n entities
    holds after a training batch and after building an evaluation's tables."""
    train = TrainConfig(eval_batch_size=128, negatives=4)
    p = plan(model_cfg("afme"), train, n, 3, DIMS, free_bytes=10**9)
    model = afme_on_random_features(n)
    batch = torch.tensor([[0, 0, 1], [2, 1, 3], [4, 2, 5]])
    model.train()
    batch_losses(model, train, batch, torch.randint(n, (3, 4)), torch.tensor([True, False, True]), torch.device("cpu"))
    held = tensor_bytes(model.cached_tensors())
    assert held == n * len(DIMS) * (16 + 1) * 4  # completion [N, M, D] and agreement [N, M], float32
    assert p.per_entity["training_cache"] * n + p.fixed["training_cache"] == held
    model.eval()
    with torch.no_grad():
        tables = model.tables(0)
    held = tensor_bytes(model.cached_tensors()) + tensor_bytes(tables)
    assert p.evaluation_bytes == n * 128 * 5 + held + p.fixed["eval_chunk"]
    assert p.peak_bytes >= p.state_bytes + max(p.fixed["activations"] + n * p.per_entity["training_cache"], held)


def test_activations_are_measured_and_scale_with_width_and_negatives():
    def per_positive(name, dim, negatives):
        return measure_layout(
            ModelConfig(name=name, dim=dim, **(SMALL if name == "afme" else {})),
            DIMS,
            TrainConfig(negatives=negatives, self_negatives=0.0),
        ).activation_bytes_per_positive

    assert 1.8 < per_positive("rotate", 64, 8) / per_positive("rotate", 32, 8) < 2.2  # B x K x D temporaries
    assert per_positive("rotate", 32, 16) > 1.6 * per_positive("rotate", 32, 8)
    assert per_positive("afme", 16, 8) > 5 * per_positive("rotate", 16, 8)  # fusion + generator per entity
    before = torch.random.get_rng_state()
    per_positive("rotate", 8, 2)
    assert torch.equal(torch.random.get_rng_state(), before)  # planning leaves the caller's RNG alone


def test_a_one_modality_probe_counts_moiens_activations():
    """The probe's features have a missing row, so AFME on one modality is planned with MoIEn's
    generator term (which a run pays as soon as one row of its data is missing), not without."""

    def per_positive(**options):
        return measure_layout(
            ModelConfig(name="afme", dim=16, **SMALL, **options), {"text": 24}, TrainConfig(negatives=4, lambda_adv=0.5)
        ).activation_bytes_per_positive

    assert per_positive() > 1.2 * per_positive(gan=False)


def test_peak_and_fits():
    p = plan(model_cfg("rotate"), TrainConfig(batch_size=256, eval_batch_size=64), 2000, 10, free_bytes=2**30)
    state = 2000 * 16 * 16 + 16 * 8 * 10 + 4 * 2  # entity rows (16 reals), relation rows (8 phases), 2 steps
    assert p.state_bytes == state
    assert p.peak_bytes == state + max(p.fixed["activations"], p.evaluation_bytes)
    assert p.fits(int(p.peak_bytes / 0.9) + 1) and not p.fits(int(p.peak_bytes / 0.9) - 1)
    assert memory.fits(p, free_bytes=10 * p.peak_bytes) and not memory.fits(p, free_bytes=p.peak_bytes)


# --- the evaluation chunk ----------------------------------------------------------------------------
def test_chunk_from_a_given_free_memory_figure(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: pytest.fail("a figure was given"))
    free = 8 * 2**30
    assert eval_chunk_budget("cuda", free_bytes=free) == free // 4
    assert chunk_for_budget(10**7, 64, 256, free // 4) == (free // 4) // (2 * 4 * 256 * 64)
    assert chunk_for_budget(10**7, 4096, 512, 10**6) == 1024  # the floor
    assert chunk_for_budget(900, 64, 256, free) == 900  # never more than the entities
    p = plan(model_cfg("rotate"), TrainConfig(eval_batch_size=256), 10**6, 10, device="cuda", free_bytes=free)
    assert p.eval_chunk == chunk_for_budget(10**6, 16, 256, free // 4)
    assert p.eval_chunk_bytes == 2 * 4 * 256 * p.eval_chunk * 16
    assert p.fixed["eval_chunk"] == 2 * 4 * 256 * 1024 * 16  # the peak counts the smallest chunk only
    assert (
        plan(model_cfg("rotate"), TrainConfig(eval_batch_size=8), 300, 2, free_bytes=free).fixed["eval_chunk"]
        == 2 * 4 * 8 * 300 * 16
    )
    # CPU: a quarter of the available RAM, capped at 256 MB
    assert eval_chunk_budget("cpu", free_bytes=400 * 2**20) == 100 * 2**20
    assert eval_chunk_budget("cpu", free_bytes=64 * 2**30) == 256 * 2**20


def test_cpu_budget_reads_psutil_and_falls_back_to_the_constant(monkeypatch):
    import psutil

    class Memory:
        available = 200 * 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory())
    assert device.available_bytes("cpu") == 200 * 2**20
    assert default_chunk_size(10**7, 64, 16, "cpu") == (50 * 2**20) // (2 * 4 * 16 * 64)
    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **kw: (
            (_ for _ in ()).throw(ImportError(name)) if name == "psutil" else real_import(name, *a, **kw)
        ),
    )
    assert device.available_bytes("cpu") is None
    assert default_chunk_size(10**7, 64, 16, "cpu") == (256 * 2**20) // (2 * 4 * 16 * 64)


# --- feature placement -------------------------------------------------------------------------------
def test_auto_placement_keeps_features_on_the_device_only_when_the_run_fits(monkeypatch):
    args = (model_cfg("mm-concat"), TrainConfig(batch_size=64, negatives=4), 10**5, 10, {"image": 4096})
    assert memory.choose_feature_placement("auto", *args, "cpu") == "device"  # host memory either way
    assert memory.choose_feature_placement("mmap", *args, "cuda") == "mmap"  # asked for: kept
    features = 10**5 * 4096 * 4  # 1.6 GB of float32 image rows
    monkeypatch.setattr(memory, "available_bytes", lambda device: 20 * features)
    assert plan(*args, "device", "cuda", free_bytes=20 * features).fits(20 * features)
    assert memory.choose_feature_placement("auto", *args, "cuda") == "device"
    monkeypatch.setattr(memory, "available_bytes", lambda device: features)  # the features alone fill it
    assert not plan(*args, "device", "cuda", free_bytes=features).fits(features)
    assert memory.choose_feature_placement("auto", *args, "cuda") == "pinned"
    with pytest.raises(
        ValueError, match="unknown feature placement 'disk'; expected one of auto, device, pinned, mmap"
    ):
        memory.choose_feature_placement("disk", *args, "cpu")


# --- inputs and the CLI ------------------------------------------------------------------------------
def test_graph_counts_from_a_folder_and_from_the_registry(tiny_synth, tmp_path):
    data = load_dataset(tiny_synth)
    assert graph_counts(str(tiny_synth)) == (data.num_entities, data.num_relations)
    assert graph_counts("DB15K", data_dir=tmp_path) == (12_842, 279)  # registered, not downloaded
    assert memory.feature_dims_in(tiny_synth) == DIMS


def test_parse_dims():
    assert parse_dims(["image=383", "text=384"]) == {"image": 383, "text": 384}
    with pytest.raises(ValueError, match="--feature-dims expects MODALITY=WIDTH items like image=383, got 'image:383'"):
        parse_dims(["image:383"])


def test_afme_memory_prints_the_table_and_json(tiny_synth, capsys):
    base = [
        "memory",
        "--dataset",
        str(tiny_synth),
        "--features",
        str(tiny_synth),
        "--dim",
        "16",
        "--attention-layers",
        "1",
        "--free-gb",
        "1",
        "--models",
        "rotate",
        "afme",
    ]
    assert main(base) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{tiny_synth}: 317 entities")
    assert out[1].startswith("| model | params | embeddings B/ent |") and out[1].endswith("| fits |")
    assert [line.split(" | ")[0] for line in out[3:]] == ["| rotate", "| afme"]
    assert all(line.endswith("| yes |") for line in out[3:])
    assert main(base + ["--json", "--feature-dims", "text=8"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["free_bytes"] == 2**30 and [p["model"] for p in payload["plans"]] == ["rotate", "afme"]
    assert payload["plans"][1]["feature_dims"] == {**DIMS, "text": 8}
    data = load_dataset(tiny_synth)
    assert payload["plans"][0]["parameters"] == data.num_entities * 16 + data.num_relations * 8


def test_afme_memory_plans_every_registered_model_by_default(tiny_synth, capsys):
    assert (
        main(
            [
                "memory",
                "--dataset",
                str(tiny_synth),
                "--dim",
                "8",
                "--attention-layers",
                "1",
                "--free-gb",
                "1",
                "--json",
            ]
        )
        == 0
    )
    assert [p["model"] for p in json.loads(capsys.readouterr().out)["plans"]] == model_names()
