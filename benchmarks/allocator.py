"""What keeping freed memory in the process (afme_lib/engine/allocator.py) saves on a CPU epoch.

Each round runs two fresh processes, one with glibc's malloc as it comes (``AFME_SYSTEM_MALLOC=1``)
and one with the trainer's settings (the order alternates between rounds, so a slow stretch of
a shared host does not fall on one side only). Each process trains the models on the synthetic
default preset with the speed page's settings (dim 128, batch 1024, 16 negatives, a shared pool
of 1024, one torch thread; benchmarks/speed_models.py), their epochs taken in turn, and records
each epoch's wall time and minor page faults (pages the kernel had to map and zero-fill). After
one warm-up epoch per model, the medians over all rounds are compared.

    python benchmarks/allocator.py --work /tmp/speedwork

writes ``reports/speed/allocator.md`` (keeping its hand-written reading) and ``allocator.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed_models  # noqa: E402  (the speed page's datasets and trainer settings)

from afme_lib.core.atomic import write_text  # noqa: E402
from afme_lib.engine.allocator import OPT_OUT, retain_freed_memory  # noqa: E402
from afme_lib.engine.device import resolve_device  # noqa: E402
from afme_lib.engine.timing import machine_name  # noqa: E402
from afme_lib.experiments.pages.writer import write_page  # noqa: E402

SETTINGS = ("glibc defaults", "retained")
MODELS = ("rotate", "mm-concat", "afme")


def child(args) -> dict:
    """One process's epochs: {model: {"seconds": [...], "faults": [...]}}, warm-up epoch first."""
    torch.set_num_threads(1)
    data, features = speed_models.datasets(args)["synth-default"]
    trainers = {m: speed_models.build(data, features, m, args.negative_pool, args) for m in args.models}
    out = {m: {"seconds": [], "faults": []} for m in trainers}
    for epoch in range(1, args.epochs + 2):
        for model, trainer in trainers.items():
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            trainer.train_epoch(epoch)
            out[model]["seconds"].append(time.perf_counter() - start)
            out[model]["faults"].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    out["applied"] = retain_freed_memory()  # what the trainers' settings came to in this process
    return out


def run_child(setting: str, argv: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != OPT_OUT}
    if setting == "glibc defaults":
        env[OPT_OUT] = "1"
    done = subprocess.run([sys.executable, __file__, "--child", *argv], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {setting} process failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.pop("applied") != (setting == "retained"):
        raise SystemExit(
            f"the {setting} process did not run with the settings it was meant to (glibc tunables "
            "in GLIBC_TUNABLES or LD_PRELOAD, or a C library other than glibc)"
        )
    return result


def measure(args, argv: list[str]) -> dict:
    runs = {s: {m: {"seconds": [], "faults": [], "round_medians": []} for m in args.models} for s in SETTINGS}
    for i in range(args.rounds):
        for setting in SETTINGS if i % 2 == 0 else SETTINGS[::-1]:
            result = run_child(setting, argv)
            for model in args.models:
                for key in ("seconds", "faults"):
                    runs[setting][model][key] += result[model][key][1:]  # the warm-up epoch left out
                runs[setting][model]["round_medians"].append(statistics.median(result[model]["seconds"][1:]))
            print(
                f"round {i + 1}/{args.rounds}, {setting}: "
                + ", ".join(f"{m} {runs[setting][m]['round_medians'][-1]:.2f} s" for m in args.models),
                flush=True,
            )
    return runs


def comparison(results: dict) -> dict[str, dict]:
    """Per model: median seconds and minor faults per epoch under each setting, the speed-up of
    keeping memory and its per-round range; and, when RotatE ran, each model's epoch over RotatE's."""
    runs = results["runs"]
    med = {
        s: {m: {k: statistics.median(f[k]) for k in ("seconds", "faults")} for m, f in by.items()}
        for s, by in runs.items()
    }
    out = {}
    for m in runs[SETTINGS[0]]:
        a, b = med["glibc defaults"][m], med["retained"][m]
        rounds = [
            x / y for x, y in zip(runs["glibc defaults"][m]["round_medians"], runs["retained"][m]["round_medians"])
        ]
        out[m] = {
            "seconds": {s: med[s][m]["seconds"] for s in SETTINGS},
            "faults": {s: med[s][m]["faults"] for s in SETTINGS},
            "speedup": a["seconds"] / b["seconds"],
            "round_speedups": rounds,
            "x_rotate": {s: med[s][m]["seconds"] / med[s]["rotate"]["seconds"] for s in SETTINGS}
            if "rotate" in runs[SETTINGS[0]]
            else {},
        }
    return out


def report(results: dict, command: str) -> list[str]:
    rows = comparison(results)
    lines = [
        "# Keeping freed memory in the process: CPU epochs (synthetic default preset)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']}. Settings: {results['settings']}.",
        "",
        "| model | s / epoch, glibc defaults | s / epoch, retained | speed-up | speed-up per round (min–max) "
        "| minor faults / epoch, defaults | retained |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in rows.items():
        lines.append(
            f"| {m} | {r['seconds']['glibc defaults']:.3f} | {r['seconds']['retained']:.3f} | "
            f"{r['speedup']:.2f}x | {min(r['round_speedups']):.2f}–{max(r['round_speedups']):.2f}x | "
            f"{r['faults']['glibc defaults']:,.0f} | {r['faults']['retained']:,.0f} |"
        )
    if "rotate" in rows:
        lines += ["", "Each model's epoch over RotatE's, under each setting:", ""]
        for s in SETTINGS:
            lines.append(
                f"- {s}: " + ", ".join(f"{m} {r['x_rotate'][s]:.1f}x" for m, r in rows.items() if m != "rotate")
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/speed", help="where the synthetic preset is written")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(speed_models.MODELS))
    parser.add_argument("--rounds", type=int, default=4, help="pairs of processes (one per setting)")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per model and process")
    parser.add_argument("--negative-pool", type=int, default=1024, help="0: independent negatives")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--out", default="reports/speed")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.datasets, args.device = ["synth-default"], "cpu"
    if args.child:
        print(json.dumps(child(args)))
        return 0
    speed_models.datasets(args)  # write the preset once, before the processes race to
    runs = measure(args, [a for a in argv if a != "--child"])
    results = {
        "runs": runs,
        "machine": machine_name(resolve_device("cpu"), 1),
        "settings": (
            f"dim {args.dim}, batch 1024, 16 negatives, {speed_models.pool_name(args.negative_pool)}, "
            f"{args.rounds} rounds of {args.epochs} timed epochs per process and setting"
        ),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "allocator.json", json.dumps(results, indent=2) + "\n")
    page = report(results, "python benchmarks/allocator.py " + " ".join(argv))
    write_page(out / "allocator.md", page)
    print("\n".join(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
