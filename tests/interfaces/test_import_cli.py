"""``afme data import``: the Nations example end to end (import, then ``afme train`` with no
feature flag, the numeric modality in the trained model's weights), a no-op second run, and bad
input as one line on stderr with exit status 2 and no output folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from afme_lib.analysis import modality_weights
from afme_lib.data.examples import pykeen_nations
from afme_lib.experiments.run import open_run
from afme_lib.interfaces.cli import build_parser, main


@pytest.fixture(scope="module")
def nations() -> dict[str, Path]:
    return pykeen_nations()


def _import_args(nations, out) -> list[str]:
    return [
        "data",
        "import",
        "--triples",
        str(nations["triples"]),
        "--valid",
        str(nations["valid"]),
        "--test",
        str(nations["test"]),
        "--numeric",
        str(nations["numeric"]),
        "--out",
        str(out),
        "--no-progress",
    ]


@pytest.mark.filterwarnings("ignore::afme_lib.engine.evaluation.SelfAnswerWarning")  # two epochs teach little
def test_import_nations_then_train_afme_on_the_folder_alone(nations, tmp_path, capsys):
    out = tmp_path / "nations"
    assert main(_import_args(nations, out)) == 0
    printed = capsys.readouterr().out
    assert "14 entities, 55 relations; train 1592, valid 199, test 201 (the given split)" in printed
    assert "numeric: 13 of 14 entities (2 attributes: area, population)" in printed
    assert "hygiene (rows and shares" in printed and "memorisation-rule MRR" in printed
    assert main(_import_args(nations, out)) == 0
    assert "nothing to do" in capsys.readouterr().out

    run_dir = tmp_path / "run"
    # the dataset folder and nothing else about the data: its feature files are found in it
    argv = ["train", "--model", "afme", "--dataset", str(out), "--out", str(run_dir), "--epochs", "2", "--dim", "8"]
    assert main([*argv, "--no-progress"]) == 0
    assert "nations-numeric.pth (numeric: 14 rows x 2 dims, 1 missing)" in capsys.readouterr().out
    run = open_run(run_dir)
    profile = modality_weights.relation_profile(run.model, run.trainer.dataset, "train", ["head"])
    assert list(profile.weights.columns) == ["structure", "numeric"]
    assert (profile.weights["numeric"] > 0).all()


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD = "a\tr\tb\nb\tr\tc\nc\ts\ta\na\ts\tc\nb\ts\ta\n"


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        ({"triples": "a\tr\tb\nb\tr\n"}, [], "kg.tsv:2: expected 3 tab-separated fields"),
        (
            {"valid": "a\tr\tc\nzed\tr\ta\n", "test": "a\tr\tc\n"},
            [],
            "valid.tsv:2: head 'zed' does not occur in the training triples (kg.tsv)",
        ),
        ({"texts": "a\tthe first\nghost\tnot in the graph\na\ttwice\n"}, [], "texts.tsv:3: second text for entity"),
        ({"numeric": "a\tsize\t1\nb\tsize\tabout 3\n"}, [], "numeric.tsv:2: value 'about 3' of 'size' for 'b'"),
        ({"triples": ""}, [], "kg.tsv:1: empty file"),
        ({"numeric": ""}, [], "numeric.tsv:1: empty file"),
        ({"valid": GOOD}, [], "give both valid and test triples, or neither"),
        ({"valid": GOOD, "test": GOOD}, ["--split", "0.8/0.1/0.1"], "--split splits --triples"),
        ({}, ["--split", "0.9/0.2/0.1"], "split '0.9/0.2/0.1': expected TRAIN/VALID/TEST shares"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output_folder(tmp_path, capsys, files, extra, message):
    names = {
        "triples": "kg.tsv",
        "valid": "valid.tsv",
        "test": "test.tsv",
        "texts": "texts.tsv",
        "numeric": "numeric.tsv",
    }
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    given = {"triples": GOOD, **files}
    argv = ["data", "import", "--out", str(tmp_path / "kg"), "--no-progress", *extra]
    for key, text in given.items():
        argv += [f"--{key}", _write(inputs / names[key], text)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("afme: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no output folder, no staging folder


def test_import_help_explains_every_flag():
    data = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["data"]
    sub = next(a for a in data._actions if isinstance(a, argparse._SubParsersAction)).choices["import"]
    flags = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert {f for a in flags for f in a.option_strings} >= {
        "--triples",
        "--valid",
        "--test",
        "--split",
        "--texts",
        "--images",
        "--numeric",
        "--out",
    }
    assert all(a.help and len(a.help) > 15 for a in flags)
    assert "hygiene report" in sub.description
