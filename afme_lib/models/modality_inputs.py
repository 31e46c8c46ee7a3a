"""Frozen modality features as model inputs: device-resident buffers plus learned projections.

Each modality m has a frozen feature table F_m [N, d_m] and a presence mask. A learned linear map
P_m brings a row into the model's entity space, followed by RMS normalisation and a learned scale:

    h_m = s_m * rms(P_m f_m),   rms(x) = x / sqrt(mean(x^2) + eps)

so a modality whose raw features are ten times larger cannot dominate scores or fusion weights
(P_m has no bias, so h_m is exactly invariant to the scale of f_m), and every token starts at the
scale of the structural embedding (``init_scale``). Missing rows
give the zero vector and ``present = False``.

A feature store whose placement is not "device" (see afme_lib/data/feature_store.py) is not copied
into buffers: its tables stay in host memory and each call gathers the rows it needs, once per
distinct entity. Presence masks (one byte per entity) always live on the model's device.
"""

from __future__ import annotations

import torch
from torch import nn

from afme_lib.data.feature_store import gather_rows


def rms_normalise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class ModalityInputs(nn.Module):
    """The frozen feature tables of ``modalities`` (default: every one ``features`` holds) and
    their learned projections: ``forward(entities)`` gives the tokens h_m = s_m * rms(P_m f_m)
    [n, M, D] and the presence mask [n, M] (formula in the module docstring)."""

    def __init__(self, features, dim: int, modalities: list[str] | None = None, init_scale: float = 1.0):
        super().__init__()
        available = [] if features is None else list(features.modalities)
        names = available if modalities is None else list(modalities)
        missing = sorted(set(names) - set(available))
        if missing:
            raise ValueError(f"modalities {missing} requested but the feature store holds only {available}")
        self.names = names
        self.projections = nn.ModuleList()
        # Host-resident tables (offloaded store): a plain list, so .to(device) leaves them in place.
        on_host = features is not None and getattr(features, "placement", "device") != "device"
        self._host_features = [features.features[m] for m in names] if on_host else []
        self._zero_when_missing: list[bool] = []
        # Whether every entity has a row of every modality; fixed with the store, so taken once
        # here rather than reduced (and, on a GPU, synchronised) at every training step.
        self.complete = all(bool(features.masks[m].all()) for m in names)
        for i, m in enumerate(names):
            # Non-persistent: features are data, re-supplied from the feature store on load, so
            # checkpoints stay small and a checkpoint never carries someone else's features.
            if not on_host:
                self.register_buffer(f"features_{i}", features.features[m].float(), persistent=False)
            self.register_buffer(f"present_{i}", features.masks[m].bool(), persistent=False)
            # Whether a missing row's token is already 0 without masking: P_m has no bias and
            # rms(0) = 0, so a missing row stored as zeros (FeatureStore.add zeroes them) projects
            # to 0 exactly, and the per-call where (forward and backward) can be skipped.
            missing = ~features.masks[m].bool()
            self._zero_when_missing.append(
                bool(features.features[m][missing].eq(0).all()) if not on_host else bool((~missing).all())
            )
            # No bias: P_m is linear, so h_m does not change when the raw features are rescaled.
            self.projections.append(nn.Linear(features.features[m].shape[1], dim, bias=False))
        self.log_scale = nn.Parameter(torch.full((len(names),), float(torch.tensor(init_scale).log())))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def feature_dims(self) -> list[int]:
        """Width d_m of each modality's raw feature rows."""
        return [proj.in_features for proj in self.projections]

    def raw(self, entities: torch.Tensor) -> list[torch.Tensor]:
        """Each modality's frozen feature rows [n, d_m] for flat entity ids [n] (zero where missing)."""
        if self._host_features:  # gather each distinct entity's rows once from host memory
            distinct, inverse = torch.unique(entities, return_inverse=True)
            return [gather_rows(table, distinct)[inverse] for table in self._host_features]
        return [getattr(self, f"features_{i}").index_select(0, entities) for i in range(len(self))]

    def forward(
        self, entities: torch.Tensor, raw: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected tokens [n, M, D] and presence [n, M] for flat entity ids [n] (``raw``: their
        rows from :meth:`raw`, when the caller already has them)."""
        tokens, present = [], []
        for i, (proj, feats) in enumerate(zip(self.projections, self.raw(entities) if raw is None else raw)):
            ok = getattr(self, f"present_{i}")[entities]
            h = rms_normalise(proj(feats)) * self.log_scale[i].exp()
            tokens.append(
                h
                if self._zero_when_missing[i]
                else torch.where(ok[:, None], h, torch.zeros((), dtype=h.dtype, device=h.device))
            )
            present.append(ok)
        if not tokens:
            n = entities.shape[0]
            return entities.new_zeros((n, 0, 0), dtype=torch.float), entities.new_zeros((n, 0), dtype=torch.bool)
        return torch.stack(tokens, 1), torch.stack(present, 1)
