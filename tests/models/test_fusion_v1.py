"""MoIFu as first implemented (AFME v1, `afme-v1`): gates and weights against brute-force references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from afme_lib.models.fusion_v1 import TAU_MIN, MoIFuV1 as MoIFu
from afme_lib.models.modality import rms_normalise

M, D, R = 3, 8, 5



def make(**switches) -> MoIFu:
    torch.manual_seed(0)
    fusion = MoIFu(M, D, R, **switches)
    with torch.no_grad():  # move tau away from its shared init so per-relation temperatures differ
        fusion.tau_raw.uniform_(-1.0, 1.0)
    return fusion


def batch(n: int = 7):
    """Structural [n, D], modality tokens [n, M, D] of different scales, presence, relations.

    Row 3 has no modality at all; absent tokens are zero (as ModalityInputs delivers them).
    """
    g = torch.Generator().manual_seed(1)
    structural = torch.randn(n, D, generator=g)
    tokens = torch.randn(n, M, D, generator=g) * torch.tensor([0.5, 1.0, 3.0])[:, None]
    present = torch.rand(n, M, generator=g) > 0.3
    present[0] = True
    present[3] = False
    tokens = tokens * present[..., None]
    relations = torch.randint(0, R, (n,), generator=g)
    return structural, tokens, present, relations


def brute_force(fusion: MoIFu, structural, tokens, present, relations):
    """The docstring's formulas, one row and one token at a time."""
    n = len(structural)
    gates = torch.empty(n, M, D)
    weights = torch.empty(n, M + 1)
    fused = torch.empty(n, D)
    for i in range(n):
        r = int(relations[i]) if fusion.relation_context else 0
        c = fusion.context[r]  # [M+1, D], structure first
        for m in range(M):
            pre = fusion.gate_weight[m] @ (tokens[i, m] * c[1 + m]) + fusion.gate_bias[m]  # W_g^m x
            gates[i, m] = torch.sigmoid(pre) if fusion.denoising else torch.ones(D)
        denoised = [structural[i]] + [gates[i, m] * tokens[i, m] for m in range(M)]
        raw = [structural[i]] + [tokens[i, m] for m in range(M)]
        mask = [True] + present[i].tolist()
        logits = []
        for k in range(M + 1):
            alpha = denoised[k].norm() / (raw[k].norm() + 1e-6)
            rho = fusion.U @ torch.tanh(rms_normalise(denoised[k]) * c[k])
            tau = F.softplus(fusion.tau_raw[r]) + TAU_MIN
            logit = (alpha + rho) / tau if fusion.dynamic_weights else torch.tensor(0.0)
            logits.append(logit if mask[k] else torch.tensor(float("-inf")))
        weights[i] = torch.softmax(torch.stack(logits), 0)
        fused[i] = sum(weights[i, k] * denoised[k] for k in range(M + 1))
    return gates, weights, fused


@pytest.mark.parametrize("switches", [
    {}, {"denoising": False}, {"dynamic_weights": False}, {"relation_context": False},
])
def test_forward_matches_the_documented_formulas(switches):
    fusion = make(**switches)
    s, h, present, rels = batch()
    with torch.no_grad():
        out = fusion(s, h, present, rels)
        gates, weights, fused = brute_force(fusion, s, h, present, rels)
    torch.testing.assert_close(out["gates"], gates)
    torch.testing.assert_close(out["denoised"], gates * h)
    torch.testing.assert_close(out["weights"], weights)
    torch.testing.assert_close(out["fused"], fused)


def test_gates_lie_in_the_unit_interval_even_for_huge_inputs():
    fusion = make()
    s, h, present, rels = batch()
    for scale in (1.0, 1e3):
        gates = fusion(s, h * scale, present, rels)["gates"]
        assert gates.shape == (len(s), M, D)
        assert gates.min() >= 0 and gates.max() <= 1
    assert 0 < fusion(s, h, present, rels)["gates"].mean() < 1  # not trivially saturated at init


def test_denoising_off_makes_every_gate_exactly_one():
    fusion = make(denoising=False)
    s, h, present, rels = batch()
    out = fusion(s, h, present, rels)
    assert torch.equal(out["gates"], torch.ones(len(s), M, D))
    assert torch.equal(out["denoised"], h)


def test_weights_sum_to_one_and_are_exactly_zero_for_absent_tokens():
    fusion = make()
    s, h, present, rels = batch()
    w = fusion(s, h, present, rels)["weights"]
    assert w.shape == (len(s), M + 1)
    torch.testing.assert_close(w.sum(1), torch.ones(len(s)))
    present_all = torch.cat([torch.ones(len(s), 1, dtype=torch.bool), present], 1)
    assert torch.all(w[~present_all] == 0)
    assert torch.all(w[present_all] > 0)
    # a row without any modality: the structure takes everything, and fused is e_s exactly
    assert w[3].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert torch.equal(fusion(s, h, present, rels)["fused"][3], s[3])


def test_dynamic_weights_off_gives_uniform_weights_over_present_tokens():
    fusion = make(dynamic_weights=False)
    s, h, present, rels = batch()
    w = fusion(s, h, present, rels)["weights"]
    present_all = torch.cat([torch.ones(len(s), 1, dtype=torch.bool), present], 1).float()
    torch.testing.assert_close(w, present_all / present_all.sum(1, keepdim=True))


def test_dynamic_weights_on_are_not_uniform():
    fusion = make()
    s, h, present, rels = batch()
    w = fusion(s, h, present, rels)["weights"][0]  # row 0 has every modality
    assert (w.max() - w.min()) > 1e-3


@pytest.mark.parametrize("relation_context", [True, False])
def test_relation_context_switch(relation_context):
    fusion = make(relation_context=relation_context)
    s, h, present, _ = batch()
    a = fusion(s, h, present, torch.zeros(len(s), dtype=torch.long))
    b = fusion(s, h, present, torch.full((len(s),), 2))
    for key in ("gates", "weights", "fused"):
        if relation_context:
            assert not torch.allclose(a[key], b[key]), key
        else:
            assert torch.equal(a[key], b[key]), key
    expected_contexts = R if relation_context else 1
    assert fusion.context.shape == (expected_contexts, M + 1, D)
    assert fusion.tau_raw.shape == (expected_contexts,)


def test_confidence_and_relevance_are_scale_invariant():
    """Scaling one modality's raw token and its denoised token by 10 leaves every weight as is:
    alpha is a norm *ratio* and the relevance sees rms(h~), so magnitude cannot buy weight."""
    fusion = make()
    s, h, present, rels = batch()
    out = fusion(s, h, present, rels)
    ctx = fusion.relation_context_for(rels)
    raw = torch.cat([s[:, None], h], 1)
    den = torch.cat([s[:, None], out["denoised"]], 1)
    present_all = torch.cat([torch.ones(len(s), 1, dtype=torch.bool), present], 1)
    base = fusion.weights(raw, den, present_all, ctx, rels)
    torch.testing.assert_close(base, out["weights"])
    for k in range(1, M + 1):
        scale = torch.ones(M + 1)
        scale[k] = 10.0
        scaled = fusion.weights(raw * scale[:, None], den * scale[:, None], present_all, ctx, rels)
        torch.testing.assert_close(scaled, base, rtol=1e-5, atol=1e-6)


def test_temperature_is_positive_even_for_very_negative_parameters():
    fusion = make()
    with torch.no_grad():
        fusion.tau_raw.fill_(-1e4)  # softplus -> 0, so tau = TAU_MIN
    s, h, present, rels = batch()
    w = fusion(s, h, present, rels)["weights"]
    assert torch.isfinite(w).all()
    with torch.no_grad():
        _, expected, _ = brute_force(fusion, s, h, present, rels)
    torch.testing.assert_close(w, expected)
    assert TAU_MIN > 0


def test_gradients_are_finite_with_absent_tokens():
    """Absent tokens are zero vectors: their norms must not turn gradients into NaN."""
    fusion = make()
    s, h, present, rels = batch()
    s, h = s.requires_grad_(), h.requires_grad_()
    out = fusion(s, h, present, rels)
    out["fused"].pow(2).sum().backward()
    for name, p in fusion.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert torch.isfinite(h.grad).all() and torch.isfinite(s.grad).all()
    assert fusion.gate_weight.grad.abs().sum() > 0 and fusion.U.grad.abs().sum() > 0
