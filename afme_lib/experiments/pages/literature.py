"""Published MMKGC figures beside this workbench's runs: ``reports/literature/README.md``.

The published figures are a CSV written by hand from papers and repositories
(``reports/literature/published.csv``: method, venue, dataset, mrr, hits@1, hits@10 in %, source,
verified); ours come from the ``results.csv`` of finished grids (one row per run; seeds averaged).
The page puts both in one table per dataset, says for each of our models how far it is from the
same method's published figure, and why the two are not measured alike (:data:`PROTOCOL`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from afme_lib.core.errors import DataFormatError

PUBLISHED_COLUMNS = ("method", "venue", "dataset", "mrr", "hits@1", "hits@10", "source", "verified")
METRICS = ("mrr", "hits@1", "hits@10")
# Our model names as the literature spells the method.
METHOD_OF = {
    "afme": "AFME",
    "native": "NativE",
    "rotate": "RotatE",
    "transe": "TransE",
    "distmult": "DistMult",
    "complex": "ComplEx",
    "ikrl": "IKRL",
    "mmkrl": "MMKRL",
    "otkge": "OTKGE",
    "mm-concat": "mm-concat",
}
# How the published figures were obtained (as the papers' own training code shows), against ours;
# quoted, not measured here.
PROTOCOL = [
    "| | published figures (as far as their code shows) | this workbench |",
    "|---|---|---|",
    "| checkpoint | MyGO and MoMoK evaluate on the test split during training and report the best "
    "test epoch (MoMoK the best epoch of each metric separately); NativE and AdaMF-MAT test the last "
    "epoch once | the best validation checkpoint; the test split is read once, after training |",
    "| ties | NativE and AdaMF-MAT count only strictly better scores (a tie goes to the true answer); "
    "MyGO gives ties half credit; MoMoK breaks them at random | a tie costs the true answer half the tied "
    "places (the expected rank of a random order) |",
    "| ranking | filtered, both sides | filtered against every entity, both sides |",
    "| inputs | image features and description sentences (MKG-Y has descriptions for 12,305 of its 15,000 "
    "entities) | the inputs column of each row: structure only, or the entity's name text (MiniLM) |",
    "| seeds | one run | the seeds column: mean ± sample std over seeds |",
]


def read_published(path: str | Path) -> pd.DataFrame:
    """The published figures of the CSV at ``path``; a DataFormatError names the file and the line
    of a missing column, a non-numeric figure or a figure outside 0-100."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataFormatError(path, f"cannot read the published figures ({err})") from None
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataFormatError(
            path, f"missing column(s) {', '.join(missing)}; expected {', '.join(PUBLISHED_COLUMNS)}", 1
        )
    for i, row in frame.iterrows():
        line = int(i) + 2  # the header is line 1
        if not row["method"] or not row["dataset"]:
            raise DataFormatError(path, "method and dataset are required", line)
        for metric in METRICS:
            text = row[metric].strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise DataFormatError(path, f"{metric} {text!r} is not a number", line) from None
            if not 0 <= value <= 100:
                raise DataFormatError(path, f"{metric} {value} is not a percentage (0-100)", line)
    for metric in METRICS:
        frame[metric] = pd.to_numeric(frame[metric].replace("", math.nan))
    return frame[list(PUBLISHED_COLUMNS)]


def _inputs(row) -> str:
    if pd.isna(row.get("features")) or not row.get("features"):
        return "structure only"
    raw = row.get("modalities")
    names = json.loads(raw) if isinstance(raw, str) and raw.startswith("[") else None
    return "structure + " + (" + ".join("name text" if n == "text" else n for n in names) if names else "features")


def our_rows(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (page, dataset, variant) of the finished runs in ``results`` ({page folder:
    its results.csv}): the method, the inputs, the seeds and each metric's mean and sample std in %."""
    rows = []
    for page, frame in results.items():
        ok = frame[frame["status"] == "ok"]
        for (dataset, variant), group in ok.groupby(["dataset", "variant"], sort=False):
            first = group.iloc[0]
            row = {
                "page": page,
                "dataset": dataset,
                "variant": variant,
                "method": METHOD_OF.get(first["model"], first["model"]),
                "inputs": _inputs(first),
                "seeds": len(group),
            }
            for metric in METRICS:
                values = 100 * group[metric].astype(float)
                row[metric] = values.mean()
                row[metric + " std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def _figure(value, std=math.nan) -> str:
    if pd.isna(value):
        return "–"
    return f"{value:.2f}" if pd.isna(std) else f"{value:.2f} ± {std:.2f}"


def dataset_table(dataset: str, published: pd.DataFrame, ours: pd.DataFrame) -> list[str]:
    """One dataset's published rows (best MRR first), then ours, in one table."""
    lines = [
        "| method | venue | inputs | MRR | Hits@1 | Hits@10 | source | verified |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    pub = published[published["dataset"] == dataset].sort_values("mrr", ascending=False)
    for _, r in pub.iterrows():
        cells = [r["method"], r["venue"] or "–", "as published", *(_figure(r[m]) for m in METRICS)]
        lines.append("| " + " | ".join([*cells, r["source"], r["verified"]]) + " |")
    for _, r in ours[ours["dataset"] == dataset].iterrows():
        name = r["method"] + ("" if r["variant"] == r["method"].lower() else f" ({r['variant']})")
        cells = [f"**{name}**", "this workbench", r["inputs"], *(_figure(r[m], r[m + " std"]) for m in METRICS)]
        lines.append("| " + " | ".join([*cells, f"`{r['page']}` ({r['seeds']} seeds)", "ran here"]) + " |")
    return lines


def standing(published: pd.DataFrame, ours: pd.DataFrame) -> list[str]:
    """Each of our rows against the same method's MRR on its dataset as its authors published it
    and as others re-ran it (a method named "<method>, re-run ..."), and against the best
    published MRR there; gaps in points, ours minus theirs."""
    lines = [
        "| dataset | ours | MRR | same method, published | ours − published | same method, re-run by others "
        "| ours − re-run | best published (method) | ours − best |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    several = ours["page"].nunique() > 1 if len(ours) else False  # then each row names its page
    for _, r in ours.iterrows():
        pub = published[published["dataset"] == r["dataset"]].dropna(subset=["mrr"])
        if pub.empty:
            continue
        base = pub["method"].str.split(",").str[0].str.lower()
        rerun = pub["method"].str.contains(",")
        cells = []
        for rows in (pub[(base == r["method"].lower()) & ~rerun], pub[(base == r["method"].lower()) & rerun]):
            theirs = rows["mrr"].max() if not rows.empty else math.nan
            cells += [_figure(theirs), "–" if pd.isna(theirs) else f"{r['mrr'] - theirs:+.2f}"]
        original = pub[~rerun]
        best = original.loc[original["mrr"].idxmax()]
        lines.append(
            f"| {r['dataset']} | {r['variant']} ({r['inputs']}{'; ' + str(r['page']).removeprefix('reports/') if several else ''}) | "
            f"{r['mrr']:.2f} | " + " | ".join(cells) + " | "
            f"{best['mrr']:.2f} ({best['method']}) | {r['mrr'] - best['mrr']:+.2f} |"
        )
    return lines


def literature_page(published: pd.DataFrame, ours: pd.DataFrame, command: str) -> list[str]:
    """The page's generated part: how to rebuild it, the protocols, a table per dataset, the standing."""
    datasets = list(dict.fromkeys([*published["dataset"], *ours["dataset"]]))
    lines = [
        "# Published MMKGC results beside this workbench's",
        "",
        f"Made by `{command}`. Published figures: `reports/literature/published.csv`, written by hand from papers, "
        "repositories and later papers' tables; the verified column says which were checked against their "
        "source. Ours: the finished runs of the pages named in each row. Filtered link prediction, MRR / Hits@1 / "
        "Hits@10 in %; – where a source gives no figure.",
        "",
        "## How the figures were obtained",
        "",
        "The published protocols favour the published numbers against ours (test-epoch or per-metric selection, "
        "ties resolved for the true answer, richer inputs), so a published figure is an upper bound for what "
        "the same method reaches here.",
        "",
        *PROTOCOL,
    ]
    for dataset in datasets:
        lines += ["", f"## {dataset}", "", *dataset_table(dataset, published, ours)]
    compared = standing(published, ours)
    if len(compared) > 2:
        lines += ["", "## Where our runs stand", "", *compared]
    return lines
