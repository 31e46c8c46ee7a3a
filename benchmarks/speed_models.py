"""Speed of the multi-modal models against RotatE, one run, the same settings for every model.

For each dataset and model: seconds per training epoch (the median of the epochs after a warm-up
one) and per full filtered evaluation of the test split, and both as a ratio to RotatE's.
Datasets: MKG-Y with its name-text features (``--features-root DIR/MKG-Y``, built by ``afme
features text --dataset MKG-Y --out DIR/MKG-Y``) and the synthetic ``default`` preset with all its
modalities. Settings: dim 128, batch 1024, 16 negatives, the self-adversarial loss, each model's
recommended training options (NATIVE's lambdas); one torch thread per process unless
``--threads`` says otherwise. The models of a block take their epochs in turn (epoch 1 of each,
then epoch 2 of each, ...), so a slow stretch of a shared host falls on all of them alike.
Each setting of ``--negative-pools`` is measured for every model: 0 draws every negative
independently (the default sampler), N > 0 draws a batch's negatives from N shared entities
(``TrainConfig.negative_pool``; what that costs in accuracy: reports/negative-pool-mkgy).

    python benchmarks/speed_models.py --data-dir ../shared/datasets --features-root runs/features

writes ``reports/speed/models.md`` (keeping its hand-written reading) and
``reports/speed/models.json``. The targets the page checks (issue 18), for each pool setting: on
MKG-Y, AFME's epoch and evaluation within 3x RotatE's and its epoch no slower than NATIVE's; on
the synthetic preset, AFME's epoch within 5x RotatE's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from afme_lib import ablations
from afme_lib.atomic import write_text
from afme_lib.config import ModelConfig, TrainConfig
from afme_lib.data.features import FeatureStore
from afme_lib.data.registry import load_benchmark
from afme_lib.data.synthetic import write_synthetic
from afme_lib.data.dataset import load_dataset
from afme_lib.device import resolve_device
from afme_lib.models.registry import recommended_train_options
from afme_lib.reports.pages import write_page
from afme_lib.timing import machine_name, time_epochs_interleaved, time_evaluation
from afme_lib.train import Trainer

MODELS = ("rotate", "mm-concat", "native", "afme", "afme-v1")
# Measurement variants, not models of their own: what a part of a model costs.
VARIANTS = {"afme-no-gan": ("afme", ablations.overrides("w/o GAN"))}  # AFME with MoIEn off: MoIEn's share of the epoch
EPOCH = "median_epoch_seconds"  # of the timed epochs (afme_lib.timing.time_epochs)
TARGETS = {"MKG-Y": {"epoch": 3.0, "eval": 3.0}, "synth-default": {"epoch": 5.0}}


def datasets(args) -> dict:
    out = {}
    if "MKG-Y" in args.datasets:
        data = load_benchmark("MKG-Y", data_dir=args.data_dir)
        features = FeatureStore.load(Path(args.features_root) / "MKG-Y", data.num_entities, verbose=False)
        out["MKG-Y"] = (data, features)
    if "synth-default" in args.datasets:
        folder = Path(args.work) / "synth-default"
        if not (folder / "metadata.json").is_file():
            write_synthetic(folder, "default", seed=0)
        data = load_dataset(folder)
        out["synth-default"] = (data, FeatureStore.load(folder, data.num_entities, verbose=False))
    return out


def build(data, features, model: str, pool: int, args) -> Trainer:
    model, options = VARIANTS.get(model, (model, {}))
    model_cfg = ModelConfig(name=model, dim=args.dim, **options)
    train_cfg = TrainConfig(**{"epochs": args.epochs, "batch_size": 1024, "negatives": 16, "negative_pool": pool, "lr": 1e-3,
                               "eval_every": 0, "progress": False, "device": args.device, "seed": 0,
                               **recommended_train_options(model)})
    return Trainer(data, model_cfg, train_cfg, None, features if model != "rotate" else None)


def measure(data, features, models: list[str], pool: int, args) -> dict[str, dict]:
    """Epoch figures of every model, their epochs interleaved (afme_lib.timing), then each one's
    evaluation after its timed epochs."""
    trainers = {model: build(data, features, model, pool, args) for model in models}
    figures = time_epochs_interleaved(trainers, args.epochs)
    for model, trainer in trainers.items():
        figures[model].update(time_evaluation(trainer, data))
    return figures


def pool_name(pool: int) -> str:
    return f"shared pool of {pool}" if pool else "independent"


def round_ratios(figures: dict, base: dict) -> list[float]:
    """A model's timed epochs over RotatE's, round by round (the models take their epochs in turn,
    so each pair ran side by side); their spread is how far the host's noise moves the ratio."""
    return [a / b for a, b in zip(figures["epoch_seconds"][1:], base["epoch_seconds"][1:])]


def spread(ratios: list[float]) -> str:
    return f"{min(ratios):.1f}–{max(ratios):.1f}" if ratios else "n/a"


def report(results: dict, command: str) -> list[str]:
    lines = ["# Speed: the multi-modal models against RotatE (same settings)", "", f"Command: `{command}`", "",
             f"Machine: {results['machine']}. Settings: {results['settings']}. Negatives: *independent* draws "
             "every negative on its own (the default); *shared pool of N* draws a batch's negatives from N "
             "uniformly drawn entities (`--negative-pool N`), for every model alike.", "",
             "| dataset | negatives | model | s / epoch | x RotatE | x RotatE per round (min–max) | s / eval | x RotatE "
             "| test MRR after the timed epochs |",
             "|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for key, by_model in results["datasets"].items():
        name, pool = key.rsplit("|", 1)  # main() keys each block "<dataset>|<pool>"
        negatives = pool_name(int(pool))
        base = by_model.get("rotate")
        for model, f in by_model.items():
            ratio_e = f[EPOCH] / base[EPOCH] if base else float("nan")
            ratio_v = f["eval_seconds"] / base["eval_seconds"] if base else float("nan")
            rounds = spread(round_ratios(f, base)) if base else "n/a"
            lines.append(f"| {name} | {negatives} | {model} | {f[EPOCH]:.2f} | {ratio_e:.1f} | {rounds} | "
                         f"{f['eval_seconds']:.2f} | {ratio_v:.1f} | {100 * f['mrr']:.2f} |")
        afme = by_model.get("afme")
        if afme and base:
            for what, field in (("epoch", EPOCH), ("eval", "eval_seconds")):
                target = TARGETS.get(name, {}).get(what)
                if target:
                    ratio = afme[field] / base[field]
                    rounds = f" (per round {spread(round_ratios(afme, base))}x)" if what == "epoch" else ""
                    checks.append(f"- {name}, {negatives}: AFME {what} {ratio:.1f}x RotatE's{rounds} (target <= {target:g}x): "
                                  f"{'met' if ratio <= target else 'not met'}")
            if "native" in by_model and name == "MKG-Y":
                ok = afme[EPOCH] <= by_model["native"][EPOCH]
                checks.append(f"- {name}, {negatives}: AFME epoch {afme[EPOCH]:.2f} s vs NATIVE "
                              f"{by_model['native'][EPOCH]:.2f} s (target: no slower): "
                              f"{'met' if ok else 'not met'}")
    return lines + ["", "## Targets", "", *checks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["MKG-Y", "synth-default"], choices=["MKG-Y", "synth-default"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=[*MODELS, *VARIANTS],
                        help="models to time (default: all); afme-no-gan is AFME with MoIEn off")
    parser.add_argument("--data-dir", help="folder holding the benchmarks (default: the registry's lookup)")
    parser.add_argument("--features-root", default="runs/features", help="holds MKG-Y/MKG-Y-textual.pth")
    parser.add_argument("--work", default="runs/speed", help="where the synthetic preset is written")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6, help="the first is a warm-up; the page shows the median of the others")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--negative-pools", type=int, nargs="+", default=[0, 1024],
                        help="negative pool sizes to measure every model at (0: independent negatives)")
    parser.add_argument("--out", default="reports/speed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/speed_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {"machine": machine_name(resolve_device(args.device), args.threads),
               "settings": f"dim {args.dim}, batch 1024, 16 negatives, nssa, {args.epochs} epochs, taken by the models in turn (1 warm-up; s / epoch is the median of the others)",
               "datasets": {}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (data, features) in datasets(args).items():
        for pool in args.negative_pools:
            block = measure(data, features, args.models, pool, args)
            results["datasets"][f"{name}|{pool}"] = block
            for model, figures in block.items():
                print(f"{name} {pool_name(pool)} {model}: {figures[EPOCH]:.2f} s/epoch, "
                      f"{figures['eval_seconds']:.2f} s/eval", flush=True)
            write_text(out / "models.json", json.dumps(results, indent=2) + "\n")
    page = report(results, command)
    write_page(out / "models.md", page)
    print("\n".join(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
