"""The ``afme`` command line: data, train, evaluate.

Model and training options are generated from the config dataclasses, so every field (every
ablation switch included) is a flag, and a new field needs no CLI change: ``--dim 128``,
``--no-denoising``, ``--lambda-adv 0.1``. Their help (a line and what is allowed) comes from the
fields' declarations in afme_lib/core/config.py, and their values are checked there: an
:class:`~afme_lib.core.errors.OptionError` is printed with the flag's spelling (``--epochs must be >= 0
(got -3)``) under the sub-command's usage, as argparse does for its own errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import MISSING, fields
from pathlib import Path

import torch

from afme_lib.analysis.export import notebook_html
from afme_lib.core.config import TRAIN_FIELDS, ModelConfig, TrainConfig, field_kind
from afme_lib.core.errors import AfmeError, OptionError, did_you_mean
from afme_lib.data.benchmarks import graph_counts, load_benchmark, registry_table
from afme_lib.data.clean import MANIFEST, write_clean
from afme_lib.data.download import download_dataset
from afme_lib.data.summary import dataset_summary, hygiene_lines
from afme_lib.data.synthetic import write_synthetic
from afme_lib.engine import memory
from afme_lib.engine.device import available_bytes
from afme_lib.engine.distributed import is_main
from afme_lib.experiments import main_job
from afme_lib.experiments.presets import all_presets
from afme_lib.experiments.run import CACHE_ROOT, evaluate_run, resume, run
from afme_lib.experiments.spec import RunSpec, read_spec_file
from afme_lib.interfaces.features_cli import add_features_parser
from afme_lib.interfaces.grid_cli import add_grid_commands
from afme_lib.interfaces.import_cli import add_import_parser
from afme_lib.interfaces.tune_cli import add_tune_parser
from afme_lib.models.registry import model_names

RENAMED = {"name": "model"}  # ModelConfig.name is given as --model
DATA_DIR_HELP = "folder holding the benchmark folders (default: $AFME_DATA_DIR, then the cache folder)"


def flag_for(name: str) -> str:
    """The CLI spelling of a run-spec field: ``lambda_adv`` -> ``--lambda-adv``."""
    return "--" + RENAMED.get(name, name).replace("_", "-")


class Parser(argparse.ArgumentParser):
    """argparse that suggests the closest names for a mistyped choice, sub-command or flag, and
    reports a flag unknown to a sub-command with that sub-command's usage (argparse's own parser
    would show the top-level one)."""

    def _check_value(self, action, value):
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as err:
            raise argparse.ArgumentError(action, err.message + did_you_mean(value, list(action.choices))) from None

    def parse_args(self, args=None, namespace=None):
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            leaf = getattr(parsed, "_parser", self)
            flags = [o for a in leaf._actions for o in a.option_strings if a.help != argparse.SUPPRESS]
            hints = "".join(did_you_mean(x.split("=")[0], flags) for x in extra if x.startswith("-"))
            leaf.error(f"unrecognized arguments: {' '.join(extra)}{hints}")
        return parsed


def _mark_leaves(parser: argparse.ArgumentParser) -> None:
    """Let every sub-command's parser be found from its parsed namespace (``_parser``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.set_defaults(_parser=parser)
    for action in subs:
        for child in action.choices.values():
            _mark_leaves(child)


def _flag_help(f, choices=None) -> str:
    """One line: the field's help, what it allows and its default."""
    rule = f.metadata["allowed"]
    allowed = ("one of " + ", ".join(choices)) if choices else rule.describe()
    default = f.default if f.default is not MISSING else f.default_factory()
    if field_kind(f) == "bool":
        shown = "on" if default else "off"
    elif field_kind(f) == "list":
        shown = "all" if default is None else " ".join(default)
    elif default is None:
        shown = "the model's own"
    else:
        shown = default
    text = rule.help + (f" (allowed: {allowed}; default: {shown})" if allowed else f" (default: {shown})")
    return text.replace("%", "%%")


def _add_config_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    group = parser.add_argument_group(f"{cls.__name__} fields (declared in afme_lib/core/config.py)")
    for f in fields(cls):
        if f.name in skip:
            continue
        flag, dest, kind = flag_for(f.name), f"{cls.__name__}.{f.name}", field_kind(f)
        if cls is ModelConfig and f.name == "name":
            group.add_argument(flag, dest=dest, default=None, metavar="NAME", help=_flag_help(f, model_names()))
        elif kind == "bool":
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=_flag_help(f))
        elif kind == "list":
            group.add_argument(flag, dest=dest, nargs="+", default=None, metavar=f.name.upper(), help=_flag_help(f))
        else:
            convert = {"int": int, "float": float, "float?": float}.get(kind, str)
            group.add_argument(flag, dest=dest, type=convert, default=None, metavar=f.name.upper(), help=_flag_help(f))


def _given_fields(args: argparse.Namespace, cls) -> dict:
    """The ``cls`` fields set on the command line (flags left out are None)."""
    prefix = cls.__name__ + "."
    given = {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}
    return {k: [] if v == ["none"] else v for k, v in given.items()}  # --modalities none: structure only


def _print(payload: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload, indent=2, default=str))
        return
    for key, value in payload.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")


# --- data -----------------------------------------------------------------------------------
def cmd_data_info(args) -> int:
    summary = dataset_summary(args.dataset, data_dir=args.data_dir, features=args.features)
    if args.json:
        _print(summary, True)
        return 0
    _print({k: v for k, v in summary.items() if k != "hygiene"}, False)
    print("hygiene (rows and shares; afme_lib/data/leakage.py says how each figure is counted):")
    print("\n".join(hygiene_lines(summary["name"], summary["hygiene"])))
    return 0


def cmd_data_clean(args) -> int:
    manifest = write_clean(
        load_benchmark(args.dataset, data_dir=args.data_dir),
        args.out,
        drop_pair_shortcuts=args.drop_pair_shortcuts,
        drop_reversed=args.drop_reversed,
    )
    counts = ", ".join(f"{s} {c['before']} -> {c['after']}" for s, c in manifest["counts"].items())
    print(f"wrote {args.out} ({counts}); every removed row and why: {args.out}/{MANIFEST}")
    return 0


def cmd_data_list(args) -> int:
    for row in registry_table():
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


def cmd_data_download(args) -> int:
    path = download_dataset(
        args.name,
        dest_root=args.data_dir,
        base_url=args.base_url,
        allow_unpinned=args.allow_unpinned,
        progress=not args.quiet,
    )
    print(f"{args.name} is ready in {path}")
    return 0


def cmd_data_synth(args) -> int:
    path = write_synthetic(args.out, all_presets()[args.preset], seed=args.seed)
    print(f"synthetic preset {args.preset!r} (seed {args.seed}) written to {path}")
    return 0


# --- train / evaluate -----------------------------------------------------------------------
def _flat_flags(args: argparse.Namespace) -> dict:
    """The run-spec fields given as flags (flat names; ``--model`` is ModelConfig's name)."""
    given = {
        k: getattr(args, k)
        for k in ("dataset", "features", "data_dir", "feature_placement")
        if getattr(args, k, None) is not None
    }
    model = _given_fields(args, ModelConfig)
    if "name" in model:
        given["model"] = model.pop("name")
    return {**given, **model, **_given_fields(args, TrainConfig)}


def cmd_train(args) -> int:
    if args.resume:
        flags = _flat_flags(args)
        not_training = sorted(k for k in flags if k not in TRAIN_FIELDS and k != "feature_placement")
        if not_training or args.out or args.config:
            given = [flag_for(k) for k in not_training] + [
                f for f, v in (("--out", args.out), ("--config", args.config)) if v
            ]
            raise AfmeError(
                f"--resume continues the run with its own data and model; drop {' '.join(given)} "
                "(training options such as --epochs or --lr may be given)"
            )
        folder = resume(args.resume, **flags)
    else:
        fields_given = {**(read_spec_file(args.config) if args.config else {}), **_flat_flags(args)}
        if "dataset" not in fields_given:
            raise AfmeError("afme train needs --dataset or a --config run spec naming one (or --resume RUN_DIR)")
        folder = run(RunSpec.from_fields(fields_given), args.out)
    if is_main():  # under torchrun: one summary line, not one per process
        metrics = folder.metrics
        test, rnd = metrics["test"], metrics["test"]["random"]
        print(
            f"run {folder.path}: test MRR {test['mrr']:.4f}  MR {test['mr']:.1f}  Hits@1 {test['hits@1']:.4f}  "
            f"Hits@10 {test['hits@10']:.4f}  self-answers {test['self_answer']:.4f}  "
            f"({metrics['epochs_run']} epochs, {metrics['train_seconds']:.1f}s); "
            f"random ranking: MRR {rnd['mrr']:.4f}  MR {rnd['mr']:.1f}  Hits@1 {rnd['hits@1']:.4f}  "
            f"Hits@10 {rnd['hits@10']:.4f}"
        )
    return 0


def metrics_text(result: dict, split: str) -> list[str]:
    """An evaluation beside its random-ranking baseline: the pooled metrics, then the MRR per
    side and per relation category."""
    random = result["random"]
    lines = [
        f"{split} split, {result['count']} queries (filtered ranking, realistic ties; fractions except mr)",
        f"{'metric':<10}{'model':>10}{'random':>10}",
    ]
    for key in ("mrr", "mr", "hits@1", "hits@3", "hits@10"):
        digits = 2 if key == "mr" else 4
        lines.append(f"{key:<10}{result[key]:>10.{digits}f}{random[key]:>10.{digits}f}")
    lines.append(f"{'self-ans.':<10}{result['self_answer']:>10.4f}{'':>10}   top-1 = the asked entity itself")
    lines += ["", f"{'queries':<10}{'count':>10}{'mrr':>10}{'random':>10}{'self-ans.':>10}"]
    for part in ("by_side", "by_category"):
        for name, m in result[part].items():
            lines.append(
                f"{name:<10}{m['count']:>10}{m['mrr']:>10.4f}{random[part][name]['mrr']:>10.4f}"
                f"{m['self_answer']:>10.4f}"
            )
    return lines


def cmd_evaluate(args) -> int:
    result = evaluate_run(args.run_dir, split=args.split, checkpoint=args.checkpoint)
    if args.json:
        _print(result, True)
    else:
        print("\n".join(metrics_text(result, args.split)))
    return 0


# --- memory ---------------------------------------------------------------------------------
def parse_dims(items: list[str] | None) -> dict[str, int]:
    """``["image=383", "text=384"]`` -> {"image": 383, "text": 384}."""
    dims = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--feature-dims expects MODALITY=WIDTH items like image=383, got {item!r}")
        dims[name] = int(value)
    return dims


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def table_lines(plans: list[memory.MemoryPlan], free_bytes: int | None = None) -> list[str]:
    """A markdown table of memory plans: bytes per entity by component, then totals for the planned graph."""
    lines = [
        "| model | params | embeddings B/ent | grads B/ent | Adam B/ent | features B/ent | eval B/ent "
        "| train cache B/ent | total B/ent | fixed MiB | activations MiB | peak GiB | host GiB |"
        + (" fits |" if free_bytes else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---|" if free_bytes else ""),
    ]
    for p in plans:
        fixed = p.fixed["relations"] + p.fixed["dense"] + p.fixed["adam_steps"]
        e = p.per_entity
        row = (
            f"| {p.model} | {p.parameters:,} | {e['embeddings']} | {e['gradients']} | {e['optimiser']} | "
            f"{e['features']} | {e['evaluation']} | {e['training_cache']} | {p.bytes_per_entity()} | {fixed / 2**20:.1f} | "
            f"{p.fixed['activations'] / 2**20:.1f} | {_gib(p.peak_bytes)} | {_gib(p.host_bytes)} |"
        )
        if free_bytes:
            row += f" {'yes' if p.fits(free_bytes) else 'NO'} |"
        lines.append(row)
    return lines


def cmd_memory(args) -> int:
    model_fields = _given_fields(args, ModelConfig)
    train_cfg = TrainConfig.from_dict(_given_fields(args, TrainConfig))
    name = train_cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available() and not args.free_gb:
        raise AfmeError("--device cuda without a CUDA device here: give --free-gb to plan for one")
    entities, relations = graph_counts(args.dataset, args.data_dir)
    dims = memory.feature_dims_in(args.features) if args.features else {}
    dims.update(parse_dims(args.feature_dims))
    free = int(args.free_gb * 2**30) if args.free_gb else available_bytes(device)
    plans = [
        memory.plan(
            ModelConfig.from_dict({**model_fields, "name": name}),
            train_cfg,
            entities,
            relations,
            dims,
            args.feature_placement,
            device,
            free,
        )
        for name in args.models or model_names()
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "entities": entities,
                    "relations": relations,
                    "free_bytes": free,
                    "plans": [p.to_dict() for p in plans],
                },
                indent=2,
            )
        )
        return 0
    where = f"{free / 2**30:.1f} GiB free" if free else "free memory unknown"
    print(
        f"{args.dataset}: {entities:,} entities, {relations:,} relations; features {dims or 'none'}; "
        f"device {device} ({where}); batch {train_cfg.batch_size} x {train_cfg.negatives} negatives, "
        f"eval batch {train_cfg.eval_batch_size}"
    )
    for line in table_lines(plans, free):
        print(line)
    return 0


def add_memory_parser(sub) -> None:
    p = sub.add_parser("memory", help="bytes per entity and peak device memory of a run, before running it")
    p.add_argument("--dataset", required=True, help="registered name (counts known even before download) or folder")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--features", help="feature folder: widths read from the files' headers")
    p.add_argument(
        "--feature-dims", nargs="+", metavar="MODALITY=WIDTH", help="feature widths, e.g. image=383 text=384"
    )
    p.add_argument("--models", nargs="+", help="models to plan (default: every registered model)")
    p.add_argument(
        "--feature-placement",
        default="device",
        choices=["device", "pinned", "mmap"],
        help="where features live: device memory, or pinned / memory-mapped host memory (default: device)",
    )
    p.add_argument("--free-gb", type=float, help="free device memory to plan for (default: measured on --device)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_config_flags(p, ModelConfig, skip=("name",))
    _add_config_flags(p, TrainConfig)
    p.set_defaults(func=cmd_memory)


def cmd_html(args) -> int:
    for notebook in args.notebooks:
        out = Path(args.out_dir) / (Path(notebook).stem + ".html") if args.out_dir else None
        print(f"wrote {notebook_html(notebook, out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="afme", description="Multi-modal KG completion workbench (AFME + baselines)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="datasets: info, clean, list, download, synth, import").add_subparsers(
        dest="data_command", required=True
    )
    info = data.add_parser("info", help="counts, relation categories, degrees, modality coverage and split hygiene")
    info.add_argument("dataset", help="registered name (MKG-W, ...) or a folder in the OpenKE format")
    info.add_argument("--data-dir", help=DATA_DIR_HELP)
    info.add_argument("--features", help="feature folder (default: feature files in the dataset folder)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_data_info)
    clean = data.add_parser(
        "clean",
        help="write a variant without duplicates and without valid/test triples found in train",
        description="Write a cleaned variant of a dataset (OpenKE files, same entity and relation "
        "ids, feature files linked): duplicate rows removed, valid/test triples that are training "
        "triples dropped, valid triples that are test triples dropped from valid. The folder's "
        "clean-manifest.json lists every removed row and why (afme_lib/data/clean.py).",
    )
    clean.add_argument("dataset", help="registered name (TIVA, ...) or a folder in the OpenKE format")
    clean.add_argument(
        "--out", required=True, help="folder to create; its name must say it is cleaned (e.g. TIVA-clean)"
    )
    clean.add_argument("--data-dir", help="folder holding downloaded benchmarks")
    clean.add_argument(
        "--drop-pair-shortcuts",
        action="store_true",
        help="also drop valid/test rows whose (head, tail) pair is linked in train under another relation",
    )
    clean.add_argument(
        "--drop-reversed",
        action="store_true",
        help="also drop valid/test rows whose (tail, head) pair is linked in train",
    )
    clean.set_defaults(func=cmd_data_clean)
    lst = data.add_parser("list", help="registered benchmarks")
    lst.set_defaults(func=cmd_data_list)
    dl = data.add_parser("download", help="fetch a registered benchmark and verify it by sha256")
    dl.add_argument("name", help="registered benchmark (see `afme data list`)")
    dl.add_argument("--data-dir", help="folder to put <NAME>/ in (default: $AFME_DATA_DIR, else the cache folder)")
    dl.add_argument("--dest", dest="data_dir", help=argparse.SUPPRESS)  # its former name
    dl.add_argument("--base-url", help="mirror of the release (default: the NATIVE release on GitHub)")
    dl.add_argument("--allow-unpinned", action="store_true", help="accept files with no pinned sha256 (prints theirs)")
    dl.add_argument("--no-progress", dest="quiet", action="store_true", help="no progress bar")
    dl.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # its former name
    dl.set_defaults(func=cmd_data_download)
    synth = data.add_parser("synth", help="write a synthetic multi-modal KG with known ground truth")
    synth.add_argument(
        "--preset",
        default="tiny",
        choices=list(all_presets()),
        help=f"size and difficulty: {', '.join(all_presets())} (default: tiny)",
    )
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    synth.add_argument("--out", required=True, help="folder to write (new or empty)")
    synth.set_defaults(func=cmd_data_synth)
    add_import_parser(data)  # afme data import

    train = sub.add_parser(
        "train",
        help="train a model and evaluate it (filtered ranking)",
        description="Train a model and evaluate its best-valid checkpoint; a folder that holds "
        "this run finished is returned as it is, an interrupted one resumed. Each option below "
        "says what it allows; a value outside that is refused before any data is read.",
    )
    train.add_argument(
        "--config",
        metavar="SPEC.yaml",
        help="a run spec: one YAML mapping of the fields below by "
        "their names (dataset, model, dim, epochs, ...); flags given beside it win",
    )
    train.add_argument("--dataset", help="registered name, folder, or synth:<preset>[:<seed>]")
    train.add_argument(
        "--features",
        help="feature folder (released <DATASET>-visual.pth ... or <modality>.npy; "
        "default: the dataset folder's own feature files); a multi-modal model without any is "
        "refused unless --modalities none asks for structure only",
    )
    train.add_argument("--data-dir", help=DATA_DIR_HELP)
    train.add_argument("--out", help=f"run folder (default: the run cache, {CACHE_ROOT}/<model>-<dataset>-<hash>)")
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint "
        "(training flags given with it, e.g. --epochs, replace the run's values)",
    )
    _add_config_flags(train, ModelConfig)
    _add_config_flags(train, TrainConfig)
    train.add_argument(
        "--feature-placement",
        choices=["auto", "device", "pinned", "mmap"],
        help="where features live: on the device, or host memory gathered per batch (default: auto)",
    )
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a run folder's checkpoint on a split")
    ev.add_argument("run_dir", help="run folder written by `afme train --out`")
    ev.add_argument("--split", default="test", choices=["valid", "test"], help="split to rank (default: test)")
    ev.add_argument(
        "--checkpoint",
        default="best",
        choices=["best", "last"],
        help="best-valid or last checkpoint (default: best; last when the run never validated)",
    )
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.set_defaults(func=cmd_evaluate)

    html = sub.add_parser(
        "html",
        help="executed notebooks as HTML pages that open offline (no CDN)",
        description="Write each executed notebook as an HTML page whose figures draw with no "
        "network: plotly.js is the installed package's bundle, shared under reports/assets/ (or "
        "copied beside the page); MathJax is off; widgets need JupyterLab.",
    )
    html.add_argument("notebooks", nargs="+", metavar="NOTEBOOK.ipynb", help="executed notebooks")
    html.add_argument("--out-dir", help="folder for the pages (default: beside each notebook)")
    html.set_defaults(func=cmd_html)

    job = sub.add_parser(
        "main-job",
        add_help=False,
        help="the README's main job: AFME, its ablations and the "
        "baselines on the synthetic default preset, the notebooks executed, reports/main/README.md "
        "(afme main-job --help)",
    )
    job.set_defaults(func=lambda args: main_job.main([]))  # main() hands main-job its own arguments

    add_features_parser(sub)  # afme features text|image
    add_grid_commands(sub)  # afme grid run|summary
    add_tune_parser(sub)  # afme tune
    add_memory_parser(sub)  # afme memory
    _mark_leaves(parser)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """``afme: UserWarning: message`` on one line: no file path, no echoed source line (Python's
    default shows both, which reads like a crash). Python's default filter already shows each
    distinct message once per place that raises it."""
    return f"afme: {category.__name__}: {' '.join(str(message).split())}\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["main-job"]:  # its own options, --help included, are the main job's
        return main_job.main(argv[1:])
    args = build_parser().parse_args(argv)
    shown = warnings.formatwarning
    warnings.formatwarning = _one_line_warning  # how warnings print; recording them (tests) is unchanged
    try:
        return _run(args)
    finally:
        warnings.formatwarning = shown


def _run(args) -> int:
    try:
        return args.func(args)
    except OptionError as err:  # a flag's value: the sub-command's usage and the flag as typed
        args._parser.print_usage(sys.stderr)
        print(f"{args._parser.prog}: error: {err.render(flag_for)}", file=sys.stderr)
        return 2
    except (AfmeError, ValueError, OSError) as err:  # bad input or paths: a message, not a traceback
        print(f"afme: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("afme: interrupted; resume a training run with `afme train --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
