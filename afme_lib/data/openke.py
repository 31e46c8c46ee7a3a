"""Reading and writing the OpenKE benchmark format (MKG-W, MKG-Y, TIVA, KVC16K, DB15K).

Every file starts with a line holding its row count. ``entity2id.txt`` and ``relation2id.txt``
hold ``name<TAB or space>id``; triple files hold ``head tail relation`` (tail before relation).
Readers validate everything and raise :class:`DataFormatError` naming file, line and problem:
a benchmark that loads silently wrong gives wrong numbers, which is worse than no numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from afme_lib.core.errors import DataFormatError


def _parse_int(text: str) -> int | None:
    """The integer spelled by ``text`` (surrounding whitespace ignored), or None if it is not one.

    Stricter than int(), which also takes "1_000", "+5" and non-ASCII digits ("٣"): only ASCII
    digits, with a minus sign let through so that a negative id is reported as out of range.
    """
    text = text.strip()
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isascii() and digits.isdigit() else None


def _read_lines(path: Path) -> list[str]:
    r"""The file's lines, split on "\n" only, a trailing "\r" (CRLF files) removed.

    ``str.splitlines`` is not used: it also splits on U+2028, U+0085, form feed ..., which may
    occur inside entity names and would shift every later line number.
    """
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    data = path.read_bytes()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # tolerate a byte-order mark (Windows editors add one)
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start  # offset in the file
        line = data[:at].count(b"\n") + 1
        raise DataFormatError(path, f"not valid UTF-8 text ({exc.reason} at byte {at})", line=line) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _count_and_rows(path: Path) -> tuple[int, list[tuple[int, str]]]:
    """Parse the count line; return (count, [(line_number, text)] for the non-blank rows after it)."""
    lines = _read_lines(path)
    if not lines:
        raise DataFormatError(path, "empty file: expected a count line first", line=1)
    head = lines[0].strip()
    count = _parse_int(head)
    if count is None:
        raise DataFormatError(path, f"bad count line {head!r}: expected the number of rows", line=1)
    if count < 0:
        raise DataFormatError(path, f"bad count line {head!r}: negative count", line=1)
    rows = [(i + 1, ln) for i, ln in enumerate(lines[1:], start=1) if ln.strip()]
    if len(rows) != count:
        raise DataFormatError(path, f"count line says {count} rows but the file holds {len(rows)}", line=1)
    return count, rows


def read_count(path: str | Path) -> int:
    """The row count on the first line of an OpenKE file, without reading the rows (sizes a run
    before loading it). The rows are not checked against it: :func:`read_id_map` does that."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    with open(path, "rb") as fh:
        first = fh.readline()
    head = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace").strip()
    count = _parse_int(head)
    if count is None:
        raise DataFormatError(path, f"bad count line {head!r}: expected the number of rows", line=1)
    if count < 0:
        raise DataFormatError(path, f"bad count line {head!r}: negative count", line=1)
    return count


def read_id_map(path: str | Path) -> list[str]:
    """Read ``entity2id.txt`` / ``relation2id.txt``; return the names indexed by id.

    Names may contain spaces (TIVA's concept names), so the id is the last field after a tab,
    or after the last run of whitespace when the line has no tab.
    """
    path = Path(path)
    count, rows = _count_and_rows(path)
    names: list[str | None] = [None] * count
    seen: dict[str, int] = {}
    for lineno, text in rows:
        text = text.rstrip()  # trailing spaces / tabs after the id are not a field
        parts = text.rsplit("\t", 1) if "\t" in text else text.rsplit(None, 1)
        if len(parts) != 2:
            raise DataFormatError(path, f"expected 'name id', got {text!r}", line=lineno)
        name, raw_id = parts[0].strip(), parts[1].strip()
        idx = _parse_int(raw_id)
        if idx is None:
            raise DataFormatError(path, f"id {raw_id!r} is not an integer", line=lineno)
        if not name:
            raise DataFormatError(path, f"empty name for id {idx}", line=lineno)
        if not 0 <= idx < count:
            raise DataFormatError(path, f"id {idx} out of range [0, {count})", line=lineno)
        if names[idx] is not None:
            raise DataFormatError(path, f"id {idx} assigned twice", line=lineno)
        if name in seen:
            raise DataFormatError(path, f"duplicate name {name!r} (first on line {seen[name]})", line=lineno)
        seen[name] = lineno
        names[idx] = name
    return names  # every slot is filled: count distinct ids in range


_FAST_BYTES = np.zeros(256, dtype=bool)
_FAST_BYTES[list(b"0123456789 \t\n")] = True


def _fast_triples(rows: list[tuple[int, str]], count: int) -> np.ndarray | None:
    """File-order ids [count, 3] when every row is three unsigned ASCII integers separated by
    spaces or tabs (the common case, parsed without a Python loop); None for anything else,
    which the careful row-by-row reader then reports."""
    body = "\n".join(text for _, text in rows)
    if not body.isascii():
        return None
    raw = np.frombuffer(body.encode("ascii"), dtype=np.uint8)
    if not _FAST_BYTES[raw].all():
        return None
    digit = raw >= ord("0")  # the allowed bytes are digits, space, tab and newline
    before = np.concatenate(([False], digit[:-1]))
    after = np.concatenate((digit[1:], [False]))
    starts, ends = np.flatnonzero(digit & ~before), np.flatnonzero(digit & ~after)
    row_of = np.cumsum(raw == ord("\n"))[starts]  # which row each number sits on
    if len(starts) != 3 * count or not (np.bincount(row_of, minlength=count) == 3).all():
        return None
    if len(starts) and (ends - starts).max() >= 18:  # could overflow int64: let the careful path judge
        return None
    return np.array(body.split(), dtype=np.int64).reshape(count, 3)


def read_triples(path: str | Path, num_entities: int, num_relations: int) -> np.ndarray:
    """Read a ``head tail relation`` file; return an int64 array [n, 3] in (head, relation, tail) order."""
    path = Path(path)
    count, rows = _count_and_rows(path)
    fast = _fast_triples(rows, count)
    if fast is not None:
        out = fast[:, [0, 2, 1]]
        bound = np.array([num_entities, num_relations, num_entities])
        if ((out >= 0) & (out < bound)).all():
            return np.ascontiguousarray(out)
    # Row by row: the reference reading, and the one that names the first bad row.
    out = np.empty((count, 3), dtype=np.int64)
    for k, (lineno, text) in enumerate(rows):
        fields = text.split()
        if len(fields) != 3:
            raise DataFormatError(
                path, f"expected 3 fields 'head tail relation', got {len(fields)}: {text.strip()!r}", line=lineno
            )
        h, t, r = (_parse_int(f) for f in fields)
        if h is None or t is None or r is None:
            raise DataFormatError(path, f"non-integer id in {text.strip()!r}", line=lineno)
        for what, value, bound in (
            ("head", h, num_entities),
            ("tail", t, num_entities),
            ("relation", r, num_relations),
        ):
            if not 0 <= value < bound:
                raise DataFormatError(path, f"{what} id {value} out of range [0, {bound})", line=lineno)
        out[k] = (h, r, t)
    return out


def write_id_map(path: str | Path, names: list[str]) -> None:
    """Write ``name<TAB>id`` rows after the count line.

    Raises ValueError (writing nothing) for a name :func:`read_id_map` would not read back as
    written: empty, holding a tab or line break, padded with whitespace, or repeated.
    """
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name or name != name.strip() or any(c in name for c in "\t\n\r"):
            raise ValueError(f"name {name!r} of id {i} cannot be written: empty, padded, or holds a tab / line break")
        if name in seen:
            raise ValueError(f"name {name!r} of id {i} is repeated")
        seen.add(name)
    lines = [str(len(names))] + [f"{name}\t{i}" for i, name in enumerate(names)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_triples(path: str | Path, triples: np.ndarray) -> None:
    """Write (head, relation, tail) rows in OpenKE's ``head tail relation`` order."""
    triples = np.asarray(triples, dtype=np.int64)
    if triples.ndim != 2 or triples.shape[1] != 3:
        raise ValueError(f"expected triples of shape [n, 3], got {triples.shape}")
    body = "\n".join(f"{h} {t} {r}" for h, r, t in triples.tolist())
    Path(path).write_text(f"{len(triples)}\n{body}\n" if len(triples) else "0\n", encoding="utf-8")
