"""Shared fixtures: the shared benchmark folder (skipped with a reason when absent), the tiny
synthetic preset, and small random feature stores for model tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from afme_lib.data.registry import DATA_DIR_ENV

# The benchmarks' root: the CLI's $AFME_DATA_DIR when set, else ../shared/datasets beside the checkout.
SHARED_DATASETS = Path(os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[1].parent / "shared" / "datasets")


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    # Test tensors are tiny: one intra-op thread is faster than two, and unlike two it does not
    # slow down ~10x when other processes keep the cores busy.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "MKG-W" / "train2id.txt").is_file():
        pytest.skip(f"shared benchmarks not found at {SHARED_DATASETS} (set ${DATA_DIR_ENV})")
    return SHARED_DATASETS


def make_small_store(num_entities: int = 10, widths: dict[str, int] | None = None, seed: int = 0,
                     offsets: dict[str, float] | None = None):
    """A FeatureStore of random rows, ``widths`` {modality: width} (default image 5, text 7), drawn
    from one generator in ``widths`` order, plus ``offsets`` {modality: shift}. Entity 0 has no
    modality, entity 1 only text, entity 2 every modality but text (their other rows are zero,
    which the store reads as missing)."""
    from afme_lib.data.features import FeatureStore

    gen = torch.Generator().manual_seed(seed)
    store = FeatureStore(num_entities)
    for modality, width in (widths or {"image": 5, "text": 7}).items():
        values = torch.randn(num_entities, width, generator=gen) + (offsets or {}).get(modality, 0.0)
        values[[0, 2] if modality == "text" else [0, 1]] = 0
        store.add(modality, values)
    return store


@pytest.fixture
def small_store():
    """:func:`make_small_store`, as a factory: ``small_store(num_entities, widths, seed, offsets)``."""
    return make_small_store


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """The synthetic ``tiny`` preset (seed 0), written once per session: a folder that is both the
    dataset (OpenKE files) and the feature folder (``synth-tiny-*.pth``). Treat it as read-only."""
    from afme_lib.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("tiny_synth") / "tiny", "tiny", seed=0)
