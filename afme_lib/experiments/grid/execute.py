"""Executing one cell with papermill, and the two ways of running many: local threads or Dask.

(A cell of a ``target: train`` grid runs :func:`afme_lib.experiments.grid.target.run_train_cell` instead,
through the same backends: in the driver, in worker processes, or as a Dask task.)

Each cell's notebook runs in its own Jupyter kernel (a separate process), so the local backend
uses one driver thread per concurrent cell: the thread only waits on its kernel. The kernel's
environment gets ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` =
``threads`` (default: cores // concurrent cells), so that ``workers`` kernels share the cores
instead of each starting one torch thread per core. The variables are handed to the kernel
process at launch (a kernel-manager subclass), never set in the driver's own environment, so
concurrent cells cannot race on ``os.environ``.

The kernel's own stdout/stderr (start-up warnings, C-level crash messages; the notebook's
outputs go into the executed notebook) are written to ``<run_dir>/kernel.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

from afme_lib.core.config import RUN_FIELDS
from afme_lib.core.errors import AfmeError
from afme_lib.core.machine import usable_cores
from afme_lib.engine.run_folder import METRICS, RunFolder

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
KERNEL_LOG = "kernel.log"

# Kernel processes started by this process and still running: killed on Ctrl-C (kill_kernels).
_live_kernels: dict[int, object] = {}
_live_lock = threading.Lock()


class _SpecParameters(logging.Filter):
    """Drops papermill's "Passed unknown parameter" notice for run-spec fields: a notebook takes
    every field by name, listed in its parameters cell or not (afme_lib/interfaces/notebook.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(UNKNOWN_PARAMETER) and message[len(UNKNOWN_PARAMETER) :].strip() in RUN_FIELDS)


UNKNOWN_PARAMETER = "Passed unknown parameter:"


@contextlib.contextmanager
def quiet_spec_parameters():
    """Within the block, papermill does not warn about run-spec fields a notebook does not list."""
    logger = logging.getLogger("papermill")
    quiet = _SpecParameters()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def require_papermill():
    try:
        import papermill
    except ImportError:
        raise AfmeError(
            "the grid runner needs papermill and ipykernel: pip install 'afme-workbench[notebooks]'"
        ) from None
    return papermill


def _kernel_manager_class(extra_env: dict, log_path: Path):
    """An AsyncKernelManager that launches its kernel with ``extra_env`` and its output in ``log_path``."""
    from jupyter_client import AsyncKernelManager

    class GridKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            env = dict(kw.pop("env", None) or os.environ)
            env.update(extra_env)
            log = open(log_path, "ab")  # noqa: SIM115 -- the kernel process keeps writing to it
            try:
                await AsyncKernelManager.start_kernel(self, env=env, stdout=log, stderr=log, **kw)
            finally:
                log.close()  # the child holds its own descriptor
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                with _live_lock:
                    _live_kernels[process.pid] = process
                self._grid_pid = process.pid

        async def shutdown_kernel(self, *args, **kw):
            try:
                return await AsyncKernelManager.shutdown_kernel(self, *args, **kw)
            finally:
                with _live_lock:
                    _live_kernels.pop(getattr(self, "_grid_pid", None), None)

    return GridKernelManager


def kill_kernels() -> int:
    """Terminate the kernels this process started that are still running (after Ctrl-C); their
    driver threads then see a dead kernel and return. Returns how many were signalled."""
    with _live_lock:
        processes = list(_live_kernels.values())
        _live_kernels.clear()
    for p in processes:
        try:
            p.send_signal(signal.SIGTERM)
        except (OSError, ValueError):
            pass
    return len(processes)


def _one_line(text: str, limit: int = 400) -> str:
    return " ".join(str(text).split())[:limit]


def describe_error(err: BaseException, log_path: Path | None = None) -> str:
    """One line for results.csv: ``Ename: evalue`` of the notebook's exception, else the last
    line of the runner's error (kernel died, timeout, missing kernel ...)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:  # papermill's PapermillExecutionError: the exception raised inside the notebook
        return _one_line(f"{ename}: {evalue}")
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = f"{type(err).__name__}: {lines[-1].strip() if lines else ''}".rstrip(": ")
    if type(err).__name__ == "DeadKernelError" and log_path is not None:
        text += f" (kernel output in {log_path})"
    return _one_line(text)


def read_metrics(run_dir: Path) -> dict | None:
    """The cell's metrics.json, None when the run did not finish (or left an unreadable file)."""
    folder = RunFolder(run_dir)
    if not folder.finished:
        return None
    try:
        return folder.metrics
    except (OSError, ValueError):  # json.JSONDecodeError is a ValueError
        return None


def _dask_threads() -> int | None:
    """cores // worker threads when running as a Dask task, else None."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    nthreads = getattr(getattr(worker, "state", None), "nthreads", None) or getattr(worker, "nthreads", 1)
    return max(1, usable_cores() // max(1, nthreads))


def run_cell(
    notebook: str,
    output: str,
    run_dir: str,
    params: dict,
    kernel_name: str | None = None,
    threads: int | None = None,
    timeout: float | None = None,
    cwd: str | None = None,
) -> dict:
    """Execute ``notebook`` into ``output`` with ``params`` + ``run_dir`` + ``progress=False``.

    Never raises for a failing cell: returns ``{"status": "ok"|"failed", "error", "seconds",
    "metrics"}``; success means the notebook ran to the end *and* ``<run_dir>/metrics.json``
    exists. Runs in the driver (local backend) or on a Dask worker (paths must then be shared).
    """
    pm = require_papermill()
    run_dir, output = Path(run_dir), Path(output)
    run_dir.mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / KERNEL_LOG
    threads = threads or _dask_threads() or usable_cores()
    env = {var: str(threads) for var in THREAD_VARIABLES}
    start = time.perf_counter()
    error = None
    try:
        with quiet_spec_parameters():
            pm.execute_notebook(
                str(notebook),
                str(output),
                parameters={**params, "run_dir": str(run_dir), "progress": False},
                kernel_name=kernel_name,
                progress_bar=False,
                log_output=False,
                cwd=cwd,
                execution_timeout=timeout,
                kernel_manager_class=_kernel_manager_class(env, log_path),
            )
    except Exception as err:  # noqa: BLE001 -- every failure becomes the cell's error, the grid goes on
        error = describe_error(err, log_path)
    seconds = round(time.perf_counter() - start, 3)
    metrics = read_metrics(run_dir)
    if error is None and metrics is None:
        error = f"the notebook finished but wrote no {run_dir / METRICS}"
    return {"status": "failed" if error else "ok", "error": error, "seconds": seconds, "metrics": metrics}


# --- backends ---------------------------------------------------------------------------------
def run_local(jobs: list[tuple[str, dict]], workers: int, on_done, run=run_cell, processes: bool = False) -> None:
    """Run ``jobs`` ([(cell id, ``run`` kwargs)]) on ``workers`` threads (``processes``: worker
    processes, for cells that compute in Python rather than wait on a kernel); ``on_done(id,
    result)`` is called in this thread as each finishes. Ctrl-C kills the running kernels and
    re-raises. One worker thread for in-process cells: they run here, one after the other."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait

    if processes and workers <= 1:
        for cid, kwargs in jobs:
            on_done(cid, run(**kwargs))
        return
    if processes:  # spawn: a fork of a driver that already holds torch threads can deadlock
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="grid-cell")
    futures = {pool.submit(run, **kwargs): cid for cid, kwargs in jobs}
    try:
        pending = set(futures)
        while pending:
            # A timeout keeps the main thread responsive to Ctrl-C while it waits.
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                on_done(futures[fut], fut.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        kill_kernels()
        raise
    pool.shutdown(wait=True)


def run_dask(jobs: list[tuple[str, dict]], scheduler: str, grid_name: str, on_done, run=run_cell) -> None:
    """Submit one Dask task per cell to the scheduler at ``scheduler``; ``on_done`` as above.

    A task that dies with its worker is reported as the cell's error. On Ctrl-C the queued tasks
    are cancelled; cells already running finish on their workers and are picked up next time.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise AfmeError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
    with Client(scheduler, timeout=30) as client:
        futures = {}
        for cid, kwargs in jobs:
            # The key names the grid and the cell, so concurrent grids on one cluster do not collide.
            fut = client.submit(run, **kwargs, key=f"afme-grid-{grid_name}-{cid}", pure=False, retries=0)
            futures[fut] = cid
        try:
            for fut in as_completed(list(futures)):
                try:
                    result = fut.result()
                except Exception as err:  # noqa: BLE001 -- worker lost, task cancelled ...
                    result = {"status": "failed", "error": describe_error(err), "seconds": None, "metrics": None}
                on_done(futures[fut], result)
        except BaseException:
            client.cancel(list(futures))
            raise
