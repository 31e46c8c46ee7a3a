"""The fast paths of the per-entity and per-pair work give what the plain indexing gave: the row
gather (values and gradients), tokens of missing rows, and the unknown vector's skip."""

from __future__ import annotations

import pytest
import torch

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import take_rows
from afme_lib.models.modality_inputs import ModalityInputs
from afme_lib.models.registry import create_model


@pytest.mark.parametrize("shape", [(7, 5), (7, 3, 4), (7, 1, 6)])
def test_take_rows_matches_indexing_in_values_and_gradients(shape):
    torch.manual_seed(0)
    table = torch.randn(*shape, requires_grad=True)
    index = torch.tensor([3, 0, 3, 6, 6, 6, 1])
    weights = torch.randn(len(index), *shape[1:])
    (take_rows(table, index) * weights).sum().backward()
    fast = table.grad.clone()
    table.grad = None
    (table[index] * weights).sum().backward()
    assert torch.equal(take_rows(table, index), table[index])
    torch.testing.assert_close(fast, table.grad)
    assert fast[[2, 4, 5]].eq(0).all()  # rows never taken get no gradient


def test_take_rows_of_non_float_and_non_contiguous_tables():
    mask = torch.tensor([[True, False], [False, False], [True, True]])
    assert torch.equal(take_rows(mask, torch.tensor([2, 0, 2])), mask[[2, 0, 2]])
    wide = torch.arange(24.0).view(3, 8)[:, ::2].view(3, 2, 2)  # a strided view
    assert torch.equal(take_rows(wide, torch.tensor([1, 1, 0])), wide[[1, 1, 0]])


def store_with(rows: torch.Tensor, mask: torch.Tensor) -> FeatureStore:
    """A store built directly (not through FeatureStore.add, which zeroes missing rows)."""
    return FeatureStore(len(rows), {"text": rows}, {"text": mask})


@pytest.mark.parametrize("zeroed", [True, False])
def test_missing_rows_give_zero_tokens_whatever_they_hold(zeroed):
    torch.manual_seed(0)
    rows = torch.randn(6, 5)
    mask = torch.tensor([True, False, True, True, False, True])
    if zeroed:
        rows[~mask] = 0
    inputs = ModalityInputs(store_with(rows, mask), dim=4)
    assert inputs._zero_when_missing == [zeroed]  # garbage in a missing row keeps the masking
    tokens, present = inputs(torch.arange(6))
    assert torch.equal(present[:, 0], mask)
    assert tokens[~mask].eq(0).all() and tokens[mask].ne(0).any(-1).all()


def test_unknown_vector_follows_changes_to_which_entities_lack_structure():
    model = create_model(
        ModelConfig(name="afme", dim=8, modalities=["text"], structure_dropout=0.0),
        5,
        2,
        store_with(torch.randn(5, 3), torch.ones(5, dtype=torch.bool)),
    )
    ids = torch.arange(5)
    with torch.no_grad():
        model.observe_training_graph(torch.tensor([[0, 0, 1], [2, 1, 3], [4, 0, 4]]))
        assert torch.equal(model.structural(ids), model.entity.weight)  # every entity has triples
        model.no_structure[2] = True  # changed in place
        assert torch.equal(model.structural(ids)[2], model.unknown)
        model.no_structure = torch.zeros(5, dtype=torch.bool)  # replaced
        assert torch.equal(model.structural(ids), model.entity.weight)
        model.observe_training_graph(torch.tensor([[0, 0, 1]]))
        assert torch.equal(model.structural(ids)[2:], model.unknown.expand(3, -1))
