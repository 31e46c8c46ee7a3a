"""A knowledge graph held in memory: id maps and the train / valid / test triples.

Triples are int64 tensors [n, 3] in (head, relation, tail) order everywhere inside the
workbench; only the OpenKE files store them as (head, tail, relation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from afme_lib.core.errors import DataFormatError
from afme_lib.data.groups import GROUPS_FILE, read_groups
from afme_lib.data.openke import read_id_map, read_triples

SPLITS = ("train", "valid", "test")
CATEGORY_FILES = {"1-1": "1-1.txt", "1-N": "1-n.txt", "N-1": "n-1.txt", "N-N": "n-n.txt"}


@dataclass
class KGDataset:
    """A benchmark in memory: entity and relation names (their ids are the list positions) and
    the train / valid / test triples as int64 tensors [n, 3] of (head, relation, tail) ids."""

    name: str
    path: Path | None
    entity_names: list[str]
    relation_names: list[str]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    # Test triples by category as shipped in 1-1.txt ... (OpenKE convention), when present.
    shipped_test_categories: dict[str, torch.Tensor] = field(default_factory=dict)
    # Group of every entity from the folder's optional entity2group.txt (afme_lib/data/groups.py).
    entity_groups: list[str] | None = None

    @property
    def num_entities(self) -> int:
        return len(self.entity_names)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    @cached_property
    def all_true(self) -> torch.Tensor:
        """Every known true triple (train + valid + test): the filter of filtered ranking."""
        return torch.cat([self.train, self.valid, self.test])

    def counts(self) -> dict[str, int]:
        return {
            "entities": self.num_entities,
            "relations": self.num_relations,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
        }


def load_dataset(path: str | Path, name: str | None = None) -> KGDataset:
    """Load any folder in the OpenKE format (registered benchmark or not)."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, "dataset folder not found")
    entities = read_id_map(path / "entity2id.txt")
    relations = read_id_map(path / "relation2id.txt")
    n_ent, n_rel = len(entities), len(relations)
    splits = {s: torch.from_numpy(read_triples(path / f"{s}2id.txt", n_ent, n_rel)) for s in SPLITS}
    if len(splits["train"]) == 0:
        raise DataFormatError(path / "train2id.txt", "no training triples")
    shipped = {}
    for category, filename in CATEGORY_FILES.items():
        file = path / filename
        if file.is_file():
            shipped[category] = torch.from_numpy(read_triples(file, n_ent, n_rel))
    groups_file = path / GROUPS_FILE
    return KGDataset(
        name=name or path.name,
        path=path,
        entity_names=entities,
        relation_names=relations,
        shipped_test_categories=shipped,
        entity_groups=read_groups(groups_file, n_ent) if groups_file.is_file() else None,
        **splits,
    )


def triple_keys(triples: torch.Tensor, num_entities: int, num_relations: int) -> np.ndarray:
    """One int64 key per (h, r, t) triple, ``(h * R + r) * N + t``, for set operations on triples."""
    t = triples.detach().cpu().numpy().astype(np.int64, copy=False)  # int32 input would overflow
    return (t[:, 0] * num_relations + t[:, 1]) * num_entities + t[:, 2]
