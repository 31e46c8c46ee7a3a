"""Resumable, chunked extraction of one modality's feature table, shared by the text and image paths.

Entity ids ``0..N-1`` are cut into chunks of ``chunk_size`` consecutive ids. Each finished chunk
is saved as ``<out>/.partial/<modality>/chunk-00012.pt`` (written to a temporary name, then
renamed, so a kill leaves either the whole chunk or nothing), next to a ``manifest.json`` holding
the extraction's *settings* (model, pooling, inputs' hash, chunk size ...). A restart with the
same settings and chunk size skips the chunks on disk; otherwise the stale chunks are discarded
(with a warning). When every chunk is there the table is assembled, passed through
:meth:`FeatureStore.add` (so missing rows are all-zero exactly as the released files mark them and
``FeatureStore.load`` reads the result back), and saved as ``<out>/<DATASET>-<suffix>.pth`` with a
JSON sidecar ``<out>/<DATASET>-<suffix>.json`` saying how it was made. Running again with the same
settings once the file exists does nothing and returns it (``reused=True``).

The sidecar is written before the feature file and the partial folder removed last: a kill at any
point leaves a state the next run finishes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import afme_lib
from afme_lib.core import atomic, console
from afme_lib.core.errors import AfmeError, DataFormatError
from afme_lib.data.feature_store import FEATURE_SUFFIXES, SUFFIX_FOR, FeatureStore, _modality_of

PARTIAL = ".partial"

# compute(start, stop) -> (values float [stop-start, dim], present bool [stop-start], stats)
# stats: counters (int / float, summed over chunks) and lists of strings (concatenated).
ChunkFn = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, dict]]


@dataclass
class ExtractionResult:
    """A finished feature file: its path, its sidecar's content, and whether it was already there."""

    path: Path
    info: dict
    reused: bool = False

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(".json")


def feature_path(out_dir: str | Path, dataset_name: str, modality: str) -> Path:
    """``<out>/<DATASET>-<suffix>.pth``, the name :meth:`FeatureStore.save` gives the modality."""
    return Path(out_dir) / f"{dataset_name}-{SUFFIX_FOR.get(modality, modality)}.pth"


def _normalised(settings: dict) -> dict:
    return json.loads(json.dumps(settings))  # tuples -> lists, so a stored copy compares equal


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _merge_stats(total: dict, stats: dict) -> None:
    for key, value in stats.items():
        if isinstance(value, list):
            total.setdefault(key, []).extend(value)
        else:
            total[key] = total.get(key, 0) + value


def _check_folder(out: Path, target: Path, modality: str) -> None:
    """Refuse to add a second file for ``modality``: the folder would no longer load."""
    if not out.is_dir():
        return
    for path in out.iterdir():
        if (
            path != target
            and path.suffix in FEATURE_SUFFIXES
            and path.is_file()
            and _modality_of(path.stem) == modality
        ):
            raise AfmeError(
                f"{out} already holds {path.name} for modality {modality!r}; a second file would make "
                "the folder unloadable: choose another output folder"
            )


def run_extraction(
    out_dir: str | Path,
    dataset_name: str,
    modality: str,
    num_rows: int,
    dim: int,
    settings: dict,
    compute: ChunkFn,
    *,
    chunk_size: int = 2048,
    describe: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
    after_chunk: Callable[[int], None] | None = None,
) -> ExtractionResult:
    """Fill a ``[num_rows, dim]`` table chunk by chunk with ``compute``, resumably; save it.

    ``settings`` must determine the result (two runs with equal settings give the same table):
    it decides whether an existing feature file may be reused, and with ``chunk_size`` whether
    chunks on disk may. ``describe``
    adds fields to the sidecar that do not (device, batch size). ``after_chunk(k)`` is called
    after chunk ``k`` is safely on disk (tests interrupt there). An existing feature file made with
    other settings is an error unless ``overwrite``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out = Path(out_dir)
    target = feature_path(out, dataset_name, modality)
    sidecar = target.with_suffix(".json")
    settings = _normalised({**settings, "entities": num_rows, "dim": dim})
    layout = {"settings": settings, "chunk_size": chunk_size}  # what chunks on disk must match
    _check_folder(out, target, modality)
    if target.is_file() and not overwrite:
        made_with = _read_json(sidecar).get("settings") if sidecar.is_file() else None
        if made_with == settings:
            return ExtractionResult(target, _read_json(sidecar), reused=True)
        differs = sorted(k for k in set(settings) | set(made_with or {}) if (made_with or {}).get(k) != settings.get(k))
        why = (
            f"made with other settings (differing: {', '.join(differs)})"
            if made_with
            else "with no sidecar saying how it was made"
        )
        raise AfmeError(f"{target} already exists, {why}; pass --overwrite (overwrite=True) to replace it")

    partial = out / PARTIAL / modality
    manifest = partial / "manifest.json"
    if manifest.is_file() and {k: _read_json(manifest).get(k) for k in layout} != layout:
        stale = len(list(partial.glob("chunk-*.pt")))
        warnings.warn(
            f"{partial}: discarding {stale} finished chunk(s) of an extraction with other settings or chunk size",
            stacklevel=2,
        )
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    atomic.write_json(manifest, {"dataset": dataset_name, "modality": modality, **layout})

    n_chunks = math.ceil(num_rows / chunk_size)
    chunk_file = [partial / f"chunk-{k:05d}.pt" for k in range(n_chunks)]
    todo = [k for k in range(n_chunks) if not chunk_file[k].is_file()]
    done_rows = num_rows - sum(min(chunk_size, num_rows - k * chunk_size) for k in todo)
    bar = console.progress_bar(
        None, progress, total=num_rows, initial=done_rows, unit="entity", desc=f"{dataset_name} {modality}"
    )
    try:
        for k in todo:
            start, stop = k * chunk_size, min((k + 1) * chunk_size, num_rows)
            began = time.perf_counter()
            values, present, stats = compute(start, stop)
            if tuple(values.shape) != (stop - start, dim) or tuple(present.shape) != (stop - start,):
                raise RuntimeError(
                    f"chunk {k}: got values {tuple(values.shape)} and mask {tuple(present.shape)}, "
                    f"expected ({stop - start}, {dim}) and ({stop - start},)"
                )
            stats = {**stats, "seconds": time.perf_counter() - began}
            atomic.save(
                {"values": values.detach().float().cpu(), "present": present.bool().cpu(), "stats": stats},
                chunk_file[k],
            )
            bar.update(stop - start)
            done_rows += stop - start
            console.log_line(
                f"{dataset_name} {modality}: chunk {k + 1}/{n_chunks}, {done_rows}/{num_rows} entities "
                f"({stats['seconds']:.1f} s)",
                progress,
            )
            if after_chunk is not None:
                after_chunk(k)
    finally:
        bar.close()

    values, present, stats = [], [], {}
    for path in chunk_file:
        try:
            chunk = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a chunk written by a foreign process, a full disk ...
            raise DataFormatError(path, f"unreadable chunk ({type(exc).__name__}); delete it and run again") from None
        values.append(chunk["values"])
        present.append(chunk["present"])
        _merge_stats(stats, chunk["stats"])
    values, present = torch.cat(values), torch.cat(present)

    store = FeatureStore(num_rows)
    store.add(modality, values, source=target, mask=present)
    lost = int((present & ~store.masks[modality]).sum())
    if lost:  # e.g. an fp16 overflow: the row is unusable, and saving it as zeros says "missing"
        warnings.warn(
            f"{target.name}: {lost} extracted row(s) were all-zero or non-finite; saved as missing", stacklevel=2
        )
    seconds = stats.pop("seconds", 0.0)
    kept = int(store.masks[modality].sum())
    info = {
        "feature_file": target.name,
        "dataset": dataset_name,
        "modality": modality,
        "entities": num_rows,
        "dim": dim,
        "present": kept,
        "missing": num_rows - kept,
        "settings": settings,
        **(describe or {}),
        "chunk_size": chunk_size,
        "stats": stats,
        "extraction_seconds": round(seconds, 3),
        "workbench_version": afme_lib.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic.write_json(sidecar, info)
    staging = partial / "final"
    (written,) = store.save(staging, dataset_name)
    os.replace(written, target)
    shutil.rmtree(partial)
    try:
        (out / PARTIAL).rmdir()  # only when no other modality is half-way
    except OSError:
        pass
    return ExtractionResult(target, info)
