"""Small hyper-parameter sweep for the structure-only baselines whose reproduction gap stays open.

Runs the selected models and variants of ``configs/tuning.yaml`` (each variant overrides the
recipe of ``configs/reproduction.yaml``) into ``runs/tuning/<dataset>-<model>-<variant>``
(resumable), then writes ``reports/reproduction/tuning.md``
(:func:`afme_lib.experiments.pages.reproduction.tuning_page`, from ``reports/reproduction/tuning/results.csv``):
every finished variant, from this call and earlier ones (a sweep grows over sessions), with its
best valid MRR, the epoch it was reached, and the test metrics of that checkpoint.

    python benchmarks/tune_baselines.py --dataset MKG-W --models distmult complex --epochs 30 --compile
"""

from __future__ import annotations

import argparse
from pathlib import Path

from afme_lib.experiments.grid import load_grid, run_grid
from afme_lib.experiments.grid.spec import changed, slug
from afme_lib.experiments.pages.reproduction import tuning_page
from afme_lib.experiments.pages.writer import write_page

GRID = Path(__file__).resolve().parents[1] / "configs" / "tuning.yaml"


def main(argv: list[str] | None = None) -> int:
    spec = load_grid(GRID)
    p = spec.parameters
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=p["dataset"])
    parser.add_argument("--models", nargs="+", default=spec.grid["model"], choices=spec.grid["model"])
    parser.add_argument("--variants", nargs="+", default=list(spec.variants), choices=list(spec.variants))
    parser.add_argument("--data-dir", default=p["data_dir"])
    parser.add_argument("--epochs", type=int, default=p["epochs"])
    parser.add_argument("--eval-every", type=int, default=p["eval_every"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--runs", default="runs/tuning")
    parser.add_argument("--out", default="reports/reproduction/tuning.md")
    parser.add_argument("--report-only", action="store_true", help="tabulate finished variants; train nothing")
    args = parser.parse_args(argv)
    grid = changed(
        spec,
        parameters={
            "dataset": args.dataset,
            "data_dir": args.data_dir,
            "epochs": args.epochs,
            "eval_every": args.eval_every,
            "compile": "on" if args.compile else None,
        },
    )
    # the whole sweep is tabulated; only the chosen (model, variant) cells are run
    chosen = [f"variant={slug(v)}__*model={m}__*" for m in args.models for v in args.variants]
    out = Path(args.out)
    results = run_grid(
        grid,
        report_dir=out.with_suffix(""),
        runs_dir=args.runs,
        readme=False,
        only=chosen,
        report_only=args.report_only,
        command="python benchmarks/tune_baselines.py",
    )
    print(f"wrote {write_page(out, tuning_page(results, grid, args.runs, args.data_dir))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
