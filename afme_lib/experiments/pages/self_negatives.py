"""Self-negatives on real descriptions: the page of ``configs/self-negatives.yaml``
(reports/self-negatives/).

Each model is trained at every self-negative weight of the grid (0: none) over several seeds.
The default weight (``TrainConfig.self_negatives``) is the one with the best validation MRR
averaged over the models, and each model's own best is marked; the page then reads the test
split at the default weight beside no self-negatives: MRR, Hits@1, Hits@10 and the share of test
queries answered with the asked entity (mean ± sample std over seeds), and the paired Hits@1 gain
per seed.
"""

from __future__ import annotations

import pandas as pd

from afme_lib.experiments.grid.report import mean_std_of as _pm
from afme_lib.experiments.grid.spec import Grid
from afme_lib.experiments.pages.writer import RANDOM_NOTE, finished_runs, random_ranking

WEIGHT = "self_negatives"
OFF = 0.0
# What the page checks of the default weight, on test: self-answers below this share in every seed.
MOST_SELF_ANSWERS = 0.05


def _runs(results: pd.DataFrame, variant: str, weight: float) -> pd.DataFrame:
    runs = finished_runs(results, variant=variant)
    return runs[pd.to_numeric(runs[WEIGHT]) == weight].set_index("seed")


def _test_row(variant: str, weight: float, runs: pd.DataFrame, gains: str = "", holds: str = "") -> str:
    return (
        f"| {variant} | {weight:g} | {len(runs)} | {_pm(runs['mrr'], 'mrr')} | {_pm(runs['hits@1'], 'hits@1')} | "
        f"{_pm(runs['hits@10'], 'hits@10')} | {_pm(runs['self_answer'], 'self_answer')} | {gains} | {holds} |"
    )


def mean_valid_mrr(results: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Mean validation MRR over finished seeds, one row per variant and a column per weight."""
    rows = {}
    for variant in variants:
        runs = finished_runs(results, variant=variant)
        if not runs.empty:
            rows[variant] = runs.assign(w=pd.to_numeric(runs[WEIGHT])).groupby("w")["valid_mrr"].mean()
    return pd.DataFrame(rows).T


def default_weight(results: pd.DataFrame, variants: list[str]) -> float | None:
    """The weight with the best validation MRR averaged over the variants (each counted once; the
    test split plays no part), among the weights every variant finished; None before that."""
    table = mean_valid_mrr(results, variants).dropna(axis=1)
    return None if table.empty else float(table.mean().idxmax())


def self_negatives_page(results: pd.DataFrame, grid: Grid, command: str, data_dir: str | None = None) -> list[str]:
    """The page's lines from the grid's ``results.csv`` and the grid (settings, weights, seeds)."""
    p = grid.parameters
    variants = list(grid.variants)
    weights = [float(w) for w in grid.grid[WEIGHT]]
    seeds = list(grid.grid["seed"])
    means = mean_valid_mrr(results, variants)
    default = default_weight(results, variants)
    best = {v: float(row.idxmax()) for v, row in means.iterrows()}
    lines = [
        "# Self-negatives: the asked entity as a negative of its own query",
        "",
        f"Command: `{command}` (runs are resumable and reused; `--report-only` rebuilds this page from finished runs).",
        "",
        f"Dataset: `{p['dataset']}` (UMLS with a description per concept; text features: MiniLM of "
        "`texts.tsv`). Every model: dim {dim}, {epochs} epochs, batch {batch}, {neg} sampled negatives, Adam "
        "lr {lr}, validation every {every} epochs, best-valid checkpoint; the multi-modal models read the text "
        "features only, NATIVE with its own recipe (`recommended_train_options`). Seeds {seeds}. Filtered "
        "ranking, both sides, realistic ties; metrics in % as mean ± sample std over seeds. "
        "*Self-answers*: queries whose top-ranked candidate is the entity the query asks about (never "
        "a true answer here).".format(
            dim=p["dim"],
            epochs=p["epochs"],
            batch=p["batch_size"],
            neg=p["negatives"],
            lr=p["lr"],
            every=p["eval_every"],
            seeds=" ".join(map(str, seeds)),
        ),
        "",
        "## Choosing the weight on validation",
        "",
        "Validation MRR (%) per weight, validation self-answers (%) in brackets; each model's best weight "
        "in **bold**. The last row averages the models: its best is the default weight "
        f"(`TrainConfig.self_negatives`): **{default:g}**."
        if default is not None
        else "Validation MRR (%) per weight (no weight finished for every model yet).",
        "",
        "| model | " + " | ".join(f"weight {w:g}" for w in weights) + " |",
        "|---|" + "---|" * len(weights),
    ]
    for variant in variants:
        cells = []
        for w in weights:
            runs = _runs(results, variant, w)
            if runs.empty:
                cells.append("–")
                continue
            text = f"{_pm(runs['valid_mrr'], 'mrr')} ({_pm(runs['valid_self_answer'], 'self_answer')})"
            cells.append(f"**{text}**" if best.get(variant) == w else text)
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    if default is not None:
        average = means.mean()
        lines.append(
            "| mean of the models | "
            + " | ".join(
                ("**{:.2f}**" if w == default else "{:.2f}").format(100 * average[w])
                if w in average and average[w] == average[w]
                else "–"
                for w in weights
            )
            + " |"
        )
    lines += [
        "",
        "## Test, without and with self-negatives",
        "",
        "At the default weight beside none. ΔHits@1 per seed: the paired gain, in points of %.",
        "",
        "| model | weight | seeds | MRR | Hits@1 | Hits@10 | self-answers | ΔHits@1 per seed | self-answers "
        f"< {100 * MOST_SELF_ANSWERS:.0f} % and Hits@1 up in every seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        off = _runs(results, variant, OFF)
        if off.empty:
            lines.append(f"| {variant} | {OFF:g} | 0 | not run yet | | | | | |")
            continue
        lines.append(_test_row(variant, OFF, off))
        on = _runs(results, variant, default) if default not in (None, OFF) else pd.DataFrame()
        if on.empty:
            continue
        both = sorted(set(off.index) & set(on.index))
        gains = [100 * (float(on.loc[s, "hits@1"]) - float(off.loc[s, "hits@1"])) for s in both]
        holds = (
            bool(both) and all(g > 0 for g in gains) and bool((on.loc[both, "self_answer"] < MOST_SELF_ANSWERS).all())
        )
        lines.append(_test_row(variant, default, on, " / ".join(f"{g:+.2f}" for g in gains), "yes" if holds else "no"))
    rnd = random_ranking(str(p["dataset"]), data_dir)
    if rnd:
        lines += [
            "",
            f"A random ranking of this test split scores MRR {100 * rnd['mrr']:.2f}, Hits@1 "
            f"{100 * rnd['hits@1']:.2f}, Hits@10 {100 * rnd['hits@10']:.2f}. " + RANDOM_NOTE,
        ]
    lines.append("")
    return lines


def _every(batches: int) -> str:
    return "every batch" if int(batches) == 1 else f"every {int(batches)} batches"


def synthetic_section(results: pd.DataFrame, grid: Grid) -> list[str]:
    """The second section: the synthetic default preset at the main job's settings, with and
    without self-negatives, on validation (what the main job's choice rests on)."""
    p = grid.parameters
    weights = [float(w) for w in grid.grid[WEIGHT]]
    seeds = list(grid.grid["seed"])
    lines = [
        "## The synthetic default preset (the main job's shared settings)",
        "",
        f"Generator and training seeds {' '.join(map(str, seeds))}; dim {p['dim']}, {p['epochs']} epochs, batch "
        f"{p['batch_size']}, {p['negatives']} negatives, lr {p['lr']}, AFME's adversarial updates {_every(p.get('adversarial_every', 1))} at "
        f"gen_lr {p['gen_lr']} (`afme_lib/experiments/main_job.py`). Validation only: MRR and self-answers (%), and the "
        "paired change of validation MRR per seed, in points.",
        "",
        "| model | " + " | ".join(f"weight {w:g}: MRR | self-answers" for w in weights) + " | ΔMRR per seed |",
        "|---|" + "---|---|" * len(weights) + "---|",
    ]
    for variant in grid.variants:
        cells, per_weight = [], {}
        for w in weights:
            runs = _runs(results, variant, w)
            per_weight[w] = runs
            cells += (
                [_pm(runs["valid_mrr"], "mrr"), _pm(runs["valid_self_answer"], "self_answer")]
                if len(runs)
                else ["–", "–"]
            )
        off, on = per_weight[weights[0]], per_weight[weights[-1]]
        both = sorted(set(off.index) & set(on.index))
        change = " / ".join(
            f"{100 * (float(on.loc[s, 'valid_mrr']) - float(off.loc[s, 'valid_mrr'])):+.2f}" for s in both
        )
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {change} |")
    lines.append("")
    return lines
