"""Entity groups (entity2group.txt): reading, writing, a triple's group, and metrics by group
against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afme_lib.core.config import ModelConfig
from afme_lib.core.errors import DataFormatError
from afme_lib.data.dataset import load_dataset
from afme_lib.data.groups import read_groups, triple_groups, write_groups
from afme_lib.engine.evaluation import compute_metrics, evaluate
from afme_lib.models.registry import create_model


def test_groups_round_trip_and_load_with_the_dataset(tiny_synth):
    ds = load_dataset(tiny_synth)
    assert ds.entity_groups is not None and len(ds.entity_groups) == ds.num_entities
    assert set(ds.entity_groups) == {"warm", "cold", "zero-shot", "value"}
    assert read_groups(tiny_synth / "entity2group.txt", ds.num_entities) == ds.entity_groups


def test_a_folder_without_groups_loads_with_none(tmp_path, tiny_synth):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_synth, copy)
    (copy / "entity2group.txt").unlink()
    assert load_dataset(copy).entity_groups is None


@pytest.mark.parametrize(
    ("body", "line", "problem"),
    [
        ("2\n0\twarm\n", 1, "count line says 2 rows but the file holds 1"),
        ("3\n0\twarm\n1\tcold\n2\twarm\n", 1, "count line says 3 rows but the dataset has 2 entities"),
        ("2\n0\twarm\n0\tcold\n", 3, "entity id 0 listed twice"),
        ("2\n0\twarm\n5\tcold\n", 3, "entity id '5' is not an integer in [0, 2)"),
        ("2\n0\twarm\n1\tcold hot\n", 3, "expected 'entity_id group', got '1\\tcold hot'"),
        ("2\n0\twarm\n1\tc@ld\n", 3, "group 'c@ld': use letters, digits, '-' and '_'"),
    ],
)
def test_bad_group_files_name_the_line_and_problem(tmp_path, body, line, problem):
    path = tmp_path / "entity2group.txt"
    path.write_text(body)
    with pytest.raises(DataFormatError) as err:
        read_groups(path, 2)
    assert str(err.value) == f"{path}:{line}: {problem}"


def test_write_refuses_unwritable_group_names(tmp_path):
    with pytest.raises(ValueError, match="group 'a b' of entity 1"):
        write_groups(tmp_path / "g.txt", ["warm", "a b"])


def test_a_triple_takes_the_group_of_highest_precedence():
    groups = ["warm", "cold", "zero-shot", "value", "custom"]
    triples = np.array([[0, 0, 3], [1, 0, 3], [0, 0, 2], [1, 0, 2], [3, 0, 3], [4, 0, 3], [4, 0, 4]])
    assert triple_groups(triples, groups).tolist() == [
        "warm",
        "cold",
        "zero-shot",
        "zero-shot",
        "value",
        "value",
        "custom",
    ]


def test_metrics_by_group_and_relation_match_a_brute_force_reference(tiny_synth):
    ds = load_dataset(tiny_synth)
    torch.manual_seed(0)
    model = create_model(ModelConfig(name="rotate", dim=16), ds.num_entities, ds.num_relations)
    res = evaluate(model, ds, "test", return_ranks=True)
    group = np.array(ds.entity_groups)
    expected_groups = {}
    for i, (h, _r, t) in enumerate(ds.test.tolist()):
        g = next(x for x in ("zero-shot", "cold", "warm", "value") if x in (group[h], group[t]))
        expected_groups.setdefault(g, []).append(i)
    assert list(res["by_group"]) == [g for g in ("zero-shot", "cold", "warm", "value") if g in expected_groups]
    for g, rows in expected_groups.items():
        ranks = np.concatenate([res["ranks"]["tail"][rows], res["ranks"]["head"][rows]])
        assert {k: v for k, v in res["by_group"][g].items() if k != "self_answer"} == compute_metrics(
            torch.from_numpy(ranks)
        )
    for rid, name in enumerate(ds.relation_names):
        rows = (ds.test[:, 1] == rid).numpy()
        ranks = np.concatenate([res["ranks"]["tail"][rows], res["ranks"]["head"][rows]])
        assert {k: v for k, v in res["by_relation"][name].items() if k != "self_answer"} == compute_metrics(
            torch.from_numpy(ranks)
        )
