"""What the notebooks share: quick mode, their run spec, their figures and display settings.

A notebook's parameters are run-spec fields by their names (``dataset``, ``model``, ``dim``,
``epochs``, ... any ModelConfig or TrainConfig field; afme_lib/experiments/spec.py) and what the
notebook itself needs (``compare_with``, ``workers``, ``run_dir``, ``figures_dir`` ...). Any
field the parameters cell does not list is given the same way, ``papermill NB OUT -p
self_negatives 0``, and a whole spec file with ``papermill NB OUT -f SPEC.yaml`` (the file that
``afme train --config`` takes). :func:`spec_from` reads the fields out of the notebook's
namespace, so a notebook's code cells stay a call or two long.

Quick mode (``AFME_NB_QUICK=1``, set by CI and ``scripts/test.sh``) makes every notebook pick
parameters small enough to run in seconds on the tiny synthetic preset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from afme_lib.analysis import figures
from afme_lib.analysis.figures import use_notebook_renderer
from afme_lib.core.errors import AfmeError
from afme_lib.experiments.spec import FIELDS, RunSpec, resolve_path

QUICK_ENV = "AFME_NB_QUICK"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
_MAY_BE_NONE = ("features", "data_dir", "modalities")  # fields whose None means something


def quick_mode() -> bool:
    """True when ``$AFME_NB_QUICK`` is set to 1/true/yes/on (case-insensitive); unset means False."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise AfmeError(f"{QUICK_ENV}={os.environ[QUICK_ENV]!r} is not a boolean; use 1 or 0")


def spec_from(namespace: Mapping, **changes) -> RunSpec:
    """The run spec a notebook's parameters spell: every run-spec field defined in
    ``namespace`` (a notebook passes ``globals()``), then ``changes``. A field left at None takes
    its default, except those whose None means something (``features``: the dataset folder's own)."""
    given = {k: namespace[k] for k in FIELDS if k in namespace and (namespace[k] is not None or k in _MAY_BE_NONE)}
    return RunSpec.from_fields({**given, **changes})


def figures_folder(figures_dir: str | Path | None, notebook: str) -> Path:
    """Where a notebook saves its figures: ``figures_dir``, else ``runs/figures/<notebook>``
    (git-ignored, so executing a notebook never writes into tracked folders)."""
    return resolve_path(figures_dir if figures_dir is not None else Path("runs/figures") / notebook)


def save_figures(figs: dict, figures_dir: str | Path | None, notebook: str) -> list[Path]:
    """A notebook's last call: its ``{name: figure}`` saved as HTML (+ PNG when possible) into
    :func:`figures_folder`; prints and returns the files."""
    written = figures.save_figures(figs, figures_folder(figures_dir, notebook))
    for path in written:
        print(path)
    return written


def setup_notebook() -> None:
    """Notebook defaults: plotly figures as JSON plus offline HTML (see
    :mod:`afme_lib.analysis.figures`) and wide pandas tables."""
    use_notebook_renderer()
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)
