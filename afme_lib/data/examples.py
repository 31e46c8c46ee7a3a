"""Real example graphs shipped inside installed packages (nothing is downloaded).

PyKEEN's wheel carries the Nations graph (Rummel's dimensionality-of-nations data as prepared by
ZhenfengLei/KGDatasets) with PyKEEN's numeric literals: 14 countries, 55 relations, 1,992
named triples split 1,592 / 199 / 201, and ``literals.txt``, the ``area`` and ``population``
of 13 of them (the USSR has none: its numeric row is missing)::

    pykeen/datasets/nations/{train,valid,test}.txt   head<TAB>relation<TAB>tail
    pykeen/datasets/nations/literals.txt              entity<TAB>attribute<TAB>value

The folder is found from the installed package's location without importing it (importing
pykeen loads its whole model zoo).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from afme_lib.core.errors import AfmeError

NATIONS_FILES = {"triples": "train.txt", "valid": "valid.txt", "test": "test.txt", "numeric": "literals.txt"}


def pykeen_nations() -> dict[str, Path]:
    """``{"triples", "valid", "test", "numeric"}``: the Nations files of the installed PyKEEN."""
    spec = importlib.util.find_spec("pykeen")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        folder = Path(root) / "datasets" / "nations"
        files = {key: folder / name for key, name in NATIONS_FILES.items()}
        if all(path.is_file() for path in files.values()):
            return files
    raise AfmeError(
        "the Nations example ships with PyKEEN: `pip install pykeen` (or the workbench's bench extra), "
        "or give your own files"
    )
