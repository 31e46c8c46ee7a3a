"""The literature page: published figures read from a hand-written CSV, ours from grids' results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import load_script, markdown_tables, table_row

from afme_lib.core.errors import DataFormatError
from afme_lib.experiments.pages.literature import literature_page, our_rows, read_published, standing
from afme_lib.experiments.pages.writer import READING

ROOT = Path(__file__).resolve().parents[3]
literature_script = load_script("literature_page")
HEADER = "method,venue,dataset,mrr,hits@1,hits@10,source,verified\n"


def _published(tmp_path, body: str) -> Path:
    path = tmp_path / "published.csv"
    path.write_text(HEADER + body)
    return path


def _results(**runs) -> pd.DataFrame:
    """A results.csv with one row per (variant, seed, mrr) of each ``variant=[mrr, ...]``."""
    rows = []
    for variant, mrrs in runs.items():
        model = variant.split("-d")[0]
        for seed, mrr in enumerate(mrrs):
            rows.append(
                {
                    "variant": variant,
                    "model": model,
                    "dataset": "MKG-Y",
                    "seed": seed,
                    "status": "ok",
                    "mrr": mrr,
                    "hits@1": mrr - 0.05,
                    "hits@10": mrr + 0.05,
                    "features": None if model == "rotate" else "/f/MKG-Y",
                    "modalities": None if model == "rotate" else '["text"]',
                }
            )
    rows.append({**rows[-1], "seed": 9, "status": "failed", "mrr": 0.0})  # not a finished run: left out
    return pd.DataFrame(rows)


def test_published_figures_are_read_and_bad_lines_are_named(tmp_path):
    frame = read_published(_published(tmp_path, "AFME,NN 2025,MKG-W,37.09,30.33,,article,yes\n"))
    assert frame.loc[0, "mrr"] == 37.09 and pd.isna(frame.loc[0, "hits@10"])
    with pytest.raises(DataFormatError, match=r"published\.csv:3: hits@1 'abc' is not a number"):
        read_published(_published(tmp_path, "A,,MKG-W,30,20,,s,no\nB,,MKG-W,31,abc,,s,no\n"))
    with pytest.raises(DataFormatError, match=r"published\.csv:2: mrr 371\.0 is not a percentage"):
        read_published(_published(tmp_path, "A,,MKG-W,371,,,s,no\n"))
    (tmp_path / "short.csv").write_text("method,dataset,mrr\nA,MKG-W,30\n")
    with pytest.raises(DataFormatError, match=r"short\.csv:1: missing column\(s\) venue, hits@1, hits@10"):
        read_published(tmp_path / "short.csv")


def test_our_rows_average_the_finished_seeds_and_name_the_inputs():
    ours = our_rows({"reports/x": _results(afme=[0.38, 0.40], rotate=[0.36, 0.36, 0.37])})
    afme = ours.set_index("variant").loc["afme"]
    assert afme["method"] == "AFME" and afme["inputs"] == "structure + name text" and afme["seeds"] == 2
    assert afme["mrr"] == pytest.approx(39.0) and afme["mrr std"] == pytest.approx(pd.Series([38.0, 40.0]).std())
    rotate = ours.set_index("variant").loc["rotate"]
    assert rotate["inputs"] == "structure only" and rotate["seeds"] == 3  # the failed run is not a seed


def test_standing_compares_with_the_published_and_the_rerun_figure_and_the_best_original(tmp_path):
    published = read_published(
        _published(
            tmp_path,
            "NativE,SIGIR,MKG-Y,39.04,,,t,no\n"
            '"NativE, re-run",,MKG-Y,38.34,,,t,no\n'
            "M-Hyper,ACL,MKG-Y,39.46,,,t,no\n"
            '"Other, re-run",,MKG-Y,45.00,,,t,no\n',  # a re-run is never "the best published"
        )
    )
    ours = our_rows({"reports/x": _results(native=[0.3847, 0.3847])})
    row = table_row(markdown_tables("\n".join(standing(published, ours))), ours="native (structure + name text)")
    assert row["same method, published"] == "39.04" and row["same method, re-run by others"] == "38.34"
    assert row["ours − published"] == "-0.57" and row["ours − re-run"] == "+0.13"
    assert row["best published (method)"] == "39.46 (M-Hyper)" and row["ours − best"] == "-0.99"


def test_the_committed_page_is_what_its_command_writes(tmp_path):
    page = ROOT / "reports" / "literature" / "README.md"
    committed = page.read_text()
    command = committed.split("Made by `", 1)[1].split("`", 1)[0]
    assert command.startswith("python benchmarks/literature_page.py")
    out = tmp_path / "README.md"
    argv = [*command.split()[2:], "--out", str(out)]
    assert literature_script.main(argv) == 0
    generated = committed.split("\n" + READING, 1)[0].rstrip("\n")
    written = out.read_text().replace(f"{command} --out {out}", command)  # where it wrote is not what it shows
    assert written.rstrip("\n") == generated
    tables = markdown_tables(committed)
    assert table_row(tables, method="AFME", venue="Neural Networks 2025")["MRR"] == "37.09"


def test_the_page_has_a_table_per_dataset_of_either_side():
    published = pd.DataFrame(
        [
            {
                "method": "AFME",
                "venue": "",
                "dataset": "MKG-W",
                "mrr": 37.09,
                "hits@1": 30.33,
                "hits@10": None,
                "source": "s",
                "verified": "yes",
            }
        ]
    )
    ours = our_rows({"reports/x": _results(afme=[0.38])})
    lines = literature_page(published, ours, "python benchmarks/literature_page.py")
    assert "## MKG-W" in lines and "## MKG-Y" in lines
    shown = table_row(markdown_tables("\n".join(lines)), method="**AFME**")
    assert shown["MRR"] == "38.00" and shown["inputs"] == "structure + name text"


def test_rows_from_several_pages_name_their_page(tmp_path):
    published = read_published(_published(tmp_path, "NativE,SIGIR,MKG-Y,39.04,,,t,no\n"))
    ours = our_rows({"reports/a/x": _results(native=[0.38]), "reports/b": _results(native=[0.39])})
    labels = [row["ours"] for row in markdown_tables("\n".join(standing(published, ours)))[0]]
    assert labels == ["native (structure + name text; a/x)", "native (structure + name text; b)"]
    alone = markdown_tables("\n".join(standing(published, our_rows({"reports/b": _results(native=[0.39])}))))
    assert [row["ours"] for row in alone[0]] == ["native (structure + name text)"]
