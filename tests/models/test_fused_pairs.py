"""FusedPairs (MoIFu's training path with a hand-written backward) against the autograd path:
the same fused vectors and the same gradient for every input, gradcheck in double precision, and
MoIFu routing training calls through it only where its formula applies."""

from __future__ import annotations

import pytest
import torch

from afme_lib.models import fused_pairs
from afme_lib.models.fusion import MoIFu
from afme_lib.models.modality_inputs import rms_normalise

E, M, D, R = 6, 3, 8, 4


def setup(relation_context: bool = True, dtype=torch.float32):
    """A MoIFu with moved per-relation parameters, per-entity tables (entity 2 has no modality
    available and zero tokens; entity 4 lacks one) and pairs that repeat entities and relations."""
    torch.manual_seed(0)
    fusion = MoIFu(M, D, R, relation_context=relation_context).to(dtype)
    with torch.no_grad():
        fusion.tau_raw.uniform_(-1.0, 1.0)
        fusion.structure_logit.uniform_(-2.0, 2.0)
        fusion.gate_relation.normal_(0.0, 1.0)
        fusion.generated_bias.normal_(0.0, 1.0)
        fusion.relevance_context.normal_(0.0, 1.0)
    available = torch.ones(E, M, dtype=torch.bool)
    available[2] = False
    available[4, 1] = False
    tokens = (rms_normalise(torch.randn(E, M, D, dtype=dtype)) * available[..., None]).requires_grad_()
    structural = torch.randn(E, D, dtype=dtype, requires_grad=True)
    index = torch.tensor([0, 1, 1, 2, 3, 4, 4, 5, 0, 3, 2])
    relations = torch.tensor([0, 1, 2, 3, 0, 1, 1, 2, 3, 3, 0])
    generated = available & (torch.arange(M) == 2) & (torch.arange(E) % 2 == 0)[:, None]
    return fusion, tokens, structural, available, index, relations, generated


def fuse(fusion, tokens, structural, available, index, relations, generated, fused: bool):
    """``fused``: the training path (per-entity tables and ``index``); otherwise the autograd path
    on gathered tensors (with internals, which never takes the fused function)."""
    gate_inputs = fusion.gate_inputs(tokens)
    norm = tokens.norm(dim=-1)[index]
    if fused:
        return fusion(
            structural[index],
            tokens,
            norm,
            available[index],
            gate_inputs,
            relations,
            internals=False,
            generated=generated[index],
            index=index,
        )["fused"]
    gate_inputs = gate_inputs[index] if gate_inputs.numel() else gate_inputs  # empty without denoising
    return fusion(
        structural[index],
        tokens[index],
        norm,
        available[index],
        gate_inputs,
        relations,
        internals=True,
        generated=generated[index],
    )["fused"]


@pytest.mark.parametrize("relation_context", [True, False])
def test_values_and_every_gradient_match_the_autograd_path(relation_context):
    fusion, tokens, structural, available, index, relations, generated = setup(relation_context)
    inputs = [tokens, structural, *fusion.parameters()]
    target = torch.randn(len(index), D)
    results = []
    for fused in (True, False):
        out = fuse(fusion, tokens, structural, available, index, relations, generated, fused)
        grads = torch.autograd.grad((out * target).sum(), inputs, allow_unused=True)
        results.append((out.detach(), grads))
    (fast, fast_grads), (ref, ref_grads) = results
    torch.testing.assert_close(fast, ref)
    names = ["tokens", "structural", *(name for name, _ in fusion.named_parameters())]
    for name, a, b in zip(names, fast_grads, ref_grads):
        if b is None:  # a parameter the formula does not use here
            assert a is None or not a.any(), name
            continue
        assert a is not None, name
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")


def test_gradcheck_in_double_precision():
    fusion, tokens, structural, available, index, relations, generated = setup(dtype=torch.float64)
    cid = fusion.context_ids(relations)
    context_table = (fusion.gate_relation + fusion.gate_bias).flatten(1).detach().requires_grad_()
    gate_table = fusion.gate_inputs(tokens).detach().requires_grad_()
    token_table = tokens.detach().requires_grad_()
    norm = tokens.detach().norm(dim=-1)[index].requires_grad_()
    bias = torch.randn(len(index), M, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    tau = (torch.rand(len(index), dtype=torch.float64) + 0.3).requires_grad_()
    structure = structural.detach()[index].clone().requires_grad_()

    def apply(structure, gate_table, token_table, context_table, norm, bias, beta, tau):
        return fused_pairs.FusedPairs.apply(
            structure, gate_table, token_table, context_table, norm, bias, beta, tau, index, cid, available[index]
        )

    assert torch.autograd.gradcheck(apply, (structure, gate_table, token_table, context_table, norm, bias, beta, tau))


def test_a_pair_with_nothing_available_is_structure_alone_with_finite_gradients():
    fusion, tokens, structural, available, index, relations, generated = setup()
    out = fuse(fusion, tokens, structural, available, index, relations, generated, fused=True)
    lam = fusion.structure_scale(relations)[:, None]
    empty = index == 2
    torch.testing.assert_close(out[empty], (lam * structural[index])[empty])
    out.pow(2).sum().backward()
    assert torch.isfinite(tokens.grad).all() and torch.isfinite(structural.grad).all()
    assert not tokens.grad[2].any()  # zero tokens that nothing reads


@pytest.mark.parametrize(
    "switches, fusable", [({}, True), ({"denoising": False}, False), ({"dynamic_weights": False}, False)]
)
def test_training_calls_take_the_fused_function_only_where_its_formula_holds(monkeypatch, switches, fusable):
    calls = []
    original = fused_pairs.FusedPairs.apply
    monkeypatch.setattr(fused_pairs.FusedPairs, "apply", lambda *a: calls.append(1) or original(*a))
    fusion, tokens, structural, available, index, relations, generated = setup()
    fusion = MoIFu(M, D, R, **switches)
    out = fuse(fusion, tokens, structural, available, index, relations, generated, fused=True)
    torch.testing.assert_close(out, fuse(fusion, tokens, structural, available, index, relations, generated, False))
    assert len(calls) == int(fusable)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: the plain ops, whatever the switches
        fuse(fusion, tokens, structural, available, index, relations, generated, fused=True)
    assert len(calls) == int(fusable)
