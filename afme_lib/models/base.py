"""The interface every model implements, so training and evaluation never special-case a model.

A model has
- ``entity_repr(entities, relations)``: entity representations, broadcasting ``relations``
  against ``entities``. Relation-conditioned models (AFME) use the relation; others ignore it.
- ``relation_repr(relations)``: the relation parameters the score function consumes.
- ``scorer``: a :class:`~afme_lib.models.scorers.Scorer` (pure score math).
- ``entity_table(relation)``: every entity's representation [N, D] -- once per relation for a
  relation-conditioned model, once in all for the others. Evaluation scores all candidates
  against this table, so per-(entity, relation) work is done once per relation, never per query.
- ``extra_loss(batch)``: optional model-specific regularisation added to the KGC loss.
"""

from __future__ import annotations

import torch
from torch import nn

from afme_lib.config import ModelConfig


class KGModel(nn.Module):
    relation_conditioned: bool = False
    registered_name: str = ""
    # Read by the option checks (afme_lib/combinations.py) before any data is loaded:
    reads_features: bool = True  # takes modality features (False: structure only)
    scorer_name: str = ""  # the scorer it always uses; "": ModelConfig.scorer
    # TrainConfig values the model's authors use where the engine's defaults would misrepresent the
    # model (e.g. an adversarial weight that switches its term off); benchmark scripts start from them.
    recommended_train_options: dict = {}

    def __init__(self, config: ModelConfig, num_entities: int, num_relations: int):
        super().__init__()
        self.config = config
        self.num_entities = num_entities
        self.num_relations = num_relations

    def init_embeddings(self, scorer) -> int:
        """Set ``self.scorer`` and the entity / relation tables it sizes and initialises.

        Returns the entity width; ``embedding_scale()`` is then the tables' initial RMS, the scale
        feature tokens are brought to so they start neither drowned nor dominant."""
        self.scorer = scorer
        dim = self.config.dim
        self.entity = nn.Embedding(self.num_entities, scorer.entity_dim(dim))
        self.relation = nn.Embedding(self.num_relations, scorer.relation_dim(dim))
        scorer.init_entity_(self.entity.weight, dim)
        scorer.init_relation_(self.relation.weight, dim)
        return self.entity.weight.shape[1]

    def embedding_scale(self) -> float:
        return float(self.entity.weight.detach().pow(2).mean().sqrt())

    # --- representations -------------------------------------------------------------------
    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def entity_table(self, relation: int | None = None) -> torch.Tensor:
        """All entity representations [N, D] (for ``relation`` when the model is conditioned)."""
        device = self.device
        ids = torch.arange(self.num_entities, device=device)
        if self.relation_conditioned:
            if relation is None:
                raise ValueError(f"{type(self).__name__} is relation-conditioned: entity_table needs a relation")
            rel = torch.full((1,), int(relation), dtype=torch.long, device=device)
            return self.entity_repr(ids, rel)
        return self.entity_repr(ids, None)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- scores ----------------------------------------------------------------------------
    def score(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Scores of triples, higher = more plausible; index tensors broadcast (e.g. [B,1] vs [B,K])."""
        return self.scorer.score(
            self.entity_repr(heads, relations), self.relation_repr(relations), self.entity_repr(tails, relations)
        )

    def score_negatives(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor,
                        negatives: torch.Tensor, corrupt_head: torch.Tensor) -> torch.Tensor:
        """Scores [B, K] of corrupted triples: row b replaces its head (``corrupt_head[b]``) or its
        tail by each of ``negatives[b]``. Equal to ``score`` on the corrupted triples, but the
        known side's query is built once per row instead of once per negative."""
        known = torch.where(corrupt_head, tails, heads)
        return self.scorer.score_candidates(self.entity_repr(known, relations), self.relation_repr(relations),
                                            self.entity_repr(negatives, relations[:, None]), corrupt_head)

    def score_all(self, entities: torch.Tensor, relations: torch.Tensor, side: str, chunk_size: int | None = None) -> torch.Tensor:
        """Score every entity as the missing ``side`` ("tail" or "head") of each query: [B, N].

        ``entities`` are the known heads (side="tail") or known tails (side="head"). A
        relation-conditioned model builds one entity table per distinct relation in the batch.
        """
        if not self.relation_conditioned:
            return self.scorer.score_all(self.entity_repr(entities), self.relation_repr(relations),
                                         self.entity_table(), side, chunk_size)
        out = torch.empty(len(entities), self.num_entities, device=entities.device)
        for rel in torch.unique(relations).tolist():
            rows = (relations == rel).nonzero(as_tuple=True)[0]
            table = self.entity_table(rel)
            out[rows] = self.scorer.score_all(table[entities[rows]], self.relation_repr(relations[rows]),
                                              table, side, chunk_size).float()
        return out

    def extra_loss(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor | None:
        """Model-specific term added to the KGC loss (None: nothing)."""
        return None

    def introspect(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Interpretable internals for (entity, relation) pairs (gates, modality weights); {} if none."""
        return {}
