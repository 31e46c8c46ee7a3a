"""Multi-modal baselines: IKRL and a plain fusion model without gating (``mm-concat``).

Both take any modality set from the feature store; neither is relation-conditioned, so an
entity table is built once per evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import KGModel
from afme_lib.models.modality_inputs import ModalityInputs
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import make_scorer, scorer_from_config


def _mean_present(tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Average of the present modality tokens [n, M, D] -> [n, D] (zero where none is present)."""
    weight = present.to(tokens.dtype)[..., None]
    return (tokens * weight).sum(1) / weight.sum(1).clamp(min=1.0)


class IKRLScorer:
    """IKRL's energy with structure-based (s) and modality-based (i) entity vectors::

        E(h, r, t) = ||h_s + r - t_s|| + ||h_i + r - t_i|| + ||h_s + r - t_i|| + ||h_i + r - t_s||

    The cross terms tie both spaces to one translation. An entity representation is
    [e_s | e_i] (2D), the score is -E.
    """

    name = "ikrl"

    def __init__(self, transe):
        self.transe = transe  # the TransE scorer each of the four terms uses

    def enable_compile(self) -> None:
        self.transe.enable_compile()

    @staticmethod
    def _halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.chunk(2, dim=-1)

    def score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        (hs, hi), (ts, ti) = self._halves(h), self._halves(t)
        return sum(self.transe.score(a, r, b) for a in (hs, hi) for b in (ts, ti))

    def score_candidates(
        self, known: torch.Tensor, r: torch.Tensor, candidates: torch.Tensor, corrupt_head: torch.Tensor
    ) -> torch.Tensor:
        (ks, ki), (cs, ci) = self._halves(known), self._halves(candidates)
        return sum(self.transe.score_candidates(a, r, b, corrupt_head) for a in (ks, ki) for b in (cs, ci))

    def score_all(
        self, q: torch.Tensor, r: torch.Tensor, table: torch.Tensor, side: str, chunk_size=None
    ) -> torch.Tensor:
        qs, qi = self._halves(q)
        cs, ci = self._halves(table)
        return sum(self.transe.score_all(a, r, b, side, chunk_size) for a in (qs, qi) for b in (cs, ci))


@register_model("ikrl")
class IKRL(KGModel):
    """IKRL (Xie et al., 2017) generalised from images to any modality set.

    The modality-based vector e_i is the mean of the present projected modality features (IKRL
    attends over several images of one entity; with one cached feature row per modality the
    modalities play the part of the images). An entity with no modality at all falls back to its
    structural vector, so the four energy terms stay defined.
    """

    per_entity_batch = True  # projects features: each distinct entity of a batch once (base.score_batch)

    scorer_name = "transe"  # inside IKRLScorer's four terms

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        transe = make_scorer("transe", p_norm=config.p_norm)
        dim = self.init_embeddings(transe)  # TransE-sized tables for the structural vectors
        self.scorer = IKRLScorer(transe)
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())
        if len(self.inputs):
            self.enable_unknown_entities()  # entities with no training triple (models/base.py)

    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        flat = entities.reshape(-1)
        structural = self.structural(flat)
        if len(self.inputs):
            tokens, present = self.inputs(flat)
            modal = torch.where(present.any(1, keepdim=True), _mean_present(tokens, present), structural)
        else:
            modal = structural
        return torch.cat([structural, modal], -1).view(*entities.shape, -1)


@register_model("mm-concat")
class MMConcat(KGModel):
    """Ungated fusion: e = W [e_s ; h_1 ; ... ; h_M] (+ e_s), missing modalities as zeros.

    The same projections as AFME but no relation, no gate, no weights, no generator: the
    reference every AFME component's gain is measured against.
    """

    per_entity_batch = True  # projects features: each distinct entity of a batch once (base.score_batch)

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        dim = self.init_embeddings(scorer_from_config(config))
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())
        if len(self.inputs):
            self.enable_unknown_entities()  # entities with no training triple (models/base.py)
        m = len(self.inputs)
        self.mix = nn.Linear((m + 1) * dim, dim)
        # Start as the identity on the structural slot: training begins from a plain scorer.
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, :dim] = torch.eye(dim)
            self.mix.bias.zero_()

    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        flat = entities.reshape(-1)
        structural = self.structural(flat)
        parts = [structural]
        if len(self.inputs):
            tokens, _ = self.inputs(flat)  # missing rows are already zero
            parts.append(tokens.flatten(1))
        return self.mix(torch.cat(parts, -1)).view(*entities.shape, -1)
