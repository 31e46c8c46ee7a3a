"""Cleaned variants of a split (``afme data clean``): leakage removed, every removal listed.

What is removed, per split, each row under the first reason that applies (in this order):

- valid / test: ``in_train`` (the triple is a training triple), ``in_test`` (valid only: the
  triple is also a test triple; test keeps it), with options ``pair_in_train`` (the row's
  (head, tail) pair is linked in train under another relation) and ``reversed_pair_in_train``
  ((tail, head) is linked in train), then ``duplicate`` (a later copy of a row kept above);
- train: ``duplicate`` only (the training graph keeps every distinct triple).

The variant is an OpenKE folder that loads like any other. ``entity2id.txt`` and
``relation2id.txt`` are copied byte for byte, so ids, and with them feature files, stay aligned;
the source folder's feature files (``*.pth``, ``*.pt``, ``*.npy``) and their ``.json`` sidecars
are linked (absolute symlinks: nothing is copied). The relation-category files (``1-1.txt`` ...,
read by :func:`~afme_lib.data.dataset.load_dataset`) and ``test2id_all.txt`` keep the rows whose
triple is in the cleaned test split, once each; ``type_constrain.txt`` is dropped (nothing in the
workbench reads it, and its per-relation entity lists would have to be re-derived).
``clean-manifest.json`` records the source, options, counts and every removed row.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from afme_lib.core import atomic
from afme_lib.core.errors import AfmeError
from afme_lib.data.dataset import CATEGORY_FILES, SPLITS, KGDataset, triple_keys
from afme_lib.data.feature_store import FEATURE_SUFFIXES
from afme_lib.data.leakage import later_copies, pair_keys
from afme_lib.data.openke import read_triples, write_triples

MANIFEST = "clean-manifest.json"
REASONS = {
    "in_train": "the triple is also a training triple",
    "in_test": "valid only: the triple is also a test triple (test keeps it)",
    "pair_in_train": "its (head, tail) pair is linked in train under another relation (--drop-pair-shortcuts)",
    "reversed_pair_in_train": "its (tail, head) pair is linked in train (--drop-reversed)",
    "duplicate": "a later copy of a row that is kept",
}
DROPPED_FILES = ("type_constrain.txt",)
MANIFEST_COLUMNS = ("split", "row", "head", "relation", "tail", "reason")


def removal_reasons(
    dataset: KGDataset, drop_pair_shortcuts: bool = False, drop_reversed: bool = False
) -> dict[str, np.ndarray]:
    """Per split, an object array [rows] holding each row's removal reason (:data:`REASONS`) or ""."""
    n, r = dataset.num_entities, dataset.num_relations
    keys = {s: triple_keys(dataset.split(s), n, r) for s in SPLITS}
    train_pairs = pair_keys(dataset.train, n)
    out = {}
    for split in SPLITS:
        reason = np.full(len(keys[split]), "", dtype=object)
        if split != "train":
            rules = [("in_train", np.isin(keys[split], keys["train"]))]
            if split == "valid":
                rules.append(("in_test", np.isin(keys[split], keys["test"])))
            if drop_pair_shortcuts:
                rules.append(("pair_in_train", np.isin(pair_keys(dataset.split(split), n), train_pairs)))
            if drop_reversed:
                rules.append(
                    ("reversed_pair_in_train", np.isin(pair_keys(dataset.split(split), n, reverse=True), train_pairs))
                )
            for name, hit in rules:  # the first reason that applies names the row
                reason[(reason == "") & hit] = name
        kept = np.flatnonzero(reason == "")
        reason[kept[later_copies(keys[split][kept])]] = "duplicate"
        out[split] = reason
    return out


def _filter_test_file(src: Path, dst: Path, keep_keys: np.ndarray, n: int, r: int) -> None:
    """Copy the rows of a test-derived file whose triple is in ``keep_keys``, once each.

    ``1-1.txt`` ... hold ``h t r`` rows, ``test2id_all.txt`` ``category<TAB>h t r`` rows."""
    with_category = src.name == "test2id_all.txt"
    if with_category:
        table = np.array(src.read_text(encoding="utf-8").split()[1:], dtype=np.int64).reshape(-1, 4)
        htr = table[:, [1, 3, 2]]  # (h, r, t)
    else:
        htr = read_triples(src, n, r)
    key = (htr[:, 0] * r + htr[:, 1]) * n + htr[:, 2]
    keep = np.isin(key, keep_keys) & ~later_copies(key)
    if not with_category:
        write_triples(dst, htr[keep])
        return
    lines = [f"{c}\t{h} {t} {rel}" for c, h, t, rel in table[keep].tolist()]
    dst.write_text("\n".join([str(len(lines)), *lines]) + "\n", encoding="utf-8")


def _check_out(out: Path, source: Path | None) -> None:
    if "clean" not in out.name.lower():
        raise AfmeError(
            f"--out folder name {out.name!r} must say the split is cleaned (e.g. {out.name}-clean): "
            "the folder's name becomes the dataset's name in every report"
        )
    if source is not None and out.resolve() == source.resolve():
        raise AfmeError(f"--out {out} is the source folder; write the cleaned variant elsewhere")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AfmeError(f"--out {out} already exists and is not an empty folder; choose another or remove it")


def write_clean(
    dataset: KGDataset, out: str | Path, drop_pair_shortcuts: bool = False, drop_reversed: bool = False
) -> dict:
    """Write the cleaned variant of ``dataset`` (loaded from a folder) into ``out``; return the manifest."""
    out = Path(out)
    source = Path(dataset.path) if dataset.path is not None else None
    if source is None:
        raise AfmeError(f"dataset {dataset.name!r} has no source folder to copy its id maps from")
    _check_out(out, source)
    reasons = removal_reasons(dataset, drop_pair_shortcuts, drop_reversed)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("entity2id.txt", "relation2id.txt"):
        shutil.copyfile(source / name, out / name)  # byte for byte: ids and feature rows stay aligned
    n, r = dataset.num_entities, dataset.num_relations
    removed_rows, counts = [], {}
    for split in SPLITS:
        triples = dataset.split(split).numpy()
        keep = reasons[split] == ""
        write_triples(out / f"{split}2id.txt", triples[keep])
        gone = np.flatnonzero(~keep)
        removed_rows += [[split, int(i), *map(int, triples[i]), reasons[split][i]] for i in gone.tolist()]
        by_reason = {k: int((reasons[split] == k).sum()) for k in REASONS}
        counts[split] = {
            "before": len(triples),
            "after": int(keep.sum()),
            "removed": {k: v for k, v in by_reason.items() if v},
        }
    test_keys = triple_keys(dataset.test[reasons["test"] == ""], n, r)
    files = {"filtered": [], "dropped": [], "linked": []}
    for name in [*CATEGORY_FILES.values(), "test2id_all.txt"]:
        if (source / name).is_file():
            _filter_test_file(source / name, out / name, test_keys, n, r)
            files["filtered"].append(name)
    files["dropped"] = [name for name in DROPPED_FILES if (source / name).is_file()]
    features = [p for p in sorted(source.iterdir()) if p.is_file() and p.suffix in FEATURE_SUFFIXES]
    sidecars = [p.with_suffix(".json") for p in features if p.with_suffix(".json").is_file()]
    for path in features + sidecars:
        (out / path.name).symlink_to(path.resolve())
        files["linked"].append(path.name)
    manifest = {
        "name": out.name,
        "source": str(source.resolve()),
        "made_by": "afme data clean",
        "options": {"drop_pair_shortcuts": drop_pair_shortcuts, "drop_reversed": drop_reversed},
        "counts": counts,
        "files": files,
        "reasons": REASONS,
        "removed": {
            "columns": list(MANIFEST_COLUMNS),
            "row": "0-based row of the source split file (file line = row + 2)",
            "rows": removed_rows,
        },
    }
    _write_manifest(out / MANIFEST, manifest)
    return manifest


def _write_manifest(path: Path, manifest: dict) -> None:
    """JSON with one removed row per line (a TIVA manifest lists ~10k rows)."""
    rows = manifest["removed"]["rows"]
    text = json.dumps({**manifest, "removed": {**manifest["removed"], "rows": "@ROWS@"}}, indent=2, ensure_ascii=False)
    body = ",\n".join("      " + json.dumps(row) for row in rows)
    text = text.replace('"@ROWS@"', "[\n" + body + "\n    ]" if rows else "[]")
    atomic.write_text(path, text + "\n")  # written last: a folder with a manifest is complete


def read_manifest(folder: str | Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
