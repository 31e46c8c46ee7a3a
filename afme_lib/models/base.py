"""The interface every model implements, so training and evaluation never special-case a model.

Representations and scores (every model defines the first two):

- ``entity_repr(entities, relations)``: entity representations, broadcasting ``relations``
  against ``entities``. Relation-conditioned models (AFME) use the relation; others ignore it.
- ``relation_repr(relations)``: the relation parameters the score function consumes.
- ``scorer``: a :class:`~afme_lib.models.scorers.Scorer` (pure score math).
- ``entity_table(relation)``: every entity's representation [N, D] -- once per relation for a
  relation-conditioned model, once in all for the others. Evaluation scores all candidates
  against this table, so per-(entity, relation) work is done once per relation, never per query;
  ``tables(relation)`` gives the table the known side of a query is read from beside it (the
  same one unless the model represents the entity asked about differently from a candidate, as
  AFME does).

Training hooks (the engine, :func:`afme_lib.engine.training.batch_losses`, calls every one of them; the
defaults here are those of a model with nothing beyond its scores):

- ``extra_loss(h, r, t)``: a regularisation term added to the KGC loss (None: nothing).
- ``training_losses(batch, negatives, corrupt_head, context)``: named terms that need the batch's
  negatives or the engine's loss (MMKRL's and NATIVE's adversarial terms); ``context`` is a
  :class:`LossContext`, the part of the training configuration a model may read.
- ``critic_parameters()`` / ``main_parameters()`` / ``generator_parameters()``: a model with a
  generator (AFME's MoIEn; part of the main parameters, at its own learning rate) adds
  ``lambda_adv x generator_loss(entities, relations)`` to the main loss; with a critic too, the
  engine trains the critic with its own optimiser on ``critic_loss(entities, relations,
  lambda_gp)``. ``generator_in_use()`` False tells the engine that the generator's output is
  never read on this data, so neither update is run.
- ``enable_compile()``: asked when training runs under torch.compile.
- ``cached_tensors()``: tensors the model keeps between calls and rebuilds from its parameters
  (AFME's cross-check table in training, its per-entity tensors in evaluation); the memory model
  (afme_lib/engine/memory.py) counts them.
- ``introspect(entities, relations)``: interpretable internals for the notebooks.

Entities without structural evidence. A model that reads features calls
:meth:`KGModel.enable_unknown_entities`: a learned "unknown" structural vector ``u`` then
stands in for ``e_s`` of every entity that has no training triple (its ``e_s`` was never fitted:
random, or pushed away from everything as a sampled negative) and, during training, for a random
share ``config.structure_dropout`` of the entities of each batch, so the feature path learns to
answer on its own. A cold entity in a real graph has a fitted ``e_s`` that says nothing about the
relations asked of it, not the unknown vector: for a share :attr:`KGModel.structure_shuffle` of
the rows, training reads another entity's ``e_s``, so the features must answer where structure
misleads (AFME does this per (entity, relation) pair itself, scaled by its lambda_r). Both are
cold-entity training that every model reading features takes alike. The engine says which
entities have training triples through :meth:`KGModel.observe_training_graph`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from afme_lib.core.config import ModelConfig


def take_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a flat ``index`` into the rows of ``table`` [n, ...]. Floating tables go
    through F.embedding, other ones through index_select: on a CPU, advanced indexing's gather
    was ~7x slower forward and its backward slower too (one thread, 18k rows of 128 floats)."""
    if table.is_floating_point() and table.dim() >= 2:
        return F.embedding(index, table.reshape(table.shape[0], -1)).view(index.shape[0], *table.shape[1:])
    return table.index_select(0, index)


@dataclass(frozen=True)
class LossContext:
    """What a model's training hooks may read of the training configuration (built once per run
    by :func:`afme_lib.engine.training.loss_context`).

    ``sampled_loss(pos [B], neg [B, K]) -> scalar`` is the engine's KGC loss (``TrainConfig.loss``
    with its margin and temperature); a model uses it to score a perturbed batch the way the
    batch itself is scored, without knowing which loss that is.
    """

    sampled_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    # (entities [B], relations [B]) -> [B] bool: (e, r, e) is a training fact, so e is a true answer
    # of its own query and no self-negative (afme_lib/engine/sampling.py); None: no self-loop is known.
    known_loop: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    lambda_adv: float = 0.0  # weight of a model's adversarial term
    lambda_gp: float = 0.0  # weight of a gradient penalty
    adv_epsilon: float = 0.1  # size of an adversarial perturbation, relative to the representation's norm


class KGModel(nn.Module):
    """Base class of every registered model: representations, scores and training hooks (the
    module docstring lists them). Subclasses set ``self.scorer`` and the tables through
    :meth:`init_embeddings`, define :meth:`entity_repr` and :meth:`relation_repr`, and override
    the training hooks they need; :func:`~afme_lib.models.registry.register_model` names them.
    """

    relation_conditioned: bool = False
    registered_name: str = ""
    # Read by the option checks (afme_lib/engine/checks.py) before any data is loaded:
    reads_features: bool = True  # takes modality features (False: structure only)
    scorer_name: str = ""  # the scorer it always uses; "": ModelConfig.scorer
    # TrainConfig values the model's authors use where the engine's defaults would misrepresent the
    # model (e.g. an adversarial weight that switches its term off); benchmark scripts start from them.
    recommended_train_options: dict = {}
    # True when training_losses is defined on sampled negatives (MMKRL, NATIVE): the engine then
    # refuses the 1vsall loss, which draws none.
    sampled_loss_only: bool = False
    # score_batch represents each distinct entity of a batch once (set by models whose entity_repr
    # projects features; a plain embedding lookup is cheaper than the deduplication).
    per_entity_batch: bool = False
    has_unknown: bool = False  # True once enable_unknown_entities() gave the model its "unknown" vector
    default_structure_shuffle = 0.0  # structure_shuffle when the config leaves it to the model
    shuffles_per_pair = False  # True: the model swaps e_s per (entity, relation) pair itself (AFME)

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

    # --- entities without structural evidence -----------------------------------------------
    def enable_unknown_entities(self) -> None:
        """Give the model the learned "unknown" structural vector (see the module docstring)."""
        self.has_unknown = True
        self.unknown = nn.Parameter(self.entity.weight.detach().mean(0).clone())
        self.register_buffer("no_structure", torch.zeros(self.num_entities, dtype=torch.bool), persistent=False)

    def observe_training_graph(self, train: torch.Tensor) -> None:
        """The engine's training triples [n, 3]: entities absent from them get the unknown vector."""
        if self.has_unknown:
            degree = torch.bincount(train[:, [0, 2]].reshape(-1).cpu(), minlength=self.num_entities)
            self.no_structure = (degree == 0).to(self.no_structure.device)

    def _any_unstructured(self) -> bool:
        """Whether any entity lacks training triples. Cached per version of ``no_structure`` (one
        host sync when it changes, none per step): on a graph where every entity has training
        triples the unknown-vector ``where`` of :meth:`structural` is skipped (its forward and
        backward over every row were a few percent of AFME's CPU step)."""
        mask = self.no_structure
        seen = getattr(self, "_unstructured_seen", None)  # (weak reference to the mask, its version)
        if seen is None or seen[0]() is not mask or seen[1] != mask._version:
            self._unstructured_seen, self._unstructured = (weakref.ref(mask), mask._version), bool(mask.any())
        return self._unstructured

    @property
    def structure_shuffle(self) -> float:
        """The share of training rows that read another entity's e_s (``config.structure_shuffle``,
        or the model's own default when the config leaves it)."""
        given = self.config.structure_shuffle
        return self.default_structure_shuffle if given is None else given

    def _known_structure(self, entities: torch.Tensor) -> torch.Tensor:
        """e_s of ``entities``, the unknown vector for those with no training triple."""
        e = self.entity(entities)
        if not self._any_unstructured():
            return e
        return torch.where(self.no_structure[entities][..., None], self.unknown.to(e.dtype), e)

    def structural(self, entities: torch.Tensor) -> torch.Tensor:
        """e_s of ``entities`` (any shape), or the unknown vector where there is no structural
        evidence; in training, the unknown vector for a ``config.structure_dropout`` share of the
        rows and another entity's e_s for a :attr:`structure_shuffle` share."""
        if not self.has_unknown:
            return self.entity(entities)
        out = self._known_structure(entities)
        p = self.config.structure_dropout
        if self.training and p > 0:
            drop = torch.rand(entities.shape, device=entities.device) < p
            out = torch.where(drop[..., None], self.unknown.to(out.dtype), out)
        q = 0.0 if self.shuffles_per_pair else self.structure_shuffle
        if self.training and q > 0:
            swap = torch.rand(entities.shape, device=entities.device) < q
            others = torch.randint(0, self.num_entities, entities.shape, device=entities.device)
            out = torch.where(swap[..., None], self._known_structure(others).to(out.dtype), out)
        return out

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

    def tables(self, relation: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(query table, candidate table) [N, D] each: the representations entities take as the
        known side of a query and as candidate answers. One table twice unless a model represents
        the entity asked about differently from a candidate (AFME completes a missing modality for
        the former only)."""
        table = self.entity_table(relation)
        return table, table

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- scores ----------------------------------------------------------------------------
    def score(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Scores of triples, higher = more plausible; index tensors broadcast (e.g. [B,1] vs [B,K])."""
        return self.scorer.score(
            self.entity_repr(heads, relations), self.relation_repr(relations), self.entity_repr(tails, relations)
        )

    def score_negatives(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        negatives: torch.Tensor,
        corrupt_head: torch.Tensor,
    ) -> torch.Tensor:
        """Scores [B, K] of corrupted triples: row b replaces its head (``corrupt_head[b]``) or its
        tail by each of ``negatives[b]``. Equal to ``score`` on the corrupted triples, but the
        known side's query is built once per row instead of once per negative."""
        known = torch.where(corrupt_head, tails, heads)
        return self.scorer.score_candidates(
            self.entity_repr(known, relations),
            self.relation_repr(relations),
            self.entity_repr(negatives, relations[:, None]),
            corrupt_head,
        )

    def score_batch(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        negatives: torch.Tensor,
        corrupt_head: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch's scores in one call: positives [B] and corrupted triples [B, K] (as
        :meth:`score` and :meth:`score_negatives`). Models whose entity representations are
        costly override it to build each entity's part once for the whole batch; one that is not
        relation-conditioned and reads features (``per_entity_batch``) gets that here: each
        distinct entity of the batch is represented once (a batch of B rows and K negatives
        repeats entities ~K times on a small graph) and its rows are gathered."""
        if self.relation_conditioned or not self.per_entity_batch:
            return (
                self.score(heads, relations, tails),
                self.score_negatives(heads, relations, tails, negatives, corrupt_head),
            )
        b = heads.numel()
        ids, where = torch.unique(torch.cat([heads, tails, negatives.reshape(-1)]), return_inverse=True)
        table = self.entity_repr(ids, None)
        h, t = table[where[:b]], table[where[b : 2 * b]]
        rel = self.relation_repr(relations)
        known = torch.where(corrupt_head[:, None], t, h)
        candidates = table[where[2 * b :]].view(*negatives.shape, -1)
        return self.scorer.score(h, rel, t), self.scorer.score_candidates(known, rel, candidates, corrupt_head)

    def score_all(
        self, entities: torch.Tensor, relations: torch.Tensor, side: str, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Score every entity as the missing ``side`` ("tail" or "head") of each query: [B, N].

        ``entities`` are the known heads (side="tail") or known tails (side="head"). A
        relation-conditioned model builds one entity table per distinct relation in the batch.
        """
        if not self.relation_conditioned:
            queries, candidates = self.tables()
            return self.scorer.score_all(queries[entities], self.relation_repr(relations), candidates, side, chunk_size)
        out = torch.empty(len(entities), self.num_entities, device=entities.device)
        for rel in torch.unique(relations).tolist():
            rows = (relations == rel).nonzero(as_tuple=True)[0]
            queries, candidates = self.tables(rel)
            out[rows] = self.scorer.score_all(
                queries[entities[rows]], self.relation_repr(relations[rows]), candidates, side, chunk_size
            ).float()
        return out

    # --- training hooks --------------------------------------------------------------------
    def extra_loss(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor | None:
        """Model-specific term added to the KGC loss (None: nothing)."""
        return None

    def training_losses(
        self, batch: torch.Tensor, negatives: torch.Tensor, corrupt_head: torch.Tensor, context: LossContext
    ) -> dict[str, torch.Tensor]:
        """Named terms added to the loss, each logged under its name ({}: none). ``batch`` [B, 3]
        positives, ``negatives`` [B, K] and ``corrupt_head`` [B] as the engine drew them."""
        return {}

    def critic_parameters(self) -> list[nn.Parameter]:
        """Parameters of an adversarial critic, stepped by their own optimiser on
        :meth:`critic_loss` ([]: the model has no critic, and the engine never calls the critic
        hooks)."""
        return []

    def main_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimiser steps on the loss: all but the critic's."""
        critic = {id(p) for p in self.critic_parameters()}
        return [p for p in self.parameters() if id(p) not in critic]

    def generator_parameters(self) -> list[nn.Parameter]:
        """The part of :meth:`main_parameters` that is a generator trained only by its own
        objective (AFME's MoIEn): the main optimiser steps it at ``TrainConfig.gen_lr`` instead of
        ``lr`` ([]: none)."""
        return []

    def generator_in_use(self) -> bool:
        """Whether the generator's updates (and the critic's) can change what the model outputs.
        A model with a generator returns False when its output is never read on its data (AFME
        with nothing to complete or check); the engine then skips the critic steps and the
        generator term rather than train a part no score depends on."""
        return bool(self.generator_parameters())

    def critic_loss(self, entities: torch.Tensor, relations: torch.Tensor, lambda_gp: float) -> dict[str, torch.Tensor]:
        """``{"loss", "wasserstein", "gp"}`` of one critic step on (entity, relation) pairs; the
        critic's optimiser minimises "loss". Required when :meth:`critic_parameters` is not empty."""
        raise NotImplementedError(f"{type(self).__name__} has critic parameters but no critic_loss")

    def generator_loss(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """The generator's own loss (against the critic, if any), added to the main loss times
        ``lambda_adv``. Required when :meth:`generator_parameters` is not empty."""
        raise NotImplementedError(f"{type(self).__name__} has generator parameters but no generator_loss")

    def cached_tensors(self) -> list[torch.Tensor]:
        """Tensors held between calls, rebuilt from the parameters (none by default)."""
        return []

    def enable_compile(self) -> None:
        """Training runs under torch.compile: let the scorer compile its evaluation kernel too."""
        self.scorer.enable_compile()

    def introspect(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Interpretable internals for (entity, relation) pairs (gates, modality weights); {} if none."""
        return {}
