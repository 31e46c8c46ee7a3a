"""Structure-only baselines: one embedding per entity and per relation, scored by a scorer.

    score(h, r, t) = scorer(E[h], R[r], E[t])

``transe`` (L1 or L2 from ``ModelConfig.p_norm``), ``distmult``, ``complex`` and ``rotate``. The
embedding widths and their initialisation come from the scorer (see
:mod:`afme_lib.models.scorers`); ``ModelConfig.init_range`` overrides the scorer's default range.
These models ignore entity features and ``ModelConfig.scorer`` (the model name is the scorer).
Weight regularisation (N3 / L2) is the training engine's business, not the model's; the
bilinear models declare the recipe they are trained with (``recommended_train_options``: the
logistic loss with N3 weight 1e-3, the usual setting of their published baseline numbers), which
grids of ``target: train`` and the benchmarks start from.
"""

from __future__ import annotations

import torch

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import KGModel
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import scorer_from_config


class EmbeddingModel(KGModel):
    """Lookup-table entity and relation representations for the scorer named ``scorer_name``."""

    reads_features = False

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        self.init_embeddings(scorer_from_config(config, name=self.scorer_name))

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        return self.entity(entities)

    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def entity_table(self, relation: int | None = None) -> torch.Tensor:
        # The weight itself: the base class would gather a copy of all N rows.
        return self.entity.weight


@register_model("transe")
class TransEModel(EmbeddingModel):
    """TransE: -||h + r - t||_p with p = ``config.p_norm`` (1 or 2)."""

    scorer_name = "transe"


@register_model("distmult")
class DistMultModel(EmbeddingModel):
    """DistMult: <h, r, t>."""

    scorer_name = "distmult"
    recommended_train_options = {"loss": "softplus", "regularization": 1e-3}


@register_model("complex")
class ComplExModel(EmbeddingModel):
    """ComplEx: Re(<h, r, conj(t)>), dim/2 complex coordinates."""

    scorer_name = "complex"
    recommended_train_options = {"loss": "softplus", "regularization": 1e-3}


@register_model("rotate")
class RotatEModel(EmbeddingModel):
    """RotatE: -sum_k |h_k e^{i theta_k} - t_k|, dim/2 complex coordinates and dim/2 phases."""

    scorer_name = "rotate"
