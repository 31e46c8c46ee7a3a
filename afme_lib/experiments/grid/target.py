"""The ``train`` target: a grid cell that is one training run, with no notebook around it.

A cell of a grid file with ``target: train`` is a run spec (:mod:`afme_lib.experiments.spec`):
``dataset`` (required), ``features``, ``data_dir``, ``model`` and any other ModelConfig or
TrainConfig field by its name, every key checked before anything runs. A training field the cell
leaves out takes the model's recipe, else the default; ``progress`` is off unless the cell turns
it on (the runner prints a line per cell). The cell runs
:func:`afme_lib.experiments.run.run` into its run folder: a finished run is read, an interrupted
one resumed, a missing one trained.
"""

from __future__ import annotations

import time
from pathlib import Path

from afme_lib.core.config import RUN_FIELDS
from afme_lib.experiments.grid.execute import describe_error

TARGETS = ("train",)
PARAMETERS = RUN_FIELDS


def cell_spec(params: dict):
    """The run spec of a train cell (progress off unless asked for); OptionError otherwise."""
    from afme_lib.experiments.spec import RunSpec  # here: it loads torch and the engine, which reading a grid needs not

    return RunSpec.from_fields({"progress": False, **params})


def run_train_cell(run_dir: str, params: dict, threads: int | None = None) -> dict:
    """Train (or read, or resume) the run of one cell into ``run_dir``.

    Never raises for a failing cell: returns ``{"status": "ok"|"failed", "error", "seconds",
    "metrics"}`` as :func:`afme_lib.experiments.grid.execute.run_cell` does for a notebook.
    ``threads``: torch threads of this process (a worker process of a parallel grid)."""
    from afme_lib.experiments.run import run  # here: the engine loads torch, which reading a grid needs not

    if threads:
        import torch  # a worker's own thread budget

        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        metrics = run(cell_spec(params), Path(run_dir)).metrics
    except Exception as err:  # noqa: BLE001 -- every failure becomes the cell's error, the grid goes on
        return {
            "status": "failed",
            "error": describe_error(err),
            "seconds": round(time.perf_counter() - start, 3),
            "metrics": None,
        }
    return {"status": "ok", "error": None, "seconds": round(time.perf_counter() - start, 3), "metrics": metrics}
