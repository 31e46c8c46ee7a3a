"""AFME v1: the first implementation, kept reachable as the model ``afme-v1`` until AFME v2
(afme_lib/models/afme.py) is shown at least as good on the benchmarks; reported beside it.

MoIFu fusion + MoIEn GAN enhancement under a pluggable score function (RotatE default).

For an entity e seen through relation r::

    e_s                             learned structural embedding
    h_m = s_m rms(P_m f_m)          frozen features of each modality, projected (modality.py)
    h~_m = gate_m * h_m             MoIFu denoising (fusion.py)
    g_m = s_m rms(G(e_s, z, h~)_m)  MoIEn generator (enhance.py), on the measured tokens' scale
    t_m = h~_m (1 - b_m) + g_m b_m  if m is present  (enhance a possibly degraded feature)
          g_m                       if m is missing  (fill it)
    e_r = sum_m w_m t_m + w_s e_s   MoIFu dynamic weights over [e_s, t_1..t_M]
    score(h, r, t) = scorer(e_r(h), r, e_r(t))

b_m = sigmoid(beta_m) is a learned per-modality mixing share, initialised at
``config.enhance_mix``. With ``gan=False`` t_m = h~_m and missing modalities keep weight 0.
A generated feature gets the norm of a measured token of its modality (s_m sqrt(D), see
modality.py): left raw, the generator's output is several times longer (4x at dim 64 at
initialisation), would dominate e_r and push MoIFu's confidence alpha above its documented
range [0, 1]. The critic then judges a feature's direction, not its size.
The joint objective (see the engine) is the KGC loss + lambda_adv * generator loss, and the critic
(a WGAN critic with gradient penalty) has its own optimiser: :meth:`critic_parameters`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from afme_lib.config import ModelConfig
from afme_lib.models.base import KGModel
from afme_lib.models.enhance import ModalityCritic, ModalityGenerator, gradient_penalty
from afme_lib.models.fusion_v1 import MoIFuV1
from afme_lib.models.modality import ModalityInputs, rms_normalise
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import scorer_from_config

TABLE_CHUNK = 4096  # entities fused at a time when building a whole entity table


@register_model("afme-v1")
class AFMEv1(KGModel):
    """AFME as first implemented (see the module docstring); structure inside the convex weights."""

    relation_conditioned = True

    def __init__(self, config: ModelConfig, num_entities: int, num_relations: int, features=None):
        super().__init__(config, num_entities, num_relations)
        dim = self.init_embeddings(scorer_from_config(config))
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())
        m = len(self.inputs)
        self.token_names = ["structure"] + self.inputs.names
        self.fusion = MoIFuV1(m, dim, num_relations, config.denoising, config.dynamic_weights, config.relation_context)
        self.use_gan = config.gan and m > 0
        if self.use_gan:
            self.generator = ModalityGenerator(m, dim, config.noise_dim, config.attention_layers,
                                               config.attention_heads, config.self_attention, config.dropout)
            # The critic always attends: with per-token MLPs its score would split into
            # a(e_s) + b(x) and stop being conditioned on the entity (the self_attention
            # ablation is about the generator).
            self.critic = ModalityCritic(m, dim, 1, config.attention_heads, self_attention=True)
            # v1 always started its mix at 0.5; enhance_mix now defaults to 0 (AFME v2 fills missing rows only)
            mix = min(max(config.enhance_mix or 0.5, 1e-3), 1 - 1e-3)
            self.mix_logit = nn.Parameter(torch.full((m,), math.log(mix / (1 - mix))))

    # --- representations -------------------------------------------------------------------
    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def _fuse(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """MoIFu (+ MoIEn) for flat, aligned ``entities`` [n] and ``relations`` [n]."""
        structural = self.entity(entities)
        if len(self.inputs) == 0:  # no modality at all: AFME reduces to its scorer
            return {"fused": structural}
        tokens, present = self.inputs(entities)
        context = self.fusion.relation_context_for(relations)
        gates = self.fusion.gates(tokens, context[:, 1:])
        denoised = gates * tokens
        raw = tokens
        if self.use_gan:
            noise = torch.randn(len(entities), self.config.noise_dim, device=structural.device) if self.training else None
            generated = self._generate(structural, denoised, present, noise)
            mix = torch.sigmoid(self.mix_logit)[:, None]
            denoised = torch.where(present[..., None], (1 - mix) * denoised + mix * generated, generated)
            raw = torch.where(present[..., None], tokens, generated)  # a filled token is its own reference
            present = torch.ones_like(present)
        fused, weights = self.fusion.combine(structural, raw, denoised, present, context, relations)
        return {"fused": fused, "gates": gates, "weights": weights, "present": present}

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        if relations is None:
            raise ValueError("AFME v1 representations depend on the relation: pass relations")
        ent, rel = torch.broadcast_tensors(entities, relations)
        # Fuse each distinct (entity, relation) pair once: a batch's K negatives per positive
        # repeat pairs often on small graphs, and the fusion (generator included) dominates cost.
        keys = ent.reshape(-1) * self.num_relations + rel.reshape(-1)
        unique, inverse = torch.unique(keys, return_inverse=True)
        fused = self._fuse(unique // self.num_relations, unique % self.num_relations)["fused"]
        return fused[inverse].view(*ent.shape, -1)

    def entity_table(self, relation: int | None = None) -> torch.Tensor:
        if relation is None:
            raise ValueError("AFME v1 is relation-conditioned: entity_table needs a relation")
        ids = torch.arange(self.num_entities, device=self.device)
        rel = torch.full_like(ids[:TABLE_CHUNK], int(relation))
        return torch.cat([self._fuse(chunk, rel[: len(chunk)])["fused"] for chunk in ids.split(TABLE_CHUNK)])

    def introspect(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean gate per modality [n, M], modality weights [n, M+1] (structure first), presence."""
        ent, rel = torch.broadcast_tensors(entities, relations)
        _, present = self.inputs(ent.reshape(-1)) if len(self.inputs) else (None, None)
        out = self._fuse(ent.reshape(-1), rel.reshape(-1))
        if "gates" not in out:
            return {}
        return {"gates": out["gates"].mean(-1), "weights": out["weights"], "measured": present}

    def _generate(self, structural, denoised, present, noise) -> torch.Tensor:
        """MoIEn's features [n, M, D] rescaled to the measured tokens' norm: s_m rms(g_m)."""
        generated = self.generator(structural, denoised, present, noise)
        return rms_normalise(generated) * self.inputs.log_scale.exp()[:, None]

    # --- MoIEn adversarial training --------------------------------------------------------
    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters()) if self.use_gan else []

    def main_parameters(self) -> list[nn.Parameter]:
        skip = {id(p) for p in self.critic_parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def _adversarial_batch(self, entities: torch.Tensor, relations: torch.Tensor):
        """Real projected features, generated ones, and conditioning for a batch of pairs.

        Half of the measured modalities are hidden from the generator (c_m = 1), so it also
        learns the case it exists for: filling a modality from structure and the others.
        """
        structural = self.entity(entities)
        tokens, present = self.inputs(entities)
        context = self.fusion.relation_context_for(relations)
        denoised = self.fusion.gates(tokens, context[:, 1:]) * tokens
        shown = present & (torch.rand(present.shape, device=present.device) < 0.5)
        noise = torch.randn(len(entities), self.config.noise_dim, device=structural.device)
        generated = self._generate(structural, denoised, shown, noise)
        modality = torch.arange(len(self.inputs), device=entities.device).expand_as(present)
        return structural, tokens, generated, present, modality

    def critic_loss(self, entities: torch.Tensor, relations: torch.Tensor, lambda_gp: float) -> dict[str, torch.Tensor]:
        """WGAN-GP critic loss E[D(fake)] - E[D(real)] + lambda_gp * GP on measured modalities."""
        with torch.no_grad():
            structural, real, fake, present, modality = self._adversarial_batch(entities, relations)
        rows, cols = present.nonzero(as_tuple=True)
        if len(rows) == 0:  # nothing measured in this batch: a loss the engine can still backward
            zero = self.entity.weight.new_zeros(())
            return {"loss": zero.clone().requires_grad_(), "wasserstein": zero, "gp": zero}
        cond, mod = structural[rows], modality[rows, cols]
        real, fake = real[rows, cols], fake[rows, cols]
        wasserstein = self.critic(real, cond, mod).mean() - self.critic(fake, cond, mod).mean()
        gp = gradient_penalty(self.critic, real, fake, cond, mod)
        return {"loss": -wasserstein + lambda_gp * gp, "wasserstein": wasserstein.detach(), "gp": gp.detach()}

    def generator_loss(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """-E[D(G(e_s, z, h~))] over every (entity, modality) of the batch, missing ones included."""
        structural, _, fake, present, modality = self._adversarial_batch(entities, relations)
        n, m = present.shape
        cond = structural.detach()[:, None].expand(n, m, -1).reshape(n * m, -1)
        return -self.critic(fake.reshape(n * m, -1), cond, modality.reshape(-1)).mean()
