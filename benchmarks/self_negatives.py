"""Self-negatives on real descriptions: RotatE, mm-concat, NATIVE and AFME on UMLS-text at each
self-negative weight of ``configs/self-negatives.yaml``, several seeds; and, from
``configs/self-negatives-synthetic.yaml``, RotatE, mm-concat and AFME with and without them on
the synthetic default preset at the main job's settings.

1. builds (or reuses) the text features of UMLS-text's descriptions (``texts.tsv``, the packaged
   MiniLM) into ``<features-root>/UMLS-text/``, as
   ``afme features text --dataset DIR --texts DIR/texts.tsv --out <features-root>/UMLS-text``;
2. runs the grids with these flags into ``<runs>/<model>-sn<weight>-s<seed>`` and
   ``<runs>/synthetic/...`` (resumable);
3. writes ``<out>/results.csv``, ``<out>/synthetic/results.csv`` and ``<out>/README.md``
   (:mod:`afme_lib.experiments.pages.self_negatives`), keeping its ``## Reading``.

    python benchmarks/self_negatives.py --data-dir ../shared/datasets --workers 2
    python benchmarks/self_negatives.py --epochs 2 --seeds 0 --weights 0 1 --skip-synthetic   # smoke test
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from afme_lib.experiments.grid import load_grid, run_grid
from afme_lib.experiments.grid.spec import changed
from afme_lib.experiments.pages.self_negatives import WEIGHT, self_negatives_page, synthetic_section
from afme_lib.experiments.pages.writer import write_page
from afme_lib.extraction.text import extract_text_features

GRID = Path(__file__).resolve().parents[1] / "configs" / "self-negatives.yaml"
SYNTHETIC = GRID.with_name("self-negatives-synthetic.yaml")
DATASET = "UMLS-text"


def main(argv: list[str] | None = None) -> int:
    spec = load_grid(GRID)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/datasets", help=f"the folder holding {DATASET}/")
    parser.add_argument("--features-root", default="runs/features")
    parser.add_argument("--runs", default="runs/self-negatives")
    parser.add_argument("--out", default="reports/self-negatives")
    parser.add_argument("--models", nargs="+", default=list(spec.variants), choices=list(spec.variants))
    parser.add_argument("--weights", nargs="+", type=float, default=list(spec.grid[WEIGHT]))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(spec.grid["seed"]))
    for flag in ("epochs", "dim", "lr", "batch_size", "negatives", "eval_every"):
        value = spec.parameters[flag]
        parser.add_argument("--" + flag.replace("_", "-"), type=type(value), help=f"default {value} ({GRID.name})")
    parser.add_argument("--device", default=spec.parameters["device"])
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each (default 1)")
    parser.add_argument("--skip-synthetic", action="store_true", help=f"leave out {SYNTHETIC.name}'s runs")
    parser.add_argument("--report-only", action="store_true", help="tabulate finished runs; build and train nothing")
    args = parser.parse_args(argv)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python benchmarks/self_negatives.py " + shlex.join(given)

    dataset = Path(args.data_dir) / DATASET
    features = Path(args.features_root) / DATASET
    if not args.report_only:
        done = extract_text_features(
            str(dataset), features, texts=str(dataset / "texts.tsv"), device=args.device, progress=sys.stderr.isatty()
        )
        print(f"{DATASET}: {'reused' if done.reused else 'built'} {done.path}", flush=True)
    grid = changed(
        spec,
        parameters={
            "dataset": str(dataset),
            "device": args.device,
            **{k: getattr(args, k) for k in ("epochs", "dim", "lr", "batch_size", "negatives", "eval_every")},
        },
        axes={WEIGHT: args.weights, "seed": args.seeds},
        variants={
            m: {**spec.variants[m], **({"features": str(features)} if "features" in spec.variants[m] else {})}
            for m in args.models
        },
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
    lines = self_negatives_page(results, grid, command, args.data_dir)
    if not args.skip_synthetic:
        synthetic = load_grid(SYNTHETIC)
        done = run_grid(
            synthetic,
            report_dir=Path(args.out) / "synthetic",
            runs_dir=Path(args.runs) / "synthetic",
            workers=args.workers,
            readme=False,
            report_only=args.report_only,
            command=command,
        )
        lines += synthetic_section(done, synthetic)
    page = write_page(Path(args.out) / "README.md", lines)
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
