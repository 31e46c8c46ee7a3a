"""The structure-only baselines against the literature: the pages of ``configs/reproduction.yaml``
(reports/reproduction/README.md) and ``configs/tuning.yaml`` (reports/reproduction/tuning.md).

Both tabulate test MRR / Hits@1 / Hits@10 in % of each finished run (best-valid checkpoint)
beside the numbers the AFME article reports (MKG-W) and the random-ranking yardstick.
"""

from __future__ import annotations

import pandas as pd

from afme_lib.engine.run_folder import RunFolder
from afme_lib.experiments.grid.spec import Grid
from afme_lib.experiments.pages.writer import RANDOM_NOTE, finished_runs, random_ranking

# MRR / Hits@1 in % as reported in the AFME article (MKG-W).
PUBLISHED = {
    ("MKG-W", "transe"): (29.19, 21.06),
    ("MKG-W", "distmult"): (20.99, 15.93),
    ("MKG-W", "complex"): (24.93, 19.09),
    ("MKG-W", "rotate"): (33.67, 26.80),
}


def _gap(dataset: str, model: str, mrr: float) -> str:
    pub = PUBLISHED.get((dataset, model))
    return f"{100 * mrr - pub[0]:+.2f}" if pub else "–"


def _whole(value) -> str:
    return "None" if pd.isna(value) else str(int(value))


def _per_epoch(row) -> str:
    return f"{row['train_seconds'] / max(int(row['epochs_run']), 1):.1f}"


def reproduction_page(results: pd.DataFrame, grid: Grid, command: str, data_dir: str | None = None) -> list[str]:
    """The reproduction page from the grid's ``results.csv``: one row per (dataset, model) in the
    grid's order (``not run yet`` for a run not finished), each dataset's random ranking below."""
    models = [v["model"] for v in grid.variants.values()]
    datasets = list(grid.grid.get("dataset", [grid.parameters.get("dataset")]))
    lines = [
        "# Structure-only baselines: reproduction against the literature",
        "",
        f"Command: `{command}` (runs are resumable and reused; "
        "`--report-only` rebuilds this table from finished runs).",
        "",
        "Settings per model are in `configs/reproduction.yaml` and on the models (`recommended_train_options`): "
        "batch 1024, 64 negatives, Adam, seed 0; RotatE "
        "250 complex coordinates, TransE-L1 dim 250, both self-adversarial loss (margin 6, temperature 1); "
        "DistMult dim 250 and ComplEx 250 complex coordinates, logistic loss with N3 weight 1e-3.",
        "",
        "Filtered test ranking, both sides, realistic ties; best-valid checkpoint; metrics in %. "
        "Published: the AFME article's table (MKG-W only). " + RANDOM_NOTE,
        "",
        "| dataset | model | MRR | Hits@1 | Hits@10 | published MRR | published Hits@1 | gap MRR | epochs | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for model in models:
            runs = finished_runs(results, dataset=dataset, model=model)
            if runs.empty:
                lines.append(f"| {dataset} | {model} | not run yet | | | | | | | |")
                continue
            t = runs.iloc[0]
            pub = PUBLISHED.get((dataset, model))
            pub_cells = f"{pub[0]:.2f} | {pub[1]:.2f}" if pub else "– | –"
            lines.append(
                f"| {dataset} | {model} | {100 * t['mrr']:.2f} | {100 * t['hits@1']:.2f} | "
                f"{100 * t['hits@10']:.2f} | {pub_cells} | {_gap(dataset, model, t['mrr'])} | "
                f"{int(t['epochs_run'])} | {_per_epoch(t)} |"
            )
        rnd = random_ranking(dataset, data_dir)
        if rnd:
            lines.append(
                f"| {dataset} | random ranking | {100 * rnd['mrr']:.2f} | {100 * rnd['hits@1']:.2f} | "
                f"{100 * rnd['hits@10']:.2f} | | | | | |"
            )
    return lines


def tuning_page(results: pd.DataFrame, grid: Grid, runs: str, data_dir: str | None = None) -> list[str]:
    """The tuning page from the grid's ``results.csv``: every finished (model, variant) with the
    variant's settings, best valid MRR and its epoch, the test metrics of that checkpoint, the gap
    to the published MRR and the valid-MRR curve from the run's ``log.jsonl``."""
    p = grid.parameters
    dataset = p["dataset"]
    rows = []
    for model in grid.grid.get("model", [p.get("model")]):
        for variant, overrides in grid.variants.items():
            for _, m in finished_runs(results, model=model, variant=variant).iterrows():
                curve = " / ".join(f"{r['valid']['mrr']:.3f}" for r in RunFolder(m["run_dir"]).log if r.get("valid"))
                settings = ", ".join(f"{k} {v}" for k, v in overrides.items())
                rows.append(
                    f"| {model} | {variant} | {settings} | {100 * m['valid_mrr']:.2f} | {_whole(m['best_epoch'])} | "
                    f"{100 * m['mrr']:.2f} | {100 * m['hits@1']:.2f} | {100 * m['hits@10']:.2f} | "
                    f"{_gap(dataset, model, m['mrr'])} | {int(m['epochs_run'])} | {_per_epoch(m)} | {curve} |"
                )
    lines = [
        f"# Baseline tuning sweep on {dataset}",
        "",
        "Command, per row: `python benchmarks/tune_baselines.py --dataset "
        + dataset
        + " --models MODEL --variants VARIANT --epochs EPOCHS"
        + f" --eval-every {p['eval_every']}"
        + " [--compile]`; the table lists every finished variant under `"
        + str(runs)
        + "`. Settings otherwise as `configs/reproduction.yaml` (batch 1024, 64 negatives, "
        "Adam lr 1e-3, seed 0), patience 2 validations; metrics in %, test from the best-valid checkpoint. "
        + RANDOM_NOTE,
        "",
        "| model | variant | settings | best valid MRR | best epoch | test MRR | test Hits@1 | test Hits@10 | gap to published MRR | epochs | s/epoch | valid MRR curve |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    rnd = random_ranking(dataset, data_dir)
    if rnd:
        lines.append(
            f"| random ranking | | | | | {100 * rnd['mrr']:.2f} | {100 * rnd['hits@1']:.2f} | "
            f"{100 * rnd['hits@10']:.2f} | | | | |"
        )
    return lines
