"""Split hygiene of the benchmarks, and one of them trained on its original and its cleaned split.

1. The hygiene figures (afme_lib/data/leakage.py) of every ``--datasets`` benchmark, with the
   MRR of the memorisation-only rule.
2. ``afme data clean`` of ``--compare`` into ``<runs>/<DATASET>-clean`` (reused when there).
3. ``configs/hygiene.yaml`` with these flags: each ``--models`` model trained with one recipe on
   both splits, for each seed (resumable; finished runs are reused); the multi-modal ones with
   name-text features built as in benchmarks/text_features_gain.py (same entity ids on both
   splits, so one feature file serves both).
4. ``<out>/results.csv`` and ``<out>/README.md`` (:mod:`afme_lib.experiments.pages.hygiene`): the tables, the
   command, and the hand-written ``## Reading`` kept.

    python benchmarks/hygiene_report.py --data-dir ../shared/datasets --models rotate native --seeds 0 1
    python benchmarks/hygiene_report.py --models            # the hygiene table only
    python benchmarks/hygiene_report.py --models rotate native afme --recipes MKG-Y --seeds 0 1 2

With ``--recipes D`` each model trains from its recipe ``configs/recipes/D/<model>.yaml`` (its own
settings, as the same tuning search chose them on D's validation) instead of the one shared
recipe; the flags then set only the protocol (epochs, validation, patience, device), and the
multi-modal ones read ``--compare``'s name-text features.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from afme_lib.data.benchmarks import load_benchmark
from afme_lib.experiments.grid import load_grid, run_grid
from afme_lib.experiments.grid.spec import changed, parse_grid
from afme_lib.experiments.pages.hygiene import (
    clean_copy,
    collapse_lines,
    comparison_rows,
    hygiene_rows,
    model_variants,
)
from afme_lib.experiments.pages.real_data import recipe_text
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.real_data import recipe_fields, recipe_file
from afme_lib.extraction.text import extract_text_features
from afme_lib.models.registry import model_class

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "configs" / "hygiene.yaml"


def main(argv: list[str] | None = None) -> int:
    spec = load_grid(GRID)
    p = spec.parameters
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["MKG-W", "MKG-Y", "TIVA", "KVC16K"])
    parser.add_argument("--compare", default="TIVA", help="the benchmark trained on its original and cleaned split")
    parser.add_argument("--models", nargs="*", default=["rotate"], help="none: the hygiene table only")
    parser.add_argument("--seeds", nargs="+", type=int, default=spec.grid["seed"])
    parser.add_argument("--data-dir", default=p["data_dir"])
    parser.add_argument("--features-root", default="runs/features")
    parser.add_argument("--runs", default="runs/hygiene")
    parser.add_argument("--out", default="reports/hygiene")
    for flag in ("epochs", "dim", "lr", "batch_size", "negatives", "eval_every", "patience", "device"):
        value = p[flag]
        parser.add_argument("--" + flag.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each")
    parser.add_argument("--recipes", help="train each model from <recipes-dir>/<RECIPES>/<model>.yaml")
    parser.add_argument("--recipes-dir", default=str(ROOT / "configs" / "recipes"))
    args = parser.parse_args(argv)
    command = "python benchmarks/hygiene_report.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    lines = [
        "# Split hygiene: what the benchmarks let a model score without generalising",
        "",
        f"Command: `{command}` (runs are resumable and reused: rerunning rebuilds this page).",
        "",
        "Figures from `afme data info NAME` (afme_lib/data/leakage.py): rows of the split with the share in "
        "brackets; *in train* = the exact (h, r, t) is a training triple; *(h, t) in train, other relation* = "
        "the pair is linked in train under another relation; *(t, h)* = linked reversed; *entity unseen* = the "
        "head or tail occurs in no training row (structure cannot place it); *relation pairs* = "
        "relations sharing ≥ 80% of the smaller one's (h, t) (duplicate) or (t, h) (inverse) pairs, ≥ 10 pairs; "
        "*memorisation* = filtered MRR of a rule that ranks the query entity's training neighbours first "
        "(ties realistic), which needs no generalisation at all.",
        "",
    ]
    lines += hygiene_rows(args.datasets, args.data_dir)
    if args.models:
        original = load_benchmark(args.compare, data_dir=args.data_dir)
        clean = clean_copy(original, args.runs)
        features = None
        if any(model_class(m).reads_features for m in args.models):  # reused when built
            features = str(Path(args.features_root) / args.compare)
            extract_text_features(args.compare, features, data_dir=args.data_dir, device=args.device, progress=False)
        shared = {k: getattr(args, k) for k in ("epochs", "eval_every", "patience", "device", "data_dir")}
        axes = {"dataset": [str(original.path), str(clean)], "seed": args.seeds}
        if args.recipes:  # each model its own recipe: the grid file's shared one gives way
            variants = {m: recipe_fields(recipe_file(args.recipes_dir, args.recipes, m)) for m in args.models}
            for fields in variants.values():
                if "features" in fields:
                    fields["features"] = features
            grid = parse_grid({**spec.to_dict(), "parameters": shared, "grid": axes, "variants": variants}, source=GRID)
        else:
            variants = model_variants(args.models, features)
            own = {k: getattr(args, k) for k in ("dim", "lr", "batch_size", "negatives")}
            grid = changed(spec, parameters={**shared, **own}, axes=axes, variants=variants)
        results = run_grid(
            grid, report_dir=args.out, runs_dir=args.runs, workers=args.workers, readme=False, command=command
        )
        if args.recipes:
            own = "; ".join(f"{m} {recipe_text(v)}" for m, v in variants.items())
            recipe = (
                f"Recipes (both splits): each model's own, `configs/recipes/{args.recipes}/<model>.yaml`, as the "
                f"same tuning search chose them on {args.recipes}'s validation ({own}; "
                f"[recipes page](../recipes/{args.recipes}/README.md)); {args.compare}'s cleaned validation split "
                "is too small to tune on. "
            )
        else:
            recipe = (
                f"Recipe (both splits): dim {args.dim}, batch {args.batch_size}, {args.negatives} negatives, Adam "
                f"lr {args.lr}, self-adversarial loss (margin 6, temperature 1); multi-modal models: RotatE "
                "scorer, name text as the only modality, their recommended options. "
            )
        lines += [
            "",
            f"## {original.name}: original vs cleaned split",
            "",
            recipe + f"At most {args.epochs} epochs, validation every {args.eval_every} epochs (early stop after "
            f"{args.patience} without a gain; 0: never), best-valid checkpoint, seeds "
            f"{' '.join(map(str, args.seeds))}, device {args.device}. Filtered ranking, both sides, realistic "
            "ties; % as mean ± sample std over seeds. *cleaned test rows* = the model trained on the original "
            "split, scored on the test rows the cleaned split keeps.",
            "",
        ]
        lines += comparison_rows(results, grid, original, clean, args.compare)
        lines += collapse_lines(results, grid)
    print(f"wrote {write_page(Path(args.out) / 'README.md', lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
