"""Report pages: generated tables above, a hand-written reading below.

A page is regenerated whenever its runs change; the ``## Reading`` section a person wrote from
the runs (from that heading to the end of the page) is carried over, so tables and prose never
drift apart by hand-copying. Also here: what every page shares (the random-ranking yardstick,
the runs of a results table grouped by their parameters, the settings a grid fixed).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from afme_lib.core import atomic
from afme_lib.core.errors import AfmeError
from afme_lib.data.benchmarks import load_benchmark
from afme_lib.engine.evaluation import random_baseline

READING = "## Reading"
RANDOM_NOTE = (
    "*Random ranking*: the expected metrics of a ranking that puts each test answer at a uniformly random "
    "place among its filtered candidates (exact; `afme_lib.engine.evaluation.random_baseline`), the yardstick for "
    "the rows above it."
)


@cache
def random_ranking(dataset: str, data_dir: str | None = None) -> dict | None:
    """The test split's random-ranking baseline of ``dataset`` (registered name or folder), or
    None when the dataset is not on this machine (a page rebuilt from runs elsewhere)."""
    try:
        return random_baseline(load_benchmark(dataset, data_dir=data_dir), "test")
    except AfmeError:
        return None


def finished_runs(results: pd.DataFrame, **where) -> pd.DataFrame:
    """The ``ok`` rows of a grid's results whose parameters equal ``where`` (e.g. ``dataset="MKG-Y",
    model="rotate"``), in the table's order."""
    ok = results[results["status"] == "ok"]
    for column, value in where.items():
        ok = ok[ok[column].astype(str) == str(value)]
    return ok


def strongest_variant(results: pd.DataFrame, variants, **where) -> str | None:
    """Of ``variants`` (e.g. RotatE at several dimensions), the one with the best mean validation
    MRR over its finished runs matching ``where`` (None if none finished): chosen on validation,
    never on test."""
    means = {
        v: pd.to_numeric(runs["valid_mrr"]).mean()
        for v in variants
        if not (runs := finished_runs(results, variant=v, **where)).empty
    }
    return max(means, key=means.get) if means else None


def seconds_per_epoch(runs: pd.DataFrame) -> pd.Series:
    """Each finished run's training seconds per epoch it ran (the tables' s/epoch column)."""
    return pd.to_numeric(runs["train_seconds"]) / pd.to_numeric(runs["epochs_run"]).clip(lower=1)


def hand_reading(page: Path) -> str:
    """The hand-written ``## Reading`` section of an existing page (to the end), or ""."""
    if not page.is_file():
        return ""
    text = page.read_text()
    at = text.find("\n" + READING)
    return "" if at < 0 else text[at:].lstrip("\n")


def write_page(page: Path, lines: list[str] | str, keep_reading: bool = True) -> Path:
    """Write the generated ``lines`` to ``page``, followed by the page's existing hand-written
    reading (``keep_reading``; False for a page that generates its own): every page under
    ``reports/`` is written here."""
    page = Path(page)
    page.parent.mkdir(parents=True, exist_ok=True)
    text = lines if isinstance(lines, str) else "\n".join(lines)
    generated = text.rstrip("\n") + "\n"
    reading = hand_reading(page) if keep_reading else ""
    atomic.write_text(page, generated + ("\n" + reading if reading else ""))
    return page
