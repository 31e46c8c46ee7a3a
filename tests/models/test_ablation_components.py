"""Each AFME ablation removes exactly its component: built with and without its switch, the model
differs in the code paths and parameters the component owns and in nothing else.

Three views of a model are compared: the code paths it takes (which parts of MoIFu and MoIEn are
on), the shapes of its state (parameters and buffers), and the parameters one training step
reaches (a gradient from the main loss, MoIEn's generator term included, or from the critic's)."""

from __future__ import annotations

import pytest
import torch

from afme_lib.core import ablations
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import write_synthetic
from afme_lib.engine.training import batch_losses
from afme_lib.models.registry import create_model

GATES = ("fusion.gate_weight", "fusion.gate_relation", "fusion.gate_bias")
WEIGHTS = ("fusion.relevance_context", "fusion.U", "fusion.beta_raw", "fusion.tau_raw")
PER_RELATION = (
    "fusion.gate_relation",
    "fusion.relevance_context",
    "fusion.tau_raw",
    "fusion.structure_logit",
    "fusion.generated_bias",
)
# switch: (the code paths it turns off, the names -- or name prefixes -- of the state it owns)
# Two terms of the weights' logits read another component: beta scales alpha, the share of a
# token's energy its gate lets pass (no gates: alpha is 1 for every token, and beta a shift the
# softmax ignores); pi_{r,m} offsets a generated token (no GAN: none is generated).
OWNS = {
    "denoising": ({"gates", "cross-check"}, (*GATES, "fusion.beta_raw", "agreement_mean", "agreement_std")),
    "dynamic_weights": ({"dynamic weights"}, (*WEIGHTS, "fusion.generated_bias")),
    "relation_context": ({"relation context"}, PER_RELATION),
    # Generated tokens are gone, and with them their logit offset pi_{r,m}.
    "gan": ({"completes missing rows", "critic"}, ("critic.", "fusion.generated_bias")),
    # The generator makes the cross-check's completions too: declared in the ablation's component.
    "self_attention": ({"generator attends"}, ("generator.",)),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("ablations") / "tiny", "tiny", seed=0)
    data = load_dataset(folder)
    return data, FeatureStore.load(folder, data.num_entities, verbose=False)


def build(tiny, **switches):
    data, store = tiny
    torch.manual_seed(0)
    cfg = ModelConfig(name="afme", dim=16, attention_heads=2, noise_dim=4, **switches)
    return create_model(cfg, data.num_entities, data.num_relations, store)


def code_paths(model) -> set[str]:
    paths = {
        "gates": model.fusion.denoising,
        "dynamic weights": model.fusion.dynamic_weights,
        "relation context": model.fusion.relation_context,
        "cross-check": model.cross_check,
        "completes missing rows": model.use_gan,
        "critic": bool(model.critic_parameters()),
        "generator attends": hasattr(model, "generator") and model.generator.mixer.self_attention,
    }
    return {name for name, on in paths.items() if on}


def state_shapes(model) -> dict[str, tuple]:
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def reached(model, tiny) -> set[str]:
    """Names of the parameters that one training step's losses give a nonzero gradient."""
    data, _ = tiny
    model.train()
    torch.manual_seed(1)
    batch = data.train[:256]
    negatives = torch.randint(0, data.num_entities, (len(batch), 8))
    corrupt_head = torch.rand(len(batch)) < 0.5
    cfg = TrainConfig(epochs=1, lambda_adv=1.0)
    loss = sum(batch_losses(model, cfg, batch, negatives, corrupt_head, torch.device("cpu")).values())
    if model.critic_parameters():
        entities = torch.cat([batch[:, 0], batch[:, 2]])
        loss = loss + model.critic_loss(entities, torch.zeros_like(entities), 10.0)["loss"]
    loss.backward()
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def owned(name: str, owns: tuple[str, ...]) -> bool:
    return any(name == o or (o.endswith(".") and name.startswith(o)) for o in owns)


def test_every_named_ablation_is_checked_here():
    assert {a.switch for a in ablations.ABLATIONS.values()} == set(OWNS)


@pytest.mark.parametrize("switch", sorted(OWNS))
def test_a_switch_removes_exactly_its_component(tiny, switch):
    paths, owns = OWNS[switch]
    full, ablated = build(tiny), build(tiny, **{switch: False})

    assert code_paths(full) - code_paths(ablated) == paths
    assert code_paths(ablated) <= code_paths(full)

    before, after = state_shapes(full), state_shapes(ablated)
    changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
    assert all(owned(n, owns) for n in changed), sorted(n for n in changed if not owned(n, owns))

    full_reached, ablated_reached = reached(full, tiny), reached(ablated, tiny)
    differ = full_reached ^ ablated_reached
    assert all(owned(n, owns) for n in differ), sorted(n for n in differ if not owned(n, owns))
    assert changed | differ, f"{switch}: no parameter differs"  # relation context: shapes only


def test_without_the_gan_the_cross_check_still_checks_measured_rows(tiny):
    """w/o GAN keeps denoising's row check: an entity asked about has its measured rows blended
    toward the generator's completion, while its missing rows stay missing."""
    data, _ = tiny
    model = build(tiny, gan=False).eval()
    entities = torch.arange(data.num_entities)
    with torch.no_grad():
        per = model.per_entity(entities)
    measured = per["measured"]
    assert torch.equal(per["available"], measured)
    moved = (per["tokens"] - per["candidate_tokens"]).norm(dim=-1) > 1e-6
    assert moved[measured].any()  # the check blends some measured rows
    assert not moved[~measured].any()  # nothing fills a missing row


def test_the_self_attention_switch_reaches_the_cross_checks_completions(tiny):
    """The declared dependency: the cross-check completes rows with the same generator whose
    attention the switch replaces, so its completions differ between the two models."""
    data, _ = tiny
    entities = torch.arange(data.num_entities)
    completions = []
    for attends in (True, False):
        model = build(tiny, self_attention=attends).eval()
        with torch.no_grad():
            raw = model.inputs.raw(entities)
            tokens, measured = model.inputs(entities, raw)
            completions.append(model._cross_check(raw, tokens, measured)[1])
    assert not torch.allclose(*completions)
    assert "cross-check" in ablations.ABLATIONS["w/o self-attention"].component
