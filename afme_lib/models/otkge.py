"""OTKGE (Cao et al., NeurIPS 2022): modality embeddings moved into the structural space by
optimal transport and fused as a Wasserstein barycentre, under the configured scorer.

For modality m with raw features f_m [d_m] and structural embeddings e_s [D]:

1. Transport plan between *coordinates* (the authors' code treats the d_m feature values and the
   D structural values of one entity as two 1-D empirical measures). For each of a few probe
   entities p, with standardised values x~ = (x - mean x) / rms(x - mean x)::

       C_p[b, a] = (e~_s(p)_b - f~_m(p)_a)^2,   P_p = sinkhorn(C_p, 1/D, 1/d_m, eps)   [D, d_m]
       A_m = mean_p diag(P_p 1)^-1 P_p                    (rows sum to 1; = D mean_p P_p at convergence)

   A_m f is the barycentric map: structural coordinate b receives the plan-weighted mean of the
   feature values it is matched with. A_m is recomputed from the current structural table
   (without gradient, as in the authors' code) whenever that table changes.
2. Transported embedding, with a learned correction Delta_m (the projection of ModalityInputs)::

       x_m = s_m rms((A_m + Delta_m) f_m)

3. Barycentre: e = lambda_s e_s + sum_{m present} lambda_m x_m, lambda_s = STRUCTURE_WEIGHT and
   the modalities splitting 1 - lambda_s equally, renormalised over the modalities the entity has
   (an entity with none keeps e_s). With the modality embeddings already transported onto the
   structural support this weighted mean is one step of the free-support barycentre iteration
   (sinkhorn.free_support_barycenter) started from e_s.
4. score(h, r, t) = scorer(e_h, r, e_t)  (``config.scorer``; RotatE by default).

Choices where the paper / code leave room are listed in docs/baselines.md (OTKGE section).
"""

from __future__ import annotations

import torch

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore, gather_rows
from afme_lib.models.base import KGModel
from afme_lib.models.modality_inputs import ModalityInputs, rms_normalise
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import scorer_from_config
from afme_lib.models.sinkhorn import sinkhorn

STRUCTURE_WEIGHT = 0.2  # lambda_s: the authors use 1 - 0.1 - 0.7 (FB) and 1 - 0.1 - 0.8 (WN)
PROBE_ENTITIES = 10  # plans averaged into A_m, as in the authors' code
OT_EPSILON = 0.1  # entropic regularisation on standardised coordinates
OT_ITERATIONS = 50


def standardise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(x - mean) / rms(x - mean) along the last dimension: a vector's values as a 1-D point cloud
    of zero mean and unit spread, so the transport cost does not depend on the features' units."""
    centred = x - x.mean(-1, keepdim=True)
    return rms_normalise(centred, eps)


def raw_features(inputs: ModalityInputs, i: int, entities: torch.Tensor) -> torch.Tensor:
    """Unprojected feature rows [n, d_m] of modality i, wherever ModalityInputs keeps the table
    (device buffers, or host memory for an offloaded feature store)."""
    host = getattr(inputs, "_host_features", None)
    if host:
        return gather_rows(host[i], entities).float()
    return getattr(inputs, f"features_{i}")[entities]


def coordinate_plans(
    structural: torch.Tensor, features: torch.Tensor, epsilon: float = OT_EPSILON, iterations: int = OT_ITERATIONS
) -> torch.Tensor:
    """Sinkhorn plans [S, D, d_m] between the coordinates of S structural rows [S, D] and S feature
    rows [S, d_m], uniform marginals, cost (e~_b - f~_a)^2 on standardised values."""
    source, target = standardise(structural), standardise(features)
    cost = (source[:, :, None] - target[:, None, :]).pow(2)
    return sinkhorn(cost, epsilon=epsilon, iterations=iterations)


@register_model("otkge")
class OTKGE(KGModel):
    """OTKGE: each modality's features transported into the structural space (a Sinkhorn plan
    between coordinates plus a learned correction) and fused as a barycentre with the structural
    embedding (formulas in the module docstring)."""

    per_entity_batch = True  # projects features: each distinct entity of a batch once (base.score_batch)

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        dim = self.init_embeddings(scorer_from_config(config))
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())
        if len(self.inputs):
            self.enable_unknown_entities()  # entities with no training triple (models/base.py)
        for i in range(len(self.inputs)):
            present = getattr(self.inputs, f"present_{i}")
            # The first entities that have the modality: a fixed, data-determined probe set.
            probe = present.nonzero(as_tuple=True)[0][:PROBE_ENTITIES]
            self.register_buffer(f"probe_{i}", probe, persistent=False)
        self._plan_cache: tuple | None = None

    # --- the transport maps --------------------------------------------------------------------
    @torch.compiler.disable  # a cached, gradient-free side computation: keep it out of compiled graphs
    def transport_maps(self) -> list[torch.Tensor]:
        """A_m = mean_p diag(P_p 1)^-1 P_p [D, d_m] per modality (zeros for a modality no entity has).

        A function of the structural table: cached and recomputed when that table changes (an
        optimiser step, a loaded state dict or a move to another device all change its version
        or storage), so train and evaluation always use the plan of the current parameters."""
        weight = self.entity.weight
        key = (weight._version, weight.data_ptr(), weight.dtype, weight.device)
        if self._plan_cache is None or self._plan_cache[0] != key:
            maps = []
            with torch.no_grad():
                for i in range(len(self.inputs)):
                    probe = getattr(self, f"probe_{i}")
                    if len(probe) == 0:
                        maps.append(weight.new_zeros(weight.shape[1], self.inputs.projections[i].in_features))
                        continue
                    plans = coordinate_plans(weight[probe].float(), raw_features(self.inputs, i, probe).float())
                    # each plan's barycentric map, averaged over the probes (rows sum to 1)
                    maps.append((plans / plans.sum(-1, keepdim=True)).mean(0).to(weight.dtype))
            self._plan_cache = (key, maps)
        return self._plan_cache[1]

    def cached_tensors(self) -> list[torch.Tensor]:
        return list(self._plan_cache[1]) if self._plan_cache is not None else []

    def transported(self, entities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_m = s_m rms((A_m + Delta_m) f_m) [n, M, D] (zero where missing) and presence [n, M]."""
        maps = self.transport_maps()
        tokens, present = [], []
        for i, proj in enumerate(self.inputs.projections):
            feats = raw_features(self.inputs, i, entities)
            ok = getattr(self.inputs, f"present_{i}")[entities]
            moved = feats @ (maps[i] + proj.weight).T
            x = rms_normalise(moved) * self.inputs.log_scale[i].exp()
            tokens.append(torch.where(ok[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device)))
            present.append(ok)
        return torch.stack(tokens, 1), torch.stack(present, 1)

    def barycentre_weights(self, present: torch.Tensor) -> torch.Tensor:
        """[n, M+1] weights (structure first): lambda_s and equal modality shares, renormalised
        over the present modalities; exactly 0 for missing ones."""
        m = present.shape[1]
        share = torch.full((m,), (1.0 - STRUCTURE_WEIGHT) / m, device=present.device)
        raw = torch.cat(
            [torch.full_like(present[:, :1], STRUCTURE_WEIGHT, dtype=share.dtype), present.to(share.dtype) * share], 1
        )
        return raw / raw.sum(1, keepdim=True)

    # --- representations -----------------------------------------------------------------------
    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        if len(self.inputs) == 0:
            return self.structural(entities)
        # Each distinct entity once: K negatives per positive repeat entities often.
        unique, inverse = torch.unique(entities.reshape(-1), return_inverse=True)
        structural = self.structural(unique)
        tokens, present = self.transported(unique)
        weights = self.barycentre_weights(present).to(structural.dtype)
        fused = weights[:, 0, None] * structural + torch.einsum("nm,nmd->nd", weights[:, 1:], tokens)
        return fused[inverse].view(*entities.shape, -1)

    def introspect(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Barycentre weights [n, M+1] (structure first) and presence [n, M]."""
        if len(self.inputs) == 0:
            return {}
        flat = entities.reshape(-1)
        present = torch.stack([getattr(self.inputs, f"present_{i}")[flat] for i in range(len(self.inputs))], 1)
        return {"weights": self.barycentre_weights(present), "measured": present}
