"""``afme data import``: a user's named triples, texts, images and numeric attributes -> one
folder that ``afme train --dataset DIR`` reads with its features and no other flag.

What the folder holds: the OpenKE files (afme_lib/data/importer.py; ids sorted by name), a split
(the given valid / test files, else afme_lib/data/splitting.py), ``<NAME>-numeric.pth`` (one
standardised column per attribute; afme_lib/data/numeric.py) with a ``.json`` sidecar,
``<NAME>-textual.pth`` and ``<NAME>-visual.pth`` from the extractors of this package (the
packaged MiniLM and a torchvision backbone), and ``import.json``: the inputs' sha256, the options
and what was read, skipped and held out. ``NAME`` is the folder's name.

Order of work, so that bad input leaves nothing behind and a kill loses little:

1. every input is read and checked in memory (a malformed line, a valid / test entity unseen
   in train, a non-numeric value, an empty file: a DataFormatError naming file and line), and
   nothing is written;
2. the folder is built in a hidden sibling, ``.<NAME>.importing``, stamped with the inputs'
   hashes: an interrupted import run again with the same inputs resumes there (the extractors
   skip their finished chunks), other inputs start it afresh. An error about the input removes it;
3. the finished folder is renamed onto ``DIR`` (a previous import there is replaced whole).

``import.json`` holding the same inputs and options makes a second run a no-op. Images are
hashed by their relative paths and sizes, like the image extractor does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import afme_lib
from afme_lib.core import atomic
from afme_lib.core.errors import AfmeError, DataFormatError
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.importer import IdGraph, assign_ids, read_named_triples, write_openke
from afme_lib.data.numeric import read_attributes, standardise
from afme_lib.data.splitting import parse_fractions, split_triples
from afme_lib.extraction.names import entity_key_index

IMPORT_FILE = "import.json"
FORMAT = 1  # raise when the folder an import writes changes: older imports are then redone
DEFAULT_SPLIT = "0.8/0.1/0.1"


@dataclass
class ImportResult:
    """A finished import: its folder, its ``import.json`` and whether it was already there."""

    path: Path
    info: dict
    reused: bool = False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listing_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _need_file(path: Path) -> Path:
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    if not path.read_bytes().strip():
        raise DataFormatError(path, "empty file", line=1)
    return path


def import_stamp(inputs: dict[str, Path | None], options: dict) -> dict:
    """What determines an import: each input's sha256 (an image folder: its listing's) and the options."""
    hashes = {}
    for key, path in inputs.items():
        if path is not None:
            hashes[key] = _listing_sha256(path) if key == "images" else _sha256(_need_file(path))
    return {"format": FORMAT, "inputs": hashes, "options": options}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class _Inputs:
    """Everything read and checked before a file is written."""

    paths: dict[str, Path | None]
    graph: IdGraph
    split: dict
    numeric: tuple | None  # read_attributes' (values, present, attributes, stats)


def _read_inputs(paths: dict[str, Path | None], fractions, seed: int) -> _Inputs:
    """Step 1: the id graph (given splits, or split here) and every modality file, checked."""
    triples = read_named_triples(paths["triples"])
    if paths["valid"] is not None:
        evaluated = {s: read_named_triples(paths[s]) for s in ("valid", "test")}
        graph, split = assign_ids(triples, evaluated), {"given": True}
    else:
        graph = assign_ids(triples)
        graph.splits, report = split_triples(
            graph.splits["train"], len(graph.entity_names), len(graph.relation_names), fractions, seed
        )
        split = {"given": False, "fractions": list(fractions), **report}
    names = graph.entity_names
    numeric = None
    if paths["numeric"] is not None:
        numeric = read_attributes(paths["numeric"], entity_key_index(names), len(names))
        _check_matches("attribute row", paths["numeric"], len(numeric[2]), numeric[3]["unmatched_rows"])
    if paths["texts"] is not None:
        from afme_lib.extraction.text import read_texts  # lazy: transformers, only when texts are given

        by_id, stats = read_texts(paths["texts"], names)
        _check_matches("text", paths["texts"], sum(t is not None for t in by_id), stats["unmatched_keys"])
    if paths["images"] is not None:
        from afme_lib.extraction.image import find_entity_images  # lazy: torchvision, only when images are given

        _, found = find_entity_images(paths["images"], names)
        _check_matches("image file or folder", paths["images"], found["entities_with_images"], found["unmatched"])
    return _Inputs(paths, graph, split, numeric)


def _check_matches(kind: str, path: Path, matched: int, unmatched: int) -> None:
    if not matched:  # every row is for another graph: most likely the wrong file
        raise DataFormatError(path, f"no {kind} names an entity of the graph ({unmatched} unmatched)")


def _write_numeric(folder: Path, name: str, inputs: _Inputs) -> dict:
    """``<name>-numeric.pth`` and its sidecar; returns the sidecar's content."""
    values, present, attributes, stats = inputs.numeric
    n = len(inputs.graph.entity_names)
    trained = np.zeros(n, dtype=bool)
    trained[inputs.graph.splits["train"][:, [0, 2]].ravel()] = True
    table, how = standardise(values, present, trained)
    store = FeatureStore(n)
    store.add("numeric", torch.from_numpy(table))
    (saved,) = store.save(folder, name)
    kept = int(store.masks["numeric"].sum())
    info = {
        "feature_file": saved.name,
        "source": inputs.paths["numeric"].name,
        "attributes": attributes,
        "present": kept,
        "missing": n - kept,
        **stats,
        "standardisation": how,
        "missing_rule": "no attribute: all-zero row (missing); an absent attribute in a present row: 0 (the training mean)",
    }
    atomic.write_json(saved.with_suffix(".json"), info)
    return info


def _build(folder: Path, name: str, inputs: _Inputs, stamp: dict, encoders: dict, progress: bool) -> dict:
    """Step 2: the OpenKE files and every modality's features into ``folder``; ``import.json`` last."""
    paths = inputs.paths
    write_openke(folder, inputs.graph)
    modalities = {}
    if inputs.numeric is not None:
        modalities["numeric"] = _write_numeric(folder, name, inputs)
    kg = load_dataset(folder, name=name)
    if paths["texts"] is not None:
        from afme_lib.extraction.text import extract_text_features  # lazy: transformers

        result = extract_text_features(
            kg, folder, texts=paths["texts"], model=encoders["text_model"], device=encoders["device"], progress=progress
        )
        modalities["text"] = {k: result.info.get(k) for k in ("feature_file", "present", "missing", "unmatched_keys")}
    if paths["images"] is not None:
        from afme_lib.extraction.image import extract_image_features  # lazy: torchvision

        result = extract_image_features(
            kg,
            paths["images"],
            folder,
            backbone=encoders["image_backbone"],
            weights=encoders["image_weights"],
            device=encoders["device"],
            workers=encoders["workers"],
            progress=progress,
        )
        modalities["image"] = {
            **{k: result.info.get(k) for k in ("feature_file", "present", "missing", "unmatched")},
            "images_skipped": result.info["stats"].get("images_skipped", 0),
        }
    info = {
        "dataset": name,
        "stamp": stamp,
        "sources": {k: str(p.resolve()) for k, p in paths.items() if p is not None},
        "counts": kg.counts(),
        "split": inputs.split,
        "modalities": modalities,
        "workbench_version": afme_lib.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic.write_json(folder / IMPORT_FILE, info)
    return info


def _publish(staging: Path, out: Path) -> None:
    """Step 3: the finished folder takes ``out``'s place (an earlier import there is removed)."""
    if not out.exists():
        os.rename(staging, out)
        return
    replaced = out.parent / f".{out.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.rename(out, replaced)
    os.rename(staging, out)
    shutil.rmtree(replaced, ignore_errors=True)


def import_kg(
    triples: str | Path,
    out: str | Path | None = None,
    *,
    root: str | Path | None = None,
    name: str | None = None,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    split: str | tuple[float, float, float] = DEFAULT_SPLIT,
    seed: int = 0,
    texts: str | Path | None = None,
    images: str | Path | None = None,
    numeric: str | Path | None = None,
    text_model: str = "minilm",
    image_backbone: str = "resnet50",
    image_weights: str = "imagenet",
    device: str = "auto",
    workers: int | None = None,
    progress: bool = True,
) -> ImportResult:
    """Import a graph into ``out`` (see the module docstring); a finished import of the same
    inputs and options is returned as is (``reused=True``).

    ``out=None``: ``<root>/<hash of the inputs and options>/<name>`` (``name`` defaults to the
    triples file's name without suffix). Runs are cached by their dataset folder, so a folder per
    set of inputs never lets a cached run stand for a graph that has since changed.
    """
    if out is None and root is None:
        raise ValueError("import_kg needs out, or root to name a folder after the inputs")
    if (valid is None) != (test is None):
        raise AfmeError("give both valid and test triples, or neither (the triples are then split)")
    given = {"triples": triples, "valid": valid, "test": test, "texts": texts, "numeric": numeric, "images": images}
    paths = {k: Path(v).expanduser() if v is not None else None for k, v in given.items()}
    if paths["images"] is not None and not paths["images"].is_dir():
        raise DataFormatError(paths["images"], "images folder not found")
    fractions = None
    if valid is None:
        fractions = parse_fractions(split if isinstance(split, str) else "/".join(map(str, split)))
    options = {"split": fractions and list(fractions), "seed": seed if fractions else None}
    if texts is not None:
        options["text_model"] = text_model
    if images is not None:
        weights = Path(image_weights).expanduser()
        options.update(
            image_backbone=image_backbone,
            image_weights=f"sha256:{_sha256(weights)}" if weights.is_file() else image_weights,
        )
    stamp = import_stamp(paths, options)
    if out is None:
        digest = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:12]
        out = Path(root) / digest / (name or paths["triples"].stem)
    out = Path(out).expanduser().resolve()
    previous = _read_json(out / IMPORT_FILE) if out.is_dir() else None
    if previous is not None and previous.get("stamp") == stamp:
        return ImportResult(out, previous, reused=True)
    if out.exists() and not (out.is_dir() and (previous is not None or not any(out.iterdir()))):
        raise AfmeError(
            f"{out} exists and holds no import (no {IMPORT_FILE}); refusing to replace it: choose another --out"
        )

    inputs = _read_inputs(paths, fractions, seed)  # 1. nothing is written before this passes
    staging = out.parent / f".{out.name}.importing"  # 2. resumed by a rerun with the same inputs
    if staging.is_dir() and _read_json(staging / "stamp.json") != stamp:
        shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    atomic.write_json(staging / "stamp.json", stamp)
    encoders = {
        "text_model": text_model,
        "image_backbone": image_backbone,
        "image_weights": image_weights,
        "device": device,
        "workers": workers,
    }
    try:
        info = _build(staging, out.name, inputs, stamp, encoders, progress)
    except (AfmeError, ValueError):  # the input is at fault: a rerun would fail the same way
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / "stamp.json").unlink()
    _publish(staging, out)  # 3.
    return ImportResult(out, info)


def import_summary(info: dict) -> list[str]:
    """What an import holds: counts, how it was split, each modality's coverage and what was skipped."""
    c, split = info["counts"], info["split"]
    how = (
        "the given split"
        if split["given"]
        else f"split {'/'.join(f'{x:g}' for x in split['fractions'])} (seed {split['seed']}) by entity pair, "
        f"{split['duplicates_dropped']} duplicate row(s) dropped"
    )
    lines = [
        f"{c['entities']} entities, {c['relations']} relations; train {c['train']}, valid {c['valid']}, "
        f"test {c['test']} ({how})"
    ]
    for modality, m in info["modalities"].items():
        n = m["present"] + m["missing"]
        skipped = [
            f"{m[key]} {what}"
            for key, what in (
                ("unmatched_rows", "row(s) for unknown entities"),
                ("unmatched_keys", "text(s) for unknown entities"),
                ("unmatched", "image file(s)/folder(s) for unknown entities"),
                ("images_skipped", "undecodable image(s)"),
            )
            if m.get(key)
        ]
        extra = f" ({len(m['attributes'])} attributes: {', '.join(m['attributes'])})" if "attributes" in m else ""
        lines.append(
            f"{modality}: {m['present']} of {n} entities{extra}"
            + (f"; skipped {', '.join(skipped)}" if skipped else "")
        )
    return lines
