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
``reports/speed/models.json``. The targets the page checks, for each pool setting: on
MKG-Y, AFME's epoch and evaluation within 3x RotatE's and its epoch no slower than NATIVE's; on
the synthetic preset, AFME's epoch within 5x RotatE's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from afme_lib.core import ablations
from afme_lib.core.atomic import write_text
from afme_lib.data.benchmarks import load_benchmark
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import write_synthetic
from afme_lib.engine.device import resolve_device
from afme_lib.engine.timing import machine_name, time_epochs_interleaved, time_evaluation
from afme_lib.engine.training import Trainer
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import build_trainer
from afme_lib.experiments.spec import RunSpec, read_spec_file

MODELS = ("rotate", "mm-concat", "native", "afme")
# Measurement variants, not models of their own: what a part of a model costs.
VARIANTS = {"afme-no-gan": ("afme", ablations.overrides("w/o GAN"))}  # AFME with MoIEn off: MoIEn's share of the epoch
EPOCH = "median_epoch_seconds"  # of the timed epochs (afme_lib.engine.timing.time_epochs)
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


# The run spec every model is timed with (each model's recipe under it; a --spec file's fields over it).
SETTINGS = {
    "batch_size": 1024,
    "negatives": 16,
    "lr": 1e-3,
    "eval_every": 0,
    "progress": False,
    "seed": 0,
    "self_negatives": 0.0,
}


def build(data, features, model: str, pool: int, args) -> Trainer:
    model, options = VARIANTS.get(model, (model, {}))
    given = read_spec_file(args.spec) if getattr(args, "spec", None) else {}
    spec = RunSpec.from_fields(
        {
            **SETTINGS,
            **given,
            "dataset": data.name,
            "model": model,
            "dim": args.dim,
            "epochs": args.epochs,
            "negative_pool": pool,
            "device": args.device,
            **options,
        }
    )
    return build_trainer(spec, data, features)


def measure(data, features, models: list[str], pool: int, args) -> dict[str, dict]:
    """Epoch figures of every model, their epochs interleaved (afme_lib.engine.timing), then each one's
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


def rows(results: dict) -> list[dict]:
    """One row per dataset, pool setting and model: seconds and ratios to RotatE's."""
    out = []
    for key, by_model in results["datasets"].items():
        name, pool = key.rsplit("|", 1)  # main() keys each block "<dataset>|<pool>"
        base = by_model.get("rotate")
        for model, f in by_model.items():
            ratios = round_ratios(f, base) if base else []
            out.append(
                {
                    "dataset": name,
                    "negatives": pool_name(int(pool)),
                    "model": model,
                    "epoch_seconds": f[EPOCH],
                    "epoch_ratio": f[EPOCH] / base[EPOCH] if base else float("nan"),
                    "round_ratios": ratios,
                    "eval_seconds": f["eval_seconds"],
                    "eval_ratio": f["eval_seconds"] / base["eval_seconds"] if base else float("nan"),
                    "mrr": f["mrr"],
                }
            )
    return out


def target_checks(results: dict) -> list[dict]:
    """Each target of :data:`TARGETS` (and AFME's epoch against NATIVE's on MKG-Y), per dataset and
    pool setting: what was measured, the target and whether it is met."""
    checks = []
    for key, by_model in results["datasets"].items():
        name, pool = key.rsplit("|", 1)
        afme, base = by_model.get("afme"), by_model.get("rotate")
        if not (afme and base):
            continue
        for what, field in (("epoch", EPOCH), ("eval", "eval_seconds")):
            target = TARGETS.get(name, {}).get(what)
            if target:
                ratio = afme[field] / base[field]
                checks.append(
                    {
                        "dataset": name,
                        "negatives": pool_name(int(pool)),
                        "what": f"{what} x RotatE",
                        "value": ratio,
                        "target": target,
                        "met": ratio <= target,
                        "round_ratios": round_ratios(afme, base) if what == "epoch" else [],
                    }
                )
        if "native" in by_model and name == "MKG-Y":
            native = by_model["native"][EPOCH]
            checks.append(
                {
                    "dataset": name,
                    "negatives": pool_name(int(pool)),
                    "what": "epoch s vs NATIVE",
                    "value": afme[EPOCH],
                    "target": native,
                    "met": afme[EPOCH] <= native,
                    "round_ratios": [],
                }
            )
    return checks


def report(results: dict, command: str) -> list[str]:
    lines = [
        "# Speed: the multi-modal models against RotatE (same settings)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']}. Settings: {results['settings']}. Negatives: *independent* draws "
        "every negative on its own (the default); *shared pool of N* draws a batch's negatives from N "
        "uniformly drawn entities (`--negative-pool N`), for every model alike.",
        "",
        "| dataset | negatives | model | s / epoch | x RotatE | x RotatE per round (min–max) | s / eval | x RotatE "
        "| test MRR after the timed epochs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows(results):
        lines.append(
            f"| {r['dataset']} | {r['negatives']} | {r['model']} | {r['epoch_seconds']:.2f} | "
            f"{r['epoch_ratio']:.1f} | {spread(r['round_ratios'])} | {r['eval_seconds']:.2f} | "
            f"{r['eval_ratio']:.1f} | {100 * r['mrr']:.2f} |"
        )
    lines += ["", "## Targets", ""]
    for c in target_checks(results):
        verdict = "met" if c["met"] else "not met"
        if c["what"] == "epoch s vs NATIVE":
            lines.append(
                f"- {c['dataset']}, {c['negatives']}: AFME epoch {c['value']:.2f} s vs NATIVE "
                f"{c['target']:.2f} s (target: no slower): {verdict}"
            )
        else:
            rounds = f" (per round {spread(c['round_ratios'])}x)" if c["round_ratios"] else ""
            lines.append(
                f"- {c['dataset']}, {c['negatives']}: AFME {c['what'].split()[0]} {c['value']:.1f}x "
                f"RotatE's{rounds} (target <= {c['target']:g}x): {verdict}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["MKG-Y", "synth-default"], choices=["MKG-Y", "synth-default"])
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=[*MODELS, *VARIANTS],
        help="models to time (default: all); afme-no-gan is AFME with MoIEn off",
    )
    parser.add_argument("--data-dir", help="folder holding the benchmarks (default: the registry's lookup)")
    parser.add_argument("--features-root", default="runs/features", help="holds MKG-Y/MKG-Y-textual.pth")
    parser.add_argument("--work", default="runs/speed", help="where the synthetic preset is written")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument(
        "--epochs", type=int, default=6, help="the first is a warm-up; the page shows the median of the others"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--negative-pools",
        type=int,
        nargs="+",
        default=[0, 1024],
        help="negative pool sizes to measure every model at (0: independent negatives)",
    )
    parser.add_argument(
        "--spec",
        metavar="SPEC.yaml",
        help="run-spec fields over the page's settings (e.g. "
        "self_negatives, compile); the page lists the settings it ran with",
    )
    parser.add_argument("--out", default="reports/speed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/speed_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {
        "machine": machine_name(resolve_device(args.device), args.threads),
        "settings": f"dim {args.dim}, batch 1024, 16 negatives, nssa, {args.epochs} epochs, taken by the models in turn (1 warm-up; s / epoch is the median of the others)",
        "datasets": {},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (data, features) in datasets(args).items():
        for pool in args.negative_pools:
            block = measure(data, features, args.models, pool, args)
            results["datasets"][f"{name}|{pool}"] = block
            for model, figures in block.items():
                print(
                    f"{name} {pool_name(pool)} {model}: {figures[EPOCH]:.2f} s/epoch, "
                    f"{figures['eval_seconds']:.2f} s/eval",
                    flush=True,
                )
            write_text(out / "models.json", json.dumps(results, indent=2) + "\n")
    page = report(results, command)
    write_page(out / "models.md", page)
    print("\n".join(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
