"""NATIVE: relation-guided fusion weights against a loop, entity tables, the ablation switches,
the collaborative adversarial terms (reversed generator gradient, rescaled fakes, the gradient
penalty's closed form under RotatE), learning on the tiny preset, and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.evaluation import evaluate
from afme_lib.engine.run_folder import read_log
from afme_lib.engine.training import Trainer, loss_context
from afme_lib.interfaces.cli import main
from afme_lib.models import native as native_mod
from afme_lib.models.registry import create_model

N, R, DIM = 10, 4, 8


@pytest.fixture
def store(small_store):
    """Image, text and audio; entity 0 has none, entity 1 only text, entity 2 image and audio (conftest)."""
    return small_store(N, {"image": 5, "text": 7, "audio": 3})


def build(store, seed=0, **kw):
    torch.manual_seed(seed)
    model = create_model(
        ModelConfig(name="native", dim=DIM, noise_dim=4, **{"structure_dropout": 0.0, **kw}), N, R, store
    )
    with torch.no_grad():  # spread the temperatures so relations really differ
        model.temperature_logit.copy_(torch.linspace(-2, 2, len(model.temperature_logit)))
    return model


def loop_fused(model, e, r):
    """The fusion written out with math.exp, one token at a time."""
    tokens = [model.entity.weight[e]]
    for i in range(len(model.inputs)):
        if getattr(model.inputs, f"present_{i}")[e]:
            f = getattr(model.inputs, f"features_{i}")[e]
            h = model.inputs.projections[i].weight @ f
            tokens.append(h / h.pow(2).mean().add(1e-6).sqrt() * model.inputs.log_scale[i].exp())
    k = 0 if not model.config.relation_context else r
    tau = 1 / (1 + math.exp(-float(model.temperature_logit[k])))
    logits = [float(model.omega @ torch.tanh(x)) / tau for x in tokens]
    exps = [math.exp(v - max(logits)) for v in logits]
    weights = [x / sum(exps) for x in exps]
    return sum(w * x for w, x in zip(weights, tokens)), weights


def test_fusion_weights_and_embeddings_equal_the_loop(store):
    model = build(store).eval()
    with torch.no_grad():
        for e in range(N):
            for r in range(R):
                fused, weights = loop_fused(model, e, r)
                got = model.entity_repr(torch.tensor([e]), torch.tensor([r]))[0]
                torch.testing.assert_close(got, fused, rtol=1e-5, atol=1e-6)
                w = model.introspect(torch.tensor([e]), torch.tensor([r]))["weights"][0]
                present = [True] + [bool(getattr(model.inputs, f"present_{i}")[e]) for i in range(3)]
                assert torch.equal(w == 0, ~torch.tensor(present))  # missing modalities: weight exactly 0
                torch.testing.assert_close(
                    w[torch.tensor(present)], torch.tensor(weights, dtype=w.dtype), rtol=1e-5, atol=1e-7
                )
        # the entity with no modality is its structural embedding
        assert torch.equal(model.entity_repr(torch.tensor([0]), torch.tensor([2]))[0], model.entity.weight[0])


def test_fusion_weights_function_matches_softmax_with_temperature():
    gen = torch.Generator().manual_seed(1)
    tokens, omega = torch.randn(3, 4, 5, generator=gen), torch.randn(5, generator=gen)
    present = torch.tensor([[True, True, False, True], [True, False, False, False], [True] * 4])
    tau = torch.tensor([0.3, 0.9, 0.5])
    w = native_mod.fusion_weights(tokens, present, omega, tau)
    for n in range(3):
        logits = [
            (omega @ torch.tanh(tokens[n, m])).item() / tau[n].item() if present[n, m] else -math.inf for m in range(4)
        ]
        ref = torch.softmax(torch.tensor(logits), 0)
        torch.testing.assert_close(w[n], ref)


def test_batched_shapes_and_tables_agree_with_single_pairs(store):
    model = build(store).eval()
    ents = torch.tensor([[1, 2, 3], [4, 0, 9]])
    rels = torch.tensor([[0], [3]])
    with torch.no_grad():
        batched = model.entity_repr(ents, rels)
        assert batched.shape == (2, 3, DIM)
        for b in range(2):
            for k in range(3):
                single = model.entity_repr(ents[b, k : k + 1], rels[b])
                torch.testing.assert_close(batched[b, k], single[0])
        for r in range(R):
            table = model.entity_table(r)
            torch.testing.assert_close(table, model.entity_repr(torch.arange(N), torch.tensor([r])))
    with pytest.raises(ValueError, match="needs a relation"):
        model.entity_table(None)


def test_ablation_switches(store):
    uniform = build(store, dynamic_weights=False).eval()
    w = uniform.introspect(torch.tensor([2, 1, 0]), torch.tensor([0, 1, 2]))["weights"]
    torch.testing.assert_close(w, torch.tensor([[1 / 3, 1 / 3, 0, 1 / 3], [0.5, 0, 0.5, 0], [1.0, 0, 0, 0]]))
    shared = build(store, relation_context=False).eval()
    assert shared.temperature_logit.shape == (1,)
    with torch.no_grad():
        reps = [shared.entity_repr(torch.tensor([2]), torch.tensor([r])) for r in range(R)]
    assert all(torch.equal(reps[0], x) for x in reps[1:])
    no_gan = build(store, gan=False)
    assert not hasattr(no_gan, "generator")
    assert (
        no_gan.training_losses(
            torch.tensor([[1, 0, 2]]),
            torch.zeros(1, 2, dtype=torch.long),
            torch.tensor([False]),
            loss_context(TrainConfig()),
        )
        == {}
    )


def test_generated_tokens_have_the_measured_token_norm(store):
    model = build(store)
    tokens, _ = model.tokens(torch.arange(N))
    fakes = model.generate(tokens)
    norms = fakes.norm(dim=-1)
    expected = model.inputs.log_scale.exp() * math.sqrt(DIM)
    torch.testing.assert_close(norms, expected.expand_as(norms).detach(), rtol=1e-4, atol=1e-5)


def test_generator_ascends_what_the_kgc_model_descends(store, monkeypatch):
    """Through the gradient-reversal layer, G's gradient of L_adv is minus the gradient of
    lambda_adv * mean fake score, while the KGC model's parameters get L_adv's own gradient."""
    batch = torch.tensor([[1, 0, 2], [3, 1, 4], [5, 2, 6], [7, 3, 8]])
    noise = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    cfg = TrainConfig(lambda_adv=0.5, lambda_gp=0.0)

    def grads_of(model, loss):
        params = [model.generator.net[0].weight, model.relation.weight, model.omega]
        return torch.autograd.grad(loss, params)

    model = build(store)
    monkeypatch.setattr(model, "adversarial_scores", lambda b, noise_=None, f=model.adversarial_scores: f(b, noise))
    terms = model.training_losses(batch, None, None, loss_context(cfg))
    assert set(terms) == {"native_adv"}
    g_adv = grads_of(model, terms["native_adv"])

    monkeypatch.setattr(native_mod, "reverse_gradient", lambda x: x)  # plain gradients, same forward
    out = model.adversarial_scores(batch, noise)
    adv = 0.5 * (out["fake"].mean(1).mean() - out["real"].mean())
    torch.testing.assert_close(terms["native_adv"], adv)
    g_plain = grads_of(model, adv)
    torch.testing.assert_close(g_adv[0], -g_plain[0])  # generator: reversed
    torch.testing.assert_close(g_adv[1], g_plain[1])  # KGC model: as is
    torch.testing.assert_close(g_adv[2], g_plain[2])
    assert g_plain[0].abs().sum() > 0 and g_plain[1].abs().sum() > 0


def test_gradient_penalty_under_rotate_is_its_closed_form(store):
    """d/dx of -sum_k |h_k e^{i theta_k} - t_k| has one unit complex entry per coordinate for
    the head and for the tail, so ||grad|| = sqrt(D) and the penalty is (sqrt(D) - 1)^2."""
    model = build(store)
    batch = torch.tensor([[1, 0, 2], [3, 1, 4], [5, 2, 6]])
    terms = model.training_losses(batch, None, None, loss_context(TrainConfig(lambda_adv=0.2, lambda_gp=3.0)))
    torch.testing.assert_close(terms["native_gp"], torch.tensor(0.2 * 3.0 * (math.sqrt(DIM) - 1) ** 2))
    terms["native_gp"].backward()  # twice differentiable through the scorer


def test_native_learns_the_tiny_preset_and_logs_its_terms(tiny_synth):
    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    trainer = Trainer(
        data,
        ModelConfig(name="native", dim=32, noise_dim=8),
        TrainConfig(epochs=5, batch_size=512, negatives=8, lr=0.05, eval_every=0, progress=False, device="cpu"),
        None,
        features=store,
    )
    before = evaluate(trainer.model, data, "train")["mrr"]
    state = trainer.fit()
    after = evaluate(trainer.model, data, "train")["mrr"]
    assert before < 0.05 and after > 2 * before, (before, after)
    assert {"kgc", "native_adv", "native_gp", "loss"} <= set(state.history[0])


def test_cli_trains_native_with_features(tiny_synth, tmp_path, capsys):
    run = tmp_path / "native"
    code = main(
        [
            "train",
            "--model",
            "native",
            "--dataset",
            str(tiny_synth),
            "--features",
            str(tiny_synth),
            "--out",
            str(run),
            "--dim",
            "16",
            "--epochs",
            "1",
            "--noise-dim",
            "4",
            "--lambda-adv",
            "0.001",
            "--lambda-gp",
            "0.1",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0 and capsys.readouterr().out.splitlines()[-1].startswith(f"run {run}: test MRR ")
    (record,) = read_log(run)
    assert record["native_adv"] != 0 and record["native_gp"] > 0
