"""MoIFu as first implemented (AFME v1, kept for comparison as the ``afme-v1`` model).

See afme_lib/models/fusion.py for the current formulation and ../shared/reviews/afme-audit.md
for why it changed (flat weights: no per-(relation, modality) handle; structure inside the softmax).

Relation-driven denoising and dynamic weight allocation (AFME, section 3.1).

Tokens: index 0 is the entity's structural embedding e_s, indices 1..M its projected modality
features h_m. For an (entity, relation r) pair:

Denoising (the article's formula, one gate per modality and coordinate)::

    gate_m = sigmoid(W_g^m (h_m * c_{r,m}) + b_g^m),    h~_m = gate_m * h_m

``c_{r,m}`` is relation r's context vector in modality m's space (the article's "r"; it writes a
single r, we give each modality its own view of the relation, as a relation may need different
coordinates from different modalities). The structural token is not gated: it is learned, not
measured, so there is no sensor noise in it to filter.

Dynamic weights (the article names the ingredients -- a norm-based confidence alpha_m, the
contextual relevance to the relation through a learnable vector U, a per-relation smoothing
factor tau_r -- but prints no formula; this is our reading)::

    alpha_m = ||h~_m|| / (||h_m|| + eps)                      in [0, 1]
    rho_m   = U . tanh(rms(h~_m) * c_{r,m})
    w_m     = softmax over present tokens of (alpha_m + rho_m) / tau_r

alpha_m is the share of the modality's energy that survives the relation's gate: norm-based as
the article says, but a *ratio*, so raw feature scale cannot swamp the softmax (the sketch's raw
L2 norm can). rms() removes scale from the relevance term for the same reason. tau_r =
softplus(theta_r) + 0.05 keeps the temperature positive. Absent modalities get logit -inf,
hence weight exactly 0. The structural token (alpha = 1) is always present.

Ablation switches: ``denoising=False`` makes every gate 1; ``dynamic_weights=False`` gives
uniform weights over present tokens; ``relation_context=False`` replaces every c_{r,m} by one
shared learned vector and every tau_r by one shared tau.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from afme_lib.models.modality import rms_normalise

TAU_MIN = 0.05


class MoIFuV1(nn.Module):
    """The first MoIFu (kept for ``afme-v1``): relation-driven gates on the modality tokens and a
    temperature-scaled softmax of their confidence / relevance into one fused entity vector; the
    ablation switches (``denoising``, ``dynamic_weights``, ``relation_context``) turn each part off
    (the module docstring has the formulas)."""

    def __init__(self, num_modalities: int, dim: int, num_relations: int, denoising: bool = True,
                 dynamic_weights: bool = True, relation_context: bool = True):
        super().__init__()
        self.num_modalities = num_modalities
        self.denoising, self.dynamic_weights, self.relation_context = denoising, dynamic_weights, relation_context
        contexts = num_relations if relation_context else 1
        tokens = num_modalities + 1
        # Context starts near 1 so that early on h * c ~ h: the gate first sees the feature itself.
        self.context = nn.Parameter(1.0 + 0.1 * torch.randn(contexts, tokens, dim))
        self.gate_weight = nn.Parameter(torch.randn(num_modalities, dim, dim) / math.sqrt(dim))
        self.gate_bias = nn.Parameter(torch.full((num_modalities, dim), 1.0))  # gates start mostly open
        self.U = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.tau_raw = nn.Parameter(torch.full((contexts,), math.log(math.e - 1)))  # softplus -> 1

    def relation_context_for(self, relations: torch.Tensor) -> torch.Tensor:
        """c_{r, token} [n, M+1, D]."""
        idx = relations if self.relation_context else torch.zeros_like(relations)
        return self.context[idx]

    def gates(self, modality_tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """gate_m [n, M, D] for modality tokens [n, M, D] and their relation contexts [n, M, D]."""
        if not self.denoising:
            return torch.ones_like(modality_tokens)
        pre = torch.einsum("nmd,med->nme", modality_tokens * context, self.gate_weight) + self.gate_bias
        return torch.sigmoid(pre)

    def weights(self, raw: torch.Tensor, denoised: torch.Tensor, present: torch.Tensor, context: torch.Tensor,
                relations: torch.Tensor) -> torch.Tensor:
        """w [n, M+1] over all tokens (structure first); exactly 0 where ``present`` is False."""
        if not self.dynamic_weights:
            logits = torch.zeros(present.shape, dtype=raw.dtype, device=raw.device)
        else:
            alpha = denoised.norm(dim=-1) / (raw.norm(dim=-1) + 1e-6)
            rho = torch.tanh(rms_normalise(denoised) * context) @ self.U
            idx = relations if self.relation_context else torch.zeros_like(relations)
            tau = F.softplus(self.tau_raw[idx]) + TAU_MIN
            logits = (alpha + rho) / tau[:, None]
        logits = logits.masked_fill(~present, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def combine(self, structural: torch.Tensor, raw: torch.Tensor, denoised: torch.Tensor, present: torch.Tensor,
                context: torch.Tensor, relations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted sum of [e_s, h~_1..M] -> (fused [n, D], weights [n, M+1])."""
        tokens = torch.cat([structural[:, None], denoised], 1)
        raw_all = torch.cat([structural[:, None], raw], 1)
        present_all = torch.cat([torch.ones_like(present[:, :1]), present], 1)
        w = self.weights(raw_all, tokens, present_all, context, relations)
        return (w[..., None] * tokens).sum(1), w

    def forward(self, structural: torch.Tensor, modality_tokens: torch.Tensor, present: torch.Tensor,
                relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Denoise and fuse one (entity, relation) pair per row."""
        context = self.relation_context_for(relations)
        gates = self.gates(modality_tokens, context[:, 1:])
        denoised = gates * modality_tokens
        fused, w = self.combine(structural, modality_tokens, denoised, present, context, relations)
        return {"fused": fused, "gates": gates, "weights": w, "denoised": denoised}
