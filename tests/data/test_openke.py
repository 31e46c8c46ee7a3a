"""OpenKE readers and writers: every malformed input is refused with file, line and problem."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from afme_lib.core.errors import DataFormatError
from afme_lib.data.openke import read_count, read_id_map, read_triples, write_id_map, write_triples


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))  # byte-exact: no newline translation
    return path


def _fails(reader, path: Path, line: int | None, problem: str) -> DataFormatError:
    """Call the reader and check the whole message: ``<path>:<line>: <problem>``."""
    with pytest.raises(DataFormatError) as info:
        reader(path)
    where = f"{path}:{line}" if line is not None else str(path)
    assert str(info.value) == f"{where}: {problem}"
    assert info.value.path == path and info.value.line == line
    return info.value


def _triples(path: Path, n_ent: int = 5, n_rel: int = 2) -> np.ndarray:
    return read_triples(path, n_ent, n_rel)


# ---------------------------------------------------------------- files, encodings, count line


@pytest.mark.parametrize("reader", [read_id_map, _triples])
def test_missing_file(tmp_path, reader):
    _fails(reader, tmp_path / "nope.txt", None, "file not found")


@pytest.mark.parametrize("reader", [read_id_map, _triples])
def test_empty_file(tmp_path, reader):
    _fails(reader, _write(tmp_path, "f.txt", ""), 1, "empty file: expected a count line first")


@pytest.mark.parametrize(
    "head, problem",
    [
        ("three", "bad count line 'three': expected the number of rows"),
        ("2.0", "bad count line '2.0': expected the number of rows"),
        ("", "bad count line '': expected the number of rows"),
        ("2 rows", "bad count line '2 rows': expected the number of rows"),
        ("1_0", "bad count line '1_0': expected the number of rows"),  # int() would take it as 10
        ("-1", "bad count line '-1': negative count"),
    ],
)
@pytest.mark.parametrize("reader", [read_id_map, _triples])
def test_bad_count_line(tmp_path, reader, head, problem):
    _fails(reader, _write(tmp_path, "f.txt", f"{head}\nx\t0\n"), 1, problem)


@pytest.mark.parametrize("rows, held", [(["a\t0"], 1), (["a\t0", "b\t1", "c\t2"], 3)])
def test_id_map_count_disagrees_with_rows(tmp_path, rows, held):
    path = _write(tmp_path, "entity2id.txt", "2\n" + "\n".join(rows) + "\n")
    _fails(read_id_map, path, 1, f"count line says 2 rows but the file holds {held}")


@pytest.mark.parametrize("rows, held", [(["0 1 0"], 1), (["0 1 0", "1 2 1", "2 3 0"], 3)])
def test_triples_count_disagrees_with_rows(tmp_path, rows, held):
    # fewer rows than announced is a truncated file, more is a stale count: both refused
    path = _write(tmp_path, "train2id.txt", "2\n" + "\n".join(rows) + "\n")
    _fails(_triples, path, 1, f"count line says 2 rows but the file holds {held}")


def test_zero_count_reads_empty(tmp_path):
    assert read_id_map(_write(tmp_path, "e.txt", "0\n")) == []
    out = _triples(_write(tmp_path, "t.txt", "0\n"))
    assert out.shape == (0, 3) and out.dtype == np.int64


@pytest.mark.parametrize("reader", [read_id_map, _triples])
def test_not_utf8_names_line_and_byte(tmp_path, reader):
    data = b"2\n" + b"ok\t0\n" + b"caf\xe9\t1\n"  # Latin-1 e-acute on line 3, byte 10
    path = _write(tmp_path, "f.txt", data)
    _fails(reader, path, 3, "not valid UTF-8 text (invalid continuation byte at byte 10)")


def test_not_utf8_offset_counts_the_bom(tmp_path):
    path = _write(tmp_path, "f.txt", b"\xef\xbb\xbf1\n\xff\t0\n")
    _fails(read_id_map, path, 2, "not valid UTF-8 text (invalid start byte at byte 5)")


def test_byte_order_mark_is_tolerated(tmp_path):
    path = _write(tmp_path, "entity2id.txt", "\ufeff2\nalpha\t0\nbeta\t1\n")
    assert read_id_map(path) == ["alpha", "beta"]


# ---------------------------------------------------------------- id maps


def test_id_map_tab_separated_names_with_spaces(tmp_path):
    # TIVA style: concept names with spaces, a tab before the id
    path = _write(tmp_path, "entity2id.txt", "3\norganic compound\t1\nfreon\t0\nNew York city\t2\n")
    assert read_id_map(path) == ["freon", "organic compound", "New York city"]


def test_id_map_space_separated(tmp_path):
    # MKG-Y style: the id after a space; MKG-W style: URLs; the last field is the id
    path = _write(
        tmp_path, "entity2id.txt", "3\nGilles_Mbang_Ondo 0\nhttp://www.wikidata.org/entity/Q1 1\nSan Jose  2\n"
    )
    assert read_id_map(path) == ["Gilles_Mbang_Ondo", "http://www.wikidata.org/entity/Q1", "San Jose"]


def test_id_map_crlf_and_trailing_blank_lines(tmp_path):
    path = _write(tmp_path, "entity2id.txt", "2\r\nalpha beta\t0\r\ngamma 1\r\n\r\n\n  \n")
    assert read_id_map(path) == ["alpha beta", "gamma"]


def test_id_map_trailing_whitespace_after_id(tmp_path):
    path = _write(tmp_path, "entity2id.txt", "2\nalpha\t0 \nbeta 1\t\n")
    assert read_id_map(path) == ["alpha", "beta"]


def test_id_map_unicode_line_separators_stay_inside_names(tmp_path):
    # U+2028 / U+0085 / form feed are not line breaks of the format (str.splitlines would split)
    names = ["a\u2028b", "c\x85d", "e\x0cf", "快手"]
    text = f"{len(names)}\n" + "".join(f"{n}\t{i}\n" for i, n in enumerate(names)) + "x\n"
    # the stray last row must be reported on line 6, the true line number
    path = _write(tmp_path, "entity2id.txt", text.replace(f"{len(names)}\n", "5\n", 1))
    _fails(read_id_map, path, 6, "expected 'name id', got 'x'")
    path = _write(tmp_path, "entity2id.txt", text.rsplit("x\n", 1)[0])
    assert read_id_map(path) == names


@pytest.mark.parametrize(
    "row, problem",
    [
        ("lonely", "expected 'name id', got 'lonely'"),
        ("b\tone", "id 'one' is not an integer"),
        ("b 1.0", "id '1.0' is not an integer"),
        ("b\t1_0", "id '1_0' is not an integer"),
        ("b\t\u0661", "id '\u0661' is not an integer"),  # Arabic-Indic digit one: int() accepts it
        ("\t1", "empty name for id 1"),
        ("b\t2", "id 2 out of range [0, 2)"),
        ("b\t-1", "id -1 out of range [0, 2)"),
        ("b\t0", "id 0 assigned twice"),
        ("a\t1", "duplicate name 'a' (first on line 2)"),
    ],
)
def test_id_map_bad_row(tmp_path, row, problem):
    path = _write(tmp_path, "entity2id.txt", f"2\na\t0\n\n{row}\n")  # a blank line: the bad row is line 4
    _fails(read_id_map, path, 4, problem)


def test_id_map_duplicate_name_after_whitespace_strip(tmp_path):
    path = _write(tmp_path, "relation2id.txt", "2\nlikes 0\nlikes \t1\n")
    _fails(read_id_map, path, 3, "duplicate name 'likes' (first on line 2)")


# ---------------------------------------------------------------- triple files


def test_triples_reordered_to_head_relation_tail(tmp_path):
    path = _write(tmp_path, "train2id.txt", "3\n0 1 0\n4 2 1\r\n3\t0   1\n\n\n")
    out = _triples(path)
    assert out.dtype == np.int64
    # file: head tail relation -> (head, relation, tail)
    np.testing.assert_array_equal(out, [[0, 0, 1], [4, 1, 2], [3, 1, 0]])


@pytest.mark.parametrize(
    "row, problem",
    [
        ("0 1", "expected 3 fields 'head tail relation', got 2: '0 1'"),
        ("0 1 0 1", "expected 3 fields 'head tail relation', got 4: '0 1 0 1'"),
        ("0 one 0", "non-integer id in '0 one 0'"),
        ("0 1 0.0", "non-integer id in '0 1 0.0'"),
        ("0 1_0 0", "non-integer id in '0 1_0 0'"),
        ("5 1 0", "head id 5 out of range [0, 5)"),
        ("-1 1 0", "head id -1 out of range [0, 5)"),
        ("0 5 0", "tail id 5 out of range [0, 5)"),
        ("0 -2 0", "tail id -2 out of range [0, 5)"),
        ("0 1 2", "relation id 2 out of range [0, 2)"),
        ("0 1 -1", "relation id -1 out of range [0, 2)"),
    ],
)
def test_triples_bad_row(tmp_path, row, problem):
    path = _write(tmp_path, "test2id.txt", f"3\n0 1 0\n\n{row}\n2 3 1\n")
    _fails(_triples, path, 4, problem)


# ---------------------------------------------------------------- writers


def test_round_trip(tmp_path):
    names = ["organic compound", "freon", "快手", "http://x.org/Q1"]
    write_id_map(tmp_path / "entity2id.txt", names)
    assert (tmp_path / "entity2id.txt").read_text(encoding="utf-8").splitlines()[:2] == ["4", "organic compound\t0"]
    assert read_id_map(tmp_path / "entity2id.txt") == names
    triples = np.array([[0, 1, 3], [2, 0, 1], [3, 1, 3]])
    write_triples(tmp_path / "train2id.txt", triples)
    assert (tmp_path / "train2id.txt").read_text().splitlines() == ["3", "0 3 1", "2 1 0", "3 3 1"]
    np.testing.assert_array_equal(read_triples(tmp_path / "train2id.txt", 4, 2), triples)
    write_triples(tmp_path / "empty.txt", np.zeros((0, 3)))
    assert read_triples(tmp_path / "empty.txt", 4, 2).shape == (0, 3)


@pytest.mark.parametrize("bad", ["", "tab\tinside", "line\nbreak", " padded", "padded "])
def test_write_id_map_refuses_names_that_would_not_read_back(tmp_path, bad):
    with pytest.raises(ValueError, match=re.escape(f"name {bad!r} of id 1 cannot be written")):
        write_id_map(tmp_path / "e.txt", ["ok", bad])
    assert not (tmp_path / "e.txt").exists()


def test_write_id_map_refuses_repeated_names(tmp_path):
    with pytest.raises(ValueError, match=re.escape("name 'a' of id 2 is repeated")):
        write_id_map(tmp_path / "e.txt", ["a", "b", "a"])


def test_write_triples_refuses_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match=re.escape("expected triples of shape [n, 3], got (2, 2)")):
        write_triples(tmp_path / "t.txt", np.zeros((2, 2)))


def test_triples_field_counts_checked_per_row(tmp_path):
    # 2 + 4 fields make 6 numbers for 2 rows: the total alone must not pass
    path = _write(tmp_path, "t.txt", "2\n0 1\n0 1 0 1\n")
    _fails(_triples, path, 2, "expected 3 fields 'head tail relation', got 2: '0 1'")


def test_triples_huge_id_is_out_of_range_not_overflow(tmp_path):
    path = _write(tmp_path, "t.txt", "1\n0 1 99999999999999999999999\n")
    _fails(_triples, path, 2, "relation id 99999999999999999999999 out of range [0, 2)")


def test_triples_unusual_whitespace_reads_like_plain(tmp_path):
    # Plain rows take the vectorised path; rows with a vertical tab or a no-break space take the
    # row-by-row one (anything non-plain does). Both must read the same ids.
    rng = np.random.default_rng(0)
    ids = np.stack([rng.integers(0, 5, 50), rng.integers(0, 2, 50), rng.integers(0, 5, 50)], 1)
    plain = "".join(f"{h} {t}\t{r}\r\n" for h, r, t in ids)
    odd = "".join(f"{h}\v{t}\u00a0 {r}\n" for h, r, t in ids)
    a = _triples(_write(tmp_path, "a.txt", f"50\n{plain}"))
    b = _triples(_write(tmp_path, "b.txt", f"50\n{odd}"))
    np.testing.assert_array_equal(a, ids)
    np.testing.assert_array_equal(b, ids)
    assert a.flags.c_contiguous and a.dtype == b.dtype == np.int64


def test_read_count_reads_only_the_count_line(tmp_path):
    path = tmp_path / "entity2id.txt"
    path.write_bytes(b"\xef\xbb\xbf3\r\na\t0\nb\t1\n")  # BOM, CRLF; the rows disagree: not its business
    assert read_count(path) == 3
    path.write_text("three\na\t0\n")
    _fails(read_count, path, 1, "bad count line 'three': expected the number of rows")
    path.write_text("-2\n")
    _fails(read_count, path, 1, "bad count line '-2': negative count")
    _fails(read_count, tmp_path / "absent.txt", None, "file not found")
