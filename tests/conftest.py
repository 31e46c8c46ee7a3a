"""Shared fixtures: the shared benchmark folder (skipped with a reason when absent)."""

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


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """The synthetic ``tiny`` preset (seed 0), written once per session: a folder that is both the
    dataset (OpenKE files) and the feature folder (``synth-tiny-*.pth``). Treat it as read-only."""
    from afme_lib.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("tiny_synth") / "tiny", "tiny", seed=0)
