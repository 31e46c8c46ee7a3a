"""Entity groups: an optional ``entity2group.txt`` in any OpenKE folder, for metrics by slice.

A benchmark may declare groups of entities whose queries should be reported apart, e.g. the
synthetic generator's *warm* items (every triple may be in train), *cold* items (their
attribute triples are all held out: only features can answer them), *zero-shot* items (no
training triple at all) and *value* entities. Format, like the other OpenKE files::

    <number of rows>
    <entity id><TAB><group>
    ...

one row per entity, every entity once; a group is a word of letters, digits, ``-`` and ``_``.
A triple belongs to the group of its endpoints, by :data:`PRECEDENCE` where they differ (a triple
touching a zero-shot entity is zero-shot, else one touching a cold entity is cold, ...), so
"cold" metrics are every query about a cold entity, from either side.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from afme_lib.core.errors import DataFormatError
from afme_lib.data.openke import _count_and_rows, _parse_int

GROUPS_FILE = "entity2group.txt"
# Which group a triple takes when its endpoints differ: the first listed wins; unlisted
# groups come after these, alphabetically.
PRECEDENCE = ("zero-shot", "cold", "warm", "value")
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def read_groups(path: str | Path, num_entities: int) -> list[str]:
    """The group of every entity id, validated (file:line: problem on any defect)."""
    path = Path(path)
    count, rows = _count_and_rows(path)
    if count != num_entities:
        raise DataFormatError(path, f"count line says {count} rows but the dataset has {num_entities} entities", line=1)
    groups: list[str | None] = [None] * count
    for lineno, text in rows:
        fields = text.split()
        if len(fields) != 2:
            raise DataFormatError(path, f"expected 'entity_id group', got {text.strip()!r}", line=lineno)
        idx = _parse_int(fields[0])
        if idx is None or not 0 <= idx < count:
            raise DataFormatError(path, f"entity id {fields[0]!r} is not an integer in [0, {count})", line=lineno)
        if not _NAME.fullmatch(fields[1]):
            raise DataFormatError(path, f"group {fields[1]!r}: use letters, digits, '-' and '_'", line=lineno)
        if groups[idx] is not None:
            raise DataFormatError(path, f"entity id {idx} listed twice", line=lineno)
        groups[idx] = fields[1]
    return groups  # count rows with distinct ids in range: every slot is filled


def write_groups(path: str | Path, groups: list[str]) -> None:
    for i, g in enumerate(groups):
        if not _NAME.fullmatch(str(g)):
            raise ValueError(f"group {g!r} of entity {i}: use letters, digits, '-' and '_'")
    lines = [str(len(groups))] + [f"{i}\t{g}" for i, g in enumerate(groups)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def group_order(groups: list[str]) -> list[str]:
    """The distinct groups, in precedence order."""
    present = set(groups)
    return [g for g in PRECEDENCE if g in present] + sorted(present - set(PRECEDENCE))


def triple_groups(triples: np.ndarray, groups: list[str]) -> np.ndarray:
    """The group of each (h, r, t) row [n]: its endpoints' group of highest precedence."""
    order = group_order(groups)
    rank = {g: i for i, g in enumerate(order)}
    entity_rank = np.array([rank[g] for g in groups], dtype=np.int64)
    triples = np.asarray(triples)
    best = np.minimum(entity_rank[triples[:, 0]], entity_rank[triples[:, 2]])
    return np.array(order, dtype=object)[best]
