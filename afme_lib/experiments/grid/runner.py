"""``run_grid``: execute a grid's cells (resumably) and keep its report folder up to date.

For each cell ``c`` of grid ``g``:

- run folder ``<runs_root>/<g.name>/<c.id>`` (passed to the notebook as ``run_dir``), or the grid's
  ``run_dir`` template filled in (:mod:`afme_lib.experiments.grid.spec`); ``runs_dir`` replaces
  ``<runs_root>/<g.name>`` (a benchmark keeps its runs in a folder of its own),
- executed notebook ``<reports_root>/<g.name>/notebooks/<c.id>.ipynb`` (notebook grids);
  ``report_dir`` replaces ``<reports_root>/<g.name>``.

A cell is *finished* when its ``<run_dir>/metrics.json`` exists and, for a notebook grid, its
executed notebook exists and ran to the end without an exception; finished cells are skipped on
a rerun, failed and unfinished ones are (re)run (an interrupted training run resumes from its last
checkpoint). The driver rewrites ``results.csv`` and ``README.md`` after every cell, so an
interrupted grid keeps its finished rows. ``report_only`` runs nothing: it tabulates what is
finished on disk. A cell that is not run keeps the row ``results.csv`` recorded for it when its run
folder is not on disk (a clone of a committed report), so a rebuilt page never loses numbers.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
from pathlib import Path

import pandas as pd
import yaml

from afme_lib.core import atomic, console
from afme_lib.core.errors import AfmeError
from afme_lib.core.machine import usable_cores
from afme_lib.engine.run_folder import RunFolder
from afme_lib.experiments.grid.execute import read_metrics, require_papermill, run_cell, run_dask, run_local
from afme_lib.experiments.grid.report import (
    RESULTS,
    cell_row,
    read_results,
    summarize,
    write_figure,
    write_readme,
    write_results,
)
from afme_lib.experiments.grid.spec import Cell, Grid, expand, load_grid
from afme_lib.experiments.grid.target import run_train_cell

SPEC_COPY = "grid.yaml"
LOCK = ".grid.lock"


class GridPaths:
    """Where a grid's files go (all absolute, so Dask workers and kernels agree)."""

    def __init__(
        self,
        grid: Grid,
        reports_root: str | Path,
        runs_root: str | Path,
        report_dir: str | Path | None = None,
        runs_dir: str | Path | None = None,
    ):
        self.grid = grid
        self.report = Path(report_dir).resolve() if report_dir else Path(reports_root).resolve() / grid.name
        self.runs = Path(runs_dir).resolve() if runs_dir else Path(runs_root).resolve() / grid.name
        self.notebooks = self.report / "notebooks"
        self.figures = self.report / "figures"

    def run_dir(self, cell: Cell) -> Path:
        return self.runs / self.grid.run_folder_name(cell)

    def output(self, cell: Cell) -> Path | None:
        """The executed notebook of a cell (None for a train grid: no notebook)."""
        return self.notebooks / f"{cell.id}.ipynb" if self.grid.runs_notebooks else None

    def finished(self, cell: Cell) -> bool:
        done = RunFolder(self.run_dir(cell)).finished
        return done and (not self.grid.runs_notebooks or notebook_completed(self.output(cell)))


def notebook_completed(path: Path) -> bool:
    """Whether papermill ran this executed notebook to its end without an exception (a notebook
    that failed after writing metrics.json, or was killed, is not a finished cell)."""
    try:
        meta = json.loads(Path(path).read_text()).get("metadata", {}).get("papermill", {})
    except (OSError, ValueError):
        return False
    return meta.get("end_time") is not None and not meta.get("exception")


def select_cells(cells: list[Cell], only) -> list[Cell]:
    """The cells matching any of ``only``: a full id, an id without its hash, or a glob pattern."""
    if not only:
        return list(cells)
    chosen: set[str] = set()
    for pattern in only:
        hits = {c.id for c in cells if fnmatch.fnmatchcase(c.id, pattern) or c.id.rsplit("__", 1)[0] == pattern}
        if not hits:
            shown = ", ".join(c.id for c in cells[:6]) + (" ..." if len(cells) > 6 else "")
            raise AfmeError(
                f"--only {pattern!r} matches no cell of this grid; cell ids: {shown} "
                "(see `afme grid run GRID.yaml --dry-run`)"
            )
        chosen |= hits
    return [c for c in cells if c.id in chosen]


def _previous_rows(report_dir: Path) -> dict[str, dict]:
    """Rows of an earlier results.csv by cell id (their seconds and errors are kept)."""
    if not (report_dir / RESULTS).is_file():
        return {}
    try:
        frame = read_results(report_dir)
    except (OSError, ValueError, pd.errors.ParserError):
        return {}
    return {row["cell"]: row for row in frame.to_dict("records")} if "cell" in frame else {}


def plan(
    grid: Grid | str | Path,
    reports_root: str | Path = "reports",
    runs_root: str | Path = "runs/grids",
    only=None,
    *,
    report_dir: str | Path | None = None,
    runs_dir: str | Path | None = None,
) -> pd.DataFrame:
    """What ``run_grid`` would do, without doing it: one row per cell with its ``action``
    (``skip: finished``, ``run``, ``retry: failed`` or ``not selected``) and its grid values."""
    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    paths = GridPaths(grid, reports_root, runs_root, report_dir, runs_dir)
    cells = expand(grid)
    chosen = {c.id for c in select_cells(cells, only)}
    previous = _previous_rows(paths.report)
    rows = []
    for c in cells:
        if paths.finished(c):
            action = "skip: finished"
        elif c.id not in chosen:
            action = "not selected"
        else:
            action = "retry: failed" if previous.get(c.id, {}).get("status") == "failed" else "run"
        rows.append(
            {
                "cell": c.id,
                "variant": c.variant or "",
                **c.axes,
                "action": action,
                **({} if grid.run_dir is None else {"run_dir": grid.run_folder_name(c)}),
            }
        )
    return pd.DataFrame(rows)


def _check_kernel(kernel_name: str | None, notebook: Path) -> None:
    """Fail before the first cell when the kernel the notebooks would use is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager

    name = kernel_name or json.loads(notebook.read_text()).get("metadata", {}).get("kernelspec", {}).get("name")
    if not name:
        return  # papermill then picks the default python kernel
    installed = KernelSpecManager().find_kernel_specs()
    if name not in installed:
        raise AfmeError(
            f"Jupyter kernel {name!r} (from {'--kernel' if kernel_name else notebook}) is not installed; "
            f"installed: {', '.join(sorted(installed)) or 'none'}. Pass --kernel NAME, or install this "
            "environment's kernel: python -m ipykernel install --sys-prefix --name python3"
        )


class _Lock:
    """One driver per report folder: a second ``afme grid run`` of the same grid is refused."""

    def __init__(self, folder: Path):
        self.path = folder / LOCK

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = self.path.read_text().strip()
            if pid.isdigit() and _alive(int(pid)):
                raise AfmeError(f"{self.path}: grid already running in process {pid}; wait for it or stop it") from None
            self.path.unlink(missing_ok=True)  # left by a killed driver
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_command(grid: Grid, reports_root, runs_root, workers, scheduler) -> str:
    spec = str(grid.path) if grid.path else "GRID.yaml"
    parts = ["afme", "grid", "run", spec]
    if str(reports_root) != "reports":
        parts += ["--reports", str(reports_root)]
    if str(runs_root) != "runs/grids":
        parts += ["--runs", str(runs_root)]
    if scheduler:
        parts += ["--scheduler", scheduler]
    elif workers != 1:
        parts += ["--workers", str(workers)]
    return " ".join(shlex.quote(p) for p in parts)


def write_report(
    report_dir: str | Path, grid: Grid | None = None, command: str | None = None, figures: bool = True
) -> Path:
    """Rewrite ``README.md`` (and the figure) from ``results.csv`` and the copied ``grid.yaml``."""
    report_dir = Path(report_dir)
    results = read_results(report_dir)
    if grid is None:
        grid = load_grid(report_dir / SPEC_COPY, check_notebook=False)
    figs = []
    if figures and (results["status"] == "ok").any():
        metrics = [m for m in grid.metrics if m in results]
        figs = write_figure(
            summarize(results, metrics=metrics),
            metrics,
            report_dir / "figures",
            f"{grid.name}: test metrics (mean ± std over seeds)",
        )
    if command is None:
        command = _command_from_readme(report_dir)
    runs_dir = Path(results["run_dir"].iloc[0]).parent if len(results) else None
    return write_readme(report_dir, grid, results, command, runs_dir=runs_dir, figures=figs)


def _command_from_readme(report_dir: Path) -> str | None:
    readme = report_dir / "README.md"
    if readme.is_file():
        for line in readme.read_text().splitlines():
            if line.startswith("Made by `"):
                return line[len("Made by `") :].split("`", 1)[0]
    return None


def _copy_spec(grid: Grid, report_dir: Path) -> None:
    text = grid.path.read_text() if grid.path else yaml.safe_dump(grid.to_dict(), sort_keys=False, allow_unicode=True)
    atomic.write_text(report_dir / SPEC_COPY, text)


def run_grid(
    grid_or_path: Grid | str | Path,
    reports_root: str | Path = "reports",
    runs_root: str | Path = "runs/grids",
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    kernel_name: str | None = None,
    *,
    only=None,
    threads: int | None = None,
    timeout: float | None = None,
    command: str | None = None,
    report_dir: str | Path | None = None,
    runs_dir: str | Path | None = None,
    readme: bool = True,
    report_only: bool = False,
) -> pd.DataFrame:
    """Run a grid's unfinished cells and return its results (one row per cell, as in results.csv).

    ``workers``: cells run at once on this machine (ignored with ``scheduler``, a Dask scheduler
    address such as ``tcp://host:8786``: one task per cell, the cluster decides the concurrency;
    reports and runs roots must then be on a filesystem the workers share). ``threads``: torch /
    BLAS threads per kernel (default: cores // workers here, cores // worker threads on Dask).
    ``only``: cell ids or glob patterns to run (others are reported as they stand).
    ``timeout``: seconds allowed per notebook cell (None: no limit). A failing cell is recorded
    with its error and the others go on. ``report_dir`` / ``runs_dir``: the report and run
    folders themselves (default ``<reports_root>/<name>``, ``<runs_root>/<name>``). ``readme``
    False: only ``results.csv`` and ``grid.yaml`` (a benchmark writes its own page from them).
    ``report_only``: run nothing; the rows say what is finished on disk, and cells recorded as
    finished whose run folders are absent keep their recorded rows.
    """
    grid = grid_or_path if isinstance(grid_or_path, Grid) else load_grid(grid_or_path)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    paths = GridPaths(grid, reports_root, runs_root, report_dir, runs_dir)
    chosen = set() if report_only else {c.id for c in select_cells(expand(grid), only)}
    command = command or default_command(grid, reports_root, runs_root, workers, scheduler)
    paths.report.mkdir(parents=True, exist_ok=True)
    with _Lock(paths.report):
        _copy_spec(grid, paths.report)
        state = _GridState(grid, paths, command, readme)
        todo = state.start(chosen)
        try:
            if todo:
                state.execute(todo, workers, scheduler, progress, kernel_name, threads, timeout)
        finally:  # interrupted too: the rows so far, the table and the figure
            state.save(final=True)
    return read_results(paths.report)


class _GridState:
    """The driver's rows (one per cell, in grid order), rewritten to the report after each cell."""

    def __init__(self, grid: Grid, paths: GridPaths, command: str, readme: bool = True):
        self.grid, self.paths, self.command, self.readme = grid, paths, command, readme
        self.cells = {c.id: c for c in expand(grid)}
        self.rows: dict[str, dict] = {}

    def row(self, cell: Cell, status: str, error=None, seconds=None, metrics=None) -> dict:
        return cell_row(
            cell, self.grid, status, error, seconds, metrics, self.paths.output(cell), self.paths.run_dir(cell)
        )

    def start(self, chosen: set[str]) -> list[Cell]:
        """Rows for every cell from what is on disk; returns the cells to run."""
        previous = _previous_rows(self.paths.report)
        todo = []
        for cid, cell in self.cells.items():
            prev = previous.get(cid, {})
            if self.paths.finished(cell):  # seconds survive from the run that finished it
                seconds = prev.get("seconds") if prev.get("status") == "ok" else None
                self.rows[cid] = self.row(cell, "ok", seconds=seconds, metrics=read_metrics(self.paths.run_dir(cell)))
            elif cid in chosen:
                todo.append(cell)
                self.rows[cid] = self.row(cell, "pending")
            elif prev.get("status") == "failed":  # not selected this time: its last outcome stands
                self.rows[cid] = self.row(cell, "failed", prev.get("error"), prev.get("seconds"))
            elif prev.get("status") == "ok":
                # Finished elsewhere (a committed results.csv on a clone without its run folders):
                # the recorded row is the only copy of its numbers, so it stands as written.
                self.rows[cid] = {**self.row(cell, "ok"), **prev}
            else:
                self.rows[cid] = self.row(cell, "pending")
        self.save()
        return todo

    def save(self, final: bool = False) -> None:
        write_results(self.paths.report, list(self.rows.values()))
        if not self.readme:
            return
        results = read_results(self.paths.report)
        figs = []
        if final and (results["status"] == "ok").any():  # the figure once, at the end
            metrics = [m for m in self.grid.metrics if m in results]
            figs = write_figure(
                summarize(results, metrics=metrics),
                metrics,
                self.paths.figures,
                f"{self.grid.name}: test metrics (mean ± std over seeds)",
            )
        write_readme(self.paths.report, self.grid, results, self.command, runs_dir=self.paths.runs, figures=figs)

    def execute(self, todo: list[Cell], workers, scheduler, progress, kernel_name, threads, timeout) -> None:
        notebooks = self.grid.runs_notebooks
        if notebooks:
            require_papermill()
        if scheduler is None:
            if notebooks:
                _check_kernel(kernel_name, self.grid.notebook)
            workers = min(workers, len(todo))
            if notebooks or workers > 1:  # in-process train cells keep the driver's threads
                threads = threads or max(1, usable_cores() // workers)
        if notebooks:
            jobs = [
                (
                    c.id,
                    {
                        "notebook": str(self.grid.notebook),
                        "output": str(self.paths.output(c)),
                        "run_dir": str(self.paths.run_dir(c)),
                        "params": c.params,
                        "kernel_name": kernel_name,
                        "threads": threads,
                        "timeout": timeout,
                    },
                )
                for c in todo
            ]
        else:
            jobs = [
                (c.id, {"run_dir": str(self.paths.run_dir(c)), "params": c.params, "threads": threads}) for c in todo
            ]
        run = run_cell if notebooks else run_train_cell
        # a bar on a terminal; the ok / FAILED line of each cell is printed either way
        bar = console.progress_bar(
            None, progress, total=len(todo), desc=f"grid {self.grid.name}", unit="cell", dynamic_ncols=True
        )
        failed = 0

        def on_done(cid: str, result: dict) -> None:
            nonlocal failed
            self.rows[cid] = self.row(
                self.cells[cid], result["status"], result["error"], result["seconds"], result["metrics"]
            )
            self.save()
            failed += result["status"] == "failed"
            if progress:
                if result["status"] == "ok":
                    mrr = (result["metrics"] or {}).get("test", {}).get("mrr")
                    what = f"test MRR {mrr:.4f}" if isinstance(mrr, (int, float)) else "done"
                    bar.write(f"ok      {cid}  ({result['seconds']:.0f} s, {what})")
                else:
                    bar.write(f"FAILED  {cid}: {result['error']}")
            bar.set_postfix(failed=failed)
            bar.update(1)

        try:
            if scheduler:
                run_dask(jobs, scheduler, self.grid.name, on_done, run)
            else:
                run_local(jobs, workers, on_done, run, processes=not notebooks)
        finally:
            bar.close()
