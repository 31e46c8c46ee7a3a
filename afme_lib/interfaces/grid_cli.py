"""The ``afme grid`` commands: ``run`` (with ``--dry-run``) and ``summary``."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

from afme_lib.core.metric_names import TABLE_METRICS
from afme_lib.experiments.grid.report import markdown_table, read_results, summarize
from afme_lib.experiments.grid.runner import SPEC_COPY, plan, run_grid, write_report
from afme_lib.experiments.grid.spec import DEFAULT_METRICS, load_grid


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_grid_run(args) -> int:
    grid = load_grid(args.grid)
    if args.dry_run:
        table = plan(grid, args.reports, args.runs, only=args.only)
        print(table.to_string(index=False))
        counts = table["action"].value_counts()
        print(
            "\n" + ", ".join(f"{n} {a}" for a, n in counts.items()) + f" ({len(table)} cells); "
            f"report: {args.reports}/{grid.name}/, runs: {args.runs}/{grid.name}/"
        )
        return 0
    parts = ["afme", "grid", "run", args.grid]
    for flag, value, default in (
        ("--reports", args.reports, "reports"),
        ("--runs", args.runs, "runs/grids"),
        ("--workers", args.workers, 1),
        ("--scheduler", args.scheduler, None),
        ("--threads", args.threads, None),
        ("--kernel", args.kernel, None),
        ("--timeout", args.timeout, None),
    ):
        if value != default:
            parts += [flag, str(value)]
    command = " ".join(shlex.quote(p) for p in parts)
    # A batch system's SIGTERM stops the grid like Ctrl-C: running kernels are killed and the
    # report keeps every finished row (the default action would skip all clean-up).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = run_grid(
            grid,
            reports_root=args.reports,
            runs_root=args.runs,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=not args.no_progress,
            kernel_name=args.kernel,
            only=args.only,
            threads=args.threads,
            timeout=args.timeout,
            command=command,
        )
    except KeyboardInterrupt:
        print(
            f"afme: interrupted; finished cells are kept in {args.reports}/{grid.name}/results.csv; "
            f"rerun `{command}` to go on",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = results["status"].value_counts()
    print(
        f"grid {grid.name}: {len(results)} cells, "
        + ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("ok", "failed", "pending"))
        + f"; report: {args.reports}/{grid.name}/README.md"
    )
    failed = results[results["status"] == "failed"]
    for _, row in failed.iterrows():
        print(f"  failed {row['cell']}: {row['error']}", file=sys.stderr)
    return 1 if len(failed) else 0


def cmd_grid_summary(args) -> int:
    report = Path(args.report_dir)
    results = read_results(report)
    grid = load_grid(report / SPEC_COPY, check_notebook=False) if (report / SPEC_COPY).is_file() else None
    metrics = args.metrics or (grid.metrics if grid else [m for m in DEFAULT_METRICS if m in results])
    if grid is not None:
        readme = write_report(report, grid)
        print(f"rewrote {readme}")
    summary = summarize(results, by=args.by, metrics=metrics)
    print("\n".join(markdown_table(summary, metrics)))
    return 0


def add_grid_commands(sub) -> None:
    """Add ``afme grid run|summary`` to the top-level sub-parsers."""
    grid = sub.add_parser(
        "grid", help="parameter grids over a notebook (papermill) or training runs; local processes or Dask"
    )
    cmds = grid.add_subparsers(dest="grid_command", required=True)
    run = cmds.add_parser(
        "run",
        help="run a grid's unfinished cells and write reports/<name>/",
        description="Expand GRID.yaml into cells, execute the notebook once per cell with papermill "
        "(or train one run per cell: target: train) and write reports/<name>/ (executed notebooks, "
        "results.csv, README.md, figure). Finished "
        "cells are skipped; failed ones are retried. Exit status 1 when a cell failed.",
    )
    run.add_argument(
        "grid",
        metavar="GRID.yaml",
        help="grid file: notebook or target, parameters, grid, variants, exclude, metrics, run_dir",
    )
    run.add_argument("--workers", type=int, default=1, help="cells run at once on this machine (default 1)")
    run.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler address (tcp://host:8786): one task per cell"
    )
    run.add_argument("--reports", default="reports", metavar="DIR", help="reports root (default reports)")
    run.add_argument("--runs", default="runs/grids", metavar="DIR", help="run folders root (default runs/grids)")
    run.add_argument(
        "--only",
        nargs="+",
        metavar="CELL_ID",
        help="run only these cells (ids, ids without the hash, or glob patterns such as 'variant=full__*')",
    )
    run.add_argument("--dry-run", action="store_true", help="list the cells and what would be done; run nothing")
    run.add_argument(
        "--threads",
        type=int,
        help="torch/BLAS threads per kernel (default cores // workers; "
        "use 1 on a machine other jobs keep busy: oversubscribed torch threads slow down many-fold)",
    )
    run.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's kernelspec)")
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit per notebook cell (default none)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or per-cell lines")
    run.set_defaults(func=cmd_grid_run)
    summary = cmds.add_parser("summary", help="rebuild README.md and the figure from results.csv; print the table")
    summary.add_argument("report_dir", metavar="REPORT_DIR", help="a grid's report folder (reports/<name>/)")
    summary.add_argument(
        "--by",
        nargs="+",
        metavar="COLUMN",
        help="group columns (default: variant and the parameters that vary, seed excepted)",
    )
    summary.add_argument(
        "--metrics",
        nargs="+",
        choices=TABLE_METRICS,
        help="test metrics to tabulate (default: the grid file's metrics)",
    )
    summary.set_defaults(func=cmd_grid_summary)
