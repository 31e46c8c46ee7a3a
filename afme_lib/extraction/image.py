"""Entity images -> ``<DATASET>-visual.pth`` with a torchvision backbone.

Layout: ``<images>/<entity>/*.jpg`` (a folder per entity, any number of images) and/or
``<images>/<entity>.jpg`` (one file per entity); ``<entity>`` is the name in ``entity2id.txt``,
an alternate spelling of it (URI tail such as ``Q42``, underscores for spaces; see
:func:`~afme_lib.extraction.names.entity_key_index`) or the integer id. Folders and files matching
no entity are counted and skipped.

For entity e with decodable images x_1..x_k the feature is the mean of the backbone's penultimate
layer (the classifier removed; 2048-d for ResNet-50, 512-d for ResNet-18):

    f_e = (1/k) sum_j phi(T(x_j)),     T = resize -> center crop -> [0, 1] -> ImageNet mean/std

and an entity with no decodable image gets an all-zero row (missing). A file PIL cannot decode
(corrupt, truncated, not an image) is skipped, counted and reported in a warning and in the
sidecar; it never stops the run.

Weights: ``"imagenet"`` (torchvision's weights API: downloads once into the torch hub cache, then
works offline; its own preprocessing is used), a file holding a state dict (``torch.load(...,
weights_only=True)``; classifier entries are ignored), or ``"none"`` (seeded random init: for
tests, the features carry no visual meaning).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from afme_lib.core.errors import AfmeError, DataFormatError
from afme_lib.engine.device import autocast_context, effective_amp, resolve_device
from afme_lib.extraction.names import dataset_entities, entity_key_index, resolve_key
from afme_lib.extraction.writer import ExtractionResult, run_extraction

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SKIPPED_EXAMPLES = 20  # skipped file names kept per chunk in the sidecar


# --- finding the images -----------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def find_entity_images(
    images_dir: str | Path, entity_names: list[str], max_images: int | None = None
) -> tuple[list[list[Path]], dict]:
    """Image files per entity id (sorted by name, at most ``max_images``) and a summary
    ``{"unmatched": n, "unmatched_examples": [...], "images": total, "entities_with_images": k}``."""
    root = Path(images_dir)
    if not root.is_dir():
        raise DataFormatError(root, "images folder not found")
    index = entity_key_index(entity_names)
    found: list[list[Path]] = [[] for _ in entity_names]
    unmatched: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            key, files = entry.name, _image_files(entry)
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            key, files = entry.stem, [entry]
        else:
            continue
        entity = resolve_key(key, index, len(entity_names))
        if entity is None:
            unmatched.append(entry.name)
        else:
            found[entity].extend(files)
    if max_images is not None:
        found = [sorted(files)[:max_images] for files in found]
    return found, {
        "unmatched": len(unmatched),
        "unmatched_examples": unmatched[:5],
        "images": sum(map(len, found)),
        "entities_with_images": sum(1 for f in found if f),
    }


def listing_sha256(images: list[list[Path]], root: Path) -> str:
    """Hash of which files (relative path and size) feed which entity: a changed folder is new input."""
    digest = hashlib.sha256()
    for entity, files in enumerate(images):
        for path in files:
            digest.update(f"{entity}\t{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


# --- the backbone ---------------------------------------------------------------------------------
def _strip_classifier(model: nn.Module, name: str) -> tuple[str, int]:
    """Replace the final Linear layer by Identity; return its state-dict prefix and input size."""
    for attr in ("fc", "heads", "classifier", "head"):
        layer = getattr(model, attr, None)
        if isinstance(layer, nn.Linear):
            setattr(model, attr, nn.Identity())
            return f"{attr}.", layer.in_features
        if isinstance(layer, nn.Sequential) and len(layer) and isinstance(layer[-1], nn.Linear):
            child, last = list(layer.named_children())[-1]
            setattr(layer, child, nn.Identity())
            return f"{attr}.{child}.", last.in_features
    raise AfmeError(f"backbone {name!r}: no final Linear classifier found (fc, heads, classifier, head)")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_state_dict(model: nn.Module, path: Path, classifier: str, name: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, pickled objects, truncated ...
        raise DataFormatError(
            path, f"cannot load as a state dict ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    for wrapper in ("state_dict", "model"):  # training scripts often nest the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFormatError(path, "expected a state dict (parameter name -> tensor)")
    # DataParallel prefixes; the classifier is not used (and may have another number of classes)
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(classifier)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise DataFormatError(path, f"not a {name} state dict: {detail[:400]}") from None


def build_backbone(
    name: str = "resnet50", weights: str | Path = "imagenet", image_size: int | None = None, seed: int = 0
) -> tuple[nn.Module, int, Callable, str]:
    """``(feature extractor in eval mode, feature dim, preprocessing, weights description)``.

    ``name`` is any torchvision classification model (``resnet50``, ``resnet18``, ``vit_b_16``,
    ``efficientnet_b0`` ...): its final Linear layer is removed. ``weights``: ``"imagenet"``,
    ``"none"`` or a state-dict file. ``image_size`` is the center-crop side (default 224; with
    ``imagenet`` weights and no size the weights' own preprocessing is used).
    """
    import torchvision
    from torchvision import transforms

    try:
        torchvision.models.get_model_builder(name)
    except ValueError:
        raise AfmeError(f"unknown torchvision backbone {name!r} (e.g. resnet50, resnet18, vit_b_16)") from None
    transform = None
    if str(weights) == "imagenet":
        enum = torchvision.models.get_model_weights(name).DEFAULT
        try:
            model = torchvision.models.get_model(name, weights=enum)
        except Exception as exc:  # no network and not in the torch hub cache
            raise AfmeError(
                f"cannot get torchvision's ImageNet weights for {name} ({type(exc).__name__}: {exc}); "
                "without network pass --weights FILE (a state dict)"
            ) from None
        record = f"torchvision {enum}"
        if image_size is None:
            transform = enum.transforms()
    else:
        with torch.random.fork_rng(devices=[]):  # seeded init that leaves the caller's RNG alone
            torch.manual_seed(seed)
            model = torchvision.models.get_model(name, weights=None)
        record = f"random init (seed {seed})"
    classifier, dim = _strip_classifier(model, name)
    if str(weights) not in ("imagenet", "none"):
        path = Path(weights)
        if not path.is_file():
            raise DataFormatError(path, "weights file not found (or pass 'imagenet' / 'none')")
        _load_state_dict(model, path, classifier, name)
        record = f"file {path.name} sha256:{_sha256_file(path)}"
    if transform is None:
        size = image_size or 224
        transform = transforms.Compose(
            [
                transforms.Resize(round(size * 256 / 224)),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
    return model.eval(), dim, transform, record


# --- decoding -------------------------------------------------------------------------------------
class _ImageFiles(torch.utils.data.Dataset):
    """``(row, image tensor or None, path, error or None)`` for each ``(row, path)`` item."""

    def __init__(self, items: list[tuple[int, str]], transform: Callable):
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        row, path = self.items[i]
        try:
            with Image.open(path) as image:
                return row, self.transform(image.convert("RGB")), path, None
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error ... on bad files
            message = str(exc).replace(path, Path(path).name)  # the sidecar names the file already
            return row, None, path, f"{type(exc).__name__}: {message.splitlines()[0] if message else ''}"


def _collate(batch):
    good = [(row, x) for row, x, _, _ in batch if x is not None]
    failed = [(path, error) for _, x, path, error in batch if x is None]
    rows = torch.tensor([row for row, _ in good], dtype=torch.long)
    images = torch.stack([x for _, x in good]) if good else None
    return rows, images, failed


def extract_image_features(
    dataset,
    images: str | Path,
    out: str | Path,
    *,
    backbone: str = "resnet50",
    weights: str | Path = "imagenet",
    image_size: int | None = None,
    max_images: int | None = None,
    batch_size: int = 64,
    chunk_size: int = 1024,
    workers: int | None = None,
    device: str = "auto",
    amp: str = "auto",
    seed: int = 0,
    data_dir: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    after_chunk: Callable[[int], None] | None = None,
) -> ExtractionResult:
    """Encode every entity's images into ``<out>/<DATASET>-visual.pth`` (+ ``.json``).

    ``workers`` decoding processes (default: half the CPU cores, at most 8; 0 decodes inline).
    Resumable (see :mod:`afme_lib.extraction.writer`); a finished file with the same settings is
    returned as is.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dataset_name, entity_names = dataset_entities(dataset, data_dir)
    dataset_name = name or dataset_name
    root = Path(images)
    files, found = find_entity_images(root, entity_names, max_images)
    if found["unmatched"]:
        warnings.warn(
            f"{root}: {found['unmatched']} folder(s)/file(s) match no entity of {dataset_name} and were "
            f"skipped (e.g. {', '.join(map(repr, found['unmatched_examples']))})",
            stacklevel=2,
        )
    if str(weights) == "none":
        warnings.warn(
            f"{backbone} with random weights: the features carry no visual meaning (use for tests only)", stacklevel=2
        )
    model, dim, transform, weights_record = build_backbone(backbone, weights, image_size, seed)
    torch_device = resolve_device(device)
    amp = effective_amp(torch_device, amp)
    model = model.to(torch_device)
    if torch_device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    workers = min(8, (os.cpu_count() or 2) // 2) if workers is None else workers

    @torch.inference_mode()
    def compute(start: int, stop: int):
        items = [(e - start, str(p)) for e in range(start, stop) for p in files[e]]
        loader = torch.utils.data.DataLoader(
            _ImageFiles(items, transform),
            batch_size=batch_size,
            num_workers=workers if items else 0,
            collate_fn=_collate,
            pin_memory=torch_device.type == "cuda",
        )
        sums, counts = torch.zeros(stop - start, dim), torch.zeros(stop - start)
        skipped: list[str] = []
        for rows, batch, failed in loader:
            skipped.extend(f"{Path(p).relative_to(root).as_posix()} ({err})" for p, err in failed)
            if batch is None:
                continue
            batch = batch.to(torch_device, non_blocking=True)
            if torch_device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast_context(torch_device, amp):
                feats = model(batch)
            sums.index_add_(0, rows, feats.float().cpu())
            counts.index_add_(0, rows, torch.ones(len(rows)))
        present = counts > 0
        values = sums / counts.clamp_min(1.0)[:, None]
        return (
            values,
            present,
            {
                "images_read": int(counts.sum()),
                "images_skipped": len(skipped),
                "skipped_files": skipped[:SKIPPED_EXAMPLES],
            },
        )

    settings = {
        "extractor": "image",
        "backbone": backbone,
        "weights": weights_record,
        "preprocessing": repr(transform),
        "max_images": max_images,
        "amp": amp,
        "images_sha256": listing_sha256(files, root),
    }
    describe = {"images_folder": str(root), "device": str(torch_device), "batch_size": batch_size, **found}
    result = run_extraction(
        out,
        dataset_name,
        "image",
        len(entity_names),
        dim,
        settings,
        compute,
        chunk_size=chunk_size,
        describe=describe,
        overwrite=overwrite,
        progress=progress,
        after_chunk=after_chunk,
    )
    skipped = result.info["stats"].get("images_skipped", 0)
    if skipped and not result.reused:
        examples = result.info["stats"]["skipped_files"][:3]
        warnings.warn(
            f"{skipped} image file(s) could not be decoded and were skipped, e.g. {'; '.join(examples)} "
            f"(more in {result.sidecar.name})",
            stacklevel=2,
        )
    return result
