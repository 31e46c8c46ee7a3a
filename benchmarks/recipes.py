"""Recipes per dataset and model: ``afme tune`` on every model of a dataset with the same search,
then each best.yaml copied to ``configs/recipes/<dataset>/<model>.yaml`` and the comparison page.

1. runs (or continues) the study of each ``configs/tune/<dataset>/<model>.yaml`` into
   ``<runs>/<dataset>/<model>/`` until it holds ``--trials`` finished trials (the spec's own
   budget by default), as ``afme tune SPEC --trials N --out DIR`` does;
2. copies each study's best.yaml to ``configs/recipes/<dataset>/<model>.yaml`` and writes its page
   into ``<out>/<dataset>/<model>/`` (:mod:`afme_lib.experiments.pages.recipes`);
3. evaluates each best trial's run on test once and writes ``<out>/<dataset>/README.md``, and
   ``<out>/README.md``, the list of the datasets' pages.

    python benchmarks/recipes.py --dataset synth-default --trials 8
    python benchmarks/recipes.py --dataset MKG-Y --trials 10
    python benchmarks/recipes.py --dataset synth-default --dataset MKG-Y --report-only
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from afme_lib.experiments.pages.recipes import publish, read_recipe, recipes_index, recipes_page
from afme_lib.experiments.tuning import TuneSpec, tune

ROOT = Path(__file__).resolve().parents[1]
TUNE_SPECS = ROOT / "configs" / "tune"
RECIPES = ROOT / "configs" / "recipes"


def describe(spec: TuneSpec) -> str:
    """One line: what every model of the dataset was searched over, with which budget."""
    space = "; ".join(f"{d.name} {d.describe()}" for d in spec.space)
    base = spec.trial_spec({}).train
    return (
        f"Search: {space}; {spec.trials} trials of {base.epochs} epochs (validation every {base.eval_every}), "
        f"TPE seed {spec.seed}, {spec.pruner} pruner; objective validation {spec.objective.name}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", required=True, help="a folder of configs/tune/ (repeatable)")
    parser.add_argument("--models", nargs="+", help="default: every spec in configs/tune/<dataset>/")
    parser.add_argument("--trials", type=int, help="finished trials per study (default: each spec's own)")
    parser.add_argument("--workers", type=int, default=1, help="trials at once (default 1)")
    parser.add_argument("--runs", default="runs/tune", help="where the studies live (default runs/tune)")
    parser.add_argument("--out", default="reports/recipes")
    parser.add_argument("--report-only", action="store_true", help="publish finished studies; run no trial")
    args = parser.parse_args(argv)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python benchmarks/recipes.py " + shlex.join(given)

    for dataset in args.dataset:
        recipes = []
        specs = sorted((TUNE_SPECS / dataset).glob("*.yaml"))
        if args.models:
            specs = [s for s in specs if s.stem in args.models]
        if not specs:
            parser.error(f"no tune specs in {TUNE_SPECS / dataset}")
        for spec_file in specs:
            study_dir = Path(args.runs) / dataset / spec_file.stem
            spec = TuneSpec.from_yaml(spec_file)
            search = describe(spec)
            if not args.report_only:
                tune(spec, study_dir, trials=args.trials, workers=args.workers)
            publish(study_dir, RECIPES / dataset / f"{spec_file.stem}.yaml", Path(args.out) / dataset / spec_file.stem)
            recipes.append(read_recipe(study_dir, dataset, spec_file.stem))
            print(f"{dataset} {spec_file.stem}: recipe written", flush=True)
        print(f"wrote {recipes_page(recipes, Path(args.out) / dataset / 'README.md', command, search)}")
    print(f"wrote {recipes_index(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
