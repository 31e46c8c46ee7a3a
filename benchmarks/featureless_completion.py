"""What completing featureless entities does to AFME: one trained run evaluated two ways.

    python benchmarks/featureless_completion.py --presets noisy missing --seeds 0 1 2 \
        --out reports/main/diagnosis/featureless.md

For each AFME run of the main job's settings on ``synth:<preset>:<seed>`` found in the run cache,
the validation MRR of the cold attribute slices is computed twice from the same weights: as
``AFME`` reads an entity asked about now (an entity with no measured row is read from structure
alone; an entity's only measured row is not cross-checked), and with the earlier rule (every
modality of such an entity completed by MoIEn from e_s alone; every measured row checked). Clean
rows are also split by side: in ``(?, has_a, v)`` the entity asked about is the value entity ``v``,
which has no feature row on the synthetic presets. Evaluation only: nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from afme_lib.analysis import slices
from afme_lib.core.ablations import ABLATIONS
from afme_lib.experiments import main_job
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import open_run
from afme_lib.experiments.spec import resolve_path

SLICES = ("cold/attribute", "cold/attribute/clean", "cold/attribute/corrupted", "cold/attribute/missing")


def earlier_rule(model) -> None:
    """Give ``model`` the rule it had before featureless entities were left alone."""

    def needs(self, measured):
        return ~measured.all(1) if not self.enhance else torch.ones_like(measured[:, 0])

    def available(self, measured):
        return torch.ones_like(measured) if self.use_gan else measured

    model._needs_completion = types.MethodType(needs, model)
    model._available_as_asked = types.MethodType(available, model)
    model._checkable = lambda measured: measured


def afme_runs(runs_root: Path, preset: str, seed: int) -> list[Path]:
    """Finished full-AFME runs of the main job's settings on ``synth-<preset>-seed<seed>``."""
    wanted = {**main_job.TRAINING, **main_job.MODEL_SETTINGS["afme"]}
    found = []
    for folder in sorted(runs_root.glob(f"afme-synth-{preset}-seed{seed}-*")):
        if not (folder / "metrics.json").is_file():
            continue
        config = json.loads((folder / "config.json").read_text())
        settings = {**config["model"], **config["train"]}
        if all(settings.get(a.switch, True) for a in ABLATIONS.values()) and all(
            settings.get(k) == v for k, v in wanted.items() if k in settings
        ):
            found.append(folder)
    return found


def evaluate_both(folder: Path) -> dict:
    run = open_run(folder)
    trainer = run.trainer
    masks = slices.slice_masks(trainer.dataset, run.truth, "valid")
    out = {"run": folder.name}
    for rule in ("now", "earlier"):
        if rule == "earlier":
            earlier_rule(trainer.model)
        ranks = slices.model_ranks(trainer.model, trainer.dataset, "valid", trainer.filter_index)
        for name, mrr in slices.slice_mrr(ranks, {s: masks[s] for s in SLICES}).items():
            out[f"{name} ({rule})"] = 100 * mrr
        clean = masks["cold/attribute/clean"]
        for side in ("head", "tail"):
            out[f"clean {side} ({rule})"] = 100 * float(np.mean(1.0 / np.asarray(ranks[side])[clean]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["noisy", "missing"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs-root", default="runs/cache")
    parser.add_argument("--out", default="reports/main/diagnosis/featureless.md")
    args = parser.parse_args(argv)
    rows = []
    for preset in args.presets:
        for seed in args.seeds:
            for folder in afme_runs(resolve_path(args.runs_root), preset, seed):
                rows.append({"preset": preset, "seed": seed, **evaluate_both(folder)})
                print(rows[-1], flush=True)
    if not rows:
        print("no AFME run of the main job's settings found: run benchmarks/main_job_seeds.py --split valid first")
        return 1
    table = pd.DataFrame(rows)
    out = resolve_path(args.out)
    table.to_csv(out.with_suffix(".csv"), index=False, float_format="%.4f")
    command = (
        "python benchmarks/featureless_completion.py " + " ".join(argv if argv is not None else sys.argv[1:])
    ).strip()
    columns = [*SLICES, "clean head", "clean tail"]
    lines = [
        "# AFME with and without completing featureless entities (validation, same weights)",
        "",
        f"Made by `{command}`; every figure is in `{out.with_suffix('.csv').name}`. Each row is one trained AFME run "
        "(the main job's settings) evaluated twice on its validation split: *now*, an entity with no measured row "
        "is read from structure alone and an entity's only measured row is not cross-checked; *earlier*, MoIEn "
        "completed every modality of such an entity from e_s alone and every measured row was checked. MRR in %, "
        "as now → earlier.",
        "",
        "| preset | seed | run | " + " | ".join(columns) + " |",
        "|---|---:|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        cells = [f"{row[f'{c} (now)']:.2f} → {row[f'{c} (earlier)']:.2f}" for c in columns]
        lines.append(f"| `{row['preset']}` | {row['seed']} | `{row['run']}` | " + " | ".join(cells) + " |")
    write_page(out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
