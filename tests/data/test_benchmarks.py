"""Dataset registry: names and aliases, pins against the shared copies, resolution order, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from afme_lib.core.errors import AfmeError
from afme_lib.data.benchmarks import (
    DEFAULT_BASE_URL,
    REGISTRY,
    DatasetNotFoundError,
    UnknownDatasetError,
    get_entry,
    load_benchmark,
    registry_table,
    resolve_dataset,
)
from afme_lib.data.download import sha256_file
from afme_lib.data.openke import write_id_map, write_triples

# Straight from /work/shared/datasets/README.md.
README_COUNTS = {
    "MKG-W": (15_000, 169, 34_196, 4_276, 4_274),
    "MKG-Y": (15_000, 28, 21_310, 2_665, 2_663),
    "TIVA": (11_858, 16, 20_071, 2_000, 2_000),
    "KVC16K": (16_015, 4, 180_190, 22_523, 22_525),
}
COUNT_KEYS = ("entities", "relations", "train", "valid", "test")


def write_toy(folder: Path, n_entities: int) -> Path:
    """A tiny OpenKE folder; ``n_entities`` tells copies apart."""
    folder.mkdir(parents=True)
    write_id_map(folder / "entity2id.txt", [f"e{i}" for i in range(n_entities)])
    write_id_map(folder / "relation2id.txt", ["r"])
    for split in ("train", "valid", "test"):
        write_triples(folder / f"{split}2id.txt", np.array([[0, 0, 1]]))
    return folder


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No AFME_DATA_DIR, and a cache under tmp_path."""
    monkeypatch.delenv("AFME_DATA_DIR", raising=False)
    monkeypatch.delenv("AFME_DATASET_BASE_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)  # so a bare name is never an existing folder by accident
    return tmp_path / "xdg" / "afme-workbench" / "datasets"


def test_names_aliases_and_folders():
    assert list(REGISTRY) == ["MKG-W", "MKG-Y", "TIVA", "KVC16K", "DB15K"]
    assert get_entry("Kuai16K") is get_entry("KVC16K") is get_entry("kvc16k") is get_entry(" KUAI16K ")
    assert get_entry("Kuai16K").name == "KVC16K" and get_entry("KVC16K").folder == "Kuai16K"
    assert get_entry("tiva-kg") is get_entry("TIVA")
    assert get_entry("mkg-w").name == "MKG-W" and get_entry("Db15k").name == "DB15K"
    with pytest.raises(UnknownDatasetError) as err:
        get_entry("FB15K-237")
    assert str(err.value) == (
        "unknown dataset 'FB15K-237'; registered benchmarks: MKG-W, MKG-Y, TIVA (TIVA-KG), KVC16K (Kuai16K), DB15K"
    )
    assert isinstance(err.value, AfmeError)


def test_urls_point_at_the_pinned_commit(monkeypatch):
    monkeypatch.delenv("AFME_DATASET_BASE_URL", raising=False)
    assert get_entry("kuai16k").url("train2id.txt") == (
        "https://raw.githubusercontent.com/zjukg/NATIVE/"
        "c72291c3d571b36c754897935d21718aa4568fe7/benchmarks/Kuai16K/train2id.txt"
    )
    assert get_entry("MKG-Y").url("x.txt", base_url="http://mirror/b/") == "http://mirror/b/MKG-Y/x.txt"
    monkeypatch.setenv("AFME_DATASET_BASE_URL", "http://env-mirror")
    assert get_entry("TIVA").url("x.txt") == "http://env-mirror/TIVA/x.txt"
    assert get_entry("TIVA").url("x.txt", base_url="http://arg") == "http://arg/TIVA/x.txt"
    assert DEFAULT_BASE_URL.endswith("/c72291c3d571b36c754897935d21718aa4568fe7/benchmarks")


def test_db15k_is_listed_but_unpinned():
    entry = get_entry("DB15K")
    assert [f.name for f in entry.files] == [
        "entity2id.txt",
        "relation2id.txt",
        "train2id.txt",
        "valid2id.txt",
        "test2id.txt",
    ]
    assert all(f.sha256 is None for f in entry.files) and not entry.pinned
    assert all(e.pinned for e in REGISTRY.values() if e.name != "DB15K")


def test_registry_table_rows():
    rows = {r["name"]: r for r in registry_table()}
    assert list(rows) == list(REGISTRY)
    kvc = rows["KVC16K"]
    assert kvc["aliases"] == ["Kuai16K"] and kvc["folder"] == "Kuai16K" and kvc["pinned"] is True
    assert tuple(kvc[k] for k in COUNT_KEYS) == README_COUNTS["KVC16K"]
    assert kvc["files"] == 11 and kvc["bytes"] == sum(f.size for f in get_entry("KVC16K").files)
    assert rows["DB15K"]["pinned"] is False and rows["DB15K"]["bytes"] is None
    assert all(isinstance(r["description"], str) and r["description"] for r in rows.values())


def test_pins_match_the_shared_copies(shared_datasets):
    for entry in REGISTRY.values():
        if not entry.pinned:
            continue
        folder = shared_datasets / entry.folder
        on_disk = sorted(p.name for p in folder.iterdir() if p.is_file())
        assert on_disk == sorted(f.name for f in entry.files), entry.name
        for f in entry.files:
            assert (folder / f.name).stat().st_size == f.size, (entry.name, f.name)
            assert sha256_file(folder / f.name) == f.sha256, (entry.name, f.name)


@pytest.mark.parametrize("name", ["MKG-W", "MKG-Y", "tiva-kg", "Kuai16K"])
def test_load_benchmark_counts_match_readme(shared_datasets, clean_env, name):
    ds = load_benchmark(name, data_dir=shared_datasets)
    canonical = get_entry(name).name
    assert ds.name == canonical
    assert tuple(ds.counts()[k] for k in COUNT_KEYS) == README_COUNTS[canonical]
    assert ds.counts() == dict(get_entry(name).counts)


def test_load_benchmark_by_folder_path_uses_canonical_name(shared_datasets):
    assert load_benchmark(shared_datasets / "TIVA").name == "TIVA"


def test_resolve_order_data_dir_then_env_then_cache(clean_env, tmp_path, monkeypatch):
    cache = clean_env
    arg_root, env_root = tmp_path / "arg", tmp_path / "env"
    write_toy(arg_root / "Kuai16K", 3)
    write_toy(env_root / "Kuai16K", 4)
    write_toy(cache / "Kuai16K", 5)
    monkeypatch.setenv("AFME_DATA_DIR", str(env_root))

    assert resolve_dataset("KVC16K", data_dir=arg_root) == arg_root / "Kuai16K"
    assert resolve_dataset("kuai16k") == env_root / "Kuai16K"
    monkeypatch.delenv("AFME_DATA_DIR")
    assert resolve_dataset("KVC16K") == cache / "Kuai16K"
    # a data_dir without the folder falls through to the next root
    assert resolve_dataset("KVC16K", data_dir=tmp_path / "empty") == cache / "Kuai16K"
    ds = load_benchmark("kuai16k", data_dir=arg_root)
    assert ds.name == "KVC16K" and ds.num_entities == 3


def test_not_found_error_lists_where_it_looked(clean_env, tmp_path, monkeypatch):
    cache = clean_env
    monkeypatch.setenv("AFME_DATA_DIR", str(tmp_path / "env"))
    partial = tmp_path / "arg" / "MKG-W"
    partial.mkdir(parents=True)
    (partial / "entity2id.txt").write_text("0\n")  # an interrupted download: folder, no triples
    with pytest.raises(DatasetNotFoundError) as err:
        resolve_dataset("mkg-w", data_dir=tmp_path / "arg")
    assert str(err.value) == (
        "dataset MKG-W (folder 'MKG-W') not found; looked in:\n"
        f"  - data_dir argument: {partial} (incomplete: missing relation2id.txt, train2id.txt, "
        "valid2id.txt, test2id.txt)\n"
        f"  - $AFME_DATA_DIR: {tmp_path / 'env' / 'MKG-W'} (not found)\n"
        f"  - cache: {cache / 'MKG-W'} (not found)\n"
        "run `afme data download MKG-W` to fetch it, set $AFME_DATA_DIR, or pass the folder path"
    )
    assert isinstance(err.value, AfmeError)


def test_unknown_name_error(clean_env, tmp_path):
    with pytest.raises(UnknownDatasetError) as err:
        resolve_dataset("my-graph")
    msg = str(err.value)
    assert msg.startswith(f"unknown dataset 'my-graph': no folder at {tmp_path / 'my-graph'} and not a registered")
    assert "KVC16K (Kuai16K)" in msg and "afme data download NAME" in msg
    assert isinstance(err.value, DatasetNotFoundError)


def test_any_existing_folder_loads_as_is(clean_env, tmp_path):
    folder = write_toy(tmp_path / "custom" / "my-graph", 6)
    assert resolve_dataset(folder) == folder
    assert resolve_dataset(str(folder), data_dir=tmp_path / "ignored") == folder
    ds = load_benchmark(folder)
    assert ds.name == "my-graph" and ds.num_entities == 6
