"""Parameter grids over a notebook or a training run: expand, execute (local processes or Dask), report.

    afme grid run configs/ablation-afme.yaml --workers 2      # -> reports/ablation-afme/
    afme grid summary reports/ablation-afme

    from afme_lib.experiments.grid import load_grid, expand, run_grid, read_results, summarize
    results = run_grid("configs/ablation-tiny.yaml", workers=2)
    summarize(results)            # mean and std per variant over seeds

A grid file names a notebook, fixed parameters, lists to cross (``grid``) and named parameter
sets (``variants``); see :mod:`afme_lib.experiments.grid.spec`. Each cell runs the notebook in a fresh
Jupyter kernel with its parameters plus ``run_dir`` and ``progress=False``; it succeeded when
the notebook ran through and ``<run_dir>/metrics.json`` exists. The kernel is the notebook's
kernelspec (``python3``); jupyter_client starts a kernelspec whose command is ``python`` with the
driver's own interpreter, so in this project's ``.venv`` the kernels import the same
``afme_lib`` with no kernel to install. A grid with ``target: train`` instead of a notebook
runs :func:`afme_lib.experiments.run.run` per cell (:mod:`afme_lib.experiments.grid.target`); it
succeeded when the run's ``metrics.json`` exists. Modules: ``spec`` (files, validation, ids, run
folder names), ``target`` (the train target), ``execute`` (papermill, thread limits, backends),
``report`` (results.csv, summary, README, figure), ``runner`` (resume and orchestration), ``cli``
(the ``afme grid`` commands).
"""

from afme_lib.experiments.grid.report import read_results, summarize
from afme_lib.experiments.grid.runner import plan, run_grid, write_report
from afme_lib.experiments.grid.spec import Cell, Grid, ablation_grid, expand, load_grid, parse_grid

__all__ = [
    "Cell",
    "Grid",
    "ablation_grid",
    "expand",
    "load_grid",
    "parse_grid",
    "plan",
    "read_results",
    "run_grid",
    "summarize",
    "write_report",
]
