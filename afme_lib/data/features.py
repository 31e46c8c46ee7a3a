"""Modality feature store: per entity and modality a frozen float feature row and a presence mask.

The community's released format is one tensor per modality, a row per entity id, saved as
``<DATASET>-visual.pth``, ``<DATASET>-textual.pth``, ... We read that, plain ``<modality>.npy`` /
``<modality>.pt`` files, and save back in the released format. Rows that are all zero or hold
NaN/inf are *missing* (that is how released files mark entities without an image or text);
their values are zeroed so nothing non-finite ever reaches a model.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from afme_lib.errors import DataFormatError

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


_REFUSED = ("refused: holds pickled Python objects, which could run code when loaded{}; "
            "save the features with torch.save(tensor) or as a numeric .npy")


def _load_tensor(path: Path) -> torch.Tensor:
    """Read one tensor without ever unpickling arbitrary objects (no code from the file runs)."""
    if path.stat().st_size == 0:
        raise DataFormatError(path, "empty file")
    if path.suffix == ".npy":
        with path.open("rb") as f:
            if f.read(6) != b"\x93NUMPY":
                raise DataFormatError(path, "not a .npy file (no NUMPY header)")
        try:
            array = np.load(path, allow_pickle=False)  # a pickle must never run code
        except (ValueError, OSError, EOFError) as exc:
            if "Object arrays" in str(exc):
                raise DataFormatError(path, _REFUSED.format("")) from None
            raise DataFormatError(path, f"cannot read as a numeric .npy array ({_first_line(exc)})") from None
        if array.dtype.kind not in "biuf":  # strings, records, complex: not features
            raise DataFormatError(path, f"unsupported .npy dtype {array.dtype}: expected numbers")
        # torch.from_numpy refuses non-native byte order (a big-endian '>f4' file)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, KeyError (not a torch file), ...
        message = str(exc)
        if "Weights only load failed" in message:
            # weights_only=True met an object that is not a tensor. Say so, and not torch's advice
            # to retry with weights_only=False (that would let the file run code).
            wanted = re.search(r"GLOBAL ([\w.]+)", message)  # the callable the pickle asks for
            raise DataFormatError(path, _REFUSED.format(f" (it asks for {wanted.group(1)})" if wanted else "")) from None
        raise DataFormatError(path, f"cannot load as a tensor file ({_first_line(exc)})") from None
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj)
    if not isinstance(obj, torch.Tensor):
        raise DataFormatError(path, f"expected one tensor with a row per entity, found {type(obj).__name__}")
    return obj


@dataclass
class FeatureStore:
    """Frozen modality features: ``features[m]`` is float32 [N, d_m], ``masks[m]`` bool [N]."""

    num_entities: int
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def add(self, modality: str, values: torch.Tensor, source: str | Path = "<memory>", mask: torch.Tensor | None = None) -> int:
        """Add a modality; return how many rows are missing (all-zero, non-finite, or masked out)."""
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
        finite = torch.isfinite(values).all(1)
        present = finite & (values != 0).any(1)
        if mask is not None:
            present &= mask.bool()
        values = torch.where(present[:, None], values, torch.zeros((), dtype=values.dtype))
        self.features[modality] = values.contiguous()
        self.masks[modality] = present
        return int((~present).sum())

    def coverage(self) -> dict[str, dict[str, float | int]]:
        return {
            m: {"dim": int(self.features[m].shape[1]), "present": int(mask.sum()), "missing": int((~mask).sum()),
                "coverage": float(mask.float().mean())}
            for m, mask in self.masks.items()
        }

    def to(self, device) -> "FeatureStore":
        return FeatureStore(self.num_entities, {m: f.to(device) for m, f in self.features.items()},
                            {m: k.to(device) for m, k in self.masks.items()})

    def save(self, folder: str | Path, dataset_name: str) -> list[Path]:
        """Write ``<dataset_name>-<suffix>.pth`` per modality (missing rows stay all-zero)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for m in self.features:
            name = f"{dataset_name}-{SUFFIX_FOR.get(m, m)}"
            if _modality_of(name) != m:  # e.g. "clip-image" would read back as "image"
                raise ValueError(f"modality {m!r} cannot be saved as {name}.pth: it would load back as {_modality_of(name)!r}")
        for m, values in self.features.items():
            path = folder / f"{dataset_name}-{SUFFIX_FOR.get(m, m)}.pth"
            torch.save(values.detach().cpu().clone(), path)  # clone: never save a larger shared storage
            written.append(path)
        return written

    @classmethod
    def load(cls, folder: str | Path, num_entities: int, modalities: list[str] | None = None, verbose: bool = True) -> "FeatureStore":
        """Load every feature file in ``folder``: ``*-visual.pth`` ... and ``<modality>.npy|.pt``.

        ``modalities`` keeps only those names (an unknown name is an error); the user is told
        how many rows of each modality count as missing.
        """
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
            raise DataFormatError(folder, f"no feature files ({', '.join('*' + x for x in FEATURE_SUFFIXES)}) in this folder")
        if modalities is not None:
            unknown = sorted(set(modalities) - set(found))
            if unknown:
                raise DataFormatError(folder, f"no feature file for modalities {unknown}; found {sorted(found)}")
            found = {m: found[m] for m in modalities}
        store = cls(num_entities)
        for modality, path in found.items():
            missing = store.add(modality, _load_tensor(path), source=path)
            if missing and verbose:
                warnings.warn(f"{path.name}: {missing} of {num_entities} entities have no {modality} features "
                              "(all-zero or non-finite rows); they count as missing", stacklevel=2)
        return store
