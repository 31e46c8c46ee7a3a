"""Split hygiene of the benchmarks, and one of them trained on its original and its cleaned split:
the page of ``configs/hygiene.yaml`` (reports/hygiene/README.md).

1. The hygiene figures (:mod:`afme_lib.data.leakage`) of every benchmark, with the MRR of the
   memorisation-only rule (:func:`hygiene_rows`; no training).
2. ``afme data clean`` of the compared benchmark (:func:`clean_copy`).
3. The grid's runs, each model on both splits for each seed, tabulated by
   :func:`comparison_rows`: the model trained on the original split is also scored on the cleaned
   test rows alone (:func:`on_clean_rows`, from its best checkpoint), and a rule with no training
   at all (:func:`popularity_metrics`: rank answers by how often they answer the query's relation
   in train) sets the floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from afme_lib.core.ranking import compute_metrics, rank_targets
from afme_lib.data.benchmarks import load_benchmark
from afme_lib.data.clean import read_manifest, write_clean
from afme_lib.data.filters import FilterIndex
from afme_lib.data.leakage import hygiene_report
from afme_lib.engine.evaluation import evaluate
from afme_lib.experiments.grid.report import mean_std_of as _pm
from afme_lib.experiments.grid.spec import Grid
from afme_lib.experiments.pages.writer import finished_runs, seconds_per_epoch
from afme_lib.experiments.run import load_trainer
from afme_lib.models.registry import model_class


def hygiene_rows(datasets: list[str], data_dir: str | None) -> list[str]:
    """The hygiene table of ``datasets`` (registered names or folders)."""
    lines = [
        "| dataset | train rows (distinct) | dup. rows valid / test | valid rows in train | test rows in train | "
        "valid ∩ test | test (h, t) in train, other relation | test (t, h) in train | test rows, entity unseen in train | "
        "relation pairs ≥ 80% | memorisation MRR valid / test | memorisation Hits@1 test |",
        "|" + "---|" * 12,
    ]
    for name in datasets:
        ds = load_benchmark(name, data_dir=data_dir)
        rep = hygiene_report(ds)
        rows, over, pairs, memo = rep["rows"], rep["overlap"], rep["pair_shortcuts"]["test"], rep["memorisation"]
        pct = lambda k, split, rows=rows: f"{k} ({100 * k / rows[split]:.1f}%)"  # noqa: E731
        rel = (
            ", ".join(
                f"{p['kind']} {p['names'][0]} ~ {p['names'][1]} ({100 * p['share']:.0f}%)"
                for p in rep["relation_overlaps"]["pairs"]
            )
            or "none"
        )
        lines.append(
            f"| {ds.name} | {rows['train']} ({rep['distinct']['train']}) | {rep['duplicate_rows']['valid']} / "
            f"{rep['duplicate_rows']['test']} | {pct(over['valid_in_train']['rows'], 'valid')} | "
            f"{pct(over['test_in_train']['rows'], 'test')} | {over['valid_in_test']['triples']} | "
            f"{pct(pairs['pair_other_relation'], 'test')} | {pct(pairs['reversed_pair'], 'test')} | "
            f"{pct(rep['unseen_entity_rows']['test'], 'test')} | {rel} | "
            f"{memo['valid']['mrr']:.3f} / {memo['test']['mrr']:.3f} | {memo['test']['hits@1']:.3f} |"
        )
    return lines


def clean_copy(original, runs: str | Path) -> Path:
    """``<runs>/<name>-clean``: the cleaned split of ``original`` (written once, then reused)."""
    out = Path(runs) / f"{original.name}-clean"
    if not (out / "clean-manifest.json").is_file():
        write_clean(original, out)
    return out


def model_variants(models, features: str | None) -> dict:
    """The grid variants of ``models``: a model that reads features gets the RotatE scorer and the
    name text (``features``) as its only modality."""
    return {
        m: {"model": m}
        if not model_class(m).reads_features
        else {"model": m, "scorer": "rotate", "modalities": ["text"], "features": features}
        for m in models
    }


def on_clean_rows(run: Path, clean: Path) -> dict:
    """Test metrics of a run trained on the original split, over the test rows the cleaned split keeps.

    Cleaning drops only triples that stay known elsewhere (train or test) and duplicates, so the
    filter is the same on both splits and these ranks compare with the cleaned runs' ranks."""
    trainer = load_trainer(run)
    ranks = evaluate(trainer.model, trainer.dataset, "test", filter_index=trainer.filter_index, return_ranks=True)[
        "ranks"
    ]
    dropped = [row for split, row, *_ in read_manifest(clean)["removed"]["rows"] if split == "test"]
    keep = np.setdiff1d(np.arange(len(trainer.dataset.test)), dropped)
    return compute_metrics(np.concatenate([ranks["tail"][keep], ranks["head"][keep]]))


def popularity_metrics(dataset) -> dict:
    """Test metrics of a rule with no training: rank each candidate by how many distinct training
    triples it is the answer of under the query's relation (tail of r for (h, r, ?), head of r for
    (?, r, t)), whatever the query entity; filtered, realistic ties."""
    n, r = dataset.num_entities, dataset.num_relations
    train = torch.unique(dataset.train, dim=0)
    index, test, ranks = FilterIndex.from_dataset(dataset), dataset.test, []
    for side, answer, known, target in (("tail", 2, 0, 2), ("head", 0, 2, 0)):
        popularity = torch.bincount(train[:, 1] * n + train[:, answer], minlength=r * n).view(r, n).double()
        for lo in range(0, len(test), 1024):  # a [1024, N] score block at a time
            batch = test[lo : lo + 1024]
            rows, cols = index.known_answers(batch[:, known], batch[:, 1], side)
            ranks.append(rank_targets(popularity[batch[:, 1]], batch[:, target], rows, cols))
    return compute_metrics(torch.cat(ranks))


def comparison_rows(results: pd.DataFrame, grid: Grid, original, clean: Path, source: str) -> list[str]:
    """The original-vs-cleaned table from the grid's ``results.csv`` (its datasets: the original
    split's folder, then the cleaned one's; its variants: the models). ``source``: how the
    compared benchmark was named on the command line."""
    name, counts = original.name, read_manifest(clean)["counts"]
    datasets = list(grid.grid["dataset"])
    lines = [
        f"Cleaned split `{clean}` (`afme data clean {source} --out {clean}`): "
        + ", ".join(f"{s} {c['before']} → {c['after']}" for s, c in counts.items())
        + ".",
        "",
        "| model | inputs | trained on | scored on | seeds | test MRR | Hits@1 | Hits@10 | valid MRR | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, data in ((name, original), (f"{name}-clean", load_benchmark(clean))):
        test = popularity_metrics(data)
        lines.append(
            f"| relation popularity (no training) | - | - | {label} test ({len(data.test)}) | - | "
            f"{_pm([test['mrr']])} | {_pm([test['hits@1']])} | {_pm([test['hits@10']])} | | |"
        )
    for variant in grid.variants.values():
        model = variant["model"]
        inputs = "structure + name text" if model_class(model).reads_features else "structure only"
        trained = finished_runs(results, model=model, dataset=datasets[0])
        cleaned = finished_runs(results, model=model, dataset=datasets[1])
        subset = pd.DataFrame(
            [on_clean_rows(Path(run), clean) for run in trained["run_dir"]], columns=["mrr", "hits@1", "hits@10"]
        )
        rows = [
            (name, f"original test ({counts['test']['before']})", trained, trained),
            (name, f"cleaned test rows ({counts['test']['after']})", subset, trained),
            (f"{name}-clean", f"cleaned test ({counts['test']['after']})", cleaned, cleaned),
        ]
        for trained_on, scored, test, runs in rows:
            per_epoch = seconds_per_epoch(runs)
            lines.append(
                f"| {model} | {inputs} | {trained_on} | {scored} | {len(test)} | {_pm(test['mrr'])} | "
                f"{_pm(test['hits@1'])} | {_pm(test['hits@10'])} | {_pm(runs['valid_mrr'])} | "
                f"{per_epoch.mean():.1f} |"
            )
            print(lines[-1], flush=True)
    return lines


COLLAPSE_STD = 0.01  # a spread over seeds above one MRR point means some seed fell off


def collapse_lines(results: pd.DataFrame, grid: Grid) -> list[str]:
    """Per model trained on the cleaned split (the grid's second dataset): its test MRR on every
    seed, and whether no seed collapsed (sample std over seeds at most one MRR point)."""
    cleaned = grid.grid["dataset"][1]
    lines = ["", "Per seed on the cleaned split (test MRR in %); no seed collapses when the std is ≤ 1 point:", ""]
    for variant in grid.variants.values():
        runs = finished_runs(results, model=variant["model"], dataset=cleaned)
        if runs.empty:
            continue
        mrr = pd.to_numeric(runs["mrr"])
        per_seed = ", ".join(f"seed {s}: {100 * m:.2f}" for s, m in zip(runs["seed"], mrr))
        std = mrr.std(ddof=1)
        verdict = (
            "one seed: no spread yet" if len(mrr) < 2 else ("holds" if std <= COLLAPSE_STD else "**does not hold**")
        )
        spread = "" if len(mrr) < 2 else f"; std {100 * std:.2f}"
        lines.append(f"- {variant['model']}: {per_seed}{spread}: {verdict}.")
    return lines
