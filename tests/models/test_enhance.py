"""MoIEn: token mixing, the generator's conditioning, the critic and the WGAN gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from afme_lib.models.enhance import (
    CompletionGenerator,
    ModalityCritic,
    SelfAttention,
    TokenMixer,
    _heads_for,
    gradient_penalty,
)

M, D, Z = 3, 8, 4


DIMS = [5, 7, 3]  # raw feature widths of the M modalities


def generator(self_attention: bool = True) -> CompletionGenerator:
    torch.manual_seed(0)
    return CompletionGenerator(DIMS, D, Z, layers=2, heads=2, self_attention=self_attention).eval()


def gen_inputs(gen: CompletionGenerator, n: int = 5):
    g = torch.Generator().manual_seed(3)
    structural = torch.randn(n, D, generator=g)
    view = gen.view([torch.randn(n, d, generator=g) for d in DIMS])
    shown = torch.ones(n, M, dtype=torch.bool)
    return structural, view, shown


@pytest.mark.parametrize("dim, wanted, heads", [(64, 4, 4), (250, 4, 2), (7, 4, 1), (8, 0, 1), (12, 5, 4)])
def test_head_count_divides_the_width(dim, wanted, heads):
    assert _heads_for(dim, wanted) == heads


def test_self_attention_matches_a_per_head_brute_force():
    torch.manual_seed(0)
    att = SelfAttention(D, heads=2)
    x = torch.randn(3, 4, D)
    q, k, v = att.qkv(x).split(D, -1)
    hd = D // 2
    out = torch.empty(3, 4, D)
    for b in range(3):
        heads = []
        for h in range(2):
            sl = slice(h * hd, (h + 1) * hd)
            a = torch.softmax(q[b, :, sl] @ k[b, :, sl].T / math.sqrt(hd), -1)
            heads.append(a @ v[b, :, sl])
        out[b] = att.out(torch.cat(heads, -1))
    torch.testing.assert_close(att(x), out)


@pytest.mark.parametrize("self_attention", [True, False])
def test_token_mixer_mixes_tokens_only_with_attention(self_attention):
    torch.manual_seed(0)
    mixer = TokenMixer(D, layers=2, heads=2, self_attention=self_attention)
    x = torch.randn(4, M + 1, D)
    y = x.clone()
    y[:, 2] += torch.randn(4, D)  # perturb token 2 only
    a, b = mixer(x), mixer(y)
    others = [0, 1, 3]
    assert not torch.allclose(a[:, 2], b[:, 2])
    if self_attention:
        assert not torch.allclose(a[:, others], b[:, others], atol=1e-4)
    else:  # per-token MLP: token i never sees token j
        assert torch.equal(a[:, others], b[:, others])


def test_generator_formula_without_mixing_layers():
    """With zero blocks: g_m = O_m (c_m + sigmoid(W_d^m (b_m * c'_m) + b_d^m) + type_m) + o_m, with
    [b_s, b_1..b_M] = A [e_s ; z], c_m = v_m shown or the learned mask, c'_m = v_m shown or 1."""
    torch.manual_seed(0)
    gen = CompletionGenerator(DIMS, D, Z, layers=0, heads=2)
    with torch.no_grad():
        gen.mask.normal_()
    s, view, shown = gen_inputs(gen)
    shown[1, 2] = False
    z = torch.randn(len(s), Z)
    with torch.no_grad():
        got = gen(s, view, shown, z)
        for i in range(len(s)):
            base = (gen.base.weight @ torch.cat([s[i], z[i]]) + gen.base.bias).view(M + 1, D)
            for m in range(M):
                content = view[i, m] if shown[i, m] else gen.mask[m]
                carrier = view[i, m] if shown[i, m] else torch.ones(D)
                x = content + torch.sigmoid(gen.modulate_weight[m] @ (base[1 + m] * carrier) + gen.modulate_bias[m])
                want = gen.out_weight[m] @ (x + gen.token_type[1 + m]) + gen.out_bias[m]
                torch.testing.assert_close(got[i, m], want)


@pytest.mark.parametrize("self_attention", [True, False])
def test_generator_mixes_modalities_only_through_attention(self_attention):
    """Changing modality 0's reading changes the other modalities' generated tokens with
    attention; without it the other outputs are untouched (the structural base b_m comes from
    e_s and z alone, so it carries nothing from modality 0)."""
    gen = generator(self_attention)
    s, view, shown = gen_inputs(gen)
    changed = view.clone()
    changed[:, 0] += 1.0
    with torch.no_grad():
        a, b = gen(s, view, shown), gen(s, changed, shown)
    assert a.shape == (len(s), M, D)
    assert not torch.allclose(a[:, 0], b[:, 0])
    if self_attention:
        assert not torch.allclose(a[:, 1:], b[:, 1:], atol=1e-5)
    else:
        assert torch.equal(a[:, 1:], b[:, 1:])


def test_generator_is_deterministic_without_noise_and_varies_with_it():
    gen = generator()
    s, view, shown = gen_inputs(gen)
    with torch.no_grad():
        a, b = gen(s, view, shown), gen(s, view, shown)
        zero = gen(s, view, shown, torch.zeros(len(s), Z))
        noisy = gen(s, view, shown, torch.randn(len(s), Z))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, zero)
    assert not torch.allclose(a, noisy)


def test_generator_depends_on_structure():
    gen = generator()
    s, view, shown = gen_inputs(gen)
    with torch.no_grad():
        assert not torch.allclose(gen(s, view, shown), gen(s + 1.0, view, shown))


def test_a_hidden_modality_is_ignored():
    """A modality that is not shown has no effect through its reading: it enters as the mask token
    and a carrier of ones; a shown modality's reading matters."""
    gen = generator()
    s, view, shown = gen_inputs(gen)
    shown[:, 1] = False
    shown[2] = False  # a row with nothing shown
    garbage = view.clone()
    garbage[:, 1] = torch.randn(len(s), D) * 100
    garbage[2] = -7.0
    with torch.no_grad():
        out = gen(s, view, shown)
        torch.testing.assert_close(gen(s, garbage, shown), out, rtol=0, atol=0)
        moved = view.clone()
        moved[0, 0] += 1.0
        assert not torch.allclose(gen(s, moved, shown)[0], out[0])


def test_critic_scores_one_value_per_row_conditioned_on_structure_and_modality():
    torch.manual_seed(0)
    critic = ModalityCritic(M, D, layers=1, heads=2)
    x, s = torch.randn(6, D), torch.randn(6, D)
    mod = torch.tensor([0, 1, 2, 0, 1, 2])
    out = critic(x, s, mod)
    assert out.shape == (6,)
    assert not torch.allclose(out, critic(x, s + 1.0, mod))
    assert not torch.allclose(out, critic(x, s, (mod + 1) % M))
    assert not torch.allclose(out, critic(x + 1.0, s, mod))


class LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)
        self.seen: list[torch.Tensor] = []
        self.args: list[tuple] = []

    def forward(self, x, *args):
        self.seen.append(x.detach().clone())
        self.args.append(args)
        return x @ self.w


@pytest.mark.parametrize("norm, expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(norm, expected):
    """x -> w.x has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly."""
    torch.manual_seed(0)
    w = torch.randn(D, dtype=torch.float64)
    critic = LinearCritic(w / w.norm() * norm)
    real, fake = torch.randn(10, D, dtype=torch.float64), torch.randn(10, D, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake).detach()
    assert gp.shape == ()
    assert abs(gp.item() - expected) < 1e-6


def test_gradient_penalty_evaluates_the_critic_between_real_and_fake():
    torch.manual_seed(0)
    critic = LinearCritic(torch.randn(D))
    real = torch.randn(64, D, requires_grad=True)
    fake = torch.randn(64, D) + 3.0
    cond = torch.randn(64, D)
    gradient_penalty(critic, real, fake, cond, "tag")
    assert len(critic.seen) == 1 and critic.args[0][1] == "tag" and critic.args[0][0] is cond
    x = critic.seen[0]
    # x = eps * real + (1 - eps) * fake: solve for eps per row, then check the residual
    direction = real.detach() - fake
    eps = ((x - fake) * direction).sum(1) / direction.pow(2).sum(1)
    torch.testing.assert_close(eps[:, None] * real.detach() + (1 - eps[:, None]) * fake, x)
    assert eps.min() >= 0 and eps.max() <= 1
    assert eps.std() > 0.1  # one eps per sample, not one for the whole batch


def test_gradient_penalty_is_differentiable_in_the_critic_parameters():
    """The GP needs a second derivative (grad of a grad): every critic parameter that shapes the
    input gradient receives a finite, non-zero gradient; only the constant offsets added just
    before the read-out (which cannot change d critic / dx) receive none."""
    torch.manual_seed(0)
    critic = ModalityCritic(M, D, layers=1, heads=2)
    real, fake, s = torch.randn(12, D), torch.randn(12, D), torch.randn(12, D)
    mod = torch.arange(12) % M
    gp = gradient_penalty(critic, real, fake, s, mod)
    gp.backward()
    grads = {n: p.grad for n, p in critic.named_parameters()}
    assert {n for n, g in grads.items() if g is None} == {"readout.bias", "mixer.ffns.0.2.bias"}
    for name, g in grads.items():
        if g is not None:
            assert torch.isfinite(g).all() and g.abs().sum() > 0, name
    # the structure token reaches the gradient with respect to x only through attention
    assert grads["structure.weight"].abs().sum() > 0


# --- reading one token: what the cross-check asks of the generator ------------------------------
@pytest.mark.parametrize("self_attention", [True, False])
def test_reading_one_token_equals_that_token_of_the_full_pass(self_attention):
    """SelfAttention, TokenMixer and CompletionGenerator asked for one position per sequence give
    that position of the full output; a shared structural row [1, D] is the same as repeating it."""
    torch.manual_seed(0)
    att = SelfAttention(D, heads=2).eval()
    mixer = TokenMixer(D, layers=2, heads=2, self_attention=self_attention).eval()
    gen = CompletionGenerator([5, 7, 3], D, Z, layers=2, heads=2, self_attention=self_attention).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, D, generator=g)
    query = torch.tensor([0, 3, 1, 2, 3, 0])
    rows = torch.arange(6)
    view = gen.view([torch.randn(6, d, generator=g) for d in (5, 7, 3)])
    shown = torch.rand(6, 3, generator=g) < 0.6
    only = torch.tensor([2, 0, 1, 1, 2, 0])
    structural = torch.randn(1, D, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(att(x, query), att(x)[rows, query])
        torch.testing.assert_close(mixer(x, query), mixer(x)[rows, query])
        full = gen(structural.expand(6, -1), view, shown)
        torch.testing.assert_close(gen(structural, view, shown), full)
        torch.testing.assert_close(gen(structural, view, shown, only=only), full[rows, only])
