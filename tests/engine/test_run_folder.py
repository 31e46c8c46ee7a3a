"""Run folders read through RunFolder: typed config (old folders too), metrics, log, checkpoints."""

from __future__ import annotations

import json

import pytest

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.errors import AfmeError
from afme_lib.engine.run_folder import BEST, LAST, RunConfig, RunFolder, append_log, read_log, truncate_log


def _config(**train) -> RunConfig:
    return RunConfig.new("MKG-W", None, None, ModelConfig(name="afme", dim=32), TrainConfig(epochs=3, **train))


def test_config_round_trips_in_the_config_json_layout(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert not folder.started and not folder.finished
    config = _config()
    folder.write_config(config)
    assert folder.started and folder.config == config
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert list(saved) == [
        "dataset",
        "features",
        "data_dir",
        "feature_placement",
        "world_size",
        "model",
        "train",
        "fingerprint",
        "afme_version",
        "torch_version",
        "git_commit",
    ]
    assert saved["fingerprint"] == RunFolder(tmp_path / "run").config.fingerprint()
    assert saved["train"]["epochs"] == 3 and saved["model"]["name"] == "afme"


def test_an_old_config_json_still_loads(tmp_path):
    # written before adv_epsilon was a TrainConfig field (TrainConfig.extra) and before
    # feature_placement / world_size were recorded; an unknown key is kept as it is
    old = {
        "dataset": "/d/x",
        "features": None,
        "data_dir": None,
        "model": {"name": "mmkrl"},
        "train": {"epochs": 2, "extra": {"adv_epsilon": 0.3}},
        "afme_version": "0.0.9",
        "note": "kept",
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = RunFolder(tmp_path).config
    assert config.train == TrainConfig(epochs=2, adv_epsilon=0.3, self_negatives=0.0)
    assert config.model == ModelConfig(name="mmkrl")
    assert (config.feature_placement, config.world_size, config.other) == ("auto", 1, {"note": "kept"})
    assert config.to_dict()["note"] == "kept" and "extra" not in config.to_dict()["train"]


def test_an_afme_run_from_before_the_cross_check_loads_without_it(tmp_path):
    """AFME runs written before cross_check_margin existed trained without the row check: they
    load with it off (their checkpoints hold no agreement statistics); other models and new AFME
    runs keep what they say, or the default."""

    def load(model):
        (tmp_path / "config.json").write_text(
            json.dumps({"dataset": "/d/x", "features": None, "data_dir": None, "model": model, "train": {}})
        )
        return RunFolder(tmp_path).config.model

    assert load({"name": "afme", "dim": 8}).cross_check_margin == 0.0
    assert load({"name": "afme", "cross_check_margin": 1.5}).cross_check_margin == 1.5
    assert load({"name": "rotate"}) == ModelConfig(name="rotate")
    assert ModelConfig(name="afme").cross_check_margin == 2.0


def test_a_run_from_before_self_negatives_loads_without_them(tmp_path):
    """Run folders written before the self_negatives field trained without self-negatives, whatever
    the field's default is now; a folder that states it keeps its value."""

    def load(train):
        (tmp_path / "config.json").write_text(
            json.dumps(
                {"dataset": "/d/x", "features": None, "data_dir": None, "model": {"name": "rotate"}, "train": train}
            )
        )
        return RunFolder(tmp_path).config.train

    assert load({"epochs": 3}).self_negatives == 0.0
    assert load({"epochs": 3, "self_negatives": 2.0}).self_negatives == 2.0


def test_differences_name_what_changes_results_only(tmp_path):
    (tmp_path / "data").mkdir()
    a = RunConfig(str(tmp_path / "data"), None, ModelConfig(dim=32), TrainConfig(lr=1e-3, progress=True))
    b = RunConfig(
        str(tmp_path / "data" / ".." / "data"), None, ModelConfig(dim=64), TrainConfig(lr=5e-3, progress=False)
    )
    assert a.differences(b) == [("model.dim", 32, 64), ("train.lr", 1e-3, 5e-3)]  # same folder, progress cosmetic


def test_metrics_and_checkpoints_say_how_to_get_them(tmp_path):
    folder = RunFolder(tmp_path)
    with pytest.raises(AfmeError, match=rf"^{tmp_path} is not a run folder \(no config.json\); start a run with "):
        _ = folder.config
    with pytest.raises(
        AfmeError,
        match=rf"^{tmp_path} holds no finished run \(no metrics.json\); finish it with "
        rf"`afme train --resume {tmp_path}`",
    ):
        _ = folder.metrics
    with pytest.raises(AfmeError, match=r"holds no checkpoint yet \(stopped before its first epoch ended\)"):
        folder.checkpoint("best")
    (tmp_path / LAST).write_bytes(b"")
    assert folder.checkpoint("best") == tmp_path / LAST  # a run without validation: best is last
    (tmp_path / BEST).write_bytes(b"")
    assert (folder.checkpoint("best"), folder.checkpoint("last")) == (tmp_path / BEST, tmp_path / LAST)
    with pytest.raises(ValueError, match="checkpoint must be 'best' or 'last', got 'final'"):
        folder.checkpoint("final")
    folder.write_metrics({"test": {"mrr": 0.5}})
    assert folder.finished and folder.metrics == {"test": {"mrr": 0.5}}


def test_log_lines_survive_a_torn_last_line_and_truncate(tmp_path):
    for epoch in (1, 2, 3):
        append_log(tmp_path, {"epoch": epoch, "loss": 1.0 / epoch})
    with open(tmp_path / "log.jsonl", "a") as fh:
        fh.write('{"epoch": 4, "lo')  # a kill in mid-write
    assert [r["epoch"] for r in RunFolder(tmp_path).log] == [1, 2, 3]
    truncate_log(tmp_path, 2)
    assert [r["epoch"] for r in read_log(tmp_path)] == [1, 2]
