"""Negative sampling on the device: K corrupted heads or tails per positive triple.

Each positive corrupts one side (all its K negatives replace the head, or all replace the tail).
Uniform: the head with probability 1/2. Bernoulli (Wang et al., 2014): a triple of relation r
corrupts the head with probability tph_r / (tph_r + hpt_r), where tph_r = #triples / #distinct
heads and hpt_r = #triples / #distinct tails of r; so for a 1-N relation (many tails per head) we
mostly replace the head, which is far less likely to produce a false negative. Corrupting
entities are drawn uniformly from all entities (the positive's own entity included: no
filtering). Everything is one batch of tensor ops on the triples' device.

Shared pool (``pool`` > 0, ``TrainConfig.negative_pool``): each call first draws ``pool``
entities uniformly (with replacement), and every row draws its K negatives from them. Each
negative is still uniform over all entities; what changes is that a batch's rows share their
candidates, so a batch touches about ``pool`` distinct negative entities instead of B x K. For a
model whose per-entity work is costly (AFME projects and gates every distinct entity a step
touches) that work shrinks with the pool; for RotatE, whose entities are one gather, nothing
changes. The price: negatives within a batch are correlated, not independent. (Sharing negatives
across a batch is common practice in large-graph trainers; the pool size here is ours to pick.)

Self-negatives (``TrainConfig.self_negatives`` > 0): the entity a query asks about, offered as an
answer to its own query ((h, r, h) for the tail query of (h, r, t), (t, r, t) for its head
query). Uniform draws meet it once in N, so without it training never says that such a triple is
false, and a model whose relation acts near the identity (or whose features make an entity most
similar to itself) answers queries with the asked entity. :class:`KnownLoops` tells which of those
triples are training facts, so they are never pushed down.
"""

from __future__ import annotations

import torch

from afme_lib.core.config import SAMPLERS


def head_corruption_probability(train: torch.Tensor, num_relations: int) -> torch.Tensor:
    """P(corrupt head | r) = tph / (tph + hpt) from the training triples, [R]."""
    triples = torch.unique(train, dim=0)
    rel = triples[:, 1]
    count = torch.bincount(rel, minlength=num_relations).double()
    heads = torch.bincount(torch.unique(triples[:, [1, 0]], dim=0)[:, 0], minlength=num_relations).double()
    tails = torch.bincount(torch.unique(triples[:, [1, 2]], dim=0)[:, 0], minlength=num_relations).double()
    tph = count / heads.clamp(min=1)
    hpt = count / tails.clamp(min=1)
    prob = tph / (tph + hpt)
    return torch.where(count > 0, prob, torch.full_like(prob, 0.5)).float()


class NegativeSampler:
    """Draws ``num_negatives`` corrupted entities per positive triple, all on one side of it: the
    head with probability 1/2 (``uniform``) or tph_r / (tph_r + hpt_r) (``bernoulli``)."""

    def __init__(
        self,
        num_entities: int,
        num_negatives: int,
        mode: str = "uniform",
        train: torch.Tensor | None = None,
        num_relations: int | None = None,
        pool: int = 0,
    ):
        if mode not in SAMPLERS:
            raise ValueError(f"unknown sampler {mode!r}; expected one of {', '.join(SAMPLERS)}")
        if pool < 0:
            raise ValueError(f"the negative pool must be 0 (no pool) or a positive size, got {pool}")
        self.num_entities, self.num_negatives, self.mode, self.pool = num_entities, num_negatives, mode, pool
        self.head_prob = None
        if mode == "bernoulli":
            if train is None or num_relations is None:
                raise ValueError("the bernoulli sampler needs the training triples and the relation count")
            self.head_prob = head_corruption_probability(train.cpu(), num_relations)

    def to(self, device) -> NegativeSampler:
        if self.head_prob is not None:
            self.head_prob = self.head_prob.to(device)
        return self

    def sample(
        self, positives: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (negative entities [B, K], corrupt_head [B] bool).

        One side per positive (all K negatives of a row corrupt the same side), so a row's
        negatives score against one fixed known entity, as the self-adversarial loss expects.
        With a ``pool``, every row's negatives come from one set of ``pool`` uniformly drawn
        entities (module docstring). Both tensors are on ``positives.device``; ``generator`` (on
        that device) makes the draw reproducible without touching the global RNG.
        """
        b, device = len(positives), positives.device
        if self.head_prob is None:
            p = torch.full((b,), 0.5, device=device)
        else:
            p = self.head_prob[positives[:, 1]]
        corrupt_head = torch.rand(b, device=device, generator=generator) < p
        if self.pool:
            shared = torch.randint(0, self.num_entities, (self.pool,), device=device, generator=generator)
            picks = torch.randint(0, self.pool, (b, self.num_negatives), device=device, generator=generator)
            return shared[picks], corrupt_head
        negatives = torch.randint(0, self.num_entities, (b, self.num_negatives), device=device, generator=generator)
        return negatives, corrupt_head


class KnownLoops:
    """The training graph's self-loops (e, r, e), looked up on the device: which self-negatives
    are known facts (kept out of the loss) rather than negatives."""

    def __init__(self, train: torch.Tensor, num_relations: int):
        loops = train[train[:, 0] == train[:, 2]].long()
        self.num_relations = num_relations
        self.keys = torch.unique(loops[:, 0] * num_relations + loops[:, 1])

    def to(self, device) -> KnownLoops:
        self.keys = self.keys.to(device)
        return self

    def __call__(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """[B] bool: (entities[b], relations[b], entities[b]) is a training triple."""
        return torch.isin(entities * self.num_relations + relations, self.keys)


def asked_entities(batch: torch.Tensor, corrupt_head: torch.Tensor) -> torch.Tensor:
    """The entity each row's query asks about [B]: its tail when the row corrupts the head (the
    query (?, r, t)), else its head (the query (h, r, ?))."""
    return torch.where(corrupt_head, batch[:, 2], batch[:, 0])
