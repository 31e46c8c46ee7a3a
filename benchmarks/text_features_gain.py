"""What entity-name text adds: RotatE (structure only) vs AFME (structure + name text), several seeds.

The experiment is ``configs/text-features.yaml`` (a grid of training runs); this script
1. builds (or reuses) name-text features for every dataset with readable names in
   ``entity2id.txt`` -- ``--datasets`` (compared) and ``--extra-features`` (built only) -- into
   ``<features-root>/<DATASET>/<DATASET>-textual.pth`` with the packaged MiniLM encoder;
2. runs the grid with these flags (they replace the file's values) into
   ``<runs>/<DATASET>-<model>-d<dim>-e<epochs>-s<seed>`` (resumable; finished runs are reused),
   RotatE alone on ``--structure-only`` datasets (MKG-W: its entity2id.txt holds Wikidata ids);
3. writes ``<out>/results.csv`` (one row per run) and ``<out>/README.md``
   (:func:`afme_lib.experiments.pages.text_features.text_features_page`), keeping its ``## Reading``.

    python benchmarks/text_features_gain.py --data-dir ../shared/datasets --seeds 0 1 2 --epochs 200 --dim 500
    python benchmarks/text_features_gain.py --epochs 1 --dim 16 --seeds 0 1        # smoke test
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from afme_lib.experiments.grid import load_grid, run_grid
from afme_lib.experiments.grid.spec import changed
from afme_lib.experiments.pages.text_features import STRUCTURE, name_text_features, text_features_page
from afme_lib.experiments.pages.writer import write_page

GRID = Path(__file__).resolve().parents[1] / "configs" / "text-features.yaml"


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--grid", default=str(GRID))
    spec = load_grid(Path(pre.parse_known_args(argv)[0].grid))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--grid",
        default=str(GRID),
        help=f"the grid file (default: configs/{GRID.name}; "
        "configs/text-features-warm.yaml: the feature models without the cold-entity protocols)",
    )
    parser.add_argument("--datasets", nargs="+", default=["MKG-Y", "TIVA"], help="compared (readable names)")
    parser.add_argument("--extra-features", nargs="*", default=["KVC16K"], help="name features built, not compared")
    parser.add_argument("--structure-only", nargs="*", default=["MKG-W"], help="RotatE only (no readable names)")
    parser.add_argument("--data-dir", default=spec.parameters["data_dir"])
    parser.add_argument("--features-root", default="runs/features")
    parser.add_argument("--runs", default="runs/text-features")
    parser.add_argument("--out", default="reports/text-features")
    parser.add_argument("--text-model", default="minilm", help="encoder for the name texts (hub id or folder)")
    parser.add_argument("--text-batch-size", type=int, default=128)
    parser.add_argument(
        "--models",
        nargs="+",
        default=["rotate", "afme"],
        choices=list(spec.variants),
        help="compared models (rotate first: the gains are paired against it)",
    )
    parser.add_argument(
        "--rotate-dims",
        nargs="*",
        type=int,
        default=[],
        help="RotatE also at these dimensions (variants rotate-d<D>); the multi-modal models are "
        "then also paired with the strongest RotatE, chosen per dataset by validation MRR",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    for flag in ("epochs", "dim", "lr", "batch_size", "negatives", "eval_every", "patience"):
        value = spec.parameters[flag]
        parser.add_argument("--" + flag.replace("_", "-"), type=type(value), help=f"default {value} ({GRID.name})")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default=spec.parameters["device"])
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each (default 1)")
    parser.add_argument("--report-only", action="store_true", help="tabulate finished runs; build and train nothing")
    args = parser.parse_args(argv)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python benchmarks/text_features_gain.py " + shlex.join(given)  # the command that trains the runs

    built = name_text_features(
        [*args.datasets, *args.extra_features],
        args.features_root,
        args.data_dir,
        args.text_model,
        args.device,
        args.text_batch_size,
        build=not args.report_only,
    )
    features = f"{args.features_root}/{{dataset}}"  # filled in per cell
    grid_dim = args.dim if args.dim is not None else spec.parameters["dim"]
    grid = changed(
        spec,
        parameters={
            "data_dir": args.data_dir,
            "device": args.device,
            "compile": "on" if args.compile else None,
            **{
                k: getattr(args, k)
                for k in ("epochs", "dim", "lr", "batch_size", "negatives", "eval_every", "patience")
            },
        },
        axes={"dataset": [*args.datasets, *args.structure_only], "seed": args.seeds},
        variants={
            **{
                m: {**spec.variants[m], **({"features": features} if "features" in spec.variants[m] else {})}
                for m in args.models
            },
            **{
                f"{STRUCTURE}-d{d}": {**spec.variants[STRUCTURE], "dim": d}
                for d in args.rotate_dims
                if STRUCTURE in args.models and d != grid_dim
            },
        },
        exclude=[{"dataset": d, "model": m} for d in args.structure_only for m in args.models if m != STRUCTURE],
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
    page = write_page(
        Path(args.out) / "README.md",
        text_features_page(
            results, grid, built, command, args.structure_only, args.text_model, args.data_dir, args.features_root
        ),
    )
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
