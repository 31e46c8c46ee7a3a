"""OTKGE and its optimal-transport helpers: Sinkhorn against an explicitly iterated numpy
reference, marginals, barycentric maps, barycentres with closed forms, the transport maps and
the barycentre fusion against loops, the plan cache, and learning on the tiny preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.evaluation import evaluate
from afme_lib.engine.training import Trainer
from afme_lib.models import otkge as otkge_mod
from afme_lib.models.registry import create_model
from afme_lib.models.sinkhorn import barycentric_map, free_support_barycenter, sinkhorn


def numpy_sinkhorn(a, b, cost, eps, iterations):
    """Cuturi's iteration written out: u = a / (K v), v = b / (K^T u), P = diag(u) K diag(v)."""
    kernel = np.exp(-cost / eps)
    u, v = np.ones(len(a)), np.ones(len(b))
    for _ in range(iterations):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    return u[:, None] * kernel * v[None, :]


def random_simplex(shape, gen):
    x = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.1
    return x / x.sum(-1, keepdim=True)


# --- Sinkhorn -------------------------------------------------------------------------------------
@pytest.mark.parametrize("iterations", [1, 7, 40])
def test_sinkhorn_equals_the_explicit_numpy_iteration(iterations):
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(3, 5, 7, generator=gen, dtype=torch.float64) * 2
    a, b = random_simplex((3, 5), gen), random_simplex((3, 7), gen)
    plans = sinkhorn(cost, a, b, epsilon=0.3, iterations=iterations)
    assert plans.shape == (3, 5, 7)
    for k in range(3):  # the batched log-domain plan is the same sequence of plans
        ref = numpy_sinkhorn(a[k].numpy(), b[k].numpy(), cost[k].numpy(), 0.3, iterations)
        np.testing.assert_allclose(plans[k].numpy(), ref, rtol=1e-10, atol=1e-14)


def test_sinkhorn_marginals_column_exact_rows_converge():
    gen = torch.Generator().manual_seed(1)
    cost = torch.rand(4, 6, 9, generator=gen, dtype=torch.float64)
    a, b = random_simplex((4, 6), gen), random_simplex((4, 9), gen)
    few = sinkhorn(cost, a, b, epsilon=0.1, iterations=3)
    torch.testing.assert_close(few.sum(-2), b, rtol=0, atol=1e-12)  # the last update fixes columns
    many = sinkhorn(cost, a, b, epsilon=0.1, iterations=500)
    torch.testing.assert_close(many.sum(-1), a, rtol=0, atol=1e-9)
    torch.testing.assert_close(many.sum(-2), b, rtol=0, atol=1e-12)
    assert (many >= 0).all()
    # uniform marginals by default
    uniform = sinkhorn(cost[0], epsilon=0.1, iterations=500)
    torch.testing.assert_close(uniform.sum(-1), torch.full((6,), 1 / 6, dtype=torch.float64))


def test_sinkhorn_small_epsilon_stays_finite_and_finds_the_sorted_matching():
    """Where exp(-C/eps) underflows to 0 (C/eps up to ~6000), the log domain still converges to
    1-D optimal transport: with equal counts and uniform weights, the monotone matching."""
    gen = torch.Generator().manual_seed(2)
    x = torch.linspace(-2, 2, 8, dtype=torch.float64)[torch.randperm(8, generator=gen)]
    y = torch.linspace(-6, 6, 8, dtype=torch.float64)[torch.randperm(8, generator=gen)]
    cost = (x[:, None] - y[None, :]) ** 2
    assert torch.exp(-cost / 1e-2).min() == 0
    plan = sinkhorn(cost, epsilon=1e-2, iterations=1000)
    assert torch.isfinite(plan).all()
    matching = torch.zeros(8, 8, dtype=torch.float64)
    matching[x.argsort(), y.argsort()] = 1 / 8
    torch.testing.assert_close(plan, matching, rtol=0, atol=1e-3)


def test_sinkhorn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="epsilon > 0"):
        sinkhorn(torch.zeros(2, 2), epsilon=0)
    with pytest.raises(ValueError, match="at least one iteration"):
        sinkhorn(torch.zeros(2, 2), iterations=0)


def test_barycentric_map_is_the_plan_weighted_mean_of_targets():
    gen = torch.Generator().manual_seed(3)
    plan, targets = (
        torch.rand(4, 5, generator=gen, dtype=torch.float64),
        torch.randn(5, 3, generator=gen, dtype=torch.float64),
    )
    mapped = barycentric_map(plan, targets)
    for i in range(4):
        expected = sum(plan[i, j] * targets[j] for j in range(5)) / plan[i].sum()
        torch.testing.assert_close(mapped[i], expected)


# --- barycentres ----------------------------------------------------------------------------------
def test_one_dimensional_barycentre_averages_quantiles():
    """The W2 barycentre of 1-D measures with n equal atoms is the lambda-average of their sorted
    atoms (atoms spaced well beyond the entropic blur, shuffled so no order is given away)."""
    gen = torch.Generator().manual_seed(4)
    y1 = torch.linspace(-2, 2, 10, dtype=torch.float64)[torch.randperm(10, generator=gen)][:, None]
    y2 = (torch.linspace(0, 3, 10, dtype=torch.float64) ** 1.5)[torch.randperm(10, generator=gen)][:, None]
    lam = torch.tensor([0.3, 0.7], dtype=torch.float64)
    init = torch.linspace(-1, 1, 10, dtype=torch.float64)[:, None]
    bary = free_support_barycenter(
        [(y1, None), (y2, None)], lam, init, epsilon=1e-2, iterations=2, sinkhorn_iterations=1000
    )
    expected = 0.3 * y1.sort(0).values + 0.7 * y2.sort(0).values
    torch.testing.assert_close(bary, expected, rtol=0, atol=0.01)  # init sorted: the result stays sorted


def test_barycentre_of_a_measure_and_its_translate_is_the_partial_translate():
    """nu_2 = nu_1 shifted by c: the barycentre with weights (l1, l2) is nu_1 shifted by l2 c (2-D)."""
    gen = torch.Generator().manual_seed(5)
    points = torch.randn(12, 2, generator=gen, dtype=torch.float64) * 2
    shift = torch.tensor([1.0, -0.5], dtype=torch.float64)
    lam = torch.tensor([0.25, 0.75], dtype=torch.float64)
    bary = free_support_barycenter(
        [(points, None), (points + shift, None)],
        lam,
        points.clone(),
        epsilon=1e-2,
        iterations=3,
        sinkhorn_iterations=1000,
    )
    torch.testing.assert_close(bary, points + 0.75 * shift, rtol=0, atol=0.02)


def test_barycentre_needs_one_weight_per_measure():
    with pytest.raises(ValueError, match="2 measures but 1 barycentre weights"):
        free_support_barycenter([(torch.zeros(2, 1), None)] * 2, torch.ones(1), torch.zeros(2, 1))


# --- the model ------------------------------------------------------------------------------------
@pytest.fixture
def store(small_store):
    """Image and text (shifted, so its coordinates are not centred); entity 0 has neither, entity 1
    only text, entity 2 only image (conftest)."""
    return small_store(12, {"image": 6, "text": 9}, offsets={"text": 0.3})


def build(store, n=12, relations=3, dim=8, seed=0, **kw):
    torch.manual_seed(seed)
    return create_model(ModelConfig(name="otkge", dim=dim, **kw), n, relations, store)


def test_transport_maps_are_averaged_barycentric_maps_of_reference_plans(store):
    model = build(store)
    maps = model.transport_maps()
    weight = model.entity.weight.detach().double().numpy()
    for i, m in enumerate(model.inputs.names):
        probe = store.masks[m].nonzero(as_tuple=True)[0][: otkge_mod.PROBE_ENTITIES]
        assert len(probe) == min(otkge_mod.PROBE_ENTITIES, int(store.masks[m].sum()))
        expected = 0
        for p in probe.tolist():
            e, f = weight[p], store.features[m][p].double().numpy()
            e = (e - e.mean()) / np.sqrt(((e - e.mean()) ** 2).mean() + 1e-6)
            f = (f - f.mean()) / np.sqrt(((f - f.mean()) ** 2).mean() + 1e-6)
            cost = (e[:, None] - f[None, :]) ** 2
            plan = numpy_sinkhorn(
                np.full(len(e), 1 / len(e)),
                np.full(len(f), 1 / len(f)),
                cost,
                otkge_mod.OT_EPSILON,
                otkge_mod.OT_ITERATIONS,
            )
            expected = expected + plan / plan.sum(1, keepdims=True) / len(probe)
        np.testing.assert_allclose(maps[i].double().numpy(), expected, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(maps[i].sum(1), torch.ones(8), rtol=0, atol=1e-5)


def test_fused_embedding_is_the_weighted_barycentre_written_out(store):
    model = build(store).eval()
    maps = model.transport_maps()
    with torch.no_grad():
        fused = model.entity_repr(torch.arange(12))
        for e in range(12):
            parts = [(otkge_mod.STRUCTURE_WEIGHT, model.entity.weight[e])]
            for i, m in enumerate(model.inputs.names):
                if store.masks[m][e]:
                    moved = (maps[i] + model.inputs.projections[i].weight) @ store.features[m][e]
                    token = moved / moved.pow(2).mean().add(1e-6).sqrt() * model.inputs.log_scale[i].exp()
                    parts.append(((1 - otkge_mod.STRUCTURE_WEIGHT) / 2, token))
            total = sum(w for w, _ in parts)
            expected = sum(w / total * x for w, x in parts)
            torch.testing.assert_close(fused[e], expected, rtol=1e-5, atol=1e-6)
        # an entity without any modality keeps its structural embedding exactly
        assert torch.equal(fused[0], model.entity.weight[0])
        weights = model.introspect(torch.arange(3), torch.zeros(3, dtype=torch.long))["weights"]
        torch.testing.assert_close(
            weights, torch.tensor([[1.0, 0, 0], [0.2 / 0.6, 0, 0.4 / 0.6], [0.2 / 0.6, 0.4 / 0.6, 0]])
        )


def test_plan_is_recomputed_when_the_structural_table_changes_and_only_then(store):
    model = build(store)
    first = model.transport_maps()
    assert model.transport_maps() is first  # cached while the table is unchanged
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = model.score(torch.tensor([3, 4]), torch.tensor([0, 1]), torch.tensor([5, 6])).sum()
    loss.backward()
    optimizer.step()
    second = model.transport_maps()
    assert second is not first and not torch.allclose(second[0], first[0])
    fresh = build(store, seed=7)
    fresh.load_state_dict(model.state_dict())
    for a, b in zip(fresh.transport_maps(), second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_without_features_otkge_is_its_scorer():
    torch.manual_seed(0)
    model = create_model(ModelConfig(name="otkge", dim=8), 5, 2, None)
    assert torch.equal(model.entity_repr(torch.tensor([1, 2])), model.entity.weight[[1, 2]])
    assert model.introspect(torch.tensor([1]), torch.tensor([0])) == {}


def test_otkge_learns_the_tiny_preset(tiny_synth):
    """Five epochs at least double the untrained model's filtered MRR on the training triples."""
    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    trainer = Trainer(
        data,
        ModelConfig(name="otkge", dim=32),
        TrainConfig(epochs=5, batch_size=512, negatives=8, lr=0.05, eval_every=0, progress=False, device="cpu"),
        None,
        features=store,
    )
    before = evaluate(trainer.model, data, "train")["mrr"]
    trainer.fit()
    after = evaluate(trainer.model, data, "train")["mrr"]
    assert before < 0.05 and after > 2 * before, (before, after)
