"""MoIFu's per-pair fusion as one autograd function with a hand-written backward.

The formula is MoIFu's (fusion.py); for pair i = (entity index[i], relation r_i)::

    S      = sigmoid(A[index] + G[c_i])            A: per-entity gate inputs W_g^m t_m [E, M, D]
                                                   G: g_{r,m} + b_m, one row [M*D] per context c
    Dn     = S * T[index]                          T: per-entity tokens [E, M, D]
    alpha  = ||Dn||_D / (tn + 1e-6)                tn: the tokens' norms [n, M]
    w      = softmax over available m of (bias + beta alpha) / tau
    fused  = structure + sum_m w_m Dn_m

Why: with autograd each of these lines keeps and reads back its own [n, M, D] tensor (and the
gathers A[index], T[index], G[c] become three more, scattered back by embedding backward), so
on a CPU the fusion cost about 25 passes over [n, M, D] per step, most of AFME's training step
(synthetic default: ~10k pairs x 4 x 128, 92 ms of a 135 ms step, one thread). Here the forward
makes 8 passes and the backward 9, the gathers are read straight from the per-entity tables and
their gradients are summed into them with index_add_ (MoIFu uses it for training and for the
evaluation tables, see fusion.py). Same values as the autograd path up to float rounding
(tests/models/test_fused_pairs.py checks values and every gradient, gradcheck included).
"""

from __future__ import annotations

import torch


class FusedPairs(torch.autograd.Function):
    """``apply(structure [n, D], gate_table A [E, M, D], token_table T [E, M, D], context_table G
    [C, M*D], token_norm [n, M], bias [n, M], beta [], tau [n], index [n], context [n], available
    [n, M] bool) -> fused [n, D]``. ``bias`` is each pair's logit before the confidence term
    (rho_{r,m}, plus pi_{r,m} on generated tokens); ``structure`` is lambda_r e_s."""

    @staticmethod
    def forward(
        ctx, structure, gate_table, token_table, context_table, token_norm, bias, beta, tau, index, context, available
    ):
        n = index.shape[0]
        gates = gate_table.index_select(0, index)
        gates.view(n, -1).add_(context_table.index_select(0, context))
        gates.sigmoid_()
        tokens = token_table.index_select(0, index)
        denoised = gates * tokens
        norm = torch.linalg.vector_norm(denoised, dim=-1)
        denom = token_norm + 1e-6
        alpha = norm / denom
        raw = bias + beta * alpha
        logits = (raw / tau[:, None]).masked_fill(~available, float("-inf"))
        # An entity with no available token gets weights 0 (not the NaN of a softmax over nothing).
        weights = torch.softmax(logits, dim=-1).nan_to_num_(0.0)
        fused = torch.bmm(weights[:, None, :], denoised)[:, 0].add_(structure)
        ctx.save_for_backward(gates, tokens, denoised, weights, norm, denom, alpha, raw, beta, tau, index, context)
        ctx.table_shapes = (gate_table.shape, token_table.shape, context_table.shape)
        return fused

    @staticmethod
    def backward(ctx, grad_fused):
        gates, tokens, denoised, weights, norm, denom, alpha, raw, beta, tau, index, context = ctx.saved_tensors
        gate_shape, token_shape, context_shape = ctx.table_shapes
        grad_fused = grad_fused.contiguous()
        # Softmax and the confidence term, all [n, M].
        grad_w = torch.bmm(denoised, grad_fused[:, :, None])[..., 0]
        grad_logits = weights * (grad_w - (weights * grad_w).sum(-1, keepdim=True))  # 0 where unavailable
        inv_tau = 1.0 / tau[:, None]
        grad_raw = grad_logits * inv_tau
        grad_tau = -(grad_logits * raw).sum(-1) * inv_tau[:, 0] ** 2
        grad_alpha = grad_raw * beta
        grad_beta = (grad_raw * alpha).sum().reshape(beta.shape)
        grad_token_norm = -grad_alpha * alpha / denom
        grad_norm = grad_alpha / denom
        # d||Dn|| / dDn = Dn / ||Dn||, taken as 0 at a zero row (as torch's norm does).
        coef = torch.where(norm > 0, grad_norm / norm.clamp_min(1e-30), torch.zeros_like(norm))
        grad_denoised = denoised * coef[..., None]
        grad_denoised.addcmul_(weights[..., None], grad_fused[:, None, :])
        grad_tokens = grad_denoised * gates
        grad_pre = torch.ops.aten.sigmoid_backward(grad_denoised.mul_(tokens), gates)
        n = index.shape[0]
        grad_gate_table = grad_token_table = grad_context_table = None
        if ctx.needs_input_grad[1]:
            grad_gate_table = grad_pre.new_zeros(gate_shape).index_add_(0, index, grad_pre)
        if ctx.needs_input_grad[2]:
            grad_token_table = grad_tokens.new_zeros(token_shape).index_add_(0, index, grad_tokens)
        if ctx.needs_input_grad[3]:
            grad_context_table = grad_pre.new_zeros(context_shape).index_add_(0, context, grad_pre.view(n, -1))
        return (
            grad_fused,
            grad_gate_table,
            grad_token_table,
            grad_context_table,
            grad_token_norm,
            grad_raw,
            grad_beta,
            grad_tau,
            None,
            None,
            None,
        )
