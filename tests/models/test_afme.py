"""AFME on the tiny synthetic preset: scores, entity tables, fusion internals, ablations,
MoIEn's losses and which parameters they reach, cold entities, learning what the generator
built in, checkpoints, and running without any modality."""

from __future__ import annotations

import math

import pytest
import torch

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import write_synthetic
from afme_lib.engine.losses import kgc_loss
from afme_lib.models.afme import AFME
from afme_lib.models.registry import create_model

DIM = 16
TRUST = 1.5  # a cross_check_margin that turns the cross-check on
SWITCHES = ("denoising", "dynamic_weights", "gan", "self_attention", "relation_context")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("afme") / "tiny", "tiny", seed=0)
    data = load_dataset(folder)
    return data, FeatureStore.load(folder, data.num_entities, verbose=False)


def build(tiny, features="default", seed=0, **config) -> AFME:
    data, store = tiny
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"name": "afme", "dim": DIM, "attention_heads": 2, "noise_dim": 4, **config})
    return create_model(cfg, data.num_entities, data.num_relations, store if features == "default" else features)


def queries(tiny, n=12):
    h, r, t = tiny[0].test[:n].unbind(1)
    return h, r, t


def scaled_store(store: FeatureStore, modality: str, factor: float) -> FeatureStore:
    out = FeatureStore(store.num_entities)
    for m in store.modalities:
        out.add(m, store.features[m] * (factor if m == modality else 1.0), mask=store.masks[m])
    return out


def masked_store(store: FeatureStore, hidden: torch.Tensor) -> FeatureStore:
    """Every modality of the ``hidden`` entities removed."""
    out = FeatureStore(store.num_entities)
    for m in store.modalities:
        keep = store.masks[m].clone()
        keep[hidden] = False
        out.add(m, store.features[m], mask=keep)
    return out


# --- construction --------------------------------------------------------------------------
def test_registered_and_built_from_the_feature_store(tiny):
    model = build(tiny)
    data, store = tiny
    assert isinstance(model, AFME) and model.registered_name == "afme" and model.relation_conditioned
    assert model.token_names == ["structure"] + store.modalities
    assert len(model.token_names) == 5
    only = build(tiny, modalities=["text"])
    assert only.token_names == ["structure", "text"]
    with pytest.raises(ValueError, match=r"modalities \['video'\] requested but the feature store holds only"):
        build(tiny, modalities=["text", "video"])


def test_features_are_buffers_outside_the_state_dict(tiny):
    model = build(tiny)
    keys = list(model.state_dict())
    assert not [k for k in keys if "features_" in k or "present_" in k]
    buffers = dict(model.named_buffers())
    assert "inputs.features_0" in buffers and "inputs.present_0" in buffers
    assert not any(b.requires_grad for b in buffers.values())


# --- scores ------------------------------------------------------------------------------------
def test_score_shapes_and_dtypes_on_cpu(tiny):
    model = build(tiny).eval()
    h, r, t = queries(tiny)
    with torch.no_grad():
        s = model.score(h, r, t)
        assert s.shape == (12,) and s.dtype == torch.float32 and torch.isfinite(s).all()
        cands = torch.arange(20).expand(12, 20)
        assert model.score(h[:, None], r[:, None], cands).shape == (12, 20)
        assert model.entity_repr(h, r).shape == (12, DIM)
        assert model.entity_repr(cands, r[:, None]).shape == (12, 20, DIM)
        assert model.relation_repr(r).shape == (12, DIM // 2)  # RotatE phases
    with pytest.raises(ValueError, match="AFME representations depend on the relation"):
        model.entity_repr(h)


@pytest.mark.parametrize("config", [{}, {"gan": False}, {"scorer": "distmult"}])
def test_score_negatives_equals_score_on_corrupted_triples(tiny, config):
    model = build(tiny, **config).eval()
    h, r, t = queries(tiny)
    g = torch.Generator().manual_seed(5)
    negatives = torch.randint(0, tiny[0].num_entities, (12, 7), generator=g)
    corrupt_head = torch.rand(12, generator=g) < 0.5
    rel = model.relation_repr(r)
    with torch.no_grad():  # the known side is the entity asked about (completed), negatives are candidates
        got = model.score_negatives(h, r, t, negatives, corrupt_head)
        cands = model.entity_repr(negatives, r[:, None], completed=False)
        as_head = model.scorer.score(cands, rel[:, None], model.entity_repr(t, r)[:, None])
        as_tail = model.scorer.score(model.entity_repr(h, r)[:, None], rel[:, None], cands)
    assert got.shape == (12, 7)
    torch.testing.assert_close(got, torch.where(corrupt_head[:, None], as_head, as_tail))


def test_entity_table_matches_entity_repr_and_is_deterministic_at_evaluation(tiny):
    # without the cross-check, which also makes a fully measured query differ from its candidate
    model = build(tiny, cross_check_margin=0.0).eval()
    n = tiny[0].num_entities
    with torch.no_grad():
        table = model.entity_table(3)
        assert table.shape == (n, DIM)
        ids, rel = torch.arange(n), torch.full((n,), 3)
        torch.testing.assert_close(table, model.entity_repr(ids, rel, completed=False))
        queries, candidates = model.tables(3)
        assert torch.equal(candidates, table)
        torch.testing.assert_close(queries, model.entity_repr(ids, rel))
        missing = ~torch.stack([tiny[1].masks[m] for m in tiny[1].modalities]).all(0)
        assert not torch.allclose(queries[missing], table[missing])  # completed only as queries
        torch.testing.assert_close(queries[~missing], table[~missing])
        assert torch.equal(table, model.entity_table(3))
        assert not torch.allclose(table, model.entity_table(4))  # relation-conditioned
    with pytest.raises(ValueError, match="needs a relation"):
        model.entity_table()
    # training mode draws generator noise: the same query table twice differs
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model.tables(3)[0], model.tables(3)[0])


@pytest.mark.parametrize("side", ["tail", "head"])
def test_score_all_matches_score(tiny, side):
    model = build(tiny).eval()
    h, r, t = queries(tiny, 6)
    n = tiny[0].num_entities
    everything = torch.arange(n).expand(6, n)
    with torch.no_grad():
        known = h if side == "tail" else t
        got = model.score_all(known, r, side, chunk_size=64)
        want = model.score_negatives(h, r, t, everything, torch.full((6,), side == "head"))
    assert got.shape == (6, n)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


# --- fusion internals --------------------------------------------------------------------------
def test_introspect_gates_and_weights(tiny):
    model = build(tiny).eval()
    data, store = tiny
    ents = torch.arange(40)
    with torch.no_grad():
        out = model.introspect(ents, torch.full_like(ents, 2))
    m = len(store.modalities)
    assert out["gates"].shape == (40, m) and out["weights"].shape == (40, m + 1)
    assert out["gates"].min() >= 0 and out["gates"].max() <= 1
    torch.testing.assert_close(out["weights"].sum(1), torch.ones(40))
    assert torch.equal(out["measured"], torch.stack([store.masks[k][:40] for k in store.modalities], 1))


@pytest.mark.parametrize("gan", [False, True])
def test_missing_modality_weight_is_zero_without_gan_and_filled_with_it(tiny, gan):
    model = build(tiny, gan=gan).eval()
    store = tiny[1]
    shows = torch.stack([store.masks[m] for m in store.modalities], 1).any(1)  # entities MoIEn completes
    checked = 0
    for k, name in enumerate(store.modalities):
        missing = (~store.masks[name] & shows).nonzero().squeeze(1)
        present = store.masks[name].nonzero().squeeze(1)[:20]
        if len(missing) == 0:
            continue
        checked += 1
        with torch.no_grad():
            w_missing = model.introspect(missing, torch.zeros_like(missing))["weights"][:, 1 + k]
            w_present = model.introspect(present, torch.zeros_like(present))["weights"][:, 1 + k]
        assert torch.all(w_present > 0)
        if gan:
            assert torch.all(w_missing > 0), name
        else:
            assert torch.all(w_missing == 0), name
    assert checked > 0


def test_raw_feature_scale_changes_nothing(tiny):
    """A modality whose raw features are ten times larger gets the same tokens, gates and weights
    (h_m = s_m rms(P_m f_m) with a linear P_m is invariant to the scale of f_m)."""
    data, store = tiny
    base = build(tiny).eval()
    louder = build(tiny, features=scaled_store(store, store.modalities[0], 10.0)).eval()
    louder.load_state_dict(base.state_dict())
    ents = torch.arange(60)
    rels = ents % data.num_relations
    with torch.no_grad():
        a, b = base.introspect(ents, rels), louder.introspect(ents, rels)
        torch.testing.assert_close(a["gates"], b["gates"])
        torch.testing.assert_close(a["weights"], b["weights"])
        h, r, t = queries(tiny)
        torch.testing.assert_close(base.score(h, r, t), louder.score(h, r, t))


def test_generated_tokens_are_never_longer_than_measured_ones(tiny):
    """A completed (generated) token's norm is at most a measured token's, s_m sqrt(D): the
    generator cannot swamp the fusion (shorter is allowed: a hedging prediction stays short)."""
    model = build(tiny, dim=64, cross_check_margin=0.0).eval()  # no blend of measured rows
    store = tiny[1]
    ents = torch.arange(tiny[0].num_entities)
    shows = torch.stack([store.masks[m] for m in store.modalities], 1).any(1)  # the entities MoIEn completes
    with torch.no_grad():
        per = model.per_entity(ents)
        expected = model.inputs.log_scale.exp() * 64**0.5
        for k, name in enumerate(model.inputs.names):
            missing = ~store.masks[name] & shows
            assert per["available"][shows, k].all() and (per["token_norm"][missing, k] > 0).all()
            assert torch.all(per["token_norm"][missing, k] <= expected[k] * (1 + 1e-4))
            # measured rows: exactly s_m sqrt(D) (rms() has an epsilon: equal to a few 1e-3)
            present = store.masks[name]
            torch.testing.assert_close(
                per["token_norm"][present, k], expected[k].expand(int(present.sum())), rtol=5e-3, atol=1e-5
            )
            assert (per["token_norm"][~shows, k] == 0).all()  # nothing shown: nothing generated


# --- row-level denoising: the cross-check ---------------------------------------------------
def test_cross_check_completes_each_row_from_the_other_modalities_only(tiny):
    """A row's completion does not move when that row or the entity's e_s changes, and does
    move when another modality's row changes; its agreement is the cosine with the row."""
    data, store = tiny
    model = build(tiny, cross_check_margin=TRUST).eval()
    ents = torch.arange(data.num_entities)
    m0, m1 = store.modalities[:2]
    with torch.no_grad():
        raw = model.inputs.raw(ents)
        tokens, measured = model.inputs(ents, raw)
        agreement, completion = model._cross_check(raw, tokens, measured)
        both = measured[:, 0] & measured[:, 1]
        torch.testing.assert_close(
            agreement[both, 0], torch.cosine_similarity(tokens[both, 0], completion[both, 0], dim=-1)
        )
        assert (agreement[~measured] == 0).all() and (completion[~measured] == 0).all()
        only = measured & (measured.sum(1, keepdim=True) == 1)  # nothing to complete it from: not checked
        assert only.any() and (agreement[only] == 0).all() and (completion[only] == 0).all()
        model.entity.weight.add_(1.0)  # e_s is not an input of the check
        for changed, same_col, moved_col in ((m0, 0, 1), (m1, 1, 0)):
            other = build(tiny, features=scaled_store(store, changed, -1.0), cross_check_margin=TRUST).eval()
            other.load_state_dict(model.state_dict())
            raw2 = other.inputs.raw(ents)
            _, completion2 = other._cross_check(raw2, *other.inputs(ents, raw2))
            torch.testing.assert_close(completion2[both, same_col], completion[both, same_col])
            assert not torch.allclose(completion2[both, moved_col], completion[both, moved_col])


def test_distrusted_rows_are_replaced_by_their_completion(tiny):
    data, _ = tiny
    ents = torch.arange(data.num_entities)
    model = build(tiny, cross_check_margin=TRUST).eval()
    plain = build(tiny, cross_check_margin=0.0).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in plain.state_dict()})
    with torch.no_grad():
        raw = model.inputs.raw(ents)
        tokens, measured = model.inputs(ents, raw)
        _, completion = model._cross_check(raw, tokens, measured)
        model.trust_margin = 1e4  # every row trusted: the measured tokens, as without the check
        torch.testing.assert_close(model.per_entity(ents)["tokens"], plain.per_entity(ents)["tokens"])
        model.trust_margin = -1e4  # none trusted: checked rows become their completions
        out = model.per_entity(ents)["tokens"]
        checked = measured & (measured.sum(1, keepdim=True) > 1)
        torch.testing.assert_close(out[checked], completion[checked])
        assert not torch.allclose(out[checked], tokens[checked])
        # an entity's only measured row has nothing to be checked against: it is kept as measured
        only = measured & ~checked
        assert only.any()
        torch.testing.assert_close(out[only], tokens[only])
        # only the entity asked about is checked: as a candidate answer it keeps its measured rows
        model._table_cache = plain._table_cache = None
        torch.testing.assert_close(model.entity_table(2), plain.entity_table(2))
        assert not torch.allclose(model.tables(2)[0], plain.tables(2)[0])


def test_cross_check_table_in_training_matches_evaluation_and_is_rebuilt_each_epoch(tiny):
    data, _ = tiny
    model = build(tiny, cross_check_margin=TRUST).train()
    ents = torch.arange(data.num_entities)
    with torch.no_grad():
        raw = model.inputs.raw(ents)
        tokens, measured = model.inputs(ents, raw)
        direct = model._cross_check(raw, tokens, measured)
        subset = torch.tensor([3, 1, 4])
        table = model._cross_check_of(subset, [f[subset] for f in raw], tokens[subset], measured[subset])
        for a, b in zip(table, direct):
            torch.testing.assert_close(a, b[subset])
        assert model._check_cache is not None
        # the table's per-modality statistics, over checked rows only (measured, and not the
        # entity's only measured row), standardise the agreement
        checked = measured & (measured.sum(1, keepdim=True) > 1)
        assert (checked != measured).any()
        for k in range(measured.shape[1]):
            rows = direct[0][checked[:, k], k]
            torch.testing.assert_close(model.agreement_mean[k], rows.mean())
            torch.testing.assert_close(model.agreement_std[k], rows.std(unbiased=False))
        # trust sigmoid(k margin) at the modality's mean agreement, 1/2 at ``margin`` deviations below it
        margin, slope = model.trust_margin, model.trust_slope
        at = model.agreement_mean + torch.tensor([[0.0], [-1.0]]) * margin * model.agreement_std
        trust = model._trust(at, torch.ones_like(at, dtype=torch.bool))
        torch.testing.assert_close(trust[0], torch.full_like(trust[0], 1 / (1 + math.exp(-slope * margin))))
        torch.testing.assert_close(trust[1], torch.full_like(trust[1], 0.5))
        assert (model._trust(at, torch.zeros_like(at, dtype=torch.bool)) == 1).all()  # unmeasured: not judged
        model.train()  # a new epoch: the parameters may have moved since
        assert model._check_cache is None


def test_an_entity_with_no_measured_row_is_not_completed(tiny):
    """MoIEn completes a row from the modalities an entity shows; an entity that shows none (the
    synthetic value entities) is read from structure alone when asked about, as without the GAN,
    while an entity with one row missing and others measured is completed."""
    data, store = tiny
    ents = torch.arange(data.num_entities)
    model = build(tiny, cross_check_margin=TRUST).eval()
    no_gan = build(tiny, cross_check_margin=TRUST, gan=False).eval()
    no_gan.load_state_dict({k: v for k, v in model.state_dict().items() if k in no_gan.state_dict()})
    with torch.no_grad():
        measured = model.inputs(ents, model.inputs.raw(ents))[1]
        featureless = (~measured.any(1)).nonzero().squeeze(1)
        partial = (measured.any(1) & ~measured.all(1)).nonzero().squeeze(1)
        assert len(featureless) > 0 and len(partial) > 0
        per = model.per_entity(ents)
        assert not per["available"][featureless].any()
        assert per["available"][partial].all()  # completed
        assert (per["tokens"][featureless] == 0).all()
        for relation in range(data.num_relations):
            model._table_cache = no_gan._table_cache = None
            asked, _ = model.tables(relation)
            asked_no_gan, _ = no_gan.tables(relation)
            torch.testing.assert_close(asked[featureless], asked_no_gan[featureless])
            assert not torch.allclose(asked[partial], asked_no_gan[partial])
        weights = model.introspect(featureless, torch.zeros_like(featureless))["weights"]
        assert (weights[:, 1:] == 0).all()


def test_training_completes_missing_rows_at_each_step_and_reads_checks_at_the_current_scale(tiny):
    """In training, an entity asked about has its missing rows generated at the step (what
    evaluation generates, at the step's noise: fresh at every call), and its measured rows blended
    with the cross-check's completions from the epoch's table, on the modality scale s_m of the
    moment (the table is built once per epoch; s_m moves every step)."""
    data, store = tiny
    model = build(tiny, structure_dropout=0.0)
    assert model.cross_check
    ents = torch.arange(data.num_entities)
    missing = ~torch.stack([store.masks[m] for m in model.inputs.names], 1)
    assert missing.any()
    with torch.no_grad():
        model.eval()
        evaluated = model.per_entity(ents)["tokens"]
        model.train()
        real_noise = model._noise
        model._noise = lambda n, device: torch.zeros(n, model.config.noise_dim, device=device)
        first = model.per_entity(ents)["tokens"]
        torch.testing.assert_close(first[missing], evaluated[missing])
        model.inputs.log_scale.add_(0.5)
        torch.testing.assert_close(model.per_entity(ents)["tokens"][~missing], first[~missing] * math.exp(0.5))
        model.inputs.log_scale.sub_(0.5)
        model._noise = real_noise
        a, b = model.per_entity(ents)["tokens"], model.per_entity(ents)["tokens"]
        assert not torch.allclose(a[missing], b[missing])  # fresh noise at every step
        torch.testing.assert_close(a[~missing], b[~missing])


def test_only_the_entities_asked_about_are_completed_and_checked(tiny):
    """per_entity(..., queried): the queried rows are what a full call gives; the others keep
    their measured rows on both sides, and their missing modalities stay unavailable."""
    data, store = tiny
    model = build(tiny, cross_check_margin=TRUST).eval()
    ents = torch.arange(data.num_entities)
    queried = ents % 3 == 0
    with torch.no_grad():
        full, part = model.per_entity(ents), model.per_entity(ents, queried)
        for key in ("tokens", "token_norm", "gate_inputs", "available"):
            torch.testing.assert_close(part[key][queried], full[key][queried])
        for key in ("tokens", "token_norm", "gate_inputs"):
            torch.testing.assert_close(part[key][~queried], full["candidate_" + key][~queried])
        torch.testing.assert_close(part["available"][~queried], part["measured"][~queried])
        assert not torch.allclose(full["tokens"][~queried], full["candidate_tokens"][~queried])


def test_without_the_check_a_fully_measured_entity_is_asked_about_as_measured(tiny):
    """Without the cross-check only MoIEn's completions change an entity asked about: one with
    every row measured keeps its candidate tensors (the gate's W_g is not run on it again), one
    with a missing row gets its completion, on the same values as when every entity went through
    the completion path (the generator is deterministic in evaluation)."""
    data, store = tiny
    model = build(tiny, cross_check_margin=0.0).eval()
    assert model.use_gan and not model.cross_check
    ents = torch.arange(data.num_entities)
    with torch.no_grad():
        measured = model.inputs(ents, model.inputs.raw(ents))[1]
        complete = measured.all(1)
        assert complete.any() and not complete.all()
        seen = []
        gate_inputs = model.fusion.gate_inputs
        model.fusion.gate_inputs = lambda tokens: seen.append(len(tokens)) or gate_inputs(tokens)
        per = model.per_entity(ents)
        shows = measured.any(1)  # an entity with no measured row is not completed
        assert seen == [len(ents), int((~complete & shows).sum())]  # candidates, then only the completed rows
        for key in ("tokens", "token_norm", "gate_inputs"):
            torch.testing.assert_close(per[key][~shows | complete], per["candidate_" + key][~shows | complete])
        assert per["available"][shows].all() and not per["available"][~shows].any()
        generated = model._as_asked(
            ents, model.inputs.raw(ents), per["candidate_tokens"], measured, model.structural(ents)
        )
        torch.testing.assert_close(per["tokens"], generated)
        torch.testing.assert_close(per["gate_inputs"], gate_inputs(generated))
        assert not torch.allclose(per["tokens"][~complete], per["candidate_tokens"][~complete])


def test_cross_check_needs_two_modalities_and_denoising_not_the_gan(tiny):
    assert build(tiny, cross_check_margin=TRUST).cross_check
    assert build(tiny).cross_check  # on by default
    assert build(tiny, gan=False).cross_check  # part of denoising: w/o GAN keeps it
    assert not build(tiny, cross_check_margin=0.0).cross_check
    for config in ({"denoising": False}, {"modalities": ["text"]}):
        model = build(tiny, cross_check_margin=TRUST, **config)
        assert not model.cross_check and not hasattr(model, "trust_margin"), config


# --- ablations -------------------------------------------------------------------------------
@pytest.mark.parametrize("switch", SWITCHES)
def test_every_ablation_switch_changes_the_outputs(tiny, switch):
    h, r, t = queries(tiny)
    full = build(tiny).eval()
    ablated = build(tiny, **{switch: False}).eval()
    with torch.no_grad():
        assert not torch.allclose(full.score(h, r, t), ablated.score(h, r, t)), switch
        if switch in ("denoising", "dynamic_weights"):
            # same parameters: the switch itself, not a different initialisation, changes the scores
            # (w/o denoising has no cross-check, so no trust parameters)
            ablated.load_state_dict({k: v for k, v in full.state_dict().items() if k in ablated.state_dict()})
            assert not torch.allclose(full.score(h, r, t), ablated.score(h, r, t)), switch


def test_relation_context_off_makes_entity_tables_relation_free(tiny):
    model = build(tiny, relation_context=False).eval()
    with torch.no_grad():
        assert torch.equal(model.entity_table(0), model.entity_table(5))


def test_gan_off_keeps_the_generator_for_the_cross_check_alone(tiny):
    """w/o GAN: no critic and no completion of missing rows; the cross-check keeps MoIEn's
    generator, whose loss is then the reconstruction term alone."""
    data, _ = tiny
    model = build(tiny, gan=False)
    assert model.cross_check and not hasattr(model, "critic") and model.critic_parameters() == []
    assert model.generator_parameters() and model.generator_in_use()
    model.train()
    entities = torch.arange(data.num_entities)
    torch.manual_seed(0)
    loss = model.generator_loss(entities, torch.zeros_like(entities))
    torch.manual_seed(0)
    batch = model._adversarial_batch(entities)
    fake, real = batch["fake"], batch["real"]
    reconstruction = model.config.reconstruction * (fake - real).pow(2).sum(-1).mean() / real.pow(2).sum(-1).mean()
    torch.testing.assert_close(loss, reconstruction)
    with torch.no_grad():  # a missing row is not completed: weight 0, as measured
        per = model.per_entity(entities)
    assert torch.equal(per["available"], per["measured"])


def test_gan_and_denoising_off_build_no_generator_or_critic(tiny):
    model = build(tiny, gan=False, denoising=False)
    assert not hasattr(model, "generator") and not hasattr(model, "critic")
    assert model.critic_parameters() == []
    assert not any(name.startswith(("generator.", "critic.")) for name, _ in model.named_parameters())
    assert len(model.main_parameters()) == len(list(model.parameters()))


def complete_store(store: FeatureStore, modality: str) -> FeatureStore:
    """One modality with every entity's row measured (missing rows filled with random features)."""
    out = FeatureStore(store.num_entities)
    values, mask = store.features[modality].clone(), store.masks[modality].bool()
    values[~mask] = torch.randn(int((~mask).sum()), values.shape[1], generator=torch.Generator().manual_seed(1))
    out.add(modality, values, mask=torch.ones_like(mask))
    return out


def test_the_generator_is_in_use_only_where_a_score_reads_it(tiny):
    """MoIEn's updates matter only when the generator completes, checks or enhances a row. With
    one modality measured for every entity none of these happens: generator_in_use is False, and the
    premise holds: changing the generator changes no training score and no evaluation table."""
    data, store = tiny
    assert build(tiny).generator_in_use()  # missing rows, and the cross-check
    assert build(tiny, cross_check_margin=0.0).generator_in_use()  # missing rows alone
    assert build(tiny, modalities=["text"]).generator_in_use()  # one modality, rows missing
    assert build(tiny, gan=False).generator_in_use()  # the cross-check alone
    assert not build(tiny, gan=False, denoising=False).generator_in_use()
    full = complete_store(store, "text")
    assert build(tiny, full, enhance_mix=0.3).generator_in_use()  # enhancing measured rows reads it
    model = build(tiny, full)
    assert model.use_gan and model.critic_parameters() and not model.generator_in_use()

    h, r, t = queries(tiny, 64)
    negatives = torch.randint(0, data.num_entities, (64, 8))
    flip = torch.arange(64) % 2 == 0

    def outputs():
        model.train()
        torch.manual_seed(3)
        pos, neg = model.score_batch(h, r, t, negatives, flip)
        model.eval()
        with torch.no_grad():
            return pos.detach(), neg.detach(), *model.tables(int(r[0]))

    before = outputs()
    with torch.no_grad():
        for p in model.generator_parameters():
            p.add_(torch.randn_like(p))
    for a, b in zip(before, outputs()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_self_attention_off_keeps_the_critic_conditioned_on_structure(tiny):
    """The ablation replaces the generator's attention; the critic must still see e_s together with
    x (with per-token MLPs its score would split into a(e_s) + b(x): no conditioning)."""
    model = build(tiny, self_attention=False)
    x, s, dx = torch.randn(5, DIM), torch.randn(5, DIM), torch.randn(5, DIM)
    mod = torch.zeros(5, dtype=torch.long)
    with torch.no_grad():
        # under a(e_s) + b(x), moving x changes the score by b(x + dx) - b(x) whatever e_s is
        d1 = model.critic(x + dx, s, mod) - model.critic(x, s, mod)
        d2 = model.critic(x + dx, s.flip(0), mod) - model.critic(x, s.flip(0), mod)
    assert not torch.allclose(d1, d2, atol=1e-5)


# --- adversarial parameter groups --------------------------------------------------------------
def test_main_and_critic_parameters_partition_the_model(tiny):
    model = build(tiny)
    main = {id(p) for p in model.main_parameters()}
    critic = {id(p) for p in model.critic_parameters()}
    assert main and critic and not main & critic
    assert main | critic == {id(p) for p in model.parameters()}
    assert critic == {id(p) for p in model.critic.parameters()}
    assert {id(p) for p in model.generator.parameters()} <= main


def test_critic_loss_trains_only_the_critic(tiny):
    model = build(tiny)
    ents = torch.arange(64)
    out = model.critic_loss(ents, ents % tiny[0].num_relations, 10.0)
    assert set(out) == {"loss", "wasserstein", "gp"}
    assert all(v.shape == () and torch.isfinite(v) for v in out.values())
    assert not out["wasserstein"].requires_grad and not out["gp"].requires_grad
    torch.testing.assert_close(out["loss"].detach(), -out["wasserstein"] + 10.0 * out["gp"])
    out["loss"].backward()
    critic = {id(p) for p in model.critic_parameters()}
    for name, p in model.named_parameters():
        if id(p) not in critic:
            assert p.grad is None, name
    assert model.critic.readout.weight.grad.abs().sum() > 0


def test_critic_loss_of_a_batch_without_measured_modalities_can_be_stepped(tiny):
    hidden = torch.arange(8)
    model = build(tiny, features=masked_store(tiny[1], hidden))
    out = model.critic_loss(hidden, torch.zeros_like(hidden), 10.0)
    assert out["loss"].detach().item() == 0.0 and out["loss"].requires_grad
    out["loss"].backward()  # the engine always calls backward on it


def test_generator_loss_reaches_the_generator(tiny):
    model = build(tiny)
    ents = torch.arange(64)
    loss = model.generator_loss(ents, ents % tiny[0].num_relations)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    for name, p in model.generator.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.generator.out_weight.grad.abs().sum() > 0
    assert model.generator.base.weight.grad.abs().sum() > 0
    assert all(read.weight.grad.abs().sum() > 0 for read in model.generator.read)


def test_the_generator_reads_raw_features_not_the_fusions_tokens(tiny):
    """MoIEn reads each modality through its own projection Q_m: changing the fusion's P_m leaves
    its completions unchanged; changing Q_m changes them."""
    model = build(tiny).eval()
    ents = torch.arange(40)
    shown = torch.rand(40, len(model.inputs), generator=torch.Generator().manual_seed(0)) < 0.5
    with torch.no_grad():
        before = model._generate(model.inputs.raw(ents), model.structural(ents), shown, None)
        for proj in model.inputs.projections:
            proj.weight.mul_(-3.0)
        torch.testing.assert_close(model._generate(model.inputs.raw(ents), model.structural(ents), shown, None), before)
        model.generator.read[0].weight.mul_(-3.0)
        assert not torch.allclose(model._generate(model.inputs.raw(ents), model.structural(ents), shown, None), before)


def test_a_few_joint_steps_reduce_the_kgc_loss(tiny):
    data = tiny[0]
    model = build(tiny)
    main = torch.optim.Adam(model.main_parameters(), lr=2e-2)
    critic = torch.optim.Adam(model.critic_parameters(), lr=1e-4, betas=(0.5, 0.9))
    g = torch.Generator().manual_seed(0)
    batch = data.train[torch.randperm(len(data.train), generator=g)[:64]]
    h, r, t = batch.unbind(1)
    negatives = torch.randint(0, data.num_entities, (64, 8), generator=g)
    corrupt_head = torch.rand(64, generator=g) < 0.5
    ents, rels = torch.cat([h, t]), torch.cat([r, r])

    def kgc():
        pos = model.score(h, r, t)
        neg = model.score_negatives(h, r, t, negatives, corrupt_head)
        return kgc_loss("nssa", pos, neg, 6.0, 1.0)

    model.eval()
    with torch.no_grad():
        before = float(kgc())
    model.train()
    for _ in range(8):
        out = model.critic_loss(ents, rels, 10.0)
        critic.zero_grad(set_to_none=True)
        out["loss"].backward()
        critic.step()
        assert torch.isfinite(out["loss"])
        loss = kgc() + 0.01 * model.generator_loss(ents, rels)
        main.zero_grad(set_to_none=True)
        loss.backward()
        main.step()
        assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        after = float(kgc())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert after < 0.8 * before, (before, after)


def test_only_moiens_own_objective_trains_the_generator(tiny):
    """The KGC loss does not reach the generator (generated tokens enter it detached); the critic
    loss reaches only the critic; the generator loss reaches only the generator."""
    model = build(tiny)
    data = tiny[0]
    h, r, t = data.train[:64].unbind(1)
    negatives = torch.randint(0, data.num_entities, (64, 8), generator=torch.Generator().manual_seed(0))
    corrupt_head = torch.arange(64) % 2 == 0
    ents, rels = torch.cat([h, t]), torch.cat([r, r])
    groups = {
        "generator": {id(p) for p in model.generator.parameters()},
        "critic": {id(p) for p in model.critic.parameters()},
    }

    def reached(loss) -> set[str]:
        model.zero_grad(set_to_none=True)
        loss.backward()
        names = set()
        for p in model.parameters():
            if p.grad is not None and p.grad.abs().sum() > 0:
                names.add(next((g for g, ids in groups.items() if id(p) in ids), "kgc model"))
        return names

    pos, neg = model.score_batch(h, r, t, negatives, corrupt_head)
    assert reached(kgc_loss("nssa", pos, neg, 6.0, 1.0)) == {"kgc model"}
    assert reached(model.critic_loss(ents, rels, 10.0)["loss"]) == {"critic"}
    # (the critic's gradients from the generator loss are dropped: its optimiser zeroes them first)
    assert reached(model.generator_loss(ents, rels)) - {"critic"} == {"generator"}


def test_score_batch_equals_score_and_score_negatives(tiny):
    model = build(tiny).eval()
    h, r, t = queries(tiny)
    negatives = torch.randint(0, tiny[0].num_entities, (12, 6), generator=torch.Generator().manual_seed(3))
    corrupt_head = torch.arange(12) % 3 == 0
    with torch.no_grad():
        pos, neg = model.score_batch(h, r, t, negatives, corrupt_head)
        torch.testing.assert_close(neg, model.score_negatives(h, r, t, negatives, corrupt_head))
        # a positive is scored in the role its row trains: the corrupted side as a candidate
        as_own = model.score_negatives(h, r, t, torch.where(corrupt_head, h, t)[:, None], corrupt_head)[:, 0]
        torch.testing.assert_close(pos, as_own)
        torch.testing.assert_close(pos[~corrupt_head], model.score(h, r, t)[~corrupt_head])


# --- entities without structural evidence -------------------------------------------------------
def test_entities_without_training_triples_use_the_unknown_vector(tiny):
    data = tiny[0]
    model = build(tiny, structure_dropout=0.0).eval()
    model.observe_training_graph(data.train)
    seen = torch.zeros(data.num_entities, dtype=torch.bool)
    seen[data.train[:, [0, 2]].reshape(-1)] = True
    zero_shot = torch.tensor([i for i, g in enumerate(data.entity_groups) if g == "zero-shot"])
    assert not seen[zero_shot].any() and seen[~torch.isin(torch.arange(data.num_entities), zero_shot)].all()
    with torch.no_grad():
        s = model.structural(torch.arange(data.num_entities))
    assert torch.equal(s[zero_shot], model.unknown.expand(len(zero_shot), -1))
    assert torch.equal(s[seen], model.entity.weight[seen])


def test_cold_simulation_follows_the_structure_scale_and_only_in_training(tiny):
    """A share structure_shuffle * (1 - lambda_r) of training pairs get another entity's e_s."""
    data = tiny[0]
    model = build(tiny, structure_dropout=0.0, structure_shuffle=1.0)
    ents = torch.arange(data.num_entities)
    assert model.training and torch.equal(model.structural(ents), model.entity(ents))  # swapped per pair only
    per = model.per_entity(ents)
    rel = torch.zeros_like(ents)
    with torch.no_grad():
        model.fusion.structure_logit.fill_(20.0)  # lambda = 1: structure decides, nothing is swapped
        assert torch.equal(model._pairs(per, ents, rel, distinct=True, internals=True)["structure"], per["structural"])
        model.fusion.structure_logit.fill_(-20.0)  # lambda = 0: (almost) every pair is swapped
        swapped = model._pairs(per, ents, rel, distinct=True, internals=True)["structure"]
        assert (swapped != 0).any()
        model.fusion.structure_logit.fill_(0.0)  # lambda = 1/2: about half
        torch.manual_seed(0)
        half = model._pairs(per, ents, rel, distinct=True, internals=True)["structure"] / 0.5
        share = float((half != per["structural"]).any(1).float().mean())
        assert 0.35 < share < 0.65
        model.eval()
        assert torch.equal(
            model._pairs(model.per_entity(ents), ents, rel, distinct=True, internals=True)["structure"],
            0.5 * model.per_entity(ents)["structural"],
        )


# --- learning what the generator built in ------------------------------------------------------
def test_afme_learns_which_modality_decides_each_relation_and_answers_for_cold_entities(tiny_synth, tmp_path):
    """The tiny preset: each attribute relation is decided by one modality (another encodes it
    weakly), with a pure-noise modality, corrupted and missing rows, and cold entities whose
    attribute triples are all held out. AFME's weights must put the informative modality first for
    every attribute relation, and AFME must beat structure-only RotatE clearly on cold entities."""
    from conftest import trained

    from afme_lib.analysis.modality_weights import relation_profile
    from afme_lib.data.synthetic import read_metadata
    from afme_lib.data.synthetic_oracle import mrr_by_label, slice_labels
    from afme_lib.engine.evaluation import evaluate
    from afme_lib.experiments.run import load_trainer

    meta = read_metadata(tiny_synth)
    fit = TrainConfig(epochs=25, batch_size=256, negatives=16, lr=1e-2, eval_every=0, progress=False, device="cpu")
    cold = {}
    for name in ("rotate", "afme"):
        extra = {"attention_layers": 1, "attention_heads": 2} if name == "afme" else {}
        trained(
            str(tiny_synth),
            ModelConfig(name=name, dim=32, **extra),
            fit,
            tmp_path / name,
            features=str(tiny_synth) if name == "afme" else None,
        )
        trainer = load_trainer(tmp_path / name)
        result = evaluate(trainer.model, trainer.dataset, "test", return_ranks=True)
        cold[name] = mrr_by_label(result["ranks"], slice_labels(trainer.dataset, meta, "test"))["cold/attribute"]
    weights = relation_profile(trainer.model, trainer.dataset, positions=("head",)).weights
    for rel in meta["relations"]:
        if rel["kind"] == "attribute":
            row = weights.loc[rel["name"]].drop("structure")
            assert row.idxmax() == rel["informative_modalities"][0], (rel["name"], row.to_dict())
    assert cold["afme"] > cold["rotate"] + 0.2, cold


# --- checkpoints -----------------------------------------------------------------------------------
def test_state_dict_round_trip_gives_identical_scores(tiny):
    model = build(tiny)
    with torch.no_grad():  # move away from the initialisation so the check is not trivially true
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    fresh = build(tiny, seed=123)
    h, r, t = queries(tiny)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.score(h, r, t), model.score(h, r, t))
        fresh.load_state_dict(model.state_dict())
        assert torch.equal(fresh.score(h, r, t), model.score(h, r, t))
        assert torch.equal(fresh.entity_table(1), model.entity_table(1))


# --- without modalities ------------------------------------------------------------------------------
@pytest.mark.parametrize("features", [None, "no modality"])
def test_without_modalities_afme_is_its_scorer(tiny, features):
    if features == "no modality":
        model = build(tiny, modalities=[])
    else:
        model = build(tiny, features=None)
    model.eval()
    h, r, t = queries(tiny)
    assert model.token_names == ["structure"] and len(model.inputs) == 0
    assert model.critic_parameters() == [] and not hasattr(model, "generator")
    E, R = model.entity.weight, model.relation.weight
    with torch.no_grad():
        torch.testing.assert_close(model.score(h, r, t), model.scorer.score(E[h], R[r], E[t]))
        assert torch.equal(model.entity_table(0), E)
        assert model.introspect(h, r) == {}
        got = model.score_all(h, r, "tail")
    torch.testing.assert_close(got, model.scorer.score_all(E[h], R[r], E, "tail"))


# --- accelerator ----------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_autocast(tiny):
    model = build(tiny).cuda()
    h, r, t = (x.cuda() for x in queries(tiny))
    negatives = torch.randint(0, tiny[0].num_entities, (12, 5), device="cuda")
    corrupt_head = torch.rand(12, device="cuda") < 0.5
    with torch.autocast("cuda", dtype=torch.bfloat16):
        pos = model.score(h, r, t).float()
        neg = model.score_negatives(h, r, t, negatives, corrupt_head).float()
        gen = model.generator_loss(torch.cat([h, t]), torch.cat([r, r])).float()
        crit = model.critic_loss(torch.cat([h, t]), torch.cat([r, r]), 10.0)
    assert pos.shape == (12,) and neg.shape == (12, 5)
    assert all(torch.isfinite(x).all() for x in (pos, neg, gen, crit["loss"]))
    crit["loss"].float().backward()
    (kgc_loss("nssa", pos, neg, 6.0, 1.0) + gen).backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        table = model.entity_table(0)
        scores = model.score_all(h, r, "tail")
    assert table.device.type == "cuda" and table.shape == (tiny[0].num_entities, DIM)
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()
    with torch.no_grad():
        exact = model.score_all(h, r, "tail")
    torch.testing.assert_close(scores, exact, rtol=0.05, atol=0.5)


@pytest.mark.parametrize("token_start, structure_start", [(0.3, 0.95), (1.0, 0.5)])
def test_starting_point_of_the_fusion_follows_its_options(tiny, token_start, structure_start):
    """lambda_r starts at ``structure_start`` for every relation and each measured token's RMS at
    ``token_start`` times the structural embeddings' RMS."""
    model = build(tiny, token_start=token_start, structure_start=structure_start)
    rels = torch.arange(model.num_relations)
    torch.testing.assert_close(model.fusion.structure_scale(rels), torch.full((len(rels),), structure_start))
    with torch.no_grad():
        tokens, measured = model.inputs(torch.arange(model.num_entities))
        rms = tokens[measured].pow(2).mean(-1).sqrt()
        structure_rms = model.entity.weight.pow(2).mean().sqrt()
    torch.testing.assert_close(
        rms, torch.full_like(rms, token_start * float(model.embedding_scale())), rtol=1e-2, atol=1e-3
    )
    assert float(model.embedding_scale()) == pytest.approx(float(structure_rms), rel=0.2)
