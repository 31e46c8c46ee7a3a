"""Pages of the real-data comparisons (:mod:`afme_lib.experiments.real_data`): every model at its
recipe under one protocol, and AFME's ablation on the same data.

Both pages read the grid's ``results.csv`` (its ``ok`` rows) and, for the per-category table,
each run's ``metrics.json``; the per-category figures are also kept in ``categories.csv`` beside
``results.csv``, so that a page rebuilt where the run folders are absent keeps them. Metrics are
filtered test ranks (both sides, realistic ties) at the best-valid checkpoint, in % as mean ±
sample std over seeds; a paired gain is the mean ± std of the per-seed differences over the
seeds both runs finished.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from afme_lib.core import ablations
from afme_lib.engine.run_folder import read_json
from afme_lib.experiments.grid.report import mean_std_of as _pm
from afme_lib.experiments.grid.spec import Grid
from afme_lib.experiments.pages.writer import (
    RANDOM_NOTE,
    finished_runs,
    random_ranking,
    seconds_per_epoch,
    strongest_variant,
)
from afme_lib.experiments.real_data import FULL, STRUCTURE, inert_ablations
from afme_lib.models.registry import model_class

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
CATEGORIES_CSV = "categories.csv"
GAIN_METRICS = ("mrr", "hits@1", "hits@3", "hits@10")


def model_of(grid: Grid, variant: str) -> str:
    return grid.variants[variant].get("model", grid.parameters.get("model", variant))


def inputs_of(model: str, grid: Grid, variant: str) -> str:
    if not model_class(model).reads_features:
        return "structure only"
    fields = {**grid.parameters, **grid.variants[variant]}
    return "structure + " + " + ".join(fields.get("modalities") or ["features"])


def recipe_text(fields: dict) -> str:
    """The settings a recipe search chose, as the pages print them."""
    return f"lr {fields['lr']:.3g}, margin {fields['margin']:.3g}, dim {fields['dim']}"


def paired(results: pd.DataFrame, variant: str, base: str) -> pd.DataFrame:
    """Per-seed differences ``variant - base`` of GAIN_METRICS over the seeds both finished."""
    a = finished_runs(results, variant=variant).set_index("seed")
    b = finished_runs(results, variant=base).set_index("seed")
    both = sorted(set(a.index) & set(b.index))
    return pd.DataFrame({m: a.loc[both, m].astype(float) - b.loc[both, m].astype(float) for m in GAIN_METRICS})


def significant(deltas: pd.Series) -> bool:
    """The mean change exceeds twice its standard error (needs two seeds or more)."""
    if len(deltas) < 2:
        return False
    se = deltas.std(ddof=1) / math.sqrt(len(deltas))
    return abs(deltas.mean()) > 2 * se


def category_rows(results: pd.DataFrame, report_dir: str | Path) -> pd.DataFrame:
    """Per run and relation category: the test query count and MRR / Hits@10, read from each
    finished run's metrics.json; rows recorded in ``categories.csv`` are kept for runs whose
    folder is not on this machine. The table is written back."""
    path = Path(report_dir) / CATEGORIES_CSV
    recorded = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["cell"])
    rows = []
    for _, run in finished_runs(results).iterrows():
        metrics = Path(str(run["run_dir"])) / "metrics.json"
        if not metrics.is_file():
            rows += recorded[recorded["cell"] == run["cell"]].to_dict("records")
            continue
        by_category = read_json(metrics)["test"].get("by_category") or {}
        for category, m in by_category.items():
            rows.append(
                {
                    "cell": run["cell"],
                    "variant": run["variant"],
                    "seed": run["seed"],
                    "category": category,
                    "count": m["count"],
                    "mrr": m["mrr"],
                    "hits@10": m["hits@10"],
                }
            )
    table = pd.DataFrame(rows, columns=["cell", "variant", "seed", "category", "count", "mrr", "hits@10"])
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def _protocol_text(grid: Grid, devices: str) -> str:
    p = grid.parameters
    return (
        f"Protocol, the same for every model: at most {p['epochs']} epochs, validation every {p['eval_every']} "
        f"epochs, early stop after {p['patience']} validations without a gain, best-valid checkpoint; device "
        f"{devices or p.get('device', 'auto')}. Filtered test ranking against all entities, head and tail "
        "queries, realistic ties; metrics in % as mean ± sample std over seeds. " + RANDOM_NOTE
    )


def _devices(results: pd.DataFrame) -> str:
    done = finished_runs(results)
    return ", ".join(sorted(set(done["device_used"].astype(str)))) if len(done) else ""


def _random_row(dataset: str, data_dir: str | None, blanks: int, metrics, after: int) -> list[str]:
    """The random-ranking yardstick as a table row: ``blanks`` empty cells after its name, then
    ``metrics``, then ``after`` empty cells."""
    rnd = random_ranking(dataset, data_dir)
    if not rnd:
        return []
    cells = " | ".join(f"{100 * rnd[m]:.2f}" for m in metrics)
    return ["| random ranking |" + " |" * blanks + f" {cells} |" + " |" * after]


def comparison_page(
    results: pd.DataFrame, grid: Grid, command: str, report_dir: str | Path, data_dir: str | None = None
) -> list[str]:
    """The comparison page's lines: every model at its recipe, the paired gains against the
    strongest RotatE (chosen on validation) and against NATIVE, per relation category, and the
    goal (AFME at or above NATIVE over the seeds, above every other baseline) with its distance."""
    dataset = Path(grid.parameters["dataset"]).name
    seeds = list(grid.grid["seed"])
    lines = [
        f"# {dataset}: every model at its recipe, one protocol",
        "",
        f"Command: `{command}` (runs are resumable and reused; `--report-only` rebuilds this page from finished runs).",
        "",
        f"Each model trains from its recipe `configs/recipes/{dataset}/<model>.yaml`: its settings as the "
        "same tuning search chose them on validation for every model "
        f"([recipes page](../recipes/{dataset}/README.md)); only the protocol below replaces the "
        "study's short budget. " + _protocol_text(grid, _devices(results)),
        "",
        f"Seeds {', '.join(map(str, seeds))} for the models with several; the others once (seed {seeds[0]}).",
        "",
        "| model | inputs | recipe | seeds | MRR | Hits@1 | Hits@3 | Hits@10 | valid MRR | best epoch | "
        "epochs run | s/epoch | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in grid.variants:
        model = model_of(grid, variant)
        runs = finished_runs(results, variant=variant)
        head = f"| {variant} | {inputs_of(model, grid, variant)} | {recipe_text({**grid.parameters, **grid.variants[variant]})} |"
        if runs.empty:
            lines.append(f"{head} 0 | not run yet | | | | | | | | |")
            continue
        lines.append(
            f"{head} {len(runs)} | "
            + " | ".join(_pm(runs[m], m) for m in GAIN_METRICS)
            + f" | {_pm(runs['valid_mrr'])} | {pd.to_numeric(runs['best_epoch']).mean():.0f} | "
            f"{pd.to_numeric(runs['epochs_run']).mean():.0f} | {seconds_per_epoch(runs).mean():.1f} | {', '.join(sorted(set(runs['device_used'].astype(str))))} |"
        )
    lines += _random_row(grid.parameters["dataset"], data_dir, 3, GAIN_METRICS, 5)

    strongest = strongest_variant(results, [v for v in grid.variants if model_of(grid, v) == STRUCTURE])
    bases = [b for b in (strongest, "native") if b in grid.variants]
    lines += [
        "",
        "## Paired gains",
        "",
        f"Per model, the change against a reference on the same seed, in points of %. The strongest RotatE "
        f"is the dimension with the best mean validation MRR ({strongest or 'none finished'}; chosen on "
        "validation, not on test). *Ahead*: seeds where the model's MRR is above the reference's; "
        "*> 2 s.e.*: the mean change is larger than twice its standard error.",
        "",
        "| model | against | seeds | ΔMRR | ΔHits@1 | ΔHits@3 | ΔHits@10 | smallest ΔMRR | ahead | > 2 s.e. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for base in bases:
        for variant in grid.variants:
            if variant == base or model_of(grid, variant) == STRUCTURE:
                continue
            d = paired(results, variant, base)
            if d.empty:
                continue
            lines.append(
                f"| {variant} | {base} | {len(d)} | "
                + " | ".join(_pm(d[m], m) for m in GAIN_METRICS)
                + f" | {100 * d['mrr'].min():+.2f} | {(d['mrr'] > 0).sum()} of {len(d)} | "
                f"{'yes' if significant(d['mrr']) else 'no'} |"
            )

    cats = category_rows(results, report_dir)
    if not cats.empty:
        present = [c for c in CATEGORIES if c in set(cats["category"])]
        counts = cats.groupby("category")["count"].first()
        lines += [
            "",
            "## By relation category",
            "",
            "Test MRR in % (mean over the model's seeds) by the relation category of the query's triple "
            "(head / tail cardinality, from the training triples); the header gives the ranked queries per "
            "category (head and tail).",
            "",
            "| model | " + " | ".join(f"{c} ({int(counts[c])})" for c in present) + " |",
            "|---|" + "---|" * len(present),
        ]
        for variant in grid.variants:
            rows = cats[cats["variant"] == variant]
            if rows.empty:
                continue
            means = rows.groupby("category")["mrr"].mean()
            lines.append(f"| {variant} | " + " | ".join(f"{100 * means.get(c, math.nan):.2f}" for c in present) + " |")

    lines += ["", "## Goal", ""] + goal_lines(results, grid)
    return lines


def goal_lines(results: pd.DataFrame, grid: Grid) -> list[str]:
    """Whether AFME is at or above NATIVE in paired comparison over the seeds, and above every
    other baseline run here, with the distance where it is not."""
    if FULL not in grid.variants:
        return ["AFME is not in this comparison."]
    out = []
    versus = paired(results, FULL, "native") if "native" in grid.variants else pd.DataFrame()
    if not versus.empty:
        mean = 100 * versus["mrr"].mean()
        met = mean >= 0
        out.append(
            f"- AFME at or above NATIVE (paired MRR over {len(versus)} seeds): AFME − NATIVE = "
            f"{_pm(versus['mrr'])} points, ahead on {(versus['mrr'] > 0).sum()} of {len(versus)} seeds: "
            + ("**met**." if met else f"**not met**, {-mean:.2f} points short.")
        )
    afme = finished_runs(results, variant=FULL)
    others = {
        v: pd.to_numeric(runs["mrr"]).mean()
        for v in grid.variants
        if v not in (FULL, "native") and not (runs := finished_runs(results, variant=v)).empty
    }
    if not afme.empty and others:
        best = max(others, key=others.get)
        gap = 100 * (pd.to_numeric(afme["mrr"]).mean() - others[best])
        out.append(
            f"- AFME above every other baseline (mean MRR): the best of them is {best} "
            f"({100 * others[best]:.2f}); AFME − {best} = {gap:+.2f} points: "
            + ("**met**." if gap > 0 else f"**not met**, {-gap:.2f} points short.")
        )
    return out or ["No finished AFME run yet."]


def ablation_page(
    results: pd.DataFrame,
    grid: Grid,
    command: str,
    comparison: str,
    missing: dict,
    data_dir: str | None = None,
) -> list[str]:
    """The ablation page's lines: AFME's recipe with each component switched off, paired against
    the full model on the same seeds. ``missing`` is ``{modality: (entities without a row,
    entities)}`` of the features read: a component that only completes missing rows is marked
    as unable to matter where none is missing. ``comparison``: the page whose AFME runs the full
    model's row shares."""
    dataset = Path(grid.parameters["dataset"]).name
    p = grid.parameters
    gaps = ", ".join(f"{m}: {n} of {total} entities without a row" for m, (n, total) in missing.items())
    lines = [
        f"# {dataset}: AFME's ablation at its recipe",
        "",
        f"Command: `{command}` (runs are resumable and reused; `--report-only` rebuilds this page from finished runs).",
        "",
        f"AFME trains from its recipe `configs/recipes/{dataset}/afme.yaml` (lr {p['lr']:.3g}, margin "
        f"{p['margin']:.3g}, dim {p['dim']}, modalities {', '.join(p.get('modalities') or [])}) with one "
        "component switched off per row (`afme_lib/core/ablations.py`); the full model's runs are those of "
        f"the [comparison]({comparison}). " + _protocol_text(grid, _devices(results)),
        "",
        f"Features read: {gaps or 'none'}.",
        "",
        "Paired against the full model on the same seed: *ΔMRR* mean ± std in points, *below*: seeds where "
        "the variant's MRR is under the full model's, *> 2 s.e.*: the mean change exceeds twice its standard "
        "error.",
        "",
        "| variant | switch | seeds | MRR | Hits@1 | Hits@10 | ΔMRR vs full | below | > 2 s.e. | can it matter here? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    nothing_missing = bool(missing) and all(n == 0 for n, _ in missing.values())
    inert = inert_ablations(p)
    for name in ablations.NAMES:  # the named order, each ablation where it stands
        variant = FULL if name == ablations.FULL else name
        if name in inert:
            switch = ablations.ABLATIONS[name].switch
            lines.append(f"| {name} | `{switch}` | 0 | not run | | | | | | no: {inert[name]} |")
            continue
        if variant not in grid.variants:
            continue
        runs = finished_runs(results, variant=variant)
        switch = "" if name == ablations.FULL else f"`{ablations.ABLATIONS[name].switch}`"
        matters = "yes"
        if name == "w/o GAN" and nothing_missing:
            matters = (
                "not as completion: no entity misses a row, so MoIEn completes nothing; the switch still "
                "removes the critic, whose updates shape the generator the row cross-check uses"
            )
        if runs.empty:
            lines.append(f"| {variant} | {switch} | 0 | not run yet | | | | | | {matters} |")
            continue
        head = f"| {variant} | {switch} | {len(runs)} | " + " | ".join(
            _pm(runs[m], m) for m in ("mrr", "hits@1", "hits@10")
        )
        if variant == FULL:
            lines.append(f"{head} | | | | |")
            continue
        d = paired(results, variant, FULL)
        lines.append(
            f"{head} | {_pm(d['mrr'])} | {(d['mrr'] < 0).sum()} of {len(d)} | "
            f"{'yes' if significant(d['mrr']) else 'no'} | {matters} |"
        )
    lines += _random_row(grid.parameters["dataset"], data_dir, 2, ("mrr", "hits@1", "hits@10"), 4)
    return lines
