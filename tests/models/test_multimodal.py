"""IKRL and mm-concat on the tiny synthetic preset, against brute-force versions of their formulas."""

from __future__ import annotations

import pytest
import torch

from afme_lib.core.config import ModelConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import write_synthetic
from afme_lib.models.multimodal import IKRL, MMConcat
from afme_lib.models.registry import create_model

DIM = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("mm") / "tiny", "tiny", seed=0)
    data = load_dataset(folder)
    store = FeatureStore.load(folder, data.num_entities, verbose=False)
    # entities 0-3 lose every modality, so the "no modality at all" paths are exercised
    masked = FeatureStore(data.num_entities)
    for m in store.modalities:
        keep = store.masks[m].clone()
        keep[:4] = False
        masked.add(m, store.features[m], mask=keep)
    return data, masked


def build(tiny, name, **config):
    data, store = tiny
    torch.manual_seed(0)
    model = create_model(ModelConfig(name=name, dim=DIM, **config), data.num_entities, data.num_relations, store)
    with torch.no_grad():  # leave the initialisation so that no term is trivially zero
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def tokens_brute_force(model, store: FeatureStore, e: int) -> list[torch.Tensor | None]:
    """h_m = s_m * rms(P_m f_m) for each modality of entity e (None where it is missing)."""
    out = []
    for k, m in enumerate(model.inputs.names):
        if not store.masks[m][e]:
            out.append(None)
            continue
        x = model.inputs.projections[k].weight @ store.features[m][e]
        out.append(model.inputs.log_scale[k].exp() * x / torch.sqrt(x.pow(2).mean() + 1e-6))
    return out


def triples(tiny, n=10):
    test = tiny[0].test[:n].clone()
    test[:2, 0] = torch.tensor([0, 1])  # heads without any modality
    test[2, 2] = 3
    return test.unbind(1)


# --- IKRL ------------------------------------------------------------------------------------------
def ikrl_vectors(model, store, e: int) -> tuple[torch.Tensor, torch.Tensor]:
    es = model.entity.weight[e]
    present = [h for h in tokens_brute_force(model, store, e) if h is not None]
    return es, (torch.stack(present).mean(0) if present else es)


@pytest.mark.parametrize("p_norm", [1, 2])
def test_ikrl_score_is_minus_the_four_term_energy(tiny, p_norm):
    model = build(tiny, "ikrl", p_norm=p_norm)
    assert isinstance(model, IKRL) and not model.relation_conditioned
    store = tiny[1]
    h, r, t = triples(tiny)
    with torch.no_grad():
        got = model.score(h, r, t)
        for i in range(len(h)):
            hs, hi = ikrl_vectors(model, store, int(h[i]))
            ts, ti = ikrl_vectors(model, store, int(t[i]))
            rel = model.relation.weight[r[i]]
            energy = sum(torch.linalg.vector_norm(a + rel - b, ord=p_norm) for a in (hs, hi) for b in (ts, ti))
            torch.testing.assert_close(got[i], -energy)


def test_ikrl_modality_vector_falls_back_to_structure(tiny):
    model = build(tiny, "ikrl")
    store = tiny[1]
    with torch.no_grad():
        rep = model.entity_repr(torch.arange(8))
    assert rep.shape == (8, 2 * DIM)
    torch.testing.assert_close(rep[:, :DIM], model.entity.weight[:8])
    torch.testing.assert_close(rep[:4, DIM:], model.entity.weight[:4])  # no modality at all
    for e in range(4, 8):  # mean of whatever is present
        torch.testing.assert_close(rep[e, DIM:], ikrl_vectors(model, store, e)[1])
        assert not torch.allclose(rep[e, DIM:], rep[e, :DIM])


# --- mm-concat -------------------------------------------------------------------------------------
def test_mm_concat_starts_as_the_plain_scorer(tiny):
    data, store = tiny
    torch.manual_seed(0)
    model = create_model(ModelConfig(name="mm-concat", dim=DIM), data.num_entities, data.num_relations, store)
    model.eval()  # training draws the structure dropout
    with torch.no_grad():
        torch.testing.assert_close(model.entity_table(), model.entity.weight)


@pytest.mark.parametrize("scorer", ["rotate", "distmult", "transe"])
def test_mm_concat_score_is_a_linear_map_of_the_concatenated_tokens(tiny, scorer):
    model = build(tiny, "mm-concat", scorer=scorer)
    assert isinstance(model, MMConcat)
    store = tiny[1]
    h, r, t = triples(tiny)

    def rep(e):
        parts = [model.entity.weight[e]] + [
            x if x is not None else torch.zeros(DIM) for x in tokens_brute_force(model, store, e)
        ]
        return model.mix.weight @ torch.cat(parts) + model.mix.bias

    with torch.no_grad():
        got = model.score(h, r, t)
        for i in range(len(h)):
            want = model.scorer.score(rep(int(h[i])), model.relation.weight[r[i]], rep(int(t[i])))
            torch.testing.assert_close(got[i], want, rtol=1e-5, atol=1e-5)


# --- both ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ikrl", "mm-concat"])
def test_score_negatives_equals_score_on_corrupted_triples(tiny, name):
    model = build(tiny, name)
    h, r, t = triples(tiny)
    g = torch.Generator().manual_seed(2)
    negatives = torch.randint(0, tiny[0].num_entities, (len(h), 6), generator=g)
    negatives[0, 0] = 2  # a candidate without modalities
    corrupt_head = torch.arange(len(h)) % 2 == 0
    with torch.no_grad():
        got = model.score_negatives(h, r, t, negatives, corrupt_head)
        want = torch.where(
            corrupt_head[:, None],
            model.score(negatives, r[:, None], t[:, None]),
            model.score(h[:, None], r[:, None], negatives),
        )
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["ikrl", "mm-concat"])
@pytest.mark.parametrize("side", ["tail", "head"])
def test_score_all_matches_score(tiny, name, side):
    model = build(tiny, name)
    h, r, t = triples(tiny, 5)
    n = tiny[0].num_entities
    every = torch.arange(n).expand(5, n)
    with torch.no_grad():
        got = model.score_all(h if side == "tail" else t, r, side, chunk_size=50)
        want = (
            model.score(h[:, None], r[:, None], every) if side == "tail" else model.score(every, r[:, None], t[:, None])
        )
    assert got.shape == (5, n)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["ikrl", "mm-concat"])
def test_without_features_the_model_is_structural(tiny, name):
    data = tiny[0]
    torch.manual_seed(0)
    model = create_model(ModelConfig(name=name, dim=DIM), data.num_entities, data.num_relations, None).eval()
    h, r, t = triples(tiny)
    with torch.no_grad():
        s = model.score(h, r, t)
        assert s.shape == (len(h),) and torch.isfinite(s).all()
        if name == "ikrl":  # e_i = e_s: four copies of the TransE energy
            E, R = model.entity.weight, model.relation.weight
            torch.testing.assert_close(s, 4 * model.scorer.transe.score(E[h], R[r], E[t]))


# --- cold-entity training shared by every model that reads features -------------------------------
FEATURE_MODELS = ("mm-concat", "ikrl", "native", "otkge", "mmkrl")


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_structure_shuffle_swaps_a_share_of_training_rows_for_other_entities(tiny, name):
    """In training a share structure_shuffle of the rows read another entity's e_s (with
    structure_dropout off, every other row is the entity's own); evaluation never swaps."""
    data, _ = tiny
    model = build(tiny, name, structure_dropout=0.0, structure_shuffle=0.5)
    assert model.structure_shuffle == 0.5
    entities = torch.arange(data.num_entities).repeat(20)
    own = model.entity(entities)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        read = model.structural(entities)
    kept = (read == own).all(-1)
    assert 0.45 < 1 - kept.float().mean() < 0.58  # swapped rows (a few draw their own entity)
    rows = model.entity.weight.detach()
    swapped = read[~kept]
    # each swapped row is some entity's e_s (or the unknown vector of one with no training triple)
    candidates = torch.cat([rows, model.unknown.detach()[None]])
    assert (swapped[:, None] == candidates[None]).all(-1).any(1).all()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.structural(entities), own)


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_by_default_only_afme_shuffles(tiny, name):
    data, _ = tiny
    model = build(tiny, name, structure_dropout=0.0)
    assert model.config.structure_shuffle is None and model.structure_shuffle == 0.0
    entities = torch.arange(data.num_entities)
    model.train()
    with torch.no_grad():
        torch.testing.assert_close(model.structural(entities), model.entity(entities))
    assert build(tiny, "afme").structure_shuffle == 0.4
    assert build(tiny, "afme", structure_shuffle=0.1).structure_shuffle == 0.1
