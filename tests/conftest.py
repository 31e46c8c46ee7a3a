"""Shared fixtures: the shared benchmark folder (skipped with a reason when absent), the tiny
synthetic preset, and small random feature stores for model tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from afme_lib.data.benchmarks import DATA_DIR_ENV

# The benchmarks' root: the CLI's $AFME_DATA_DIR when set, else ../shared/datasets beside the checkout.
SHARED_DATASETS = Path(
    os.environ.get(DATA_DIR_ENV) or Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
)


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


def make_small_store(
    num_entities: int = 10, widths: dict[str, int] | None = None, seed: int = 0, offsets: dict[str, float] | None = None
):
    """A FeatureStore of random rows, ``widths`` {modality: width} (default image 5, text 7), drawn
    from one generator in ``widths`` order, plus ``offsets`` {modality: shift}. Entity 0 has no
    modality, entity 1 only text, entity 2 every modality but text (their other rows are zero,
    which the store reads as missing)."""
    from afme_lib.data.feature_store import FeatureStore

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


def trained(dataset, model_cfg, train_cfg, out, features=None, feature_placement="auto") -> dict:
    """The metrics of :func:`afme_lib.experiments.run.run` of a spec built from configs."""
    from afme_lib.experiments.run import run
    from afme_lib.experiments.spec import RunSpec

    return run(
        RunSpec(
            dataset=str(dataset),
            model=model_cfg,
            train=train_cfg,
            feature_placement=feature_placement,
            features=None if features is None else str(features),
        ),
        out,
    ).metrics


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    """A benchmark script (``benchmarks/<name>.py``) as a module, loaded from its file."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a script that imports another (speed_models) finds the loaded one
    spec.loader.exec_module(module)
    return module


def markdown_tables(text: str) -> list[list[dict]]:
    """Every Markdown table of a page, each as its rows: ``{header: cell}``, cells stripped."""
    tables, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            tables.append([])
        elif not all(set(c) <= set("-: ") for c in cells):
            tables[-1].append(dict(zip(header, cells)))
    return tables


def table_row(tables: list[list[dict]], **where) -> dict:
    """The one row, in any of ``tables``, whose cells equal every ``where`` (column: text)."""
    found = [row for table in tables for row in table if all(row.get(k) == v for k, v in where.items())]
    assert len(found) == 1, f"{len(found)} rows match {where}"
    return found[0]
