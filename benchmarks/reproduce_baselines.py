"""Reproduce the structure-only baselines on the shared benchmarks and compare with the literature.

Runs ``configs/reproduction.yaml`` with these flags (they replace the file's values): each
(dataset, model) trains into ``runs/reproduction/<dataset>-<model>`` (resumable: rerunning
continues unfinished runs and reuses finished ones); then writes ``reports/reproduction/results.csv``
and ``README.md`` (:func:`afme_lib.experiments.pages.reproduction.reproduction_page`): test MRR / Hits@1 /
Hits@10 next to the numbers the AFME article reports (MKG-W).

    python benchmarks/reproduce_baselines.py --datasets MKG-W MKG-Y --models transe distmult complex rotate \
        --epochs 200 --compile
"""

from __future__ import annotations

import argparse
from pathlib import Path

from afme_lib.experiments.grid import load_grid, run_grid
from afme_lib.experiments.grid.spec import changed
from afme_lib.experiments.pages.reproduction import reproduction_page
from afme_lib.experiments.pages.writer import write_page

GRID = Path(__file__).resolve().parents[1] / "configs" / "reproduction.yaml"


def main(argv: list[str] | None = None) -> int:
    spec = load_grid(GRID)
    p = spec.parameters
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=spec.grid["dataset"])
    parser.add_argument("--models", nargs="+", default=list(spec.variants), choices=list(spec.variants))
    parser.add_argument("--data-dir", default=p["data_dir"])
    parser.add_argument("--epochs", type=int, default=p["epochs"])
    parser.add_argument("--lr", type=float, default=p["lr"])
    parser.add_argument("--eval-every", type=int, default=p["eval_every"])
    parser.add_argument("--patience", type=int, default=p["patience"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each (default 1)")
    parser.add_argument("--runs", default="runs/reproduction")
    parser.add_argument("--out", default="reports/reproduction")
    parser.add_argument("--report-only", action="store_true", help="tabulate finished runs; train nothing")
    args = parser.parse_args(argv)
    command = (
        "python benchmarks/reproduce_baselines.py --datasets "
        + " ".join(args.datasets)
        + " --models "
        + " ".join(args.models)
        + f" --epochs {args.epochs} --lr {args.lr}"
        + f" --eval-every {args.eval_every} --patience {args.patience}"
        + (" --compile" if args.compile else "")
    )
    grid = changed(
        spec,
        parameters={
            "data_dir": args.data_dir,
            "epochs": args.epochs,
            "lr": args.lr,
            "eval_every": args.eval_every,
            "patience": args.patience,
            "compile": "on" if args.compile else None,
        },
        axes={"dataset": args.datasets},
        variants=args.models,
    )
    results = run_grid(
        grid,
        report_dir=args.out,
        runs_dir=args.runs,
        workers=args.workers,
        readme=False,
        report_only=args.report_only,
        command=command,
    )
    page = write_page(Path(args.out) / "README.md", reproduction_page(results, grid, command, args.data_dir))
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
