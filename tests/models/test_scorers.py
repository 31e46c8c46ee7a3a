"""Score functions against brute-force per-triple references written with Python numbers."""

from __future__ import annotations

import cmath
import math

import pytest
import torch

from afme_lib.core.config import ModelConfig
from afme_lib.models import scorers as S
from afme_lib.models.scorers import SCORERS, ComplEx, DistMult, RotatE, TransE, make_scorer, scorer_from_config

DIM = 6  # 3 complex coordinates for ComplEx / RotatE
NAMES = ["transe-l1", "transe-l2", "distmult", "complex", "rotate"]


# --- brute-force references: one triple, Python floats / complex numbers --------------------------
def _cplx(v: list[float]) -> list[complex]:
    d = len(v) // 2
    return [complex(v[k], v[d + k]) for k in range(d)]


def ref_transe(h, r, t, p):
    return -(sum(abs(h[k] + r[k] - t[k]) ** p for k in range(len(h))) ** (1.0 / p))


def ref_distmult(h, r, t):
    return sum(h[k] * r[k] * t[k] for k in range(len(h)))


def ref_complex(h, r, t):
    return sum((a * b * c.conjugate()).real for a, b, c in zip(_cplx(h), _cplx(r), _cplx(t)))


def ref_rotate(h, theta, t):
    return -sum(abs(a * cmath.exp(1j * th) - c) for a, th, c in zip(_cplx(h), theta, _cplx(t)))


REFERENCES = {
    "transe-l1": lambda h, r, t: ref_transe(h, r, t, 1),
    "transe-l2": lambda h, r, t: ref_transe(h, r, t, 2),
    "distmult": ref_distmult,
    "complex": ref_complex,
    "rotate": ref_rotate,
}


def params(scorer, n, seed, dtype=torch.float64):
    """Entity [n, De] and relation [n, Dr] tensors from the scorer's own initialisation."""
    ent = torch.empty(n, scorer.entity_dim(DIM), dtype=dtype)
    rel = torch.empty(n, scorer.relation_dim(DIM), dtype=dtype)
    torch.manual_seed(seed)  # init_*_ draw from the default RNG
    scorer.init_entity_(ent, DIM)
    scorer.init_relation_(rel, DIM)
    return ent, rel


def phases(scorer, r):
    """The references take RotatE's relation as phases; the scorer stores x with theta = scale * x."""
    return r * scorer.phase_scale if scorer.name == "rotate" else r


# --- score --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_score_matches_reference(name):
    scorer = make_scorer(name, init_range=1.0)  # same scale for every scorer
    h, r = params(scorer, 7, 0)
    t, _ = params(scorer, 7, 1)
    got = scorer.score(h, r, t)
    r = phases(scorer, r)
    want = torch.tensor(
        [REFERENCES[name](h[i].tolist(), r[i].tolist(), t[i].tolist()) for i in range(7)], dtype=torch.float64
    )
    assert got.shape == (7,) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_score_broadcasts_one_against_many(name):
    scorer = make_scorer(name, init_range=1.0)
    h, r = params(scorer, 3, 2)
    t, _ = params(scorer, 12, 3)
    t = t.view(3, 4, -1)
    got = scorer.score(h[:, None], r[:, None], t)  # [3, 1, D] against [3, 4, D]
    r = phases(scorer, r)
    assert got.shape == (3, 4)
    for b in range(3):
        for k in range(4):
            want = REFERENCES[name](h[b].tolist(), r[b].tolist(), t[b, k].tolist())
            assert got[b, k].item() == pytest.approx(want, rel=1e-12, abs=1e-12)


# --- score_all ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", ["tail", "head"])
@pytest.mark.parametrize("chunk", [None, 1, 3, 4, 11, 50])
def test_score_all_equals_broadcast_score(name, side, chunk):
    n, b = 11, 5  # chunks 3 and 4 do not divide 11; 50 exceeds it
    scorer = make_scorer(name, init_range=1.0)
    table, _ = params(scorer, n, 4)
    q, r = params(scorer, b, 5)
    got = scorer.score_all(q, r, table, side, chunk)
    if side == "tail":
        want = scorer.score(q[:, None], r[:, None], table[None])
    else:
        want = scorer.score(table[None], r[:, None], q[:, None])
    assert got.shape == (b, n) and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["rotate", "transe-l1"])
def test_elementwise_scorers_tile_below_the_chunk(monkeypatch, name):
    # The CPU tile cap splits the chunk into steps of 8 candidates (N=21: 3 steps, the last shifted).
    monkeypatch.setattr(S, "CPU_TILE_ELEMENTS", 1)
    scorer = make_scorer(name)
    table, _ = params(scorer, 21, 6)
    q, r = params(scorer, 4, 7)
    assert scorer._step_cap(q, table) == 8 and DistMult()._step_cap(q, table) is None
    for side, want in (
        ("tail", scorer.score(q[:, None], r[:, None], table[None])),
        ("head", scorer.score(table[None], r[:, None], q[:, None])),
    ):
        torch.testing.assert_close(scorer.score_all(q, r, table, side, None), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_score_all_with_gradients_matches_and_flows(name):
    scorer = make_scorer(name, init_range=1.0)
    table, _ = params(scorer, 9, 8)
    q, r = params(scorer, 3, 9)
    expected = scorer.score_all(q, r, table, "head", 4)  # no grad: the in-place kernels
    table.requires_grad_(True)
    r.requires_grad_(True)
    got = scorer.score_all(q, r, table, "head", 4)
    torch.testing.assert_close(got.detach(), expected, rtol=1e-12, atol=1e-12)
    got.sum().backward()
    assert table.grad.abs().sum() > 0 and r.grad.abs().sum() > 0


def test_score_all_rejects_bad_side_and_chunk():
    scorer = DistMult()
    q = torch.zeros(2, DIM)
    with pytest.raises(ValueError, match=r"^side must be 'tail' or 'head', got 'left'$"):
        scorer.score_all(q, q, q, "left")
    with pytest.raises(ValueError, match=r"^chunk_size must be a positive int or None, got 0$"):
        scorer.score_all(q, q, q, "tail", 0)


# --- numerics -----------------------------------------------------------------------------------
def test_transe_l2_expansion_is_clamped_and_precise():
    """||a||^2 - 2ab + ||b||^2 cancels for vectors close relative to their norms (here offset by 1000:
    float32 leaves ~2 units of error in ~1.6e7). Centring keeps 1e-2 distances resolvable; identical
    rows, where rounding can go below 0, give a finite ~0 rather than NaN."""
    scorer = TransE(p_norm=2)
    torch.manual_seed(10)
    base = 1000.0 + torch.randn(5, 16)
    table = torch.cat([base, base + 0.01 * torch.randn(5, 16)])
    r = torch.zeros(5, 16)
    got = scorer.score_all(base, r, table, "tail", 3)
    exact = scorer.score(base.double()[:, None], r.double()[:, None], table.double()[None])
    assert torch.isfinite(got).all()
    assert got[torch.arange(5), torch.arange(5)].abs().max() < 2e-3  # identical rows: distance 0
    torch.testing.assert_close(got.double(), exact, rtol=1e-3, atol=2e-3)


def test_transe_l2_half_precision_keeps_dtype_and_accuracy():
    scorer = TransE(p_norm=2)
    torch.manual_seed(11)
    q, r, table = torch.randn(4, 32), torch.randn(4, 32), torch.randn(30, 32)
    got = scorer.score_all(q.bfloat16(), r.bfloat16(), table.bfloat16(), "head", 7)
    exact = scorer.score(
        table.bfloat16().double()[None], r.bfloat16().double()[:, None], q.bfloat16().double()[:, None]
    )
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), exact, rtol=1e-2, atol=0)  # bf16 output rounding only


def test_zero_distance_gradients_are_finite():
    # |h e^{i theta} - t| = 0 at theta = 0, t = h; the subgradient there is 0, not NaN.
    h = torch.randn(2, DIM, dtype=torch.float64, requires_grad=True)
    theta = torch.zeros(2, DIM // 2, dtype=torch.float64, requires_grad=True)
    RotatE(phase_scale=1.0).score(h, theta, h.detach().clone()).sum().backward()
    assert torch.isfinite(h.grad).all() and torch.isfinite(theta.grad).all()
    q = torch.randn(3, 8, requires_grad=True)
    TransE(p_norm=2).score_all(q, torch.zeros(3, 8), q.detach().clone(), "tail").sum().backward()
    assert torch.isfinite(q.grad).all()


# --- RotatE specifics ---------------------------------------------------------------------------
def test_rotate_relation_has_unit_modulus():
    """Against t = 0 the score is -sum_k |h_k e^{i theta_k}|, which must equal -sum_k |h_k| for any theta."""
    torch.manual_seed(12)
    h = torch.randn(6, 10, dtype=torch.float64)
    theta = (torch.rand(6, 5, dtype=torch.float64) - 0.5) * 20  # several turns
    moduli = torch.sqrt(h[:, :5] ** 2 + h[:, 5:] ** 2).sum(-1)
    torch.testing.assert_close(
        RotatE(phase_scale=1.0).score(h, theta, torch.zeros_like(h)), -moduli, rtol=1e-12, atol=1e-12
    )


def test_rotate_head_side_uses_the_inverse_rotation():
    """|h e^{i theta} - t| = |h - t e^{-i theta}|: rotating a tail back lands exactly on its head."""
    scorer = RotatE(phase_scale=1.0)
    h, theta = params(scorer, 4, 13)
    hr, hi = scorer._rotate(h, theta)
    t = torch.cat([hr, hi], -1)  # t = h e^{i theta}, so (h, theta, t) is a perfect triple
    table = torch.cat([t, h])  # candidates: the tails first, then the heads
    scores = scorer.score_all(t, theta, table, "head", 3)
    assert scores[torch.arange(4), 4 + torch.arange(4)].abs().max() < 1e-12  # each true head scores 0
    assert (scores[torch.arange(4), 4 + torch.arange(4)] == scores.max(1).values).all()


def test_rotate_phase_scale_and_init():
    scorer = RotatE(gamma=12.0, epsilon=2.0, phase_scale=4.0)
    ent, rel = torch.empty(500, 20), torch.empty(500, 10)
    scorer.init_entity_(ent, 20)
    scorer.init_relation_(rel, 20)
    bound = 14.0 / 10  # (gamma + epsilon) / (dim/2 complex coordinates)
    assert ent.abs().max() <= bound and ent.abs().max() > 0.9 * bound
    assert (rel * 4.0).abs().max() <= math.pi and (rel * 4.0).abs().max() > 0.9 * math.pi
    # The scorer reads phases as phase_scale * x.
    torch.testing.assert_close(
        scorer.score(ent[:3], rel[:3], ent[3:6]), RotatE(phase_scale=1.0).score(ent[:3], rel[:3] * 4.0, ent[3:6])
    )


def test_rotate_compile_failure_falls_back_to_eager(monkeypatch):
    monkeypatch.setitem(S._COMPILED, "kernel", None)
    monkeypatch.setitem(S._COMPILED, "failed", False)

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    scorer = RotatE(phase_scale=1.0, compile=True)
    table, _ = params(scorer, 9, 14)
    q, r = params(scorer, 2, 15)
    with pytest.warns(RuntimeWarning, match="torch.compile of the scoring kernel failed .*no compiler here"):
        got = scorer.score_all(q, r, table, "tail", 4)
    torch.testing.assert_close(got, RotatE(phase_scale=1.0).score_all(q, r, table, "tail", 4))
    assert S._COMPILED["failed"]


def test_rotate_keeps_bfloat16():
    scorer = RotatE(phase_scale=1.0)
    table, _ = params(scorer, 10, 16, torch.float32)
    q, r = params(scorer, 3, 17, torch.float32)
    got = scorer.score_all(q.bfloat16(), r.bfloat16(), table.bfloat16(), "tail", 4)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), scorer.score_all(q, r, table, "tail", 4), rtol=2e-2, atol=1e-2)


# --- sizes, init and factory --------------------------------------------------------------------
def test_sizes_and_default_init_ranges():
    assert [
        (s.entity_dim(8), s.relation_dim(8)) for s in (TransE(), DistMult(), ComplEx(), RotatE(phase_scale=1.0))
    ] == [(8, 8), (8, 8), (8, 8), (8, 4)]
    assert TransE().default_init_range(16) == pytest.approx(1.5)
    assert DistMult().default_init_range(12) == ComplEx().default_init_range(12) == pytest.approx(0.5)
    assert RotatE(phase_scale=1.0).default_init_range(16) == pytest.approx(1.0)  # (6 + 2) / 8
    w = torch.empty(400, 16)
    TransE(init_range=0.25).init_relation_(w, 16)
    assert 0.2 < w.abs().max() <= 0.25
    assert TransE(init_range=0.0).init_range is None  # ModelConfig's 0 means "scorer default"


def test_size_errors():
    with pytest.raises(
        ValueError, match=r"^rotate stores dim/2 complex numbers as \[real \| imag\]: dim must be even, got 7$"
    ):
        RotatE(phase_scale=1.0).entity_dim(7)
    with pytest.raises(ValueError, match=r"^complex relation weight has 6 columns, expected 8$"):
        ComplEx().init_relation_(torch.empty(3, 6), 8)
    with pytest.raises(ValueError, match=r"^TransE p_norm must be 1 or 2, got 3$"):
        TransE(p_norm=3)


def test_make_scorer():
    assert set(SCORERS) == {"transe", "transe-l1", "transe-l2", "distmult", "complex", "rotate"}
    assert make_scorer("transe", p_norm=2).name == "transe-l2"
    assert make_scorer("transe").name == "transe-l1"
    assert make_scorer("TransE-L2", p_norm=1).p_norm == 2  # the name fixes the norm
    assert make_scorer("rotate", p_norm=2, gamma=12.0).gamma == 12.0  # p_norm is ignored here
    assert isinstance(make_scorer("complex"), ComplEx)
    with pytest.raises(
        ValueError,
        match=r"^unknown scorer 'holE'; known: \['complex', 'distmult', 'rotate', "
        r"'transe', 'transe-l1', 'transe-l2'\]$",
    ):
        make_scorer("holE")
    with pytest.raises(TypeError):
        make_scorer("distmult", gamma=1.0)


def test_scorer_from_config():
    s = scorer_from_config(ModelConfig(scorer="transe", p_norm=2, init_range=0.5))
    assert (s.name, s.init_range) == ("transe-l2", 0.5)
    s = scorer_from_config(ModelConfig(scorer="transe"), name="rotate", phase_scale=2.0)
    assert (s.name, s.init_range, s.phase_scale) == ("rotate", None, 2.0)


def test_rotate_default_phase_scale_follows_the_paper():
    # RotatE's code stores x in the entity init range and uses theta = x * pi / range.
    scorer = RotatE(gamma=6.0, epsilon=2.0)
    weight = torch.empty(5, scorer.relation_dim(16))
    scorer.init_relation_(weight, 16)
    assert scorer.phase_scale == pytest.approx(math.pi / scorer.default_init_range(16))
    assert weight.abs().max() <= scorer.default_init_range(16)  # so the phases span [-pi, pi]
    with pytest.raises(RuntimeError, match="init_relation_"):
        RotatE().score(torch.zeros(1, 4), torch.zeros(1, 2), torch.zeros(1, 4))
