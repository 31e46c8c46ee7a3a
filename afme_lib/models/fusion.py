"""MoIFu (AFME, section 3.1): relation-driven denoising and dynamic weight allocation.

Inputs for an entity e seen through relation r: its structural embedding e_s and one token
t_m [D] per modality m (a projected measured feature, or MoIEn's generated one where the row is
missing). Everything that depends on e alone is computed once per entity (:meth:`MoIFu.gate_inputs`);
per (entity, relation) pair only elementwise work remains (:meth:`MoIFu.forward`).

Denoising. The article's gate is sigmoid(W_g (h_m * r) + b_g). We use its additive form::

    gate_m(e, r) = sigmoid(W_g^m t_m + g_{r,m} + b_m),        t~_m = gate_m * t_m

W_g^m t_m is per entity (the D x D product is never done per pair); g_{r,m} [D] is relation r's
view of modality m's coordinates, so the relation selects which coordinates (which of a
modality's attributes) pass and the content decides per entity. The multiplicative form would
cost a D x D product per (entity, relation) pair.

Dynamic weights. The article names a norm-based confidence alpha_m, the contextual relevance to
the relation through a learnable vector U and a per-relation smoothing factor tau_r, but prints
no formula; this is our reading::

    alpha_m   = ||t~_m|| / ||t_m||            share of the token's energy the gate lets pass
    rho_{r,m} = U . tanh(C_{r,m})             relevance of modality m to relation r
    w_m       = softmax over available tokens of (rho_{r,m} + beta alpha_m + pi_{r,m} [t_m generated]) / tau_r
    tau_r     = softplus(theta_r) + 0.05,  beta = softplus(b_beta)

rho is a free per-(relation, modality) handle: a relevance term that only rescaled the
coordinates of one shared U would leave relations no choice.
alpha varies per entity with what the gate finds in the row (a degraded row loses more energy),
meant to let an entity whose usual modality is degraded lean on another. Measured, it does not:
on the synthetic default, alpha of a pure-noise row was 0.05 below a clean row's (the gate reads
one row and cannot tell plausible noise from content), too little to move the weights; AFME's
row cross-check (afme.py) is what handles a degraded row. A ratio, not a raw norm: tokens
are RMS-normalised, so their own norm is the same for every row. pi_{r,m} is how far relation r
trusts a token of modality m that MoIEn generated next to a measured one (the article gives
generated tokens no special treatment; learning the offset lets each relation say; it starts at 0).

Fusion starts as structure (residual form)::

    e_r = lambda_r e_s + sum_m w_m t~_m,        lambda_r = sigmoid(l_r), 0.95 at start

Tokens start at a fraction (0.3) of the structural scale, so AFME begins as its scorer alone and
the modality path grows where it lowers the loss. Both starting points are options
(``ModelConfig.token_start``, ``structure_start``): on a graph where every entity is warm and the
text is informative throughout (MKG-Y with name text), starting the text path at full scale
trains it further within a short budget (the MKG-Y settings, configs/tune/MKG-Y/afme.yaml, say
how theirs were chosen on validation). lambda_r lets a
relation that the features decide lean on them (a score function such as RotatE cannot shrink e_s
by itself: its relations rotate).
The shares of e_r's parts, ``[||lambda_r e_s||, ||w_m t~_m||] / sum`` (:meth:`MoIFu.shares`),
are the convex weights the notebooks show as "which modality a relation relies on".

Ablations: ``denoising=False`` makes every gate 1 (so alpha = 1); ``dynamic_weights=False``
gives uniform weights over the available tokens; ``relation_context=False`` shares one g, C,
tau and lambda across relations.

Cost. Per pair, everything above is elementwise over [M, D]. Without internals (training, and
the evaluation tables) the full model computes it in :class:`~afme_lib.models.fused_pairs.FusedPairs`,
one autograd function that reads the pairs' rows straight from the per-entity tables and makes
about 17 passes over [n, M, D] forward and backward, where autograd made about 25.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from afme_lib.models.base import take_rows
from afme_lib.models.fused_pairs import FusedPairs

TAU_MIN = 0.05
RELEVANCE_DIM = 16
STRUCTURE_START = 0.95  # lambda_r at start (ModelConfig.structure_start)


class MoIFu(nn.Module):
    """Per-entity gate inputs, then per-(entity, relation) gates, weights and residual fusion."""

    def __init__(
        self,
        num_modalities: int,
        dim: int,
        num_relations: int,
        denoising: bool = True,
        dynamic_weights: bool = True,
        relation_context: bool = True,
        structure_start: float = STRUCTURE_START,
    ):
        super().__init__()
        m = num_modalities
        self.num_modalities = m
        self.denoising, self.dynamic_weights, self.relation_context = denoising, dynamic_weights, relation_context
        contexts = num_relations if relation_context else 1
        self.gate_weight = nn.Parameter(torch.randn(m, dim, dim) / math.sqrt(dim))  # W_g^m
        self.gate_relation = nn.Parameter(torch.zeros(contexts, m, dim))  # g_{r,m}
        self.gate_bias = nn.Parameter(torch.full((m, dim), 2.0))  # gates start open (sigmoid(2) = 0.88)
        self.relevance_context = nn.Parameter(0.1 * torch.randn(contexts, m, RELEVANCE_DIM))  # C_{r,m}
        self.U = nn.Parameter(torch.randn(RELEVANCE_DIM) / math.sqrt(RELEVANCE_DIM))
        self.beta_raw = nn.Parameter(torch.tensor(math.log(math.e - 1)))  # softplus -> 1
        self.tau_raw = nn.Parameter(torch.full((contexts,), math.log(math.e - 1)))  # softplus -> 1
        start = math.log(structure_start / (1 - structure_start))
        self.structure_logit = nn.Parameter(torch.full((contexts,), start))  # l_r
        self.generated_bias = nn.Parameter(torch.zeros(contexts, m))  # pi_{r,m}: logit offset of a generated token

    def context_ids(self, relations: torch.Tensor) -> torch.Tensor:
        """Row of each relation in the per-relation parameters (all 0 without relation context)."""
        return relations if self.relation_context else torch.zeros_like(relations)

    def structure_scale(self, relations: torch.Tensor) -> torch.Tensor:
        """lambda_r [n] for each relation."""
        return torch.sigmoid(self.structure_logit[self.context_ids(relations)])

    def gate_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-entity part of the gate, W_g^m t_m [n, M, D] (an empty tensor when denoising is off)."""
        if not self.denoising:
            return tokens.new_zeros(0)
        return torch.einsum("nmd,med->nme", tokens, self.gate_weight)

    def relevance(self) -> torch.Tensor:
        """rho [contexts, M]: U . tanh(C_{r,m})."""
        return torch.tanh(self.relevance_context) @ self.U

    def forward(
        self,
        structural: torch.Tensor,
        tokens: torch.Tensor,
        token_norm: torch.Tensor,
        available: torch.Tensor,
        gate_inputs: torch.Tensor,
        relations: torch.Tensor,
        internals: bool = True,
        generated: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Fuse aligned pairs: structural [n, D], tokens [n, M, D] and their norms [n, M], available
        [n, M] (bool), gate_inputs [n, M, D] (from :meth:`gate_inputs`), relations [n], and which
        available tokens are generated rather than measured (``generated`` [n, M], None: none).
        With ``index`` [n], ``tokens`` and ``gate_inputs`` are per-entity tables [E, M, D] and pair
        i reads their row index[i] (the other inputs are per pair as above).

        Returns ``fused`` [n, D] and, with ``internals``, ``structure`` [n, D] (lambda_r e_s),
        ``modal`` [n, M, D] (the weighted tokens w_m t~_m), ``gates`` [n, M, D] and ``weights``
        [n, M] (0 where unavailable). Training needs only ``fused``: without internals no
        [n, M, D] product is kept beyond what the gradient needs, and in the full model (gates and
        dynamic weights, several modalities) it goes through :class:`FusedPairs`."""
        ctx = self.context_ids(relations)
        structure = torch.sigmoid(self.structure_logit[ctx])[:, None] * structural  # lambda_r e_s
        if index is not None:
            if not internals and self._fusable(tokens):
                return {
                    "fused": self._fused_pairs(
                        structure, tokens, token_norm, available, gate_inputs, ctx, generated, index
                    )
                }
            tokens = take_rows(tokens, index)
            gate_inputs = take_rows(gate_inputs, index) if gate_inputs.numel() else gate_inputs
        if self.denoising:
            # F.embedding: its backward into a few relation rows is ~2x faster on a CPU than indexing's.
            gates = torch.sigmoid(gate_inputs + F.embedding(ctx, self._context_gates()).view_as(gate_inputs))
            denoised = gates * tokens
        else:
            gates, denoised = None, tokens
        if self.num_modalities == 1:
            # A softmax over one token is 1 wherever it is available (and its gradient is 0), so the
            # logits are not computed: on a text-only graph they were a third of the fusion's cost.
            weights = available.to(tokens.dtype)
        else:
            if self.dynamic_weights:
                alpha = (
                    (denoised.norm(dim=-1) / (token_norm + 1e-6)) if gates is not None else torch.ones_like(token_norm)
                )
                bias, tau = self._logit_terms(ctx, generated)
                logits = (bias + F.softplus(self.beta_raw) * alpha) / tau[:, None]
            else:
                logits = torch.zeros(available.shape, dtype=tokens.dtype, device=tokens.device)
            logits = logits.masked_fill(~available, float("-inf"))
            # An entity with no available token gets weights 0 (not the NaN of a softmax over nothing).
            weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)
        if not internals:
            # Elementwise, not a batched [1, M] x [M, D] product: with M a handful, bmm's per-matrix
            # overhead made this line a tenth of AFME's CPU epoch.
            return {"fused": structure + (weights[..., None] * denoised).sum(1)}
        modal = weights[..., None] * denoised
        gates = torch.ones_like(tokens) if gates is None else gates
        return {
            "fused": structure + modal.sum(1),
            "structure": structure,
            "modal": modal,
            "gates": gates,
            "weights": weights,
        }

    def _fusable(self, tokens: torch.Tensor) -> bool:
        """Whether :class:`FusedPairs` computes this call: the full model with several modalities,
        outside autocast (its backward is written for one dtype) and torch.compile (which fuses
        the plain ops itself)."""
        return (
            self.denoising
            and self.dynamic_weights
            and self.num_modalities > 1
            and not torch.is_autocast_enabled(tokens.device.type)
            and not torch.compiler.is_compiling()
        )

    def _context_gates(self) -> torch.Tensor:
        """g_{r,m} + b_m [contexts, M*D], formed per relation first: one [n, M, D] gather per call
        instead of two adds."""
        return (self.gate_relation + self.gate_bias).flatten(1)

    def _logit_terms(self, ctx: torch.Tensor, generated: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair's logit before the confidence term, rho_{r,m} (+ pi_{r,m} on generated tokens)
        [n, M], and its temperature tau_r [n]."""
        bias = self.relevance()[ctx]
        if generated is not None:
            bias = bias + generated.to(bias.dtype) * self.generated_bias[ctx]
        return bias, F.softplus(self.tau_raw[ctx]) + TAU_MIN

    def _fused_pairs(self, structure, token_table, token_norm, available, gate_table, ctx, generated, index):
        bias, tau = self._logit_terms(ctx, generated)
        return FusedPairs.apply(
            structure,
            gate_table,
            token_table,
            self._context_gates(),
            token_norm,
            bias,
            F.softplus(self.beta_raw),
            tau,
            index,
            ctx,
            available,
        )

    @staticmethod
    def shares(structure: torch.Tensor, modal: torch.Tensor) -> torch.Tensor:
        """Convex shares [n, M+1] of e_r's parts, structure first: the norms of lambda_r e_s and of
        each w_m t~_m over their sum (what the notebooks show as "modality weights")."""
        norms = torch.cat([structure.norm(dim=-1, keepdim=True), modal.norm(dim=-1)], -1)
        return norms / norms.sum(-1, keepdim=True).clamp_min(1e-12)
