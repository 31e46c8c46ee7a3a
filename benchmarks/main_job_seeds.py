"""The main job's claims judged over seeds on which no setting was chosen.

    python benchmarks/main_job_seeds.py [--preset default] [--seeds 10 11 12 13 14] [--split test]
        [--workers 2]   # -> reports/main/seeds.md

For each seed the main job's runs (RotatE, mm-concat, AFME and its named ablations, the main job's
settings) are trained or reused from the shared run cache, and each claim (AFME against the
oracle, RotatE and the best feature-reading baseline on cold attribute queries, the weight-truth
AUC, each ablation lower on its slice) is measured on each seed and judged over them
(afme_lib/experiments/main_job.py: ``claims``, ``judge``). The default seeds are the main job's
``CLAIM_SEEDS``: no choice was made on them (reports/main/selection.md). ``--split valid`` gives the
same page on the validation split, the one to read when choosing a setting.
"""

from __future__ import annotations

import argparse
import sys

from afme_lib.experiments import main_job
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import CACHE_ROOT
from afme_lib.experiments.spec import DATA_ROOT, resolve_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(main_job.CLAIM_SEEDS))
    parser.add_argument("--split", choices=("valid", "test"), default="test")
    parser.add_argument("--epochs", type=int, default=main_job.TRAINING["epochs"])
    parser.add_argument("--dim", type=int, default=main_job.TRAINING["dim"])
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once (default: 2)")
    parser.add_argument("--runs-root", default=CACHE_ROOT)
    parser.add_argument("--data-root", default=DATA_ROOT)
    parser.add_argument("--out", default="reports/main/seeds.md")
    args = parser.parse_args(argv)
    training = {**main_job.TRAINING, "epochs": args.epochs, "dim": args.dim}
    studies = main_job.seed_studies(
        args.preset, args.seeds, training, resolve_path(args.runs_root), args.data_root, args.workers, args.split
    )
    command = "python benchmarks/main_job_seeds.py " + " ".join(argv if argv is not None else sys.argv[1:])
    page = main_job.seeds_page(studies, command.strip(), args.preset, training, args.split)
    write_page(resolve_path(args.out), page)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
