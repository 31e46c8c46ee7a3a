"""Numeric entity attributes (``entity, attribute, value`` rows) -> the ``numeric`` modality.

Input: a CSV (``.csv``: comma-separated, quoting as the csv module reads it) or TSV (any other
name) file with one ``entity, attribute, value`` row per literal, e.g. PyKEEN's Nations
``literals.txt``: ``brazil<TAB>area<TAB>8514877``. A first row whose value is not a number and
whose entity is not in the graph is a header and skipped. A value that is not a finite number is
refused with its file and line; a row naming an entity the graph lacks is counted and skipped
(a literal dump often covers more entities than the triples); several values of one (entity,
attribute) are averaged and counted.

Output: a table ``[entities, attributes]``, one column per attribute (sorted by name), each
standardised with the mean and standard deviation of its values on *training* entities (those
in a training triple), so no statistic is taken from valid / test-only entities::

    x'[e, a] = (x[e, a] - mean_a) / std_a        (std_a = 1 when it is 0 or a single value)

Missing is kept apart from zero, as the feature store reads it (afme_lib/data/feature_store.py):
an entity with no attribute at all gets an all-zero row, which the store marks missing, so the
models treat it as they treat an entity without an image. Inside a present row an attribute the
entity lacks is 0 after standardisation, i.e. the training mean: a row must be one vector. (A
present row whose every known value equals its training mean would read as missing; the sidecar
counts such rows, which real-valued data practically never has.)
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path

import numpy as np

from afme_lib.core.errors import DataFormatError
from afme_lib.data.openke import _read_lines


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of the non-blank rows (CSV for ``.csv``, else tab-separated)."""
    lines = _read_lines(path)
    if path.suffix.lower() == ".csv":
        reader = csv.reader(io.StringIO("\n".join(lines)))
        return [(reader.line_num, [f.strip() for f in fields]) for fields in reader if any(f.strip() for f in fields)]
    return [(i, [f.strip() for f in text.split("\t")]) for i, text in enumerate(lines, start=1) if text.strip()]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_attributes(
    path: str | Path, entity_index: dict[str, int], num_entities: int
) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """``(values [N, A] float64 with NaN where unknown, present [N, A] bool, attribute names, stats)``.

    ``entity_index`` maps every accepted spelling of an entity to its id. ``stats``: rows read,
    ``unmatched_rows`` / ``unmatched_examples`` (entities the graph lacks) and ``averaged`` values.
    """
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise DataFormatError(path, "empty file: expected 'entity, attribute, value' rows", line=1)
    parsed: list[tuple[int, int, str, float]] = []
    unmatched: list[str] = []
    for k, (line, fields) in enumerate(rows):
        if len(fields) != 3:
            sep = "comma" if path.suffix.lower() == ".csv" else "tab"
            raise DataFormatError(
                path, f"expected 3 {sep}-separated fields 'entity, attribute, value', got {len(fields)}", line=line
            )
        entity, attribute, raw = fields
        value = _number(raw)
        if k == 0 and value is None and entity not in entity_index:
            continue  # a header row
        if not entity or not attribute:
            raise DataFormatError(path, f"empty {'entity' if not entity else 'attribute'} name", line=line)
        if value is None:
            raise DataFormatError(
                path, f"value {raw!r} of {attribute!r} for {entity!r} is not a finite number", line=line
            )
        if entity not in entity_index:
            unmatched.append(entity)
            continue
        parsed.append((line, entity_index[entity], attribute, value))
    attributes = sorted({a for _, _, a, _ in parsed})
    column = {a: i for i, a in enumerate(attributes)}
    sums = np.zeros((num_entities, len(attributes)))
    counts = np.zeros((num_entities, len(attributes)), dtype=np.int64)
    if parsed:
        ent = np.array([e for _, e, _, _ in parsed])
        col = np.array([column[a] for _, _, a, _ in parsed])
        np.add.at(sums, (ent, col), [v for *_, v in parsed])
        np.add.at(counts, (ent, col), 1)
    present = counts > 0
    values = np.where(present, sums / np.maximum(counts, 1), np.nan)
    stats = {
        "rows": len(parsed) + len(unmatched),
        "unmatched_rows": len(unmatched),
        "unmatched_examples": list(dict.fromkeys(unmatched))[:5],
        "averaged": int((counts > 1).sum()),
    }
    if unmatched:
        warnings.warn(
            f"{path}: {len(unmatched)} row(s) name an entity the graph lacks and were skipped "
            f"(e.g. {', '.join(map(repr, stats['unmatched_examples']))})",
            stacklevel=2,
        )
    if stats["averaged"]:
        warnings.warn(
            f"{path}: {stats['averaged']} (entity, attribute) pair(s) hold several values; averaged", stacklevel=2
        )
    return values, present, attributes, stats


def standardise(values: np.ndarray, present: np.ndarray, train_entities: np.ndarray) -> tuple[np.ndarray, dict]:
    """The feature table of the module docstring (float32 [N, A]) and how it was made:
    per attribute its training mean, std and coverage, and the rows that read as missing."""
    known = present & train_entities[:, None]
    count = known.sum(0)
    mean = np.where(count > 0, np.nansum(np.where(known, values, 0.0), 0) / np.maximum(count, 1), 0.0)
    var = np.nansum(np.where(known, (values - mean) ** 2, 0.0), 0) / np.maximum(count - 1, 1)
    std = np.where((count > 1) & (var > 0), np.sqrt(var), 1.0)
    table = np.where(present, (values - mean) / std, 0.0).astype(np.float32)
    has_row = present.any(1)
    info = {
        "mean": mean.tolist(),
        "std": std.tolist(),
        "train_values": count.tolist(),
        "entities_with_value": present.sum(0).tolist(),
        "rows_present": int(has_row.sum()),
        "rows_at_train_mean": int((has_row & ~(table != 0).any(1)).sum()),
    }
    return table, info
