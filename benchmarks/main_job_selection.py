"""Choose one of the main job's settings on the validation split: a model trained at each value,
over seeds, and its validation MRR by slice.

    python benchmarks/main_job_selection.py --model native        # its declared grid
        # -> reports/main/selection/native-structure_shuffle.{md,csv}
    python benchmarks/main_job_selection.py --model afme --field cross_check_margin   # a recheck
    python benchmarks/main_job_selection.py --model native --field dim   # a shared recheck
    python benchmarks/main_job_selection.py --model afme --field lr --values 0.003 0.01  # any field

Without ``--field`` the model's grid of :data:`afme_lib.experiments.selection.GRID` is run: the
same number of values for every model of the main job, chosen by mean validation MRR on the cold
attribute queries. A field of :data:`~afme_lib.experiments.selection.RECHECKS` (AFME settings
first set on test slices) or of :data:`~afme_lib.experiments.selection.SHARED_RECHECKS` (shared
settings, checked for every model alike) runs its declared values when none are given. Every run
has the main job's settings for ``--model`` (``main_job.TRAINING`` and the model's
``main_job.MODEL_SETTINGS``) but the field at the value of its row, and is trained
or reused from the shared run cache. The page shows validation MRR by slice, mean ± sample std
over the seeds, and the value the criterion picks; the CSV keeps every seed's figures. The test
split is never read. The seeds are the ones choices are made on (0, 1, 2), never the main job's
claim seeds (``main_job.CLAIM_SEEDS``).
"""

from __future__ import annotations

import argparse
import sys

import yaml

from afme_lib.analysis import slices
from afme_lib.experiments import main_job, selection
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import open_run, run_many
from afme_lib.experiments.spec import resolve_path, synthetic_folder


def value(text: str):
    """A command-line value as YAML reads it (0.4 -> float, 4 -> int, true -> bool)."""
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="afme")
    parser.add_argument("--field", help="a run-spec field (default: the model's in the declared grid)")
    parser.add_argument("--values", nargs="+", type=value, help="(default: the declared grid's)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(selection.SEEDS))
    main_job.add_run_arguments(parser)
    parser.add_argument("--out", help="page (default: reports/main/selection/<model>-<field>.md, a .csv beside it)")
    args = parser.parse_args(argv)
    overlap = sorted(set(args.seeds) & set(main_job.CLAIM_SEEDS))
    if overlap:
        parser.error(f"seeds {overlap} are the main job's claim seeds: no choice may be made on them")
    if args.field is None:
        if args.model not in selection.GRID:
            parser.error(f"{args.model} has no declared grid ({sorted(selection.GRID)}): give --field and --values")
        args.field, grid_values = selection.GRID[args.model]
        args.values = args.values or list(grid_values)
    elif not args.values:
        declared = selection.declared_values(args.model, args.field)
        if declared is None:
            parser.error("--field needs --values (declared: the grid and the rechecks of selection.py)")
        args.values = list(declared)
    training = {**main_job.TRAINING, "epochs": args.epochs, "dim": args.dim}
    specs = selection.specs(
        args.model,
        args.field,
        args.values,
        args.seeds,
        lambda seed: str(synthetic_folder(args.preset, seed, args.data_root)),
        training,
    )
    runs = {
        key: open_run(folder) for key, folder in run_many(specs, args.workers, resolve_path(args.runs_root)).items()
    }
    frame = selection.results(runs)
    first = next(iter(runs.values()))
    counts = slices.slice_counts(slices.slice_masks(first.trainer.dataset, first.truth, selection.SPLIT))
    best = selection.chosen(frame)
    command = "python benchmarks/main_job_selection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    settings = ", ".join(f"{k} {v}" for k, v in training.items() if k != args.field)
    own = {k: v for k, v in main_job.own_settings(args.model, training).items() if k != args.field}
    if own:
        settings += "; " + ", ".join(f"{k} {v}" for k, v in own.items())
    lines = [
        f"# `{args.field}` of {args.model} on `{args.preset}`, chosen on the validation split",
        "",
        f"Made by `{command.strip()}`. {args.model} with the main job's settings ({settings}) but `{args.field}` "
        f"at each value; seeds {', '.join(map(str, args.seeds))} (each generates its own graph). Validation MRR "
        "in % by slice, mean ± sample std over the seeds; the test split is not read. Every seed's figures: "
        "the CSV beside this page.",
        "",
        f"Best mean validation MRR on {selection.CRITERION}: **{args.field} {best}**.",
        "",
        *slices.markdown(selection.table(frame, counts).rename_axis(args.field)),
    ]
    out = resolve_path(args.out or f"{selection.FOLDER}/{args.model}-{args.field}.md")
    write_page(out, lines)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
