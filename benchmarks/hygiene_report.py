"""Split hygiene of the benchmarks, and one of them trained on its original and its cleaned split.

1. The hygiene figures (afme_lib/data/hygiene.py) of every ``--datasets`` benchmark, with the
   MRR of the memorisation-only rule.
2. ``afme data clean`` of ``--compare`` into ``<runs>/<DATASET>-clean`` (reused when there).
3. Each ``--models`` model trained with one recipe on both splits, for each seed, through
   :func:`afme_lib.pipeline.run_or_resume` (resumable; finished runs are reused); the
   multi-modal ones with name-text features built as in benchmarks/text_features_gain.py
   (same entity ids on both splits, so one feature file serves both). The model trained on the
   original split is also scored on the cleaned test rows alone. A rule with no training at all
   (rank answers by how often they answer the query's relation in train) sets the floor.
4. ``<out>/README.md``: the tables, the command, and the hand-written ``## Reading`` kept.

    python benchmarks/hygiene_report.py --data-dir ../shared/datasets --models rotate native --seeds 0 1
    python benchmarks/hygiene_report.py --models            # the hygiene table only
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.data.clean import read_manifest, write_clean
from afme_lib.data.hygiene import hygiene_report
from afme_lib.data.registry import load_benchmark
from afme_lib.data.filters import FilterIndex
from afme_lib.evaluate import evaluate
from afme_lib.ranking import compute_metrics, rank_targets
from afme_lib.models.registry import recommended_train_options
from afme_lib.pipeline import load_run, run_or_resume
from afme_lib.reports.pages import write_page

STRUCTURE_ONLY = {"rotate", "transe", "distmult", "complex"}


def hygiene_rows(datasets: list[str], data_dir: str) -> list[str]:
    lines = ["| dataset | train rows (distinct) | dup. rows valid / test | valid rows in train | test rows in train | "
             "valid ∩ test | test (h, t) in train, other relation | test (t, h) in train | test rows, entity unseen in train | "
             "relation pairs ≥ 80% | memorisation MRR valid / test | memorisation Hits@1 test |", "|" + "---|" * 12]
    for name in datasets:
        ds = load_benchmark(name, data_dir=data_dir)
        rep = hygiene_report(ds)
        rows, over, pairs, memo = rep["rows"], rep["overlap"], rep["pair_shortcuts"]["test"], rep["memorisation"]
        pct = lambda k, split: f"{k} ({100 * k / rows[split]:.1f}%)"  # noqa: E731
        rel = ", ".join(f"{p['kind']} {p['names'][0]} ~ {p['names'][1]} ({100 * p['share']:.0f}%)"
                        for p in rep["relation_overlaps"]["pairs"]) or "none"
        lines.append(f"| {ds.name} | {rows['train']} ({rep['distinct']['train']}) | {rep['duplicate_rows']['valid']} / "
                     f"{rep['duplicate_rows']['test']} | {pct(over['valid_in_train']['rows'], 'valid')} | "
                     f"{pct(over['test_in_train']['rows'], 'test')} | {over['valid_in_test']['triples']} | "
                     f"{pct(pairs['pair_other_relation'], 'test')} | {pct(pairs['reversed_pair'], 'test')} | "
                     f"{pct(rep['unseen_entity_rows']['test'], 'test')} | {rel} | "
                     f"{memo['valid']['mrr']:.3f} / {memo['test']['mrr']:.3f} | {memo['test']['hits@1']:.3f} |")
    return lines


def clean_copy(original, args) -> Path:
    out = Path(args.runs) / f"{original.name}-clean"
    if not (out / "clean-manifest.json").is_file():
        write_clean(original, out)
    return out


def features_for(name: str, model: str, args) -> str | None:
    if model in STRUCTURE_ONLY:
        return None
    from afme_lib.features.text import extract_text_features

    folder = Path(args.features_root) / name
    extract_text_features(name, folder, data_dir=args.data_dir, device=args.device, progress=False)  # reused when built
    return str(folder)


def train(dataset: str, label: str, model: str, seed: int, features: str | None, args) -> dict:
    model_cfg = ModelConfig(name=model, dim=args.dim,
                            **({} if model in STRUCTURE_ONLY else {"scorer": "rotate", "modalities": ["text"]}))
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, negatives=args.negatives, lr=args.lr,
                            loss="nssa", margin=6.0, adv_temperature=1.0, eval_every=args.eval_every, patience=0,
                            device=args.device, seed=seed, progress=False, **recommended_train_options(model))
    run = Path(args.runs) / f"{label}-{model}-d{args.dim}-e{args.epochs}-s{seed}"
    metrics = run_or_resume(dataset, model_cfg, train_cfg, run, features=features, data_dir=args.data_dir)
    return {**metrics, "run": run}


def on_clean_rows(run: Path, clean: Path) -> dict:
    """Test metrics of a run trained on the original split, over the test rows the cleaned split keeps.

    Cleaning drops only triples that stay known elsewhere (train or test) and duplicates, so the
    filter is the same on both splits and these ranks compare with the cleaned runs' ranks."""
    trainer = load_run(run)
    ranks = evaluate(trainer.model, trainer.dataset, "test", filter_index=trainer.filter_index, return_ranks=True)["ranks"]
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
            batch = test[lo:lo + 1024]
            rows, cols = index.known_answers(batch[:, known], batch[:, 1], side)
            ranks.append(rank_targets(popularity[batch[:, 1]], batch[:, target], rows, cols))
    return compute_metrics(torch.cat(ranks))


def _pm(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def comparison_rows(name_or_dir: str, args) -> list[str]:
    original = load_benchmark(name_or_dir, data_dir=args.data_dir)
    name, clean = original.name, clean_copy(original, args)
    counts = read_manifest(clean)["counts"]
    lines = [f"Cleaned split `{clean}` (`afme data clean {name_or_dir} --out {clean}`): "
             + ", ".join(f"{s} {c['before']} → {c['after']}" for s, c in counts.items()) + ".", "",
             "| model | inputs | trained on | scored on | seeds | test MRR | Hits@1 | Hits@10 | valid MRR | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, data in ((name, original), (f"{name}-clean", load_benchmark(clean))):
        test = popularity_metrics(data)
        lines.append(f"| relation popularity (no training) | - | - | {label} test ({len(data.test)}) | - | "
                     f"{_pm([test['mrr']])} | {_pm([test['hits@1']])} | {_pm([test['hits@10']])} | | |")
    for model in args.models:
        features = features_for(name_or_dir, model, args)
        inputs = "structure only" if features is None else "structure + name text"
        runs = {label: [train(str(path), label, model, seed, features, args) for seed in args.seeds]
                for label, path in ((name, original.path), (f"{name}-clean", clean))}
        subset = [on_clean_rows(m["run"], clean) for m in runs[name]]
        rows = [(name, f"original test ({counts['test']['before']})", [m["test"] for m in runs[name]], runs[name]),
                (name, f"cleaned test rows ({counts['test']['after']})", subset, runs[name]),
                (f"{name}-clean", f"cleaned test ({counts['test']['after']})", [m["test"] for m in runs[f"{name}-clean"]],
                 runs[f"{name}-clean"])]
        for trained, scored, test, metrics in rows:
            per_epoch = statistics.fmean(m["train_seconds"] / max(m["epochs_run"], 1) for m in metrics)
            lines.append(f"| {model} | {inputs} | {trained} | {scored} | {len(test)} | {_pm([t['mrr'] for t in test])} | "
                         f"{_pm([t['hits@1'] for t in test])} | {_pm([t['hits@10'] for t in test])} | "
                         f"{_pm([m['valid']['mrr'] for m in metrics])} | {per_epoch:.1f} |")
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["MKG-W", "MKG-Y", "TIVA", "KVC16K"])
    parser.add_argument("--compare", default="TIVA", help="the benchmark trained on its original and cleaned split")
    parser.add_argument("--models", nargs="*", default=["rotate"], help="none: the hygiene table only")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--features-root", default="runs/features")
    parser.add_argument("--runs", default="runs/hygiene")
    parser.add_argument("--out", default="reports/hygiene")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--negatives", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    command = "python benchmarks/hygiene_report.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    lines = ["# Split hygiene: what the benchmarks let a model score without generalising", "",
             f"Command: `{command}` (runs are resumable and reused: rerunning rebuilds this page).", "",
             "Figures from `afme data info NAME` (afme_lib/data/hygiene.py): rows of the split with the share in "
             "brackets; *in train* = the exact (h, r, t) is a training triple; *(h, t) in train, other relation* = "
             "the pair is linked in train under another relation; *(t, h)* = linked reversed; *entity unseen* = the "
             "head or tail occurs in no training row (structure cannot place it); *relation pairs* = "
             "relations sharing ≥ 80% of the smaller one's (h, t) (duplicate) or (t, h) (inverse) pairs, ≥ 10 pairs; "
             "*memorisation* = filtered MRR of a rule that ranks the query entity's training neighbours first "
             "(ties realistic), which needs no generalisation at all.", ""]
    lines += hygiene_rows(args.datasets, args.data_dir)
    if args.models:
        lines += ["", f"## {load_benchmark(args.compare, data_dir=args.data_dir).name}: original vs cleaned split", "",
                  f"Recipe (both splits): dim {args.dim}, {args.epochs} epochs, batch {args.batch_size}, "
                  f"{args.negatives} negatives, Adam lr {args.lr}, self-adversarial loss (margin 6, temperature 1), "
                  f"validation every {args.eval_every} epochs, best-valid checkpoint, seeds "
                  f"{' '.join(map(str, args.seeds))}, device {args.device}; multi-modal models: RotatE scorer, "
                  "name text as the only modality, their recommended options. Filtered ranking, both sides, "
                  "realistic ties; % as mean ± sample std over seeds. *cleaned test rows* = the model trained on "
                  "the original split, scored on the test rows the cleaned split keeps.", ""]
        lines += comparison_rows(args.compare, args)
    out = Path(args.out) / "README.md"
    write_page(out, lines)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
