"""The ``afme`` command line: data info / list / synth, evaluate, config flags and error output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from afme_lib.data.benchmarks import registry_table
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import relation_categories
from afme_lib.engine.evaluation import random_baseline
from afme_lib.experiments.run import load_trainer
from afme_lib.interfaces.cli import main
from afme_lib.models.registry import model_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(tiny_synth, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(tiny_synth),
                "--out",
                str(run),
                "--model",
                "transe",
                "--dim",
                "16",
                "--epochs",
                "3",
                "--batch-size",
                "512",
                "--negatives",
                "8",
                "--lr",
                "0.02",
                "--eval-every",
                "1",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return run


# --- afme data ---------------------------------------------------------------------------------------
def test_data_info_json_reports_counts_categories_and_modalities(tiny_synth, capsys):
    assert main(["data", "info", str(tiny_synth), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    data = load_dataset(tiny_synth)
    assert info["counts"] == {
        "entities": data.num_entities,
        "relations": data.num_relations,
        "train": len(data.train),
        "valid": len(data.valid),
        "test": len(data.test),
    }
    cats = relation_categories(data.train, data.num_relations)
    assert info["relation_categories"] == {c: int(sum(1 for x in cats if x == c)) for c in ("1-1", "1-N", "N-1", "N-N")}
    assert sum(info["test_triples_by_category"].values()) == len(data.test)
    # the zero-shot items: every triple of theirs is held out (entity2group.txt says which)
    zero_shot = {i for i, g in enumerate(data.entity_groups) if g == "zero-shot"}
    unseen = {
        s: sum(1 for h, _, t in data.split(s).tolist() if h in zero_shot or t in zero_shot) for s in ("valid", "test")
    }
    assert info["unseen_entities_in"] == unseen and min(unseen.values()) > 0
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    assert set(info["modalities"]) == {"text", "image", "audio", "numeric"}
    for m, cov in info["modalities"].items():
        present = int(store.masks[m].sum())
        assert cov == {
            "dim": store.features[m].shape[1],
            "present": present,
            "missing": data.num_entities - present,
            "coverage": round(present / data.num_entities, 6),
        }


def test_data_info_plain_text(tiny_synth, capsys):
    assert main(["data", "info", str(tiny_synth)]) == 0
    out = capsys.readouterr().out
    assert f"counts:\n  entities: {load_dataset(tiny_synth).num_entities}\n" in out and "modalities:\n  " in out


def test_data_info_on_a_structure_only_folder_says_so(tiny_synth, tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt"):
        shutil.copy(tiny_synth / name, plain / name)
    assert main(["data", "info", str(plain), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["modalities"].startswith("none (structure only")


def test_data_info_on_a_malformed_folder_names_file_and_line(tiny_synth, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_synth, bad)
    lines = (bad / "train2id.txt").read_text().splitlines()
    lines[2] = "17 4"  # the 3rd line (2nd triple) lost its relation
    (bad / "train2id.txt").write_text("\n".join(lines) + "\n")
    assert main(["data", "info", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"afme: error: {bad / 'train2id.txt'}:3: expected 3 fields 'head tail relation', got 2: '17 4'\n"
    )


def test_data_info_on_a_missing_folder(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("afme: error: unknown dataset") and "afme data download" in err


def test_data_list_lists_the_five_benchmarks(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("  ")[0] for line in lines]
    assert names == [f"name={row['name']}" for row in registry_table()]
    assert sorted(n.removeprefix("name=") for n in names) == ["DB15K", "KVC16K", "MKG-W", "MKG-Y", "TIVA"]
    assert all("pinned=" in line and "entities=" in line for line in lines)


def test_data_synth_writes_the_preset(tiny_synth, tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--seed", "0"]) == 0
    assert capsys.readouterr().out == f"synthetic preset 'tiny' (seed 0) written to {out}\n"
    for name in ("train2id.txt", "valid2id.txt", "test2id.txt", "synth-tiny-textual.pth"):  # same seed, same bytes
        assert (out / name).read_bytes() == (tiny_synth / name).read_bytes()
    assert main(["data", "synth", "--out", str(tmp_path / "other"), "--seed", "1"]) == 0
    assert (tmp_path / "other" / "train2id.txt").read_bytes() != (out / "train2id.txt").read_bytes()
    # A non-empty foreign folder is refused with a message, not overwritten.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["data", "synth", "--out", str(tmp_path / "mine")]) == 2
    assert "refusing to write into it" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# --- afme evaluate -----------------------------------------------------------------------------------
def test_evaluate_a_run_on_valid(trained_run, tiny_synth, capsys):
    data = load_dataset(tiny_synth)
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert main(["evaluate", str(trained_run), "--split", "valid", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == metrics["valid"]  # the best checkpoint, as in the run's own final evaluation
    assert result["count"] == 2 * len(data.valid) and set(result["by_side"]) == {"tail", "head"}
    assert result["random"] == random_baseline(data, "valid")  # the split's random-ranking baseline beside it
    assert main(["evaluate", str(trained_run), "--split", "test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    test, rnd = metrics["test"], metrics["test"]["random"]
    assert lines[0] == f"test split, {test['count']} queries (filtered ranking, realistic ties; fractions except mr)"
    assert lines[1].split() == ["metric", "model", "random"]
    assert lines[2].split() == ["mrr", f"{test['mrr']:.4f}", f"{rnd['mrr']:.4f}"]
    assert lines[3].split() == ["mr", f"{test['mr']:.2f}", f"{rnd['mr']:.2f}"]
    assert lines[7].split()[:2] == ["self-ans.", f"{test['self_answer']:.4f}"]  # top-1 = the asked entity
    assert lines[9].split() == ["queries", "count", "mrr", "random", "self-ans."]
    assert lines[10].split() == [
        "tail",
        str(test["by_side"]["tail"]["count"]),
        f"{test['by_side']['tail']['mrr']:.4f}",
        f"{rnd['by_side']['tail']['mrr']:.4f}",
        f"{test['by_side']['tail']['self_answer']:.4f}",
    ]
    assert [line.split()[0] for line in lines[12:]] == list(test["by_category"])
    assert main(["evaluate", str(trained_run), "--split", "test", "--checkpoint", "last", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)
    assert last["count"] == 2 * len(data.test)


def test_evaluate_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"afme: error: {tmp_path} is not a run folder")


# --- afme train flags ----------------------------------------------------------------------------------
def test_bool_and_list_flags_reach_the_configs(tiny_synth, tmp_path):
    run = tmp_path / "ablation"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(tiny_synth),
                "--features",
                str(tiny_synth),
                "--out",
                str(run),
                "--model",
                "afme",
                "--dim",
                "16",
                "--epochs",
                "0",
                "--no-denoising",
                "--no-dynamic-weights",
                "--no-gan",
                "--self-attention",
                "--no-relation-context",
                "--modalities",
                "text",
                "image",
                "--attention-layers",
                "1",
                "--lambda-adv",
                "0.5",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    config = json.loads((run / "config.json").read_text())
    model = config["model"]
    assert (
        model["denoising"],
        model["dynamic_weights"],
        model["gan"],
        model["self_attention"],
        model["relation_context"],
    ) == (False, False, False, True, False)
    assert model["modalities"] == ["text", "image"] and model["attention_layers"] == 1
    assert config["train"]["lambda_adv"] == 0.5 and config["train"]["progress"] is False
    trainer = load_trainer(run)
    assert trainer.model.config.denoising is False and trainer.model.token_names == ["structure", "text", "image"]


def test_an_unknown_model_lists_the_registered_ones(tiny_synth, tmp_path, capsys):
    run = tmp_path / "nomodel"
    assert main(["train", "--dataset", str(tiny_synth), "--out", str(run), "--model", "transformer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: afme train ")
    assert err.endswith(
        f"\nafme train: error: --model must be a registered model: {', '.join(model_names())} "
        "(got 'transformer') (did you mean 'transe'?)\n"
    )
    assert {"rotate", "transe", "distmult", "complex", "ikrl", "mm-concat", "afme"} <= set(model_names())
    assert not (run / "config.json").exists()


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.mark.parametrize(
    "flags,message",
    [
        (
            ["--loss", "hinge"],
            "afme train: error: --loss must be one of nssa, margin, softplus, bce, 1vsall (got 'hinge')",
        ),
        (["--sampler", "zipf"], "afme train: error: --sampler must be one of uniform, bernoulli (got 'zipf')"),
        (["--amp", "fp8"], "afme train: error: --amp must be one of none, bf16, fp16 (got 'fp8')"),
        (
            ["--model", "mm-concat", "--modalities", "smell"],
            "afme: error: {dataset}: no feature file for modalities ['smell']",
        ),
        pytest.param(
            ["--device", "cuda"],
            "afme train: error: --device cuda needs a CUDA device and torch sees none",
            marks=NO_CUDA,
        ),
    ],
)
def test_a_rejected_training_option_leaves_no_half_written_run(tiny_synth, tmp_path, capsys, flags, message):
    run = tmp_path / "rejected"
    base = [
        "train",
        "--dataset",
        str(tiny_synth),
        "--features",
        str(tiny_synth),
        "--out",
        str(run),
        "--dim",
        "16",
        "--no-progress",
    ]
    assert main(base + ["--device", "cpu"] + flags) == 2  # a later --device wins
    err = capsys.readouterr().err
    assert message.format(dataset=tiny_synth) in err and "Traceback" not in err
    assert not (run / "config.json").exists()
    # so the corrected command simply works (no "already holds a run")
    assert main(base + ["--epochs", "0", "--device", "cpu"]) == 0


def test_train_needs_a_dataset(capsys):
    assert main(["train", "--model", "rotate"]) == 2
    assert capsys.readouterr().err == (
        "afme: error: afme train needs --dataset or a --config run spec naming one (or --resume RUN_DIR)\n"
    )


def test_config_flags_are_typed(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--dim", "sixteen"])
    assert info.value.code == 2
    assert "argument --dim: invalid int value: 'sixteen'" in capsys.readouterr().err


def test_warnings_are_one_line_each_and_shown_once():
    """Run as a program (its stderr as a user sees it): no file path, no echoed source line, a
    message's line breaks folded; a warning repeated from the same place shows once."""
    program = (
        "import warnings\n"
        "from afme_lib.interfaces import cli\n"
        "def noisy(_args):\n"
        "    for _ in range(3):\n"
        "        warnings.warn('x.pth: 12 rows\\n    are odd')\n"
        "    warnings.warn('y.pth: another', RuntimeWarning)\n"
        "    return 0\n"
        "cli.cmd_data_list = noisy\n"
        "raise SystemExit(cli.main(['data', 'list']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "afme: UserWarning: x.pth: 12 rows are odd\nafme: RuntimeWarning: y.pth: another\n"
