"""Choose one of the main job's settings on the validation split: AFME trained at each value, over
seeds, and its validation MRR by slice.

    python benchmarks/main_job_selection.py --field structure_shuffle --values 0.2 0.4 0.6 [--seeds 0 1 2]
        # -> reports/main/selection/afme-structure_shuffle.md

Every run has the main job's settings for ``--model`` (``main_job.TRAINING`` and the model's
``main_job.MODEL_SETTINGS``) but ``--field`` (any run-spec field) at the value of its row, and is trained or reused from the shared run cache. The table is
validation MRR by slice, mean ± sample std over the seeds, with the slice a choice should be made
on first; the test split is never read. The seeds are the ones choices are made on (0, 1, 2), not
the main job's claim seeds (``main_job.CLAIM_SEEDS``).
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
import yaml

from afme_lib.analysis import slices
from afme_lib.core import ablations
from afme_lib.experiments import comparisons, main_job
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import CACHE_ROOT, open_run, run_many
from afme_lib.experiments.spec import DATA_ROOT, RunSpec, resolve_path, synthetic_folder

SPLIT = "valid"


def value(text: str):
    """A command-line value as YAML reads it (0.4 -> float, 4 -> int, true -> bool)."""
    return yaml.safe_load(text)


def selection_table(runs: dict[tuple, object]) -> pd.DataFrame:
    """Validation MRR % by slice, mean ± std over seeds, one row per value (runs keyed (value, seed))."""
    rows = []
    for (v, seed), run in runs.items():
        mrr = comparisons.run_slice_mrr(run, SPLIT)
        rows.append({"value": v, "seed": seed, **{k: 100 * x for k, x in mrr.items()}})
    frame = pd.DataFrame(rows)
    columns = [c for c in frame.columns if c.startswith(ablations.COLD_ATTRIBUTE)] + ["all"]
    grouped = frame.groupby("value", sort=False)[columns]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    table = mean.map("{:.2f}".format) + " ± " + std.map(lambda x: "n/a" if pd.isna(x) else f"{x:.2f}")
    first = next(iter(runs.values()))
    counts = slices.slice_counts(slices.slice_masks(first.trainer.dataset, first.truth, SPLIT))
    table.loc["queries (first seed)"] = [str(counts.get(c, 0)) for c in columns]
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", required=True, help="a run-spec field, e.g. structure_shuffle")
    parser.add_argument("--values", nargs="+", required=True, type=value)
    parser.add_argument("--model", default="afme")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=main_job.TRAINING["epochs"])
    parser.add_argument("--dim", type=int, default=main_job.TRAINING["dim"])
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once (default: 2)")
    parser.add_argument("--runs-root", default=CACHE_ROOT)
    parser.add_argument("--data-root", default=DATA_ROOT)
    parser.add_argument("--out", help="page (default: reports/main/selection/<model>-<field>.md)")
    args = parser.parse_args(argv)
    overlap = sorted(set(args.seeds) & set(main_job.CLAIM_SEEDS))
    if overlap:
        parser.error(f"seeds {overlap} are the main job's claim seeds: no choice may be made on them")
    training = {**main_job.TRAINING, "epochs": args.epochs, "dim": args.dim}
    specs = {
        (v, seed): RunSpec.from_fields(
            {
                **training,
                "dataset": str(synthetic_folder(args.preset, seed, args.data_root)),
                "model": args.model,
                "seed": seed,
                "progress": False,
                **main_job.MODEL_SETTINGS.get(args.model, {}),
                args.field: v,
            }
        )
        for v in args.values
        for seed in args.seeds
    }
    runs = {
        key: open_run(folder) for key, folder in run_many(specs, args.workers, resolve_path(args.runs_root)).items()
    }
    table = selection_table(runs)
    command = "python benchmarks/main_job_selection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    settings = ", ".join(f"{k} {v}" for k, v in training.items() if k != args.field)
    lines = [
        f"# `{args.field}` of {args.model} on `{args.preset}`, chosen on the validation split",
        "",
        f"Made by `{command.strip()}`. {args.model} with the main job's settings ({settings}) but `{args.field}` "
        f"at each value; seeds {', '.join(map(str, args.seeds))} (each generates its own graph). Validation MRR "
        "in % by slice, mean ± sample std over the seeds; the test split is not read.",
        "",
        *slices.markdown(table.rename_axis(args.field)),
    ]
    out = resolve_path(args.out or f"reports/main/selection/{args.model}-{args.field}.md")
    write_page(out, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
