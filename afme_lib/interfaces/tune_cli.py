"""The ``afme tune`` command: a hyper-parameter search on validation (afme_lib/experiments/tuning.py)."""

from __future__ import annotations

import shlex

from afme_lib.core.console import display_path
from afme_lib.experiments.pages.tuning import study_page
from afme_lib.experiments.tuning import tune


def cmd_tune(args) -> int:
    parts = ["afme", "tune", args.spec, "--trials", str(args.trials), "--out", args.out]
    for flag, value, default in (
        ("--workers", args.workers, 1),
        ("--storage", args.storage, None),
        ("--runs", args.runs, None),
    ):
        if value != default:
            parts += [flag, str(value)]
    result = tune(
        args.spec,
        args.out,
        trials=args.trials,
        workers=args.workers,
        storage=args.storage,
        runs=args.runs,
        command=shlex.join(parts),
    )
    best = result.best_yaml
    readme = study_page(result.study, result.spec, result.out)
    shown = [display_path(p) for p in (result.trials_csv, best, readme) if p]
    print(f"wrote {', '.join(shown)}")
    if best:
        print(f"train the best trial: afme train --config {display_path(best)}")
    return 0


def add_tune_parser(sub) -> None:
    """Add ``afme tune`` to the top-level sub-parsers."""
    p = sub.add_parser(
        "tune",
        help="hyper-parameter search on validation (Optuna): best.yaml, trials.csv, a study page",
        description="Search a run spec's fields (its search: block) on the validation split with "
        "Optuna: TPE sampling, trials pruned on their periodic validation. The study is stored "
        "(DIR/study.db unless --storage): rerunning the command continues it. Writes "
        "DIR/trials.csv, DIR/best.yaml (run it with afme train --config) and DIR/README.md.",
    )
    p.add_argument("spec", metavar="SPEC.yaml", help="a run spec with a search: block (space, objective, ...)")
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--out", required=True, metavar="DIR", help="the study folder")
    p.add_argument("--workers", type=int, default=1, help="trials run at once on this machine (default 1)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="an Optuna database URL shared by workers on several machines (e.g. postgresql://user@host/db; "
        "default: sqlite in DIR/study.db)",
    )
    p.add_argument("--runs", metavar="DIR", help="where the trials' run folders go (default: DIR/trials)")
    p.set_defaults(func=cmd_tune)
