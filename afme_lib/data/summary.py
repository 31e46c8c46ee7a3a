"""One dictionary describing a dataset: counts, relation categories, degrees, modality coverage."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from afme_lib.data.features import FeatureStore
from afme_lib.data.filters import CATEGORIES, degree_stats, relation_categories, triple_categories
from afme_lib.data.registry import load_benchmark


def has_feature_files(folder: Path) -> bool:
    return any(p.suffix in (".pth", ".pt", ".npy") for p in Path(folder).iterdir())


def dataset_summary(name_or_dir: str, data_dir: str | None = None, features: str | None = None) -> dict:
    dataset = load_benchmark(name_or_dir, data_dir=data_dir)
    rel_cats = Counter(relation_categories(dataset.train, dataset.num_relations))
    test_cats = Counter(triple_categories(dataset, "test").tolist())
    deg = degree_stats(dataset)
    summary = {
        "name": dataset.name,
        "path": str(dataset.path),
        "counts": dataset.counts(),
        "relation_categories": {c: rel_cats.get(c, 0) for c in CATEGORIES},
        "test_triples_by_category": {c: test_cats.get(c, 0) for c in CATEGORIES},
        "degrees": {k: deg[k] for k in ("mean_degree", "median_degree", "max_degree", "isolated_entities")},
        "unseen_entities_in": deg["unseen_in_train"],
    }
    folder = Path(features) if features else dataset.path
    if features or (folder is not None and has_feature_files(folder)):
        with warnings.catch_warnings():  # coverage reports the missing counts itself
            warnings.simplefilter("ignore")
            store = FeatureStore.load(folder, dataset.num_entities)
        # coverage as an exact present / N fraction (the store's float32 mean prints 0.949999988)
        summary["modalities"] = {m: {**c, "coverage": round(c["present"] / dataset.num_entities, 6)}
                                 for m, c in store.coverage().items()}
    else:
        summary["modalities"] = "none (structure only; give --features DIR)"
    return summary
