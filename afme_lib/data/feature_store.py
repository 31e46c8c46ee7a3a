"""Modality feature store: per entity and modality a frozen float feature row and a presence mask.

The community's released format is one tensor per modality, a row per entity id, saved as
``<DATASET>-visual.pth``, ``<DATASET>-textual.pth``, ... We read that, plain ``<modality>.npy`` /
``<modality>.pt`` files, and save back in the released format. Rows that are all zero or hold
NaN/inf are *missing* (that is how released files mark entities without an image or text);
their values are zeroed so nothing non-finite ever reaches a model.

Placement. By default a model copies the features to its device with its parameters. A store
whose ``placement`` is ``"pinned"`` or ``"mmap"`` stays in host memory instead and the model
gathers the rows of each batch (:func:`gather_rows`): for feature tables larger than the
device. "pinned" keeps them in page-locked RAM (asynchronous host-to-device copies);
"mmap" maps float32 files from disk (``FeatureStore.load(..., mmap=True)``), so even RAM holds
only the pages that batches touch. Missing rows of a mapped file are zeroed copy-on-write: the
file itself is never modified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from afme_lib.core.errors import DataFormatError, did_you_mean

# Suffix used by released files -> modality name used in the workbench.
RELEASED_SUFFIX = {"visual": "image", "textual": "text", "audio": "audio", "video": "video", "numeric": "numeric"}
SUFFIX_FOR = {v: k for k, v in RELEASED_SUFFIX.items()}
FEATURE_SUFFIXES = (".pth", ".pt", ".npy")


def _modality_of(stem: str) -> str:
    """Modality a file name stands for: ``MKG-W-visual`` -> image, ``text`` -> text, ``X-foo`` -> foo."""
    suffix = stem.rsplit("-", 1)[1] if "-" in stem else ""
    return RELEASED_SUFFIX.get(suffix, suffix) if suffix else stem


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` without terminal colour codes (torch adds some)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


_REFUSED = (
    "refused: holds pickled Python objects, which could run code when loaded{}; "
    "save the features with torch.save(tensor) or as a numeric .npy"
)


def _load_tensor(path: Path, mmap: bool = False) -> torch.Tensor:
    """Read one tensor without ever unpickling arbitrary objects (no code from the file runs).

    ``mmap``: map the file copy-on-write instead of reading it (a .pth in torch's zip format or a
    .npy; a legacy-format .pth is read into memory)."""
    if path.stat().st_size == 0:
        raise DataFormatError(path, "empty file")
    if path.suffix == ".npy":
        with path.open("rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise DataFormatError(path, "not a .npy file (no NUMPY header)")
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="c" if mmap else None)  # a pickle must never run code
        except (ValueError, OSError, EOFError) as exc:
            if "Object arrays" in str(exc) or "Python objects" in str(exc):  # read / mapped
                raise DataFormatError(path, _REFUSED.format("")) from None
            raise DataFormatError(path, f"cannot read as a numeric .npy array ({_first_line(exc)})") from None
        if array.dtype.kind not in "biuf":  # strings, records, complex: not features
            raise DataFormatError(path, f"unsupported .npy dtype {array.dtype}: expected numbers")
        # torch.from_numpy refuses non-native byte order (a big-endian '>f4' file)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")))
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not (mmap and "mmap" in str(exc)):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format: cannot be mapped
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, KeyError (not a torch file), ...
        message = str(exc)
        if "Weights only load failed" in message:
            # weights_only=True met an object that is not a tensor. Say so, and not torch's advice
            # to retry with weights_only=False (that would let the file run code).
            wanted = re.search(r"GLOBAL ([\w.]+)", message)  # the callable the pickle asks for
            raise DataFormatError(
                path, _REFUSED.format(f" (it asks for {wanted.group(1)})" if wanted else "")
            ) from None
        raise DataFormatError(path, f"cannot load as a tensor file ({_first_line(exc)})") from None
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj)
    if not isinstance(obj, torch.Tensor):
        raise DataFormatError(path, f"expected one tensor with a row per entity, found {type(obj).__name__}")
    return obj


PLACEMENTS = ("device", "pinned", "mmap")
_BLOCK_ELEMENTS = 2**24  # rows are checked in blocks of this many values: no [N, d] temporary


def _present_rows(values: torch.Tensor) -> torch.Tensor:
    """Rows that are finite and not all zero, [N] bool, checked block by block."""
    present = torch.empty(len(values), dtype=torch.bool)
    step = max(1, _BLOCK_ELEMENTS // max(1, values.shape[1]))
    for start in range(0, len(values), step):
        block = values[start : start + step]
        present[start : start + step] = torch.isfinite(block).all(1) & (block != 0).any(1)
    return present


def gather_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``table[ids]`` for a host-memory ``table``, delivered on ``ids.device``.

    On CUDA the rows are gathered into page-locked memory and copied asynchronously; torch's
    pinned-memory allocator keeps that buffer alive until the copy has finished.
    """
    index = ids.to("cpu")
    if ids.device.type == "cpu":
        return table.index_select(0, index)
    staging = torch.empty((len(index), *table.shape[1:]), dtype=table.dtype, pin_memory=True)
    torch.index_select(table, 0, index, out=staging)
    return staging.to(ids.device, non_blocking=True)


@dataclass
class FeatureStore:
    """Frozen modality features: ``features[m]`` is float32 [N, d_m], ``masks[m]`` bool [N].

    ``placement``: "device" (models copy the features to their device) or "pinned" / "mmap"
    (they stay in host memory and are gathered per batch; see the module doc)."""

    num_entities: int
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    placement: str = "device"
    sources: dict[str, str] = field(default_factory=dict)  # modality -> file name it was read from

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def describe(self) -> str:
        """Per modality its file, rows x dims, and how many rows count as missing (all-zero or
        non-finite), on one line."""
        parts = []
        for m, values in self.features.items():
            missing = int((~self.masks[m]).sum())
            origin = f"{self.sources[m]} ({m}: " if m in self.sources else f"{m} ("
            parts.append(
                origin
                + f"{values.shape[0]} rows x {values.shape[1]} dims"
                + (f", {missing} missing" if missing else "")
                + ")"
            )
        return ", ".join(parts) or "no modality"

    def add(
        self,
        modality: str,
        values: torch.Tensor,
        source: str | Path = "<memory>",
        mask: torch.Tensor | None = None,
        in_place: bool = False,
    ) -> int:
        """Add a modality; return how many rows are missing (all-zero, non-finite, or masked out).

        ``in_place``: ``values`` belongs to the store from now on (a freshly mapped file): its
        missing rows are zeroed in place instead of in a copy."""
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise DataFormatError(source, f"expected a 2-D tensor [entities, dim], got shape {tuple(values.shape)}")
        if values.shape[1] == 0:
            raise DataFormatError(source, f"feature tensor has shape {tuple(values.shape)}: zero feature columns")
        if len(values) != self.num_entities:
            raise DataFormatError(
                source, f"feature tensor has {len(values)} rows but the dataset has {self.num_entities} entities"
            )
        if not (values.is_floating_point() or values.dtype in (torch.int32, torch.int64, torch.uint8)):
            raise DataFormatError(source, f"unsupported feature dtype {values.dtype}")
        if mask is not None and tuple(mask.shape) != (self.num_entities,):
            raise ValueError(f"mask of shape {tuple(mask.shape)} for {self.num_entities} entities")
        values = values.detach().float()  # frozen: a loaded nn.Parameter must not carry autograd
        present = _present_rows(values)
        if mask is not None:
            present &= mask.bool()
        if in_place and values.is_contiguous():
            values[~present] = 0  # touches only the missing rows (copy-on-write pages of a mapped file)
        else:
            values = torch.where(present[:, None], values, torch.zeros((), dtype=values.dtype))
        self.features[modality] = values.contiguous()
        self.masks[modality] = present
        return int((~present).sum())

    def coverage(self) -> dict[str, dict[str, float | int]]:
        return {
            m: {
                "dim": int(self.features[m].shape[1]),
                "present": int(mask.sum()),
                "missing": int((~mask).sum()),
                "coverage": float(mask.float().mean()),
            }
            for m, mask in self.masks.items()
        }

    def to(self, device) -> FeatureStore:
        return FeatureStore(
            self.num_entities,
            {m: f.to(device) for m, f in self.features.items()},
            {m: k.to(device) for m, k in self.masks.items()},
            self.placement,
            dict(self.sources),
        )

    def nbytes(self) -> int:
        """Bytes of the feature tables and masks."""
        return sum(t.numel() * t.element_size() for t in (*self.features.values(), *self.masks.values()))

    def offload(self, placement: str = "pinned", folder: str | Path | None = None) -> FeatureStore:
        """The same features kept in host memory and gathered per batch by the models.

        "pinned": page-locked copies when a CUDA device exists (plain host tensors otherwise:
        pinning only speeds up copies to a GPU). "mmap": each modality is written to
        ``folder/<modality>.pt`` and mapped back from there ("device" returns a store that
        models copy to their device again).
        """
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
        features = {m: f.cpu() for m, f in self.features.items()}
        if placement == "pinned" and torch.cuda.is_available():
            features = {m: f.pin_memory() for m, f in features.items()}
        elif placement == "mmap":
            if folder is None:
                raise ValueError("placement 'mmap' needs a folder to write the mapped files to")
            folder = Path(folder)
            folder.mkdir(parents=True, exist_ok=True)
            for m, values in features.items():
                if _modality_of(m) != m:
                    raise ValueError(
                        f"modality {m!r} cannot be stored as {m}.pt: it would load back as {_modality_of(m)!r}"
                    )
                torch.save(values.clone(), folder / f"{m}.pt")
            features = {m: torch.load(folder / f"{m}.pt", weights_only=True, mmap=True) for m in features}
        return FeatureStore(
            self.num_entities, features, {m: k.cpu() for m, k in self.masks.items()}, placement, dict(self.sources)
        )

    def save(self, folder: str | Path, dataset_name: str) -> list[Path]:
        """Write ``<dataset_name>-<suffix>.pth`` per modality (missing rows stay all-zero)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for m in self.features:
            name = f"{dataset_name}-{SUFFIX_FOR.get(m, m)}"
            if _modality_of(name) != m:  # e.g. "clip-image" would read back as "image"
                raise ValueError(
                    f"modality {m!r} cannot be saved as {name}.pth: it would load back as {_modality_of(name)!r}"
                )
        for m, values in self.features.items():
            path = folder / f"{dataset_name}-{SUFFIX_FOR.get(m, m)}.pth"
            torch.save(values.detach().cpu().clone(), path)  # clone: never save a larger shared storage
            written.append(path)
        return written

    @classmethod
    def load(
        cls,
        folder: str | Path,
        num_entities: int,
        modalities: list[str] | None = None,
        verbose: bool = True,
        mmap: bool = False,
    ) -> FeatureStore:
        """Load every feature file in ``folder``: ``*-visual.pth`` ... and ``<modality>.npy|.pt``.

        ``modalities`` keeps only those names (an unknown name is an error). ``verbose``: print
        one line naming the files, their shapes and how many rows of each count as missing
        (:func:`loaded_line`); missing rows are information about the data, not a warning.
        ``mmap``: map the files instead of reading them (placement "mmap"; float32 files stay
        mapped, other dtypes are converted in memory).
        """
        found = _feature_files(folder, modalities)
        store = cls(num_entities, placement="mmap" if mmap else "device")
        for modality, path in found.items():
            store.add(modality, _load_tensor(path, mmap=mmap), source=path, in_place=mmap)
            store.sources[modality] = path.name
        if verbose:
            print(loaded_line(store, folder), flush=True)
        return store


def loaded_line(store: FeatureStore, folder: str | Path, note: str = "") -> str:
    """``features from FOLDER[ (note)]: FILE (modality: N rows x d dims[, k missing]), ...``"""
    return f"features from {folder}{f' ({note})' if note else ''}: {store.describe()}"


def has_feature_files(folder: str | Path) -> bool:
    """Whether ``folder`` holds at least one file :meth:`FeatureStore.load` would read."""
    return any(p.suffix in FEATURE_SUFFIXES and p.is_file() for p in Path(folder).iterdir())


def _feature_files(folder: str | Path, modalities: list[str] | None = None) -> dict[str, Path]:
    """{modality: file} of the feature files in ``folder`` (only ``modalities`` when given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(folder, "feature folder not found")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in FEATURE_SUFFIXES or not path.is_file():
            continue
        modality = _modality_of(path.stem)
        if modality in found:
            raise DataFormatError(path, f"second file for modality {modality!r} (first: {found[modality].name})")
        found[modality] = path
    if not found:
        raise DataFormatError(
            folder, f"no feature files ({', '.join('*' + x for x in FEATURE_SUFFIXES)}) in this folder"
        )
    if modalities is not None:
        unknown = sorted(set(modalities) - set(found))
        if unknown:
            hint = "".join(did_you_mean(m, list(found)) for m in unknown)
            raise DataFormatError(folder, f"no feature file for modalities {unknown}{hint}; found {sorted(found)}")
        found = {m: found[m] for m in modalities}
    return found


def feature_shapes(folder: str | Path, modalities: list[str] | None = None) -> dict[str, tuple[int, ...]]:
    """{modality: tensor shape} of the feature files in ``folder``, without reading their values."""
    return {m: tuple(_load_tensor(path, mmap=True).shape) for m, path in _feature_files(folder, modalities).items()}
