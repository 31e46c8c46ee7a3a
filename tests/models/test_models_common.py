"""What every registered model must do, checked for each name in the registry.

A new model is covered by registering it: it is built on the tiny synthetic preset (with its
features), trained for a few steps through the engine's own batch loss (``train.batch_losses``,
so every term the engine adds -- adversarial ones included -- is exercised), saved and loaded,
and its batched ranking scores are compared with ``score``. A throw-away model placed outside the
package shows that "a new model is one file": the registry, this contract, the CLI and the grid
take it with no other edit.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch

import afme_lib.models
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.synthetic import write_synthetic
from afme_lib.engine.training import batch_losses
from afme_lib.experiments.grid.spec import parse_grid
from afme_lib.interfaces.cli import main
from afme_lib.models.base import KGModel
from afme_lib.models.registry import MODEL_REGISTRY, create_model, model_names

DIM = 16
# Every adversarial term on, at weights that keep three steps finite.
TRAIN = TrainConfig(lambda_adv=0.1, lambda_gp=10.0, device="cpu")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = write_synthetic(tmp_path_factory.mktemp("common") / "tiny", "tiny", seed=0)
    data = load_dataset(folder)
    return data, FeatureStore.load(folder, data.num_entities, verbose=False)


def build(tiny, name, seed=0) -> KGModel:
    data, store = tiny
    torch.manual_seed(seed)
    cfg = ModelConfig(name=name, dim=DIM, attention_heads=2, noise_dim=4)
    return create_model(cfg, data.num_entities, data.num_relations, store)


def train_steps(model: KGModel, data, steps: int = 3) -> tuple[list[float], set[str]]:
    """A few optimiser steps as the trainer takes them: the critic's step on ``critic_loss`` for a
    model with a critic, then the main step on the sum of :func:`afme_lib.engine.training.batch_losses`.
    Returns the losses and the names of the terms they summed."""
    critic_params = model.critic_parameters()
    main = torch.optim.Adam(model.main_parameters(), lr=1e-2)
    critic = torch.optim.Adam(critic_params, lr=1e-4, betas=(0.5, 0.9)) if critic_params else None
    g = torch.Generator().manual_seed(0)
    losses, names = [], set()
    model.train()
    for _ in range(steps):
        batch = data.train[torch.randint(0, len(data.train), (32,), generator=g)]
        h, r, t = batch.unbind(1)
        negatives = torch.randint(0, data.num_entities, (32, 4), generator=g)
        corrupt_head = torch.rand(32, generator=g) < 0.5
        if critic is not None:
            out = model.critic_loss(torch.cat([h, t]), torch.cat([r, r]), TRAIN.lambda_gp)
            assert {"loss", "wasserstein", "gp"} <= set(out)
            critic.zero_grad(set_to_none=True)
            out["loss"].backward()
            critic.step()
        assert model.score(h, r, t).shape == (32,)
        assert model.score_negatives(h, r, t, negatives, corrupt_head).shape == (32, 4)
        terms = batch_losses(model, TRAIN, batch, negatives, corrupt_head, torch.device("cpu"))
        assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values()), terms
        loss = sum(terms.values())
        main.zero_grad(set_to_none=True)
        loss.backward()
        main.step()
        losses.append(loss.detach().item())
        names |= set(terms)
    model.eval()
    return losses, names


def check_contract(tiny, name) -> set[str]:
    """The shared checks; returns the names of the training terms the model produced."""
    data = tiny[0]
    model = build(tiny, name)
    assert isinstance(model, KGModel) and model.registered_name == name
    main_ids, critic_ids = {id(p) for p in model.main_parameters()}, {id(p) for p in model.critic_parameters()}
    assert not main_ids & critic_ids and main_ids | critic_ids == {id(p) for p in model.parameters()}

    losses, terms = train_steps(model, data)
    assert "kgc" in terms
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert all(torch.isfinite(p).all() for p in model.parameters())

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(tiny, name, seed=1).eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True))

    h, r, t = data.test[:5].unbind(1)
    n = data.num_entities
    every = torch.arange(n).expand(5, n)
    with torch.no_grad():
        torch.testing.assert_close(fresh.score(h, r, t), model.score(h, r, t), rtol=0, atol=0)
        tails = fresh.score_all(h, r, "tail")
        heads = fresh.score_all(t, r, "head")
        assert tails.shape == (5, n) and heads.shape == (5, n)
        # every entity as the corrupted side: the training path's scores of the same queries
        as_tail = model.score_negatives(h, r, t, every, torch.zeros(5, dtype=torch.bool))
        as_head = model.score_negatives(h, r, t, every, torch.ones(5, dtype=torch.bool))
        torch.testing.assert_close(tails, as_tail, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(heads, as_head, rtol=1e-5, atol=1e-4)
        # the true tail's entry is the triple's own score (score reads a triple as a tail query)
        torch.testing.assert_close(tails.gather(1, t[:, None]).squeeze(1), model.score(h, r, t), rtol=1e-5, atol=1e-4)
    return terms


def test_the_registry_lists_the_multimodal_models():
    assert {"afme", "ikrl", "mm-concat"} <= set(model_names())


@pytest.mark.parametrize("name", model_names())
def test_registered_model_trains_saves_loads_and_ranks(tiny, name):
    check_contract(tiny, name)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("afme", {"generator"}),
        ("mmkrl", {"extra", "mmkrl_adv"}),
        ("native", {"native_adv", "native_gp"}),
        ("rotate", set()),
    ],
)
def test_the_contract_trains_the_adversarial_terms_the_engine_trains(tiny, name, expected):
    terms = check_contract(tiny, name)
    assert terms == {"kgc", *expected}


@pytest.mark.parametrize("name", model_names())
def test_score_batch_scores_what_score_and_score_negatives_score(tiny, name):
    # Models that represent each distinct entity of a batch once (base.score_batch's per-entity
    # path) or that override score_batch must give the scores of the plain per-row calls.
    data, _ = tiny
    model = build(tiny, name).eval()
    g = torch.Generator().manual_seed(5)
    batch = data.train[torch.randperm(len(data.train), generator=g)[:12]]
    h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
    negatives = torch.randint(0, data.num_entities, (12, 5), generator=g)
    negatives[0, :2] = h[0]  # an entity repeated across roles
    corrupt_head = torch.arange(12) % 3 == 0
    with torch.no_grad():
        pos, neg = model.score_batch(h, r, t, negatives, corrupt_head)
        torch.testing.assert_close(neg, model.score_negatives(h, r, t, negatives, corrupt_head))
        if not model.relation_conditioned:  # AFME scores a positive in its row's role (tests/models/test_afme.py)
            torch.testing.assert_close(pos, model.score(h, r, t))


# --- a new model is one file ----------------------------------------------------------------------
THROWN_AWAY = """
\"\"\"A model that exists only for a test: TransE over the structural embedding plus the mean
present modality token.\"\"\"
import torch

from afme_lib.models.base import KGModel
from afme_lib.models.modality_inputs import ModalityInputs
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import make_scorer


@register_model("thrownaway")
class ThrownAway(KGModel):
    def __init__(self, config, num_entities, num_relations, features=None):
        super().__init__(config, num_entities, num_relations)
        dim = self.init_embeddings(make_scorer("transe", p_norm=config.p_norm))
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())

    def relation_repr(self, relations):
        return self.relation(relations)

    def entity_repr(self, entities, relations=None):
        flat = entities.reshape(-1)
        rep = self.entity(flat)
        if len(self.inputs):
            tokens, present = self.inputs(flat)
            rep = rep + tokens.sum(1) / present.sum(1, keepdim=True).clamp(min=1)
        return rep.view(*entities.shape, -1)
"""


@pytest.fixture
def thrown_away(tmp_path, monkeypatch):
    """``thrownaway.py`` in a folder outside the package, put on the models package's search path
    (how a model module kept elsewhere joins the registry); unregistered afterwards."""
    folder = tmp_path / "more_models"
    folder.mkdir()
    (folder / "thrownaway.py").write_text(THROWN_AWAY)
    monkeypatch.setattr(afme_lib.models, "__path__", [*afme_lib.models.__path__, str(folder)])
    yield "thrownaway"
    MODEL_REGISTRY.pop("thrownaway", None)
    sys.modules.pop("afme_lib.models.thrownaway", None)


def test_a_new_model_is_one_file(thrown_away, tiny, tiny_synth, tmp_path):
    assert "thrownaway" in model_names()
    assert check_contract(tiny, "thrownaway") == {"kgc"}
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                str(tiny_synth),
                "--features",
                str(tiny_synth),
                "--out",
                str(out),
                "--model",
                "thrownaway",
                "--dim",
                "8",
                "--epochs",
                "1",
                "--eval-every",
                "1",
                "--batch-size",
                "256",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (out / "metrics.json").is_file()
    grid = parse_grid(
        {
            "name": "thrown",
            "notebook": str(ROOT / "notebooks" / "02_training.ipynb"),
            "parameters": {"dataset": "synth:tiny", "epochs": 1},
            "variants": {"new": {"model": "thrownaway"}, "old": {"model": "transe"}},
        }
    )
    assert [c.params["model"] for c in grid.cells()] == ["thrownaway", "transe"]
