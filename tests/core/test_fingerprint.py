"""code_digest: what a source does decides the digest; its comments, docstrings and layout do not."""

from afme_lib.core.fingerprint import code_bytes, code_digest

CODE = b'''"""Module docstring."""
import math


class Step:
    """Class docstring."""

    def size(self, x):
        """Method docstring."""
        return math.sqrt(x)  # a comment


def only_a_docstring():
    """Nothing else."""
'''


def _digest(tmp_path, source: bytes, name: str = "mod.py") -> str:
    (tmp_path / name).write_bytes(source)
    return code_digest([tmp_path / name], tmp_path)


def test_comments_docstrings_and_layout_do_not_change_the_digest(tmp_path):
    first = _digest(tmp_path, CODE)
    edited = (
        CODE.replace(b"Module docstring.", b"Another module docstring, longer.")
        .replace(b"# a comment", b"# another comment, and")
        .replace(b'        """Method docstring."""\n', b"")
        .replace(b"return math.sqrt(x)", b"return   math.sqrt( x )")
    )
    assert _digest(tmp_path, edited) == first


def test_a_change_to_the_code_changes_the_digest(tmp_path):
    first = _digest(tmp_path, CODE)
    assert _digest(tmp_path, CODE.replace(b"math.sqrt(x)", b"math.sqrt(x) + 1")) != first
    # a string that is not a docstring is code
    assert _digest(tmp_path, CODE + b'LABEL = "a"\n') != _digest(tmp_path, CODE + b'LABEL = "b"\n')
    # the file's name is part of what is hashed
    assert _digest(tmp_path, CODE, "other.py") != first


def test_a_source_that_does_not_parse_is_hashed_as_it_is():
    broken = b"def f(:\n"
    assert code_bytes(broken) == broken
    assert code_bytes(broken + b"# more") != code_bytes(broken)
