"""MMKRL (Lu et al., Applied Intelligence 2022): one translation shared by structural and
multi-modal entity representations, knowledge alignment, and adversarial training.

For entity e and relation r (TransE distances d_p, ``config.p_norm``)::

    e^   = W_s e_s + b_e,   r^ = W_s r + b_r          reconstructed structural knowledge
    e_m  = mean of the present modality tokens s_m rms(P_m f_m)
           (W_sm e_s, the aligned prediction, when the entity has no modality at all)
    E(h, r, t) = 1/4 [ d(h^ + r^ - t^) + d(h_m + r^ - t_m) + d(h_m + r^ - t^) + d(h^ + r^ - t_m) ]
    score = -E,  every vector L2-normalised before the distances

The four plausibility terms summed over one shared translation r^ are the paper's "knowledge
reconstruction". Knowledge alignment reduces its reconstruction error with norm constraints,
added to the KGC loss (``extra_loss``; MSE = mean squared difference over coordinates)::

    L_align = MSE(h, h^) + MSE(t, t^) + MSE(r, r^) + MSE(W_sm h, h_m) + MSE(W_sm t, t_m)

(the last two over entities with at least one modality). Adversarial training (``training_losses``,
the engine passes the batch and a :class:`~afme_lib.models.base.LossContext`): the engine's KGC
loss again on the batch with the positive triples' head and tail representations moved by the
fast gradient perturbation (Goodfellow et al. 2015; Miyato et al. 2017)::

    delta = eps ||x|| g / ||g||,  g = d L_kgc / d x  (per row, no gradient through delta)
    L_adv = lambda_adv * L_kgc(x + delta)

``eps`` is ``TrainConfig.adv_epsilon`` (``--adv-epsilon``, default 0.1). Choices where the paper is
silent are listed in docs/baselines.md (MMKRL section).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import KGModel, LossContext
from afme_lib.models.modality_inputs import ModalityInputs
from afme_lib.models.multimodal import IKRLScorer, _mean_present
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import make_scorer


class MMKRLScorer(IKRLScorer):
    """IKRL's four translation terms over [e^ | e_m], averaged (the authors' code divides by 4)."""

    name = "mmkrl"

    def score(self, h, r, t):
        return super().score(h, r, t) / 4

    def score_candidates(self, known, r, candidates, corrupt_head):
        return super().score_candidates(known, r, candidates, corrupt_head) / 4

    def score_all(self, q, r, table, side, chunk_size=None):
        return super().score_all(q, r, table, side, chunk_size) / 4


@register_model("mmkrl")
class MMKRL(KGModel):
    """MMKRL: reconstructed structural and multi-modal entity vectors under one shared TransE
    translation, knowledge alignment as ``extra_loss`` and FGM adversarial training as
    ``training_losses`` (formulas in the module docstring)."""

    per_entity_batch = True  # projects features: each distinct entity of a batch once (base.score_batch)

    scorer_name = "transe"
    recommended_train_options = {"lambda_adv": 1.0}  # the default 0.01 nearly switches the FGM term off
    sampled_loss_only = True  # the FGM term re-scores the batch's sampled negatives

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        transe = make_scorer("transe", p_norm=config.p_norm, init_range=config.init_range)
        dim = self.init_embeddings(transe)
        self.scorer = MMKRLScorer(transe)
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())
        if len(self.inputs):
            self.enable_unknown_entities()  # entities with no training triple (models/base.py)
        # W_s starts as the identity (b = 0): reconstruction error 0, training starts from TransE.
        self.reconstruct = nn.Linear(dim, dim, bias=False)
        self.entity_bias = nn.Parameter(torch.zeros(dim))
        self.relation_bias = nn.Parameter(torch.zeros(dim))
        self.align = nn.Linear(dim, dim, bias=False)  # W_sm: structure -> multi-modal space
        with torch.no_grad():
            self.reconstruct.weight.copy_(torch.eye(dim))

    # --- the pieces ----------------------------------------------------------------------------
    def reconstructed_entity(self, entities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_s, e^ = W_s e_s + b_e) for flat ids."""
        structural = self.structural(entities)
        return structural, self.reconstruct(structural) + self.entity_bias

    def multimodal(self, entities: torch.Tensor, structural: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(e_m [n, D], has_modality [n]): mean present token, or W_sm e_s for an entity with none."""
        predicted = self.align(structural)
        if len(self.inputs) == 0:
            return predicted, torch.zeros(len(entities), dtype=torch.bool, device=entities.device)
        tokens, present = self.inputs(entities)
        has = present.any(1)
        return torch.where(has[:, None], _mean_present(tokens, present), predicted), has

    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.reconstruct(self.relation(relations)) + self.relation_bias, dim=-1)

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        # Each distinct entity once: K negatives per positive repeat entities often.
        unique, inverse = torch.unique(entities.reshape(-1), return_inverse=True)
        structural, recon = self.reconstructed_entity(unique)
        modal, _ = self.multimodal(unique, structural)
        rep = torch.cat([F.normalize(recon, dim=-1), F.normalize(modal, dim=-1)], -1)
        return rep[inverse].view(*entities.shape, -1)

    # --- knowledge alignment -------------------------------------------------------------------
    def alignment_loss(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """L_align of a batch of triples (see the module docstring)."""
        rel = self.relation(relations)
        loss = F.mse_loss(self.reconstruct(rel) + self.relation_bias, rel)
        for side in (heads, tails):
            structural, recon = self.reconstructed_entity(side)
            loss = loss + F.mse_loss(recon, structural)
            if len(self.inputs):
                modal, has = self.multimodal(side, structural)
                sq = (self.align(structural) - modal).pow(2).mean(-1)
                # a masked mean: only entities whose e_m is measured carry an alignment target
                loss = loss + (sq * has).sum() / has.sum().clamp_min(1)
        return loss

    def extra_loss(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        return self.alignment_loss(heads, relations, tails)

    # --- adversarial training ------------------------------------------------------------------
    def training_losses(
        self, batch: torch.Tensor, negatives: torch.Tensor, corrupt_head: torch.Tensor, context: LossContext
    ) -> dict[str, torch.Tensor]:
        """{"mmkrl_adv": lambda_adv * L_kgc on the FGM-perturbed batch} (empty when lambda_adv = 0)."""
        if context.lambda_adv <= 0 or not torch.is_grad_enabled():
            return {}
        eps = float(context.adv_epsilon)
        h, r, t = batch.unbind(1)
        heads, tails, rel = self.entity_repr(h), self.entity_repr(t), self.relation_repr(r)
        cands = self.entity_repr(negatives)

        def loss_of(hx, tx):
            pos = self.scorer.score(hx, rel, tx)
            neg = self.scorer.score_candidates(torch.where(corrupt_head[:, None], tx, hx), rel, cands, corrupt_head)
            return context.sampled_loss(pos.float(), neg.float())

        grads = torch.autograd.grad(loss_of(heads, tails), (heads, tails), retain_graph=True)
        moved = [x + fgm_perturbation(x.detach(), g, eps) for x, g in zip((heads, tails), grads)]
        return {"mmkrl_adv": context.lambda_adv * loss_of(*moved)}


def fgm_perturbation(x: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    """delta = eps ||x|| g / ||g|| per row (0 where the gradient vanishes), detached."""
    g = grad.detach()
    norm = g.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, eps * x.norm(dim=-1, keepdim=True) * g / norm.clamp_min(1e-12), torch.zeros_like(g))
