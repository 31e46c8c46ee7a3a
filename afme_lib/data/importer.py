"""Named triples -> a knowledge graph with ids: what ``afme data import`` reads and writes.

Public knowledge graphs ship their triples as names, one ``head<TAB>relation<TAB>tail`` line per
triple (PyKEEN's datasets, LibKGE's raw files, most dumps). :func:`read_named_triples` reads such
a file, refusing a malformed line with its file and line (:class:`DataFormatError`); blank lines
and lines starting with ``#`` are skipped, fields are stripped of surrounding whitespace.

Ids (:func:`assign_ids`): entities and relations of the training triples, sorted by name
(Unicode code point), so the same training file always gives the same ids whatever its order.
A valid or test triple naming an entity or relation absent from train is refused with its line:
no model can rank an entity it has no row for, and a score of a relation never trained is noise.
:func:`write_openke` writes the result as an OpenKE folder (afme_lib/data/openke.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from afme_lib.core.errors import DataFormatError
from afme_lib.data.openke import _read_lines, write_id_map, write_triples

SPLIT_FILES = {"train": "train2id.txt", "valid": "valid2id.txt", "test": "test2id.txt"}


@dataclass
class NamedTriples:
    """The triples of one file: names [n, 3] (head, relation, tail; a str array) and the file line of each row."""

    path: Path
    names: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def read_named_triples(path: str | Path) -> NamedTriples:
    """Read a ``head<TAB>relation<TAB>tail`` file (see the module docstring)."""
    path = Path(path)
    rows, numbers = [], []
    for number, text in enumerate(_read_lines(path), start=1):
        if not text.strip():
            continue
        fields = [f.strip() for f in text.split("\t")]
        if len(fields) != 3:
            raise DataFormatError(
                path,
                f"expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', got {len(fields)}: {text!r}",
                line=number,
            )
        if not all(fields):
            what = ("head", "relation", "tail")[fields.index("")]
            raise DataFormatError(path, f"empty {what} in {text!r}", line=number)
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise DataFormatError(path, "empty file: no triples")
    return NamedTriples(path, np.array(rows, dtype=str), np.array(numbers, dtype=np.int64))


def _lookup(sorted_names: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Position of each name in ``sorted_names``, -1 where it is not there (binary search)."""
    if len(sorted_names) == 0:
        return np.full(names.shape, -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_names, names), len(sorted_names) - 1)
    return np.where(sorted_names[at] == names, at, -1).astype(np.int64)


@dataclass
class IdGraph:
    """Entity and relation names by id and each split's (head, relation, tail) ids [n, 3]."""

    entity_names: list[str]
    relation_names: list[str]
    splits: dict[str, np.ndarray]


def assign_ids(train: NamedTriples, others: dict[str, NamedTriples] | None = None) -> IdGraph:
    """Ids from the training triples (sorted names); ``others`` (valid, test) mapped onto them.
    A row of ``others`` naming an entity or relation that train lacks is a DataFormatError."""
    entities = np.unique(train.names[:, [0, 2]])
    relations = np.unique(train.names[:, 1])
    splits = {}
    for split, triples in {"train": train, **(others or {})}.items():
        ids = np.stack(
            [
                _lookup(entities, triples.names[:, 0]),
                _lookup(relations, triples.names[:, 1]),
                _lookup(entities, triples.names[:, 2]),
            ],
            axis=1,
        )
        unseen = np.argwhere(ids < 0)
        if len(unseen):
            row, column = unseen[0]
            what = ("head", "relation", "tail")[column]
            raise DataFormatError(
                triples.path,
                f"{what} {str(triples.names[row, column])!r} does not occur in the training triples ({train.path.name}): "
                f"every valid and test {'relation' if column == 1 else 'entity'} must be trained",
                line=int(triples.lines[row]),
            )
        splits[split] = ids
    return IdGraph(entities.tolist(), relations.tolist(), splits)


def write_openke(folder: str | Path, graph: IdGraph) -> None:
    """``entity2id.txt``, ``relation2id.txt`` and the three split files of ``graph`` into ``folder``."""
    folder = Path(folder)
    write_id_map(folder / "entity2id.txt", graph.entity_names)
    write_id_map(folder / "relation2id.txt", graph.relation_names)
    for split, filename in SPLIT_FILES.items():
        write_triples(folder / filename, graph.splits[split])
