"""Every model on a real benchmark at its recipe, one protocol; and AFME's ablation there.

1. builds (or reuses) the entities' name-text features into ``<features-root>/<DATASET>/`` (what
   the recipes read: ``runs/features/<DATASET>``);
2. runs the comparison grid (:func:`afme_lib.experiments.real_data.comparison_grid`): every model of
   ``--models`` from ``configs/recipes/<DATASET>/<model>.yaml`` (``python benchmarks/recipes.py``
   makes them, the same search for every model), the ``--seeded`` models over ``--seeds``, the
   others once, RotatE also at ``--rotate-dims``; runs into ``<runs>/<variant>-s<seed>``
   (resumable: finished runs are read, interrupted ones resumed), ``--workers`` at a time;
3. with ``--ablation``, runs AFME's ablation grid over ``--seeds`` into the same runs folder (the
   full model's runs are the comparison's);
4. writes ``<out>/comparison/`` and ``<out>/ablation/`` (results.csv, grid.yaml, README.md; a
   ``## Reading`` written by hand below the tables is kept).

    python benchmarks/real_data.py --dataset MKG-Y --ablation --workers 2
    python benchmarks/real_data.py --dataset MKG-Y --ablation --report-only
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from afme_lib.experiments.grid import run_grid
from afme_lib.experiments.pages.real_data import ablation_page, comparison_page
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.real_data import ablation_grid, comparison_grid, recipe_fields, recipe_file
from afme_lib.extraction.text import extract_text_features

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["rotate", "transe", "mm-concat", "ikrl", "mmkrl", "otkge", "native", "afme"]


def feature_coverage(features: str | Path, modalities) -> dict:
    """``{modality: (entities without a row, entities)}`` from the features' ``.json`` sidecars."""
    coverage = {}
    for sidecar in sorted(Path(features).glob("*.json")):
        info = json.loads(sidecar.read_text())
        if info.get("modality") in modalities:
            coverage[info["modality"]] = (int(info["missing"]), int(info["entities"]))
    return coverage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="MKG-Y")
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--seeded", nargs="+", default=["afme", "native", "rotate"], help="trained over every seed")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rotate-dims", nargs="*", type=int, default=[256], help="RotatE also at these dims")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ablation", action="store_true", help="also AFME's ablation over --seeds")
    parser.add_argument("--recipes", default=str(ROOT / "configs" / "recipes"))
    parser.add_argument("--features-root", default="runs/features")
    parser.add_argument("--runs", help="default runs/real-data/<DATASET>")
    parser.add_argument("--out", help="default reports/real-data/<DATASET>")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each")
    parser.add_argument("--report-only", action="store_true", help="tabulate finished runs; train nothing")
    args = parser.parse_args(argv)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python benchmarks/real_data.py " + shlex.join(given)
    runs = Path(args.runs or f"runs/real-data/{args.dataset}")
    out = Path(args.out or f"reports/real-data/{args.dataset}")

    afme = recipe_fields(recipe_file(args.recipes, args.dataset, "afme"))
    features = afme.get("features")
    if features and not args.report_only:  # every recipe of a dataset reads the same folder
        extract_text_features(args.dataset, features, data_dir=args.data_dir, progress=sys.stderr.isatty())
    protocol = {
        "data_dir": args.data_dir,
        "epochs": args.epochs,
        "eval_every": args.eval_every,
        "patience": args.patience,
        "device": args.device,
    }
    grids = [
        (
            "comparison",
            comparison_grid(
                f"{args.dataset}-comparison",
                args.dataset,
                args.models,
                protocol,
                args.seeds,
                args.seeded,
                args.recipes,
                args.rotate_dims,
            ),
        )
    ]
    if args.ablation:
        grids.append(
            ("ablation", ablation_grid(f"{args.dataset}-ablation", args.dataset, protocol, args.seeds, args.recipes))
        )
    for part, grid in grids:
        results = run_grid(
            grid,
            report_dir=out / part,
            runs_dir=runs,
            workers=args.workers,
            readme=False,
            report_only=args.report_only,
            command=command,
        )
        if part == "comparison":
            lines = comparison_page(results, grid, command, out / part, args.data_dir)
        else:
            coverage = feature_coverage(features, afme.get("modalities") or []) if features else {}
            lines = ablation_page(results, grid, command, "../comparison/README.md", coverage, args.data_dir)
        print(f"wrote {write_page(out / part / 'README.md', lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
