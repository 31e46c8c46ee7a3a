"""The main job's claims judged over seeds and configurations on which no setting was chosen.

    python benchmarks/main_job_seeds.py [--preset default] [--seeds 10 11 12 13 14] [--split test]
        [--workers 2]   # -> reports/main/seeds.md (seeds-<preset>.md for another preset,
                        #    -valid for the validation split), a .json beside it
    python benchmarks/main_job_seeds.py --preset held-out   # the second configuration

For each seed the main job's runs (RotatE, the baselines that read features, AFME and its named
ablations, the main job's settings) are trained or reused from the shared run cache, and each
claim (AFME against the oracle, RotatE and the best feature-reading baseline on cold attribute
queries, the weight-truth AUC, each ablation lower on its slice) is measured on each seed and
judged over them (afme_lib/experiments/main_job.py: ``claims``, ``judge``). The default seeds are
the main job's ``CLAIM_SEEDS`` and ``held-out`` is a configuration no choice looked at
(afme_lib/experiments/presets.py, reports/main/selection.md). ``--split valid`` gives the same
page on the validation split, the one to read when choosing a setting. Resumable: an interrupted
call keeps its finished runs, and the next one trains only what is missing.
"""

from __future__ import annotations

import argparse
import sys
import time

from afme_lib.core import atomic
from afme_lib.experiments import main_job
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.spec import resolve_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(main_job.CLAIM_SEEDS))
    parser.add_argument("--split", choices=("valid", "test"), default="test")
    main_job.add_run_arguments(parser)
    parser.add_argument("--out", help="page (default: reports/main/seeds[-<preset>][-valid].md)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    training = {**main_job.TRAINING, "epochs": args.epochs, "dim": args.dim}
    studies = main_job.seed_studies(
        args.preset, args.seeds, training, resolve_path(args.runs_root), args.data_root, args.workers, args.split
    )
    command = ("python benchmarks/main_job_seeds.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    wall = time.perf_counter() - began
    found = main_job.seed_claims(studies)
    verdicts = main_job.judge(found)
    page = main_job.seeds_page(studies, found, verdicts, command, args.preset, training, args.split, wall)
    out = resolve_path(args.out or f"reports/main/{main_job.seeds_page_name(args.preset, args.split)}")
    write_page(out, page)
    summary = main_job.seeds_summary(studies, verdicts, command, args.preset, args.split, wall, training)
    atomic.write_json(out.with_suffix(".json"), summary)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
