"""benchmarks/featureless_completion.py: one trained AFME run read under the current rule and under
the earlier one, which completed entities that show no modality."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script, trained

from afme_lib.analysis import slices
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.experiments.run import open_run


@pytest.fixture(scope="module")
def afme_run(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("featureless") / "afme"
    model = ModelConfig(name="afme", dim=16, attention_layers=1, attention_heads=2, noise_dim=4, cross_check_margin=1.5)
    train = TrainConfig(epochs=2, batch_size=128, eval_every=1, device="cpu", progress=False, compile="off")
    trained(tiny_synth, model, train, out)
    return out


def test_now_is_the_models_own_reading_and_the_earlier_rule_changes_only_featureless_queries(afme_run):
    script = load_script("featureless_completion")
    row = script.evaluate_both(afme_run)
    run = open_run(afme_run)
    trainer = run.trainer
    masks = slices.slice_masks(trainer.dataset, run.truth, "valid")
    ranks = slices.model_ranks(trainer.model, trainer.dataset, "valid", trainer.filter_index)
    own = slices.slice_mrr(ranks, masks)
    for name in script.SLICES:
        assert row[f"{name} (now)"] == pytest.approx(100 * own[name])
    # the tail side of clean queries asks about the item, which shows its rows: the same either way;
    # the head side asks about the value entity, which shows none: the earlier rule completed it
    assert row["clean tail (now)"] == pytest.approx(row["clean tail (earlier)"])
    assert row["clean head (now)"] != pytest.approx(row["clean head (earlier)"])
    clean = masks["cold/attribute/clean"]
    assert row["clean head (now)"] == pytest.approx(100 * float(np.mean(1.0 / np.asarray(ranks["head"])[clean])))


def test_runs_are_found_by_the_main_jobs_settings(afme_run, tmp_path, monkeypatch):
    import shutil

    script = load_script("featureless_completion")
    cache = tmp_path / "cache"
    shutil.copytree(afme_run, cache / "afme-synth-tiny-seed0-0123456789")
    monkeypatch.setattr(script.main_job, "TRAINING", {"epochs": 2})
    monkeypatch.setattr(script.main_job, "MODEL_SETTINGS", {"afme": {"dim": 16}})
    assert [p.name for p in script.afme_runs(cache, "tiny", 0)] == ["afme-synth-tiny-seed0-0123456789"]
    assert script.afme_runs(cache, "tiny", 1) == []  # another seed's graph
    monkeypatch.setattr(script.main_job, "MODEL_SETTINGS", {"afme": {"dim": 32}})
    assert script.afme_runs(cache, "tiny", 0) == []  # other settings
    out = tmp_path / "page.md"
    assert script.main(["--presets", "tiny", "--seeds", "0", "--runs-root", str(cache), "--out", str(out)]) == 1
