"""MoIFu: gates, dynamic weights and the residual fusion against a brute-force reference of
the module docstring's formulas, and the properties the ablation switches promise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from afme_lib.models.fusion import STRUCTURE_START, TAU_MIN, MoIFu
from afme_lib.models.modality_inputs import rms_normalise

M, D, R = 3, 8, 5


def make(**switches) -> MoIFu:
    torch.manual_seed(0)
    fusion = MoIFu(M, D, R, **switches)
    with torch.no_grad():  # move the per-relation parameters away from their shared init
        fusion.tau_raw.uniform_(-1.0, 1.0)
        fusion.structure_logit.uniform_(-2.0, 2.0)
        fusion.gate_relation.normal_(0.0, 1.0)
    return fusion


def batch(n: int = 7):
    """Structural [n, D], RMS-scaled modality tokens [n, M, D] of different scales, availability,
    relations. Row 3 has no modality available; unavailable tokens are zero (as ModalityInputs
    delivers them)."""
    g = torch.Generator().manual_seed(1)
    structural = torch.randn(n, D, generator=g)
    tokens = rms_normalise(torch.randn(n, M, D, generator=g)) * torch.tensor([0.5, 1.0, 3.0])[:, None]
    available = torch.rand(n, M, generator=g) > 0.3
    available[0] = True
    if n > 3:
        available[3] = False
    tokens = tokens * available[..., None]
    relations = torch.randint(0, R, (n,), generator=g)
    return structural, tokens, available, relations


def run(fusion: MoIFu, structural, tokens, available, relations):
    return fusion(structural, tokens, tokens.norm(dim=-1), available, fusion.gate_inputs(tokens), relations)


def brute_force(fusion: MoIFu, structural, tokens, available, relations):
    """The docstring's formulas, one row and one token at a time."""
    n = len(structural)
    gates, weights, fused = torch.empty(n, M, D), torch.zeros(n, M), torch.empty(n, D)
    for i in range(n):
        r = int(relations[i]) if fusion.relation_context else 0
        for m in range(M):
            pre = fusion.gate_weight[m] @ tokens[i, m] + fusion.gate_relation[r, m] + fusion.gate_bias[m]
            gates[i, m] = torch.sigmoid(pre) if fusion.denoising else torch.ones(D)
        denoised = [gates[i, m] * tokens[i, m] for m in range(M)]
        logits = []
        for m in range(M):
            if not available[i, m]:
                logits.append(torch.tensor(float("-inf")))
                continue
            alpha = denoised[m].norm() / (tokens[i, m].norm() + 1e-6)
            rho = fusion.U @ torch.tanh(fusion.relevance_context[r, m])
            tau = F.softplus(fusion.tau_raw[r]) + TAU_MIN
            beta = F.softplus(fusion.beta_raw)
            logits.append((rho + beta * alpha) / tau if fusion.dynamic_weights else torch.tensor(0.0))
        if available[i].any():
            weights[i] = torch.softmax(torch.stack(logits), 0)
        lam = torch.sigmoid(fusion.structure_logit[r])
        fused[i] = lam * structural[i] + sum(weights[i, m] * denoised[m] for m in range(M))
    return gates, weights, fused


@pytest.mark.parametrize(
    "switches",
    [
        {},
        {"denoising": False},
        {"dynamic_weights": False},
        {"relation_context": False},
    ],
)
def test_forward_matches_the_documented_formulas(switches):
    fusion = make(**switches)
    s, h, available, rels = batch()
    with torch.no_grad():
        out = run(fusion, s, h, available, rels)
        gates, weights, fused = brute_force(fusion, s, h, available, rels)
    torch.testing.assert_close(out["gates"], gates)
    torch.testing.assert_close(out["weights"], weights)
    torch.testing.assert_close(out["fused"], fused)
    torch.testing.assert_close(out["modal"], weights[..., None] * gates * h)
    torch.testing.assert_close(out["structure"], fusion.structure_scale(rels)[:, None] * s)


def test_the_gates_per_entity_part_is_computed_once_per_entity():
    """gate_inputs(tokens) holds everything of the gate that depends on the entity: gathering it per
    pair gives the same fusion as computing it per pair."""
    fusion = make()
    s, h, available, _ = batch()
    index = torch.tensor([0, 0, 1, 2, 2, 2, 4])
    rels = torch.tensor([0, 1, 1, 2, 3, 4, 0])
    per_entity = fusion.gate_inputs(h)
    with torch.no_grad():
        a = fusion(s[index], h[index], h[index].norm(dim=-1), available[index], per_entity[index], rels)
        b = run(fusion, s[index], h[index], available[index], rels)
    torch.testing.assert_close(a["fused"], b["fused"])


def test_fusion_starts_as_structure():
    """At initialisation lambda_r = sigmoid(3) for every relation: e_r is 0.95 e_s plus the small
    modality part (tokens start at a fraction of the structural scale in AFME)."""
    fusion = MoIFu(M, D, R)
    assert torch.allclose(fusion.structure_scale(torch.arange(R)), torch.tensor(STRUCTURE_START))
    s, h, available, rels = batch()
    out = run(fusion, s, h * 0.0, available, rels)
    torch.testing.assert_close(out["fused"], torch.tensor(STRUCTURE_START) * s)


def test_gates_lie_in_the_unit_interval_even_for_huge_inputs():
    fusion = make()
    s, h, available, rels = batch()
    for scale in (1.0, 1e3):
        gates = run(fusion, s, h * scale, available, rels)["gates"]
        assert gates.shape == (len(s), M, D)
        assert gates.min() >= 0 and gates.max() <= 1
    assert 0 < run(fusion, s, h, available, rels)["gates"].mean() < 1  # not trivially saturated


def test_denoising_off_makes_every_gate_exactly_one():
    fusion = make(denoising=False)
    s, h, available, rels = batch()
    out = run(fusion, s, h, available, rels)
    assert torch.equal(out["gates"], torch.ones(len(s), M, D))
    assert fusion.gate_inputs(h).numel() == 0  # no per-entity gate work at all


def test_weights_sum_to_one_over_available_tokens_and_are_zero_elsewhere():
    fusion = make()
    s, h, available, rels = batch()
    out = run(fusion, s, h, available, rels)
    w = out["weights"]
    assert w.shape == (len(s), M)
    has_any = available.any(1)
    torch.testing.assert_close(w.sum(1)[has_any], torch.ones(int(has_any.sum())))
    assert torch.all(w[~available] == 0) and torch.all(w[available] > 0)
    # a row without any modality: weights 0 (not NaN) and e_r = lambda_r e_s exactly
    assert w[3].tolist() == [0.0] * M
    torch.testing.assert_close(out["fused"][3], fusion.structure_scale(rels[3:4])[0] * s[3])


def test_dynamic_weights_off_gives_uniform_weights_over_available_tokens():
    fusion = make(dynamic_weights=False)
    s, h, available, rels = batch()
    w = run(fusion, s, h, available, rels)["weights"]
    avail = available.float()
    expected = avail / avail.sum(1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(w, expected)


def test_the_relevance_handle_lets_a_relation_choose_its_modality():
    """rho_{r,m} is a free per-(relation, modality) logit: raising one modality's relevance for one
    relation moves that relation's weight to it and leaves the other relations' weights alone."""
    fusion = make()
    s, h, _, _ = batch()
    available = torch.ones(len(s), M, dtype=torch.bool)
    rels = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    before = run(fusion, s, h, available, rels)["weights"]
    with torch.no_grad():  # push C_{0, 2} along U: rho_{0,2} grows
        fusion.relevance_context[0, 2] = 10 * torch.sign(fusion.U)
    after = run(fusion, s, h, available, rels)["weights"]
    assert torch.all(after[rels == 0, 2] > 0.9) and torch.all(before[rels == 0, 2] < 0.9)
    torch.testing.assert_close(after[rels != 0], before[rels != 0])


@pytest.mark.parametrize("relation_context", [True, False])
def test_relation_context_switch(relation_context):
    fusion = make(relation_context=relation_context)
    rows = R if relation_context else 1
    assert fusion.gate_relation.shape == (rows, M, D) and fusion.relevance_context.shape[:2] == (rows, M)
    assert fusion.tau_raw.shape == (rows,) and fusion.structure_logit.shape == (rows,)
    s, h, available, _ = batch()
    a = run(fusion, s, h, available, torch.zeros(len(s), dtype=torch.long))
    b = run(fusion, s, h, available, torch.full((len(s),), R - 1))
    assert torch.allclose(a["fused"], b["fused"]) != relation_context


def test_alpha_sees_a_degraded_row_through_the_gate():
    """alpha = ||gate * t|| / ||t||: a gate that closes on a token's content lowers its confidence and
    so its weight, for the same relation."""
    fusion = make()
    s, h, _, _ = batch(2)
    available = torch.ones(2, M, dtype=torch.bool)
    rels = torch.zeros(2, dtype=torch.long)
    tokens = torch.stack([h[0], h[0]])
    with torch.no_grad():  # make the gate of modality 0 depend on the sign of the token's first coordinate
        fusion.gate_weight[0].zero_()
        fusion.gate_weight[0][:, 0] = 20.0
        fusion.gate_bias[0].zero_()
        fusion.gate_relation.zero_()
        tokens[1, 0] = -tokens[1, 0] if tokens[0, 0, 0] > 0 else tokens[1, 0]
        tokens[0, 0] = tokens[0, 0] if tokens[0, 0, 0] > 0 else -tokens[0, 0]
    out = run(fusion, torch.stack([s[0], s[0]]), tokens, available, rels)
    assert out["gates"][0, 0].mean() > 0.9 and out["gates"][1, 0].mean() < 0.1
    assert out["weights"][0, 0] > out["weights"][1, 0]


def test_temperature_is_positive_even_for_very_negative_parameters():
    fusion = make()
    with torch.no_grad():
        fusion.tau_raw.fill_(-100.0)
    s, h, available, rels = batch()
    w = run(fusion, s, h, available, rels)["weights"]
    assert torch.isfinite(w).all()
    assert float(F.softplus(fusion.tau_raw.detach()).min() + TAU_MIN) >= TAU_MIN


def test_gradients_are_finite_with_unavailable_tokens():
    fusion = make()
    s, h, available, rels = batch()
    s.requires_grad_(True)
    out = run(fusion, s, h, available, rels)
    generated = available & (torch.arange(M) == 1)  # say modality 1's tokens were generated
    out = fusion(s, h, h.norm(dim=-1), available, fusion.gate_inputs(h), rels, generated=generated)
    out["fused"].pow(2).sum().backward()
    for name, p in fusion.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert torch.isfinite(s.grad).all()


def test_shares_are_convex_and_follow_the_parts_norms():
    structure = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    modal = torch.tensor([[[0.0, 5.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 3.0]]])
    shares = MoIFu.shares(structure, modal)
    torch.testing.assert_close(shares, torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]]))


def test_generated_tokens_get_their_own_learned_trust():
    """pi_{r,m} shifts the logit of a generated token of modality m (and of nothing else): at 0 a
    generated token is weighted like a measured one with the same content."""
    fusion = make()
    s, h, _, rels = batch()
    available = torch.ones(len(s), M, dtype=torch.bool)
    generated = torch.zeros_like(available)
    generated[:, 2] = True
    args = (s, h, h.norm(dim=-1), available, fusion.gate_inputs(h), rels)
    with torch.no_grad():
        same = fusion(*args, generated=generated)["weights"]
        torch.testing.assert_close(same, fusion(*args)["weights"])
        fusion.generated_bias[:, 2] = -5.0
        distrusted = fusion(*args, generated=generated)["weights"]
        assert torch.all(distrusted[:, 2] < same[:, 2])
        fusion.generated_bias[:, 0] = 5.0  # no generated token of modality 0: no effect
        torch.testing.assert_close(fusion(*args, generated=generated)["weights"], distrusted)


@pytest.mark.parametrize("modalities", [1, 3])
@pytest.mark.parametrize("switches", [{}, {"denoising": False}, {"dynamic_weights": False}])
def test_training_path_fuses_as_the_documented_formula(modalities, switches):
    """The path training takes (no internals; with one modality the softmax is skipped, since over
    one available token it is 1) gives the brute-force fusion, and the same gradients."""
    torch.manual_seed(0)
    fusion = MoIFu(modalities, D, R, **switches)
    with torch.no_grad():
        fusion.structure_logit.uniform_(-2.0, 2.0)
        fusion.gate_relation.normal_(0.0, 1.0)
    s, h, available, rels = batch(9)
    h, available = h[:, :modalities].clone().requires_grad_(), available[:, :modalities]
    fast = fusion(s, h, h.detach().norm(dim=-1), available, fusion.gate_inputs(h), rels, internals=False)["fused"]
    lam = fusion.structure_scale(rels)[:, None]
    pre = torch.einsum("nmd,med->nme", h, fusion.gate_weight) + fusion.gate_relation[rels] + fusion.gate_bias
    gates = torch.sigmoid(pre) if fusion.denoising else torch.ones_like(h)
    if modalities == 1:
        expected = lam * s + available.float() * (gates * h)[:, 0]
    else:
        expected = fusion(s, h, h.detach().norm(dim=-1), available, fusion.gate_inputs(h), rels)["fused"]
    torch.testing.assert_close(fast, expected)
    (g_fast,) = torch.autograd.grad(fast.pow(2).sum(), h)
    (g_ref,) = torch.autograd.grad(expected.pow(2).sum(), h)
    torch.testing.assert_close(g_fast, g_ref)
