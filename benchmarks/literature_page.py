"""The literature page: published MMKGC figures beside this workbench's finished runs.

    python benchmarks/literature_page.py
    # -> reports/literature/README.md, from reports/literature/published.csv and the results.csv
    #    of each page given with --ours (default: the MKG-Y comparison at every model's recipe and the converged one at hand-set settings)

Nothing is trained: the page is rebuilt from the CSVs, and a hand-written ``## Reading`` below
the generated part is kept.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from afme_lib.core.errors import DataFormatError
from afme_lib.experiments.pages.literature import literature_page, our_rows, read_published
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.spec import resolve_path

OURS = ("reports/real-data/MKG-Y/comparison", "reports/afme-v2-mkgy-converged")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--published", default="reports/literature/published.csv")
    parser.add_argument("--ours", nargs="+", default=list(OURS), help="report folders, each with a results.csv")
    parser.add_argument("--out", default="reports/literature/README.md")
    args = parser.parse_args(argv)
    published = read_published(resolve_path(args.published))
    results = {}
    for folder in args.ours:
        path = resolve_path(folder) / "results.csv"
        if not path.is_file():
            raise DataFormatError(path, "no results.csv here: give report folders of finished grids with --ours")
        results[folder] = pd.read_csv(path)
    command = ("python benchmarks/literature_page.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    lines = literature_page(published, our_rows(results), command)
    write_page(resolve_path(args.out), lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
