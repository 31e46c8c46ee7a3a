"""``afme data import``: named triples (+ texts, images, numeric attributes) -> a dataset folder
(afme_lib/extraction/kg_import.py), then its split hygiene report.

    afme data import --triples kg.tsv --numeric literals.tsv --out data/my-kg
    afme data import --triples train.tsv --valid valid.tsv --test test.tsv --texts texts.tsv \\
        --images images/ --out data/my-kg
"""

from __future__ import annotations

from afme_lib.core.console import display_path
from afme_lib.core.errors import AfmeError
from afme_lib.data.dataset import load_dataset
from afme_lib.data.leakage import hygiene_report
from afme_lib.data.summary import hygiene_lines
from afme_lib.extraction.kg_import import DEFAULT_SPLIT, IMPORT_FILE, import_kg, import_summary


def cmd_data_import(args) -> int:
    if args.split and (args.valid or args.test):
        raise AfmeError("--split splits --triples; leave it out when --valid and --test give the split")
    result = import_kg(
        args.triples,
        args.out,
        valid=args.valid,
        test=args.test,
        split=args.split or DEFAULT_SPLIT,
        seed=args.seed,
        texts=args.texts,
        images=args.images,
        numeric=args.numeric,
        text_model=args.text_model,
        image_backbone=args.image_backbone,
        image_weights=args.image_weights,
        device=args.device,
        workers=args.workers,
        progress=not args.quiet,
    )
    where = display_path(result.path)
    if result.reused:
        print(f"{where} already holds this import (same inputs and options); nothing to do")
        return 0
    print(f"imported into {where}: " + "\n".join(import_summary(result.info)))
    dataset = load_dataset(result.path)
    print("hygiene (rows and shares; afme_lib/data/leakage.py says how each figure is counted):")
    print("\n".join(hygiene_lines(dataset.name, hygiene_report(dataset))))
    print(f"train on it: afme train --dataset {where} --model afme")
    return 0


def add_import_parser(data) -> None:
    """Add ``import`` to the ``afme data`` sub-command parsers."""
    p = data.add_parser(
        "import",
        help="named triples (+ texts, images, numeric attributes) -> a dataset folder with its features",
        description="Import a knowledge graph given as named triples (head<TAB>relation<TAB>tail, "
        "the form most public graphs ship) into a folder that `afme train --dataset DIR` reads "
        "with its features and no other flag: entity and relation ids (sorted by name) in the "
        "OpenKE format, a split, and one feature file per modality given. Bad input (a malformed "
        "line, a valid/test entity unseen in train, a non-numeric value, an empty file) stops "
        "with its file and line before anything is written; texts, images and attributes of "
        "unknown entities and undecodable images are skipped and counted. An interrupted import "
        f"resumes; the same inputs again do nothing ({IMPORT_FILE} in DIR records them). "
        "Ends with the split's hygiene report.",
    )
    p.add_argument(
        "--triples",
        required=True,
        metavar="FILE",
        help="named triples, one head<TAB>relation<TAB>tail per line (all of them, or train when --valid/--test are given)",
    )
    p.add_argument(
        "--valid",
        metavar="FILE",
        help="validation triples (same format; with --test). Every entity and relation must occur in --triples",
    )
    p.add_argument("--test", metavar="FILE", help="test triples (same format; with --valid)")
    p.add_argument(
        "--split",
        metavar="TRAIN/VALID/TEST",
        help=f"shares to split --triples into when --valid/--test are not given (default {DEFAULT_SPLIT}): whole "
        "entity pairs are held out, so no valid/test pair is linked in train in either direction, and every "
        "entity and relation keeps a training triple",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default: 0)")
    p.add_argument(
        "--texts",
        metavar="FILE",
        help="entity texts, entity<TAB>text per line (or JSON {entity: text}), encoded by --text-model into "
        "<NAME>-textual.pth",
    )
    p.add_argument(
        "--images",
        metavar="DIR",
        help="folder with an image file or a sub-folder of images per entity (named by entity), encoded by "
        "--image-backbone into <NAME>-visual.pth",
    )
    p.add_argument(
        "--numeric",
        metavar="FILE",
        help="numeric attributes, entity,attribute,value rows (.csv, else tab-separated): one column per "
        "attribute in <NAME>-numeric.pth, standardised on training entities; an entity without any is missing",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the dataset folder to write (new, empty, or an earlier import, which is replaced); NAME is its name",
    )
    p.add_argument(
        "--text-model",
        default="minilm",
        help="text encoder: minilm (the packaged all-MiniLM-L6-v2, offline; default), a hub id or a model folder",
    )
    p.add_argument("--image-backbone", default="resnet50", help="torchvision backbone for --images (default: resnet50)")
    p.add_argument(
        "--image-weights",
        default="imagenet",
        help="imagenet (torchvision's weights, downloaded once) | FILE (a state dict) | none (random: for tests) (default: imagenet)",
    )
    p.add_argument(
        "--device", default="auto", help="where the encoders run: auto | cpu | cuda | cuda:N (default: auto)"
    )
    p.add_argument("--workers", type=int, help="image decoding processes (default: half the cores, at most 8)")
    p.add_argument("--no-progress", dest="quiet", action="store_true", help="no progress bars or lines")
    p.set_defaults(func=cmd_data_import)
