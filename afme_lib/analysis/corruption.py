"""Corrupted copies of a feature store, and a trained model looking at another store.

Both helpers return a *new* :class:`FeatureStore` (the input is never modified) and act only on
rows that are present, in the modalities asked for (default: all):

    add_noise(store, level, fraction):  x_i <- x_i + level * sigma * eps_i,  eps_i ~ N(0, I)
        on round(fraction * present) randomly chosen present rows of each modality, with sigma
        the per-coordinate standard deviation of the modality's present rows (population std):
        level 1 adds noise as large as the features' own spread, whatever their scale.
    drop_rows(store, fraction):  round(fraction * present) randomly chosen present rows become
        missing (zeroed, mask False): ``fraction`` is the share of the *measured* rows lost.

Row choices and noise come from a generator seeded with (seed, modality name), so modalities
are corrupted independently and a call is reproducible.

Test-time corruption without touching model code: feature tables are non-persistent buffers of
the model (they are data, never in a checkpoint), so :func:`with_features` builds the same model
on the corrupted store and loads the trained weights into it.
"""

from __future__ import annotations

import zlib

import torch

from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.registry import create_model


def _generator(seed: int, modality: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(modality.encode()))


def _targets(store: FeatureStore, modalities) -> list[str]:
    names = store.modalities if modalities is None else list(modalities)
    unknown = sorted(set(names) - set(store.modalities))
    if unknown:
        raise ValueError(f"modalities {unknown} are not in the feature store (it holds {store.modalities})")
    return names


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def _chosen_rows(mask: torch.Tensor, fraction: float, gen: torch.Generator) -> torch.Tensor:
    present = mask.nonzero().flatten()
    count = round(fraction * len(present))
    return present[torch.randperm(len(present), generator=gen)[:count]]


def _copy(store: FeatureStore) -> FeatureStore:
    return FeatureStore(
        store.num_entities,
        {m: f.clone() for m, f in store.features.items()},
        {m: k.clone() for m, k in store.masks.items()},
    )


def add_noise(store: FeatureStore, level: float, modalities=None, fraction: float = 1.0, seed: int = 0) -> FeatureStore:
    """Gaussian noise of ``level`` feature-stds on a ``fraction`` of the present rows (see module doc)."""
    if level < 0:
        raise ValueError(f"noise level must be >= 0, got {level}")
    _check_fraction("fraction", fraction)
    out = _copy(store)
    for m in _targets(store, modalities):
        x, mask = out.features[m], out.masks[m]
        gen = _generator(seed, m)
        rows = _chosen_rows(mask.cpu(), fraction, gen)
        if len(rows) == 0 or level == 0:
            continue
        sigma = x[mask].double().std(0, unbiased=False).float() if int(mask.sum()) > 1 else torch.zeros(x.shape[1])
        noise = torch.randn(len(rows), x.shape[1], generator=gen) * (level * sigma.cpu())
        x[rows.to(x.device)] += noise.to(x.device, x.dtype)
    return out


def drop_rows(store: FeatureStore, fraction: float, modalities=None, seed: int = 0) -> FeatureStore:
    """Make a ``fraction`` of each modality's present rows missing (see module doc)."""
    _check_fraction("fraction", fraction)
    out = _copy(store)
    for m in _targets(store, modalities):
        rows = _chosen_rows(out.masks[m].cpu(), fraction, _generator(seed, m)).to(out.masks[m].device)
        out.features[m][rows] = 0.0
        out.masks[m][rows] = False
    return out


CORRUPTIONS = {"noise": add_noise, "missing": drop_rows}


def corrupt(store: FeatureStore, kind: str, level: float, modalities=None, seed: int = 0) -> FeatureStore:
    """``kind`` "noise": :func:`add_noise` with ``level`` (all present rows); "missing":
    :func:`drop_rows` with fraction ``level``."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {sorted(CORRUPTIONS)}")
    return CORRUPTIONS[kind](store, level, modalities=modalities, seed=seed)


def with_features(model, store: FeatureStore):
    """A copy of a trained multi-modal model that reads ``store`` instead of its own features.

    The copy has the same config and trained weights (``load_state_dict`` strict), sits on the
    model's device and is in eval mode. The store must hold the model's modalities with the
    same feature sizes. The global RNG state is left as it was (building a model draws initial
    weights that are then overwritten).
    """
    names = list(getattr(getattr(model, "inputs", None), "names", []))
    if not names:
        raise TypeError(f"{type(model).__name__} reads no modality features: corrupting them cannot change it")
    missing = [m for m in names if m not in store.modalities]
    if missing:
        raise ValueError(f"the feature store lacks the model's modalities {missing}")
    for i, m in enumerate(names):
        want = model.inputs.projections[i].in_features
        if store.features[m].shape[1] != want:
            raise ValueError(
                f"modality {m!r}: the store has {store.features[m].shape[1]} features per row, "
                f"the model was trained on {want}"
            )
    config = type(model.config).from_dict({**model.config.to_dict(), "modalities": names})
    with torch.random.fork_rng(devices=[]):
        copy = create_model(config, model.num_entities, model.num_relations, store.to("cpu"))
    copy.load_state_dict(model.state_dict())
    if getattr(model, "has_unknown", False):
        # Which entities have no training triple (and so use the "unknown" vector) is set by the
        # engine after building a model and is not in the state dict.
        copy.no_structure = model.no_structure.detach().clone()
    return copy.to(model.device).eval()
