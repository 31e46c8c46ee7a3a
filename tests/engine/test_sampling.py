"""Negative sampling: shapes, devices, id ranges, Bernoulli head probabilities, reproducibility."""

from __future__ import annotations

import pytest
import torch

from afme_lib.engine.sampling import KnownLoops, NegativeSampler, asked_entities, head_corruption_probability

# A hand-made graph (h, r, t), written so that each relation has a known shape:
#   r0: 1-N  -- head 0 links to tails 1..6, head 7 to tails 8..9   (tph = 8/2 = 4, hpt = 8/8 = 1)
#   r1: N-1  -- heads 1..4 link to tail 0                            (tph = 4/4 = 1, hpt = 4/1 = 4)
#   r2: 1-1  -- 2->3, 4->5                                           (tph = hpt = 1)
#   r3: no triple at all (falls back to 1/2)
# (r2's duplicate is harmless: tph / (tph + hpt) = #tails / (#tails + #heads).)
GRAPH = torch.tensor(
    [[0, 0, t] for t in range(1, 7)]
    + [[7, 0, 8], [7, 0, 9]]
    + [[h, 1, 0] for h in range(1, 5)]
    + [[2, 2, 3], [4, 2, 5], [4, 2, 5]]
)
NUM_ENTITIES, NUM_RELATIONS = 10, 4


def brute_force_head_probability(triples: torch.Tensor, num_relations: int) -> list[float]:
    """tph / (tph + hpt) per relation, from Python sets (0.5 for a relation without triples)."""
    unique = {tuple(row) for row in triples.tolist()}
    out = []
    for r in range(num_relations):
        rows = [(h, t) for h, rel, t in unique if rel == r]
        if not rows:
            out.append(0.5)
            continue
        tph = len(rows) / len({h for h, _ in rows})
        hpt = len(rows) / len({t for _, t in rows})
        out.append(tph / (tph + hpt))
    return out


def test_head_probability_matches_brute_force():
    prob = head_corruption_probability(GRAPH, NUM_RELATIONS)
    expected = brute_force_head_probability(GRAPH, NUM_RELATIONS)
    assert prob.dtype == torch.float32 and prob.shape == (NUM_RELATIONS,)
    assert prob.tolist() == pytest.approx(expected, abs=1e-6)
    # The hand computation in the comment above: 1-N mostly corrupts heads, N-1 mostly tails.
    assert prob.tolist() == pytest.approx([0.8, 0.2, 0.5, 0.5], abs=1e-6)


def test_bernoulli_sampler_draws_heads_at_the_relation_rate():
    sampler = NegativeSampler(NUM_ENTITIES, 3, "bernoulli", GRAPH, NUM_RELATIONS)
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    for rel, expected in enumerate([0.8, 0.2, 0.5]):
        positives = torch.tensor([[0, rel, 1]]).repeat(n, 1)
        _, corrupt_head = sampler.sample(positives, generator=gen)
        # 5 standard deviations of a binomial proportion with n = 20 000 is about 0.015.
        assert corrupt_head.double().mean().item() == pytest.approx(expected, abs=0.015)


def test_uniform_sampler_corrupts_each_side_half_the_time():
    sampler = NegativeSampler(NUM_ENTITIES, 4, "uniform")
    gen = torch.Generator().manual_seed(1)
    positives = GRAPH[torch.randint(0, len(GRAPH), (20_000,), generator=gen)]
    _, corrupt_head = sampler.sample(positives, generator=gen)
    assert corrupt_head.double().mean().item() == pytest.approx(0.5, abs=0.015)


@pytest.mark.parametrize("mode", ["uniform", "bernoulli"])
def test_shapes_dtypes_ranges_and_device(mode):
    sampler = NegativeSampler(NUM_ENTITIES, 7, mode, GRAPH, NUM_RELATIONS).to("cpu")
    positives = GRAPH[:5]
    negatives, corrupt_head = sampler.sample(positives)
    assert negatives.shape == (5, 7) and negatives.dtype == torch.long
    assert corrupt_head.shape == (5,) and corrupt_head.dtype == torch.bool
    assert negatives.device == positives.device == corrupt_head.device
    assert int(negatives.min()) >= 0 and int(negatives.max()) < NUM_ENTITIES
    # Over many draws every entity id shows up (uniform over all entities, not a subset).
    many, _ = sampler.sample(GRAPH[:1].repeat(500, 1))
    assert set(many.flatten().tolist()) == set(range(NUM_ENTITIES))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_samples_live_on_the_positives_cuda_device():
    sampler = NegativeSampler(NUM_ENTITIES, 4, "bernoulli", GRAPH, NUM_RELATIONS).to("cuda")
    negatives, corrupt_head = sampler.sample(GRAPH.cuda())
    assert negatives.is_cuda and corrupt_head.is_cuda


@pytest.mark.parametrize("mode", ["uniform", "bernoulli"])
def test_seeded_draws_are_reproducible(mode):
    sampler = NegativeSampler(NUM_ENTITIES, 6, mode, GRAPH, NUM_RELATIONS)
    first = sampler.sample(GRAPH, generator=torch.Generator().manual_seed(42))
    again = sampler.sample(GRAPH, generator=torch.Generator().manual_seed(42))
    other = sampler.sample(GRAPH, generator=torch.Generator().manual_seed(43))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    # The global RNG is the default source: re-seeding it repeats the draw too.
    torch.manual_seed(5)
    a = sampler.sample(GRAPH)
    torch.manual_seed(5)
    b = sampler.sample(GRAPH)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown sampler 'zipf'; expected one of uniform, bernoulli"):
        NegativeSampler(NUM_ENTITIES, 2, "zipf")
    with pytest.raises(ValueError, match="bernoulli sampler needs the training triples"):
        NegativeSampler(NUM_ENTITIES, 2, "bernoulli")


@pytest.mark.parametrize("mode", ["uniform", "bernoulli"])
def test_a_pool_shares_few_entities_across_the_batch_yet_each_negative_stays_uniform(mode):
    num_entities, pool = 50, 6
    sampler = NegativeSampler(num_entities, 8, mode, GRAPH, NUM_RELATIONS, pool=pool)
    gen = torch.Generator().manual_seed(3)
    positives = GRAPH[torch.randint(0, len(GRAPH), (400,), generator=gen)]
    negatives, corrupt_head = sampler.sample(positives, generator=gen)
    assert negatives.shape == (400, 8) and negatives.dtype == torch.long and corrupt_head.shape == (400,)
    # One batch touches at most `pool` distinct negative entities (400 x 8 independent draws
    # from 50 would touch all 50).
    assert len(torch.unique(negatives)) <= pool
    # Over many batches each entity is drawn equally often: pooled draws are uniform marginally.
    counts = torch.zeros(num_entities)
    for _ in range(2000):
        batch, _ = sampler.sample(positives[:10], generator=gen)
        counts += torch.bincount(batch.flatten(), minlength=num_entities)
    expected = counts.sum() / num_entities  # 3 200 per entity
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # Pooled draws are clustered (each pool entity is drawn ~13 times per batch), which inflates
    # the variance ~14-fold over independent draws: chi2 ~ 14 x 49 on average; a sampler that
    # skipped an entity, or favoured half of them 2:1, would give chi2 above 10^5.
    assert int(counts.min()) > 0 and chi2 < 2_000


def test_pooled_draws_are_reproducible_and_the_corrupted_side_is_unchanged():
    plain = NegativeSampler(NUM_ENTITIES, 5, "bernoulli", GRAPH, NUM_RELATIONS)
    pooled = NegativeSampler(NUM_ENTITIES, 5, "bernoulli", GRAPH, NUM_RELATIONS, pool=4)
    first = pooled.sample(GRAPH, generator=torch.Generator().manual_seed(7))
    again = pooled.sample(GRAPH, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    # The side each row corrupts is drawn first, the same way: the pool changes only the entities.
    assert torch.equal(first[1], plain.sample(GRAPH, generator=torch.Generator().manual_seed(7))[1])


def test_a_negative_pool_size_is_refused():
    with pytest.raises(ValueError, match="negative pool must be 0 .* got -1"):
        NegativeSampler(NUM_ENTITIES, 2, "uniform", pool=-1)


# --- self-negatives ---------------------------------------------------------------------------
def test_asked_entities_are_the_tail_of_head_queries_and_the_head_of_tail_queries():
    batch = torch.tensor([[1, 0, 2], [3, 1, 4], [5, 2, 6]])
    corrupt_head = torch.tensor([True, False, True])
    assert asked_entities(batch, corrupt_head).tolist() == [2, 3, 6]


def test_known_loops_finds_exactly_the_training_self_loops():
    train = torch.tensor([[1, 0, 1], [2, 1, 3], [4, 1, 4], [4, 1, 4], [5, 0, 6]])
    loops = KnownLoops(train, num_relations=2)
    entities = torch.tensor([1, 1, 4, 4, 2, 5])
    relations = torch.tensor([0, 1, 1, 0, 1, 0])
    brute = [(e, r, e) in set(map(tuple, train.tolist())) for e, r in zip(entities.tolist(), relations.tolist())]
    assert loops(entities, relations).tolist() == brute == [True, False, True, False, False, False]
    assert not KnownLoops(train[1:2], 2)(entities, relations).any()  # a graph without loops


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_known_loops_on_cuda():
    loops = KnownLoops(torch.tensor([[1, 0, 1]]), 1).to("cuda")
    assert loops(torch.tensor([1, 2], device="cuda"), torch.tensor([0, 0], device="cuda")).tolist() == [True, False]
