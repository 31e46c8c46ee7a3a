"""Declared options: every field of both configs refuses bad values with an OptionError naming it,
through the Python API, the CLI, notebooks and grid files; combinations that cannot train are
refused before any data is read; help texts and "did you mean" suggestions come from the declarations."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from conftest import trained
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afme_lib.core.config import SCORER_NAMES, ModelConfig, TrainConfig, allowed, field_kind
from afme_lib.core.errors import OptionError, did_you_mean
from afme_lib.engine.checks import check_configs, check_run
from afme_lib.interfaces.cli import build_parser, flag_for, main
from afme_lib.models.registry import model_names
from afme_lib.models.scorers import SCORERS

CONFIGS = (ModelConfig, TrainConfig)
ALL_FIELDS = [(cls, f) for cls in CONFIGS for f in fields(cls)]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def bad_values(f) -> list:
    """Values field ``f`` must refuse: outside its range or choices, of the wrong type, non-finite."""
    rule, kind = f.metadata["allowed"], field_kind(f)
    wrong_type = {
        "bool": ["maybe", 1, None],
        "int": ["3", 2.5, True, None],
        "float": ["0.1", True, None],
        "float?": ["0.1", True],  # None: the model's own default
        "str": [3, None, ["x"]],
        "list": ["text", [1], ("a", 2)],
        "dict": ["x", [1]],
    }[kind]
    out = list(wrong_type)
    if kind in ("float", "float?"):
        out += [math.nan, math.inf, -math.inf]
    if rule.choices is not None:
        out.append("zzz" if kind == "str" else 7)
    if rule.pattern is not None:
        out += ["gpu", "cuda:x", ""]
    step = 1 if kind == "int" else 1e-9
    if rule.at_least is not None:
        out.append(rule.at_least - step)
    if rule.above is not None:
        out.append(rule.above)
    if rule.at_most is not None:
        out.append(rule.at_most + step)
    if rule.below is not None:
        out.append(rule.below)
    if f.name == "modalities":
        out += [["text", "text"], [""]]
    return out


def boundary_values(f) -> list:
    """Values on the edges of what ``f`` allows (each must be accepted)."""
    rule, kind = f.metadata["allowed"], field_kind(f)
    if rule.choices is not None:
        return list(rule.choices)
    if kind == "bool":
        return [True, False]
    if kind == "list":
        return [None, [], ["text", "image"]]
    if f.name == "device":
        return ["auto", "cpu", "cuda", "cuda:1", "mps"]
    out = [b for b in (rule.at_least, rule.at_most) if b is not None]
    if rule.above is not None:
        out.append(rule.above + 1e-9)
    return [int(v) if kind == "int" else float(v) for v in out] + ([None] if kind == "float?" else [])


def test_every_field_is_declared_with_help():
    for cls, f in ALL_FIELDS:
        rule = f.metadata["allowed"]
        assert rule.help.strip() and "\n" not in rule.help, f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("cls,f", ALL_FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in ALL_FIELDS])
def test_the_python_api_refuses_bad_values_naming_the_field(cls, f):
    for value in bad_values(f):
        with pytest.raises(OptionError) as info:
            cls(**{f.name: value})
        assert str(info.value).startswith(f"{f.name} "), (value, str(info.value))
        assert info.value.option == f.name
        with pytest.raises(OptionError):  # from_dict (run folders, grids) goes the same way
            cls.from_dict({f.name: value})
    for value in boundary_values(f):
        assert getattr(cls(**{f.name: value}), f.name) == value


def test_messages_name_the_option_the_value_and_what_is_allowed():
    cases = [
        (lambda: TrainConfig(epochs=-3), "epochs must be >= 0 (got -3)"),
        (lambda: ModelConfig(dim=0), "dim must be >= 1 (got 0)"),
        (lambda: TrainConfig(lr=math.nan), "lr must be a finite number (got nan)"),
        (lambda: TrainConfig(progress="maybe"), "progress must be true or false (got 'maybe')"),
        (lambda: ModelConfig(dropout=1.0), "dropout must be >= 0 and < 1 (got 1.0)"),
        (lambda: ModelConfig(enhance_mix=2), "enhance_mix must be between 0 and 1 (got 2)"),
        (
            lambda: TrainConfig(loss="nsa"),
            "loss must be one of nssa, margin, softplus, bce, 1vsall (got 'nsa') (did you mean 'nssa'?)",
        ),
        (
            lambda: TrainConfig(label_smoothing=0.1),
            "label_smoothing applies to loss 1vsall only (got 0.1 with loss nssa)",
        ),
        (lambda: TrainConfig.from_dict({"epoch": 3}), "epoch is not a TrainConfig field (did you mean 'epochs'?)"),
    ]
    for build, message in cases:
        with pytest.raises(OptionError) as info:
            build()
        assert str(info.value).startswith(message)


def test_values_are_normalised():
    import numpy as np

    cfg = TrainConfig(epochs=np.int64(3), lr=1, margin=np.float32(2.5))
    assert (type(cfg.epochs), type(cfg.lr), cfg.lr, type(cfg.margin)) == (int, float, 1.0, float)
    assert json.dumps(cfg.to_dict())  # plain types: config.json can hold them
    assert ModelConfig(modalities=("text",)).modalities == ["text"]


def test_a_config_changed_after_construction_is_checked_when_a_run_spec_takes_it():
    from afme_lib.experiments.spec import RunSpec

    cfg = TrainConfig()
    cfg.epochs = -1
    with pytest.raises(OptionError, match=r"^epochs must be >= 0"):
        RunSpec(dataset="synth:tiny", model=ModelConfig(), train=cfg)


def _numeric(cls):
    return [f for f in fields(cls) if field_kind(f) in ("int", "float") and f.metadata["allowed"].choices is None]


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_numbers_are_accepted_exactly_inside_their_declared_range(data):
    cls = data.draw(st.sampled_from(CONFIGS))
    f = data.draw(st.sampled_from(_numeric(cls)))
    rule = f.metadata["allowed"]
    if field_kind(f) == "int":
        value = data.draw(st.integers(min_value=-(2**40), max_value=2**40))
    else:
        value = data.draw(st.floats(allow_nan=True, allow_infinity=True, width=64))
    inside = (
        math.isfinite(value)
        and (rule.at_least is None or value >= rule.at_least)
        and (rule.above is None or value > rule.above)
        and (rule.at_most is None or value <= rule.at_most)
        and (rule.below is None or value < rule.below)
    )
    extra = {"loss": "1vsall"} if f.name == "label_smoothing" else {}
    if inside:
        assert getattr(cls(**{f.name: value}, **extra), f.name) == value
    else:
        with pytest.raises(OptionError, match=rf"^{f.name} must be"):
            cls(**{f.name: value}, **extra)


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.text(max_size=6), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_any_value_is_accepted_or_refused_by_an_option_error(data):
    """Whatever a caller passes, a config either holds it (checked again: idempotent) or raises an
    OptionError naming the field -- never another exception from deeper down."""
    cls, f = data.draw(st.sampled_from(ALL_FIELDS))
    value = data.draw(ANY_VALUE)
    try:
        cfg = cls(**{f.name: value})
    except OptionError as err:
        assert str(err).startswith(f"{f.name} ") and err.option == f.name
    else:
        assert cfg.validate() is cfg


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_any_flag_value_exits_with_a_message_naming_the_flag(data, tmp_path_factory):
    cls, f = data.draw(st.sampled_from(CLI_FIELDS))
    text = data.draw(st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=8))
    flag = flag_for(f.name)
    args = [f"{flag}={text}"] if field_kind(f) == "bool" else [flag, text]
    tmp = tmp_path_factory.mktemp("cli")
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = main(["train", "--dataset", str(tmp / "no-such-data"), "--out", str(tmp / "run"), *args])
        except SystemExit as exit_:
            code = exit_.code
    message = err.getvalue()
    assert code == 2 and "Traceback" not in message
    assert flag in message or "unknown dataset" in message, message  # a valid value reaches the data
    assert not (tmp / "run").exists()


# --- the CLI ---------------------------------------------------------------------------------------
def _train(args, tmp_path, capsys) -> tuple[int, str]:
    """Exit status and stderr of ``afme train`` on a dataset that does not exist: every refusal
    tested here must come before any data is read."""
    try:
        code = main(["train", "--dataset", str(tmp_path / "no-such-data"), "--out", str(tmp_path / "run"), *args])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def cli_bad_values(f) -> list[list[str]]:
    """Command-line arguments carrying a bad value for field ``f``."""
    flag, kind = flag_for(f.name), field_kind(f)
    if kind == "bool":
        return [[f"{flag}=maybe"], [f"{flag}=1"]]
    if kind == "list":
        return [[flag, "text", "text"], [flag]]
    out = [[flag, "abc"], [flag]]
    for value in bad_values(f):
        if isinstance(value, str) and kind != "str" or isinstance(value, bool) or value in ("", None):
            continue  # a number's text is its value on the command line; "abc" is its wrong type
        if isinstance(value, (int, float, str)):
            out.append([f"{flag}={value}"])
    return out


CLI_FIELDS = [(cls, f) for cls, f in ALL_FIELDS if f.name != "extra"]


@pytest.mark.parametrize("cls,f", CLI_FIELDS, ids=[f"{c.__name__}.{f.name}" for c, f in CLI_FIELDS])
def test_the_cli_refuses_bad_values_naming_the_flag(cls, f, tmp_path, capsys):
    for args in cli_bad_values(f):
        code, err = _train(args, tmp_path, capsys)
        assert code == 2, args
        assert flag_for(f.name) in err, (args, err)
        assert "Traceback" not in err and err.startswith("usage: afme train"), (args, err)
        assert "no-such-data" not in err  # refused before the dataset was looked for
        assert not (tmp_path / "run").exists()


def test_epochs_minus_three_and_dim_zero(tmp_path, capsys):
    code, err = _train(["--epochs", "-3"], tmp_path, capsys)
    assert code == 2 and err.endswith("afme train: error: --epochs must be >= 0 (got -3)\n")
    code, err = _train(["--dim", "0"], tmp_path, capsys)
    assert code == 2 and err.endswith("afme train: error: --dim must be >= 1 (got 0)\n")


def test_resume_overrides_are_checked(tiny_synth, tmp_path, capsys):
    run = tmp_path / "run"
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
                "8",
                "--epochs",
                "1",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "-1"]) == 2
    assert capsys.readouterr().err.endswith("error: --epochs must be >= 0 (got -1)\n")
    assert main(["train", "--resume", str(run), "--loss", "1vsall", "--label-smoothing", "2"]) == 2
    assert "--label-smoothing must be >= 0 and < 1 (got 2.0)" in capsys.readouterr().err


# --- combinations ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--model", "mmkrl", "--loss", "1vsall", "--features", "."],
            "--loss 1vsall cannot train model 'mmkrl': it adds adversarial terms on sampled negatives",
        ),
        (["--model", "native", "--loss", "1vsall", "--features", "."], "--loss 1vsall cannot train model 'native'"),
        (["--label-smoothing", "0.1"], "--label-smoothing applies to --loss 1vsall only (got 0.1 with --loss nssa)"),
        (["--model", "rotate", "--dim", "15"], "--dim must be even for model 'rotate' with its scorer rotate"),
        (["--model", "complex", "--dim", "15"], "--dim must be even for model 'complex' with its scorer complex"),
        (
            ["--model", "afme", "--scorer", "complex", "--dim", "15", "--features", "."],
            "--dim must be even for model 'afme' with --scorer complex",
        ),
        (["--model", "transformer"], "--model must be a registered model: " + ", ".join(model_names())),
        (["--model", "rotat"], "(did you mean 'rotate'?)"),
        (["--feature-placement", "pinned", "--loss", "hinge"], "--loss must be one of"),
        pytest.param(
            ["--amp", "bf16"],
            "--amp bf16 is for CUDA devices and this run is not on one (--device auto)",
            marks=NO_CUDA,
        ),
        pytest.param(["--device", "cuda:0"], "--device cuda:0 needs a CUDA device and torch sees none", marks=NO_CUDA),
    ],
)
def test_combinations_are_refused_before_any_data_is_read(args, message, tmp_path, capsys):
    code, err = _train(args, tmp_path, capsys)
    assert code == 2 and message in err, err
    assert "no-such-data" not in err


def test_odd_dims_are_fine_where_no_complex_scorer_is_used():
    for name in ("transe", "distmult", "ikrl", "mmkrl"):
        check_configs(ModelConfig(name=name, dim=15), TrainConfig())
    check_configs(ModelConfig(name="afme", scorer="transe", dim=15), TrainConfig())


def _structure_only_copy(tiny_synth, folder: Path) -> Path:
    """The tiny preset's OpenKE files without its feature files."""
    folder.mkdir()
    for path in tiny_synth.glob("*.txt"):
        shutil.copy(path, folder / path.name)
    return folder


def test_a_multimodal_model_uses_the_dataset_folders_features(tiny_synth, tmp_path, capsys):
    """AFME with and without --features on a folder holding feature files: the same files are
    loaded and recorded, and one line says which (with shapes and missing rows); no warning."""
    base = [
        "train",
        "--dataset",
        str(tiny_synth),
        "--model",
        "afme",
        "--dim",
        "8",
        "--epochs",
        "0",
        "--no-progress",
        "--device",
        "cpu",
    ]
    lines = {}
    for name, extra in (("given", ["--features", str(tiny_synth)]), ("default", [])):
        assert main([*base, "--out", str(tmp_path / name), *extra]) == 0
        out, err = capsys.readouterr()
        lines[name] = [line for line in out.splitlines() if line.startswith("features from")]
        assert "Warning" not in err and "warn" not in err, err
        assert json.loads((tmp_path / name / "config.json").read_text())["features"] == str(tiny_synth.resolve())
    files = sorted(p.name for p in tiny_synth.glob("*.pth"))
    assert len(lines["given"]) == 1 and len(lines["default"]) == 1
    assert lines["default"][0].startswith(
        f"features from {tiny_synth.resolve()} (the dataset folder's own, as none were given): "
    )
    assert lines["given"][0].startswith(f"features from {tiny_synth.resolve()}: ")
    assert lines["default"][0].split(": ", 1)[1] == lines["given"][0].split(": ", 1)[1]
    described = lines["default"][0].split(": ", 1)[1]
    assert [part.split(" (")[0] for part in described.split("), ")] == files
    assert re.search(r"synth-tiny-visual\.pth \(image: \d+ rows x \d+ dims, \d+ missing\)", described), described


def test_a_multimodal_model_without_any_features_is_refused(tiny_synth, tmp_path, capsys):
    """No --features and none in the dataset folder: refused (no run folder left), naming the
    folder searched; --modalities none trains it on structure only, explicitly."""
    bare = _structure_only_copy(tiny_synth, tmp_path / "bare")
    base = [
        "train",
        "--dataset",
        str(bare),
        "--model",
        "afme",
        "--dim",
        "8",
        "--epochs",
        "0",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main([*base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: afme train")
    assert err.endswith(
        f"afme train: error: --features are needed by model 'afme' (it fuses modality features), none "
        f"were given and the dataset folder {bare} holds no feature files: pass --features FOLDER "
        "(released <DATASET>-visual.pth ... or <modality>.npy files), or ask for structure only: "
        "--modalities none (modalities=[] from Python)\n"
    ), err
    assert not (tmp_path / "a").exists()
    assert main([*base, "--model", "ikrl", "--modalities", "text", "--out", str(tmp_path / "i")]) == 2
    assert "--features are needed by model 'ikrl'" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--modalities", "none"]) == 0
    assert "features from" not in capsys.readouterr().out
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model"]["modalities"] == []
    assert json.loads((tmp_path / "b" / "config.json").read_text())["features"] is None
    with pytest.raises(OptionError, match=r"^features are needed by model 'otkge'"):  # the Python API alike
        trained(str(bare), ModelConfig(name="otkge"), TrainConfig(device="cpu"), tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_a_multimodal_model_on_a_missing_dataset_names_the_dataset(tmp_path, capsys):
    code, err = _train(["--model", "afme"], tmp_path, capsys)
    assert code == 2 and "no-such-data" in err and "--features" not in err, err


def test_structure_only_models_need_no_features():
    check_run(ModelConfig(name="rotate"), TrainConfig(device="cpu"), features=None)


def test_a_misspelled_modality_suggests_the_right_one(tiny_synth, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--dataset",
                str(tiny_synth),
                "--features",
                str(tiny_synth),
                "--out",
                str(tmp_path / "r"),
                "--model",
                "mm-concat",
                "--modalities",
                "imgae",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "no feature file for modalities ['imgae'] (did you mean 'image'?)" in capsys.readouterr().err


# --- notebooks and grids -------------------------------------------------------------------------------
def test_notebook_parameters_are_checked_with_their_names():
    from afme_lib.interfaces.notebook import spec_from

    with pytest.raises(OptionError, match=r"^epochs must be >= 0 \(got -1\)$"):
        spec_from({"dataset": "synth:tiny", "epochs": -1})
    with pytest.raises(OptionError, match=r"^model must be a registered model: .*\(did you mean 'afme'\?\)"):
        spec_from({"dataset": "synth:tiny", "model": "afm"})
    with pytest.raises(OptionError, match=r"^attention_heads must be >= 1"):
        spec_from({"dataset": "synth:tiny", "attention_heads": 0})
    with pytest.raises(OptionError, match=r"^loss 1vsall cannot train model 'native'"):
        spec_from({"dataset": "synth:tiny", "model": "native", "loss": "1vsall"})


def _grid_file(tmp_path, body: str):
    from afme_lib.experiments.spec import project_root

    path = tmp_path / "bad.yaml"
    notebook = project_root() / "notebooks" / "02_training.ipynb"
    path.write_text(f"name: bad\nnotebook: {notebook}\n{body}")
    return path


def test_a_bad_grid_value_fails_the_dry_run_naming_file_cell_and_option(tmp_path, capsys):
    path = _grid_file(tmp_path, "parameters: {dataset: 'synth:tiny', model: afme, epochs: 2}\ngrid: {lr: [0.01, -1]}\n")
    assert main(["grid", "run", str(path), "--dry-run", "--reports", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"afme: error: {path}: cell lr=1__")  # ids slug -1 as 1 (and add a hash)
    assert "(dataset='synth:tiny', model='afme', epochs=2, lr=-1): lr must be > 0 (got -1)\n" in err
    path = _grid_file(
        tmp_path, "parameters: {model: afme}\ngrid: {seed: [0]}\nvariants: {full: {}, 'w/o x': {dropuot: 0.1}}\n"
    )
    assert main(["grid", "run", str(path), "--dry-run", "--reports", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "variants.w/o x.dropuot" in err and "no run-spec field" in err


def test_the_shipped_grids_pass_the_dry_run(tmp_path, capsys):
    from afme_lib.experiments.spec import project_root

    for path in sorted((project_root() / "configs").glob("*.yaml")):
        assert main(["grid", "run", str(path), "--dry-run", "--reports", str(tmp_path)]) == 0, capsys.readouterr().err


# --- help, usage, suggestions ------------------------------------------------------------------------
def _parsers(parser, path=("afme",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))
    yield " ".join(path), parser


def test_every_option_of_every_command_has_help():
    commands = dict(_parsers(build_parser()))
    assert {
        "afme data info",
        "afme data list",
        "afme data download",
        "afme data synth",
        "afme train",
        "afme evaluate",
        "afme features text",
        "afme features image",
        "afme grid run",
        "afme grid summary",
        "afme memory",
    } <= set(commands)
    for command, parser in commands.items():
        for action in parser._actions:
            if (
                isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
                or action.help == argparse.SUPPRESS
            ):
                continue
            assert action.help and action.help.strip(), f"{command} {action.option_strings or action.dest}"


def test_train_help_shows_what_each_option_allows(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    text = text[text.index("options:") :]  # past the usage lines
    for _cls, f in CLI_FIELDS:
        rule = f.metadata["allowed"]
        line = " ".join(rule.help.split())
        at = text.index(line)
        assert flag_for(f.name) in text[max(0, at - 80) : at], f.name  # the flag, then its line
        if rule.describe():
            assert text[at + len(line) :].startswith(f" (allowed: {rule.describe()}; default: "), f.name
    assert "allowed: one of nssa, margin, softplus, bce, 1vsall;" in text
    assert "allowed: one of uniform, bernoulli;" in text and "allowed: one of none, bf16, fp16;" in text
    assert "allowed: one of " + ", ".join(model_names()) + ";" in text
    assert "0 trains nothing and evaluates the initial model" in text


def test_evaluate_help_describes_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "split to rank (default: test)" in out and "best-valid or last checkpoint" in out


@pytest.mark.parametrize(
    "argv,usage,message",
    [
        (["train", "--dimm", "3"], "usage: afme train", "unrecognized arguments: --dimm 3 (did you mean '--dim'?)"),
        (["data", "download", "MKG-W", "--no-progess"], "usage: afme data download", "(did you mean '--no-progress'?)"),
        (
            ["evaluate", "run", "--split", "tset"],
            "usage: afme evaluate",
            "invalid choice: 'tset' (choose from 'valid', 'test') (did you mean 'test'?)",
        ),
        (["data", "synth", "--out", "x", "--preset", "tinny"], "usage: afme data synth", "(did you mean 'tiny'?)"),
        (["trian"], "usage: afme ", "(did you mean 'train'?)"),
        (["grid", "summary"], "usage: afme grid summary", "required: REPORT_DIR"),
    ],
)
def test_flag_errors_show_the_sub_commands_usage_and_suggest(argv, usage, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and message in err, err


def test_a_misspelled_dataset_suggests_the_registered_one(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "info", "MKG-V"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"unknown dataset 'MKG-V' \(did you mean '(MKG-W' or 'MKG-Y|MKG-Y' or 'MKG-W)'\?\)", err), err
    assert main(["data", "info", "tiva-k"]) == 2
    assert "(did you mean 'TIVA'?)" in capsys.readouterr().err  # an alias's near miss names the benchmark


def test_did_you_mean():
    assert did_you_mean("rotat", ["rotate", "transe"]) == " (did you mean 'rotate'?)"
    assert did_you_mean("xyz", ["rotate", "transe"]) == ""
    assert did_you_mean("ROTATE", ["rotate"]) == " (did you mean 'rotate'?)"


def test_one_data_dir_spelling(monkeypatch):
    parser = build_parser()
    assert parser.parse_args(["data", "download", "MKG-W", "--data-dir", "/d"]).data_dir == "/d"
    assert parser.parse_args(["data", "download", "MKG-W", "--dest", "/d"]).data_dir == "/d"  # former name, hidden
    assert parser.parse_args(["data", "download", "MKG-W", "--quiet"]).quiet  # --no-progress's former name
    for command, sub in _parsers(parser):
        flags = {o for a in sub._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        assert "--dest" not in flags and "--quiet" not in flags, command
        if any(a.dest in ("quiet", "no_progress") or "progress" in a.dest for a in sub._actions):
            assert "--no-progress" in flags, command  # one spelling for "no progress bar"


def test_the_tests_read_the_cli_data_dir_variable():
    from pathlib import Path

    from afme_lib.data.benchmarks import DATA_DIR_ENV

    assert DATA_DIR_ENV == "AFME_DATA_DIR"
    source = (Path(__file__).parents[1] / "conftest.py").read_text()
    assert "DATA_DIR_ENV" in source and "AFME_SHARED_DATASETS" not in source


def test_scorer_choices_are_the_registered_scorers():
    assert SCORER_NAMES == tuple(SCORERS)
    assert allowed(ModelConfig, "scorer").choices == SCORER_NAMES
