"""The training engine end to end on the synthetic tiny preset: every model, run folders,
reproducibility, learning, early stopping, best-on-valid selection and non-finite losses."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import trained

import afme_lib
import afme_lib.engine.training as train_mod
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.errors import OptionError
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.checkpoints import load_checkpoint
from afme_lib.engine.evaluation import evaluate, random_baseline
from afme_lib.engine.run_folder import BEST, LAST, read_log
from afme_lib.engine.training import NonFiniteLossError
from afme_lib.experiments.run import METRICS_KEYS, evaluate_run, load_trainer
from afme_lib.interfaces.cli import main
from afme_lib.models.registry import model_class, model_names

BASELINES = ["rotate", "transe", "distmult", "complex", "ikrl", "mm-concat", "afme"]
SUMMARY = {"mrr", "mr", "hits@1", "hits@3", "hits@10"}
# Keeps AFME (the heaviest model) to about a second per epoch on one core.
SMALL_AFME = ["--attention-layers", "1", "--attention-heads", "2", "--noise-dim", "8"]


def cli_train(data, out, model="rotate", *extra, epochs=2):
    args = [
        "train",
        "--dataset",
        str(data),
        "--features",
        str(data),
        "--out",
        str(out),
        "--model",
        model,
        "--dim",
        "16",
        "--epochs",
        str(epochs),
        "--batch-size",
        "512",
        "--negatives",
        "8",
        "--eval-every",
        "1",
        "--no-progress",
        "--device",
        "cpu",
        "--seed",
        "0",
        *extra,
    ]
    if model == "afme":
        args += SMALL_AFME + ["--batch-size", "1024", "--negatives", "4"]  # later flags win
    return main(args)


def read_json(path):
    return json.loads(path.read_text())


def losses_of(log):
    """Every loss term of every epoch (no timings)."""
    return [{k: v for k, v in rec.items() if k not in ("seconds",)} for rec in log]


def strip_timings(metrics):
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "eval_seconds")}


# --- every model through the CLI ----------------------------------------------------------------
def test_every_documented_model_is_registered():
    assert set(BASELINES) <= set(model_names())


@pytest.mark.parametrize("model", model_names())
def test_cli_trains_every_model_and_writes_the_run_folder(tiny_synth, tmp_path, model, capsys):
    run = tmp_path / "run"
    assert cli_train(tiny_synth, run, model) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith(f"run {run}: test MRR ") and "; random ranking: MRR 0.0" in printed[-1]
    assert len(printed) == (2 if model_class(model).reads_features else 1)  # the features line, then the summary

    config = read_json(run / "config.json")
    assert config["afme_version"] == afme_lib.__version__
    assert "git_commit" in config and "torch_version" in config
    assert config["model"]["name"] == model and config["model"]["dim"] == 16
    assert config["train"]["epochs"] == 2 and config["train"]["device"] == "cpu"
    assert config["dataset"] == str(tiny_synth.resolve())
    assert config["features"] == (str(tiny_synth.resolve()) if model_class(model).reads_features else None)

    log = read_log(run)
    assert [rec["epoch"] for rec in log] == [1, 2]
    for rec in log:
        assert math.isfinite(rec["loss"]) and math.isfinite(rec["kgc"]) and rec["seconds"] > 0
        assert set(rec["valid"]) == SUMMARY | {"self_answer"}
    if model == "afme":  # the joint schedule logs the critic and the generator terms
        assert {"critic", "wasserstein", "gp", "generator"} <= set(log[0])

    for name in (LAST, BEST):  # plain tensors and containers only: loadable with weights_only
        payload = torch.load(run / name, map_location="cpu", weights_only=True)
        assert payload["state"]["epoch"] in (1, 2)
    assert load_checkpoint(run / LAST)["state"]["epoch"] == 2

    metrics = read_json(run / "metrics.json")
    assert set(metrics) == set(METRICS_KEYS)
    assert {"valid", "test", "epochs_run", "train_seconds", "eval_seconds", "device"} <= set(metrics)
    for split in ("test", "valid"):
        assert SUMMARY | {"count", "self_answer", "by_category", "by_side", "by_relation", "by_group", "random"} == set(
            metrics[split]
        )
        if model == "rotate":  # the same for every model: a property of the split
            assert metrics[split]["random"] == random_baseline(load_dataset(tiny_synth), split)
        assert set(metrics[split]["by_side"]) == {"tail", "head"}
        assert set(metrics[split]["by_category"]) <= {"1-1", "1-N", "N-1", "N-N"}
    assert metrics["test"]["count"] == 2 * len(load_dataset(tiny_synth).test)  # a head and a tail query each
    assert metrics["epochs_run"] == 2 and metrics["device"] == "cpu" and metrics["stopped_early"] is False
    assert metrics["best_epoch"] in (1, 2)


def test_epochs_zero_evaluates_the_initial_model_near_random(tiny_synth, tmp_path):
    run = tmp_path / "zero"
    assert cli_train(tiny_synth, run, "rotate", epochs=0) == 0
    metrics = read_json(run / "metrics.json")
    assert metrics["epochs_run"] == 0 and metrics["best_epoch"] is None and metrics["train_seconds"] == 0
    assert read_log(run) == []
    # A random ranking of N candidates has MR about (N + 1) / 2 (a little less once filtered).
    n = load_dataset(tiny_synth).num_entities
    assert n == 317
    assert 0.75 * (n + 1) / 2 < metrics["test"]["mr"] < 1.25 * (n + 1) / 2
    assert metrics["test"]["hits@10"] < 0.1
    # The initial model is kept as the run's checkpoint, so evaluate / load_run work on it too.
    assert load_checkpoint(run / LAST)["state"]["epoch"] == 0
    assert evaluate_run(run, "test")["mrr"] == pytest.approx(metrics["test"]["mrr"], abs=1e-12)


def test_same_seed_gives_identical_runs(tiny_synth, tmp_path):
    for name in ("a", "b"):
        assert cli_train(tiny_synth, tmp_path / name, "afme", epochs=1) == 0
    assert cli_train(tiny_synth, tmp_path / "c", "afme", "--seed", "1", epochs=1) == 0
    a, b, c = (read_json(tmp_path / n / "metrics.json") for n in "abc")
    assert strip_timings(a) == strip_timings(b)
    assert losses_of(read_log(tmp_path / "a")) == losses_of(read_log(tmp_path / "b"))
    assert losses_of(read_log(tmp_path / "a")) != losses_of(read_log(tmp_path / "c"))  # the seed matters


# --- defaults that learn, and the compile rule ---------------------------------------------------
def test_a_plain_afme_train_learns_on_the_tiny_preset(tiny_synth, tmp_path):
    """No training flag: the defaults (lr, epochs, batch) must learn. RotatE on warm structural
    queries and AFME on cold attribute ones, each far above a random ranking of the same queries."""
    from afme_lib.analysis.slices import model_ranks, random_mrr, slice_masks, slice_mrr  # reads the runs

    meta = json.loads((tiny_synth / "metadata.json").read_text())
    for model, focus, factor in (("rotate", "warm/structural", 2.5), ("afme", "cold/attribute", 10)):
        out = tmp_path / model
        assert main(["train", "--dataset", str(tiny_synth), "--model", model, "--out", str(out), "--no-progress"]) == 0
        config = json.loads((out / "config.json").read_text())["train"]
        assert (config["lr"], config["epochs"], config["compile"]) == (TrainConfig().lr, TrainConfig().epochs, "auto")
        trainer = load_trainer(out)
        masks = slice_masks(trainer.dataset, meta)
        learned = slice_mrr(model_ranks(trainer.model, trainer.dataset, "test", trainer.filter_index), masks)[focus]
        random = random_mrr(trainer.dataset, masks)[focus]
        assert learned > factor * random, (model, focus, learned, random)


def test_compile_auto_compiles_runs_long_enough_to_repay_it():
    afme, rotate = ModelConfig(name="afme", dim=64), ModelConfig(name="rotate", dim=500)
    default = TrainConfig(epochs=50, negatives=16)  # the synthetic default preset: 9.9k training triples
    assert not train_mod.compiles(afme, default, 9932, 1262)  # 50 x 9932 x 17 x 64 = 5.4e8 work units
    assert train_mod.compiles(afme, TrainConfig(epochs=1000, negatives=16), 9932, 1262)  # 1.1e10
    mkgw = TrainConfig(epochs=200, negatives=64)
    assert train_mod.compiles(rotate, mkgw, 34196, 15000)  # 2.2e11: reports/speed, compiled 2.8x faster
    assert train_mod.compiles(afme, TrainConfig(epochs=1, loss="1vsall"), 9932 * 20, 1262 * 20)  # all entities scored
    assert train_mod.compiles(afme, TrainConfig(compile="on", epochs=1), 10, 10)
    assert not train_mod.compiles(rotate, TrainConfig(compile="off", epochs=10**6), 34196, 15000)


def test_compile_switches_of_older_run_folders_still_load():
    assert TrainConfig.from_dict({"compile": True}).compile == "on"
    assert TrainConfig.from_dict({"compile": False}).compile == "off"
    with pytest.raises(OptionError, match=r"^compile must be one of auto, on, off \(got 'yes'\)"):
        TrainConfig(compile="yes")


# --- learning, early stopping, model selection ----------------------------------------------------
def test_rotate_learns_the_training_graph(tiny_synth, tmp_path):
    """15 epochs: the filtered MRR on the training triples goes from ~0.02 (random) to ~0.7."""
    model = ModelConfig(name="rotate", dim=32)
    fit = TrainConfig(epochs=15, batch_size=512, negatives=16, lr=0.05, eval_every=0, progress=False, device="cpu")
    trained(str(tiny_synth), model, TrainConfig(**{**fit.to_dict(), "epochs": 0}), tmp_path / "before")
    metrics = trained(str(tiny_synth), model, fit, tmp_path / "after")
    before = load_trainer(tmp_path / "before")
    after = load_trainer(tmp_path / "after")
    train_before = evaluate(before.model, before.dataset, "train")
    train_after = evaluate(after.model, after.dataset, "train")
    assert train_before["mrr"] < 0.05
    assert train_after["mrr"] > 0.3 and train_after["mr"] < train_before["mr"] / 4
    # on held-out triples that structure can answer (warm entities; cold ones need features)
    assert (
        metrics["valid"]["by_group"]["warm"]["mr"]
        < read_json(tmp_path / "before" / "metrics.json")["valid"]["by_group"]["warm"]["mr"]
    )
    # losses go down from the first to the last epoch
    log = read_log(tmp_path / "after")
    assert len(log) == 15 and log[-1]["loss"] < 0.8 * log[0]["loss"]


def test_one_vs_all_loss_is_cross_entropy_over_every_entity_on_both_sides(tiny_synth):
    """The trainer's 1vsall term equals a brute-force loop: per positive, a softmax over all
    entities for its tail query and for its head query, averaged; and DistMult learns with it."""
    dataset = load_dataset(tiny_synth)
    cfg = TrainConfig(
        loss="1vsall", label_smoothing=0.1, batch_size=64, self_negatives=0.0, device="cpu", progress=False
    )
    trainer = train_mod.Trainer(dataset, ModelConfig(name="distmult", dim=16), cfg, None)
    batch = trainer.train_triples[:5]
    negatives, corrupt_head = trainer.sampler.sample(batch)
    got = trainer._batch_loss(batch, negatives, corrupt_head)["kgc"]
    ent, rel = trainer.model.entity.weight.detach(), trainer.model.relation.weight.detach()
    n, total = dataset.num_entities, 0.0
    for h, r, t in batch.tolist():
        tails = torch.stack([(ent[h] * rel[r] * ent[c]).sum() for c in range(n)])
        heads = torch.stack([(ent[c] * rel[r] * ent[t]).sum() for c in range(n)])
        for scores, target in ((tails, t), (heads, h)):
            log_p = torch.log_softmax(scores, 0)
            total += float(-(0.9 * log_p[target] + 0.1 * log_p.mean()))
    assert got.item() == pytest.approx(total / (2 * len(batch)), rel=1e-5)


def test_distmult_learns_with_one_vs_all(tiny_synth, tmp_path):
    fit = TrainConfig(epochs=10, batch_size=256, loss="1vsall", lr=0.05, eval_every=0, progress=False, device="cpu")
    trained(str(tiny_synth), ModelConfig(name="distmult", dim=32), fit, tmp_path / "run")
    after = load_trainer(tmp_path / "run")
    assert evaluate(after.model, after.dataset, "train")["mrr"] > 0.3
    log = read_log(tmp_path / "run")
    assert log[-1]["kgc"] < 0.7 * log[0]["kgc"]


def test_one_vs_all_is_refused_where_it_does_not_apply(tiny_synth):
    """A run spec refuses, when it is built, what cannot train on any machine."""
    from afme_lib.experiments.spec import RunSpec

    with pytest.raises(
        OptionError, match=r"label_smoothing applies to loss 1vsall only \(got 0.1 with loss softplus\)"
    ):
        RunSpec.from_fields(
            {"dataset": str(tiny_synth), "model": "distmult", "loss": "softplus", "label_smoothing": 0.1}
        )
    with pytest.raises(
        OptionError, match="loss 1vsall cannot train model 'mmkrl': it adds adversarial terms on sampled negatives"
    ):
        RunSpec.from_fields({"dataset": str(tiny_synth), "model": "mmkrl", "loss": "1vsall"})


def test_patience_stops_early_and_says_so(tiny_synth, tmp_path):
    """lr = 1e-12: Adam's steps (about lr each) are below float32's resolution at the embeddings'
    scale, so the model never changes and the valid MRR never improves after epoch 1 (lr = 0 is refused)."""
    run = tmp_path / "patient"
    metrics = trained(
        str(tiny_synth),
        ModelConfig(name="rotate", dim=16),
        TrainConfig(
            epochs=10, lr=1e-12, batch_size=1024, negatives=4, eval_every=1, patience=2, progress=False, device="cpu"
        ),
        run,
    )
    log = read_log(run)
    assert [rec["epoch"] for rec in log] == [1, 2, 3]
    assert log[-1].get("stopped_early") is True and "stopped_early" not in log[0]
    assert metrics["stopped_early"] is True and metrics["epochs_run"] == 3 and metrics["best_epoch"] == 1
    state = load_checkpoint(run / LAST)["state"]
    assert state["epoch"] == 3 and state["stopped_early"] is True


def test_best_checkpoint_is_chosen_on_valid_only(tiny_synth, tmp_path, monkeypatch):
    """Script the valid MRR per epoch (0.1, 0.5, 0.2, 0.3): epoch 2 must be the best checkpoint,
    the test metrics must come from it, and training must never look at the test split."""
    scripted = iter([0.1, 0.5, 0.2, 0.3])
    splits = []
    real_evaluate = train_mod.evaluate

    def spy(model, dataset, split, **kw):
        splits.append(split)
        result = real_evaluate(model, dataset, split, **kw)
        return {**result, "mrr": next(scripted)}

    monkeypatch.setattr(train_mod, "evaluate", spy)
    run = tmp_path / "best"
    metrics = trained(
        str(tiny_synth),
        ModelConfig(name="rotate", dim=16),
        TrainConfig(epochs=4, lr=0.05, batch_size=512, negatives=8, eval_every=1, progress=False, device="cpu"),
        run,
    )
    assert splits == ["valid"] * 4
    assert [rec["valid"]["mrr"] for rec in read_log(run)] == [0.1, 0.5, 0.2, 0.3]
    assert metrics["best_epoch"] == 2
    assert load_checkpoint(run / BEST)["state"]["epoch"] == 2
    assert load_checkpoint(run / LAST)["state"]["epoch"] == 4
    best, last = evaluate_run(run, "test", "best"), evaluate_run(run, "test", "last")
    assert metrics["test"]["mrr"] == pytest.approx(best["mrr"], abs=1e-12)
    assert metrics["test"]["mrr"] != pytest.approx(last["mrr"], abs=1e-9)  # so the choice was real


# --- non-finite losses ------------------------------------------------------------------------------
def test_non_finite_loss_stops_the_run_naming_epoch_batch_and_term(tiny_synth, tmp_path, monkeypatch):
    """Poison the positive scores of the 3rd batch of epoch 2: the error names epoch 2, batch 3,
    term kgc, and epoch 1's checkpoint stays usable."""
    per_epoch = math.ceil(len(load_dataset(tiny_synth).train) / 512)  # 1386 triples: 3 batches
    calls = []
    real_loss = train_mod.kgc_loss

    def poisoned(name, pos, neg, margin, temperature, counts=None):
        calls.append(1)
        if len(calls) == per_epoch + 3:
            pos = pos * float("nan")
        return real_loss(name, pos, neg, margin, temperature, counts)

    monkeypatch.setattr(train_mod, "kgc_loss", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match=r"non-finite kgc loss at epoch 2, batch 3") as info:
        trained(
            str(tiny_synth),
            ModelConfig(name="rotate", dim=16),
            TrainConfig(epochs=5, batch_size=512, negatives=8, eval_every=1, progress=False, device="cpu"),
            run,
        )
    assert (info.value.epoch, info.value.batch, info.value.term) == (2, 3, "kgc")
    assert len(calls) == 2 * per_epoch  # the epoch ran to its end (no per-batch sync), then stopped
    log = read_log(run)
    assert [rec["epoch"] for rec in log] == [1, 2] and "error" in log[1] and "loss" not in log[1]
    assert not (run / "metrics.json").exists()
    payload = load_checkpoint(run / LAST)
    assert payload["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
    trainer = load_trainer(run, checkpoint="last")  # loadable and usable
    assert math.isfinite(evaluate(trainer.model, trainer.dataset, "valid")["mrr"])


def test_cli_reports_a_non_finite_loss_without_a_traceback(tiny_synth, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_mod, "kgc_loss", lambda *a: torch.tensor(float("inf"), requires_grad=True))
    assert cli_train(tiny_synth, tmp_path / "inf", "transe") == 2
    err = capsys.readouterr().err
    assert err.startswith("afme: error: non-finite kgc loss at epoch 1, batch 1;")
    assert "last good checkpoint" in err


# --- adversarial updates every k batches -----------------------------------------------------------
def test_adversarial_every_spaces_the_critic_steps_and_generator_terms(tiny_synth, monkeypatch):
    """tiny has 1386 training triples: 6 batches of 256. With adversarial_every=4, MoIEn's critic
    step and generator term come in batches 1 and 5 only, the epoch log averages each over the
    batches it was in, and a model without a critic keeps its adversarial term in every batch."""
    from afme_lib.models.afme import AFME
    from afme_lib.models.native import NATIVE

    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    calls = {"critic": [], "generator": [], "native": []}
    for cls, name, hook in (
        (AFME, "critic", "critic_loss"),
        (AFME, "generator", "generator_loss"),
        (NATIVE, "native", "training_losses"),
    ):
        real = getattr(cls, hook)

        def spy(self, *args, _real=real, _name=name):
            calls[_name].append(args[-1].lambda_adv if _name == "native" else 1)
            out = _real(self, *args)
            if _name == "generator":
                calls.setdefault("generator_values", []).append(float(out.detach()))
            return out

        monkeypatch.setattr(cls, hook, spy)
    cfg = TrainConfig(
        epochs=1,
        batch_size=256,
        negatives=4,
        lambda_adv=0.5,
        adversarial_every=4,
        progress=False,
        device="cpu",
        compile="off",
    )
    trainer = train_mod.Trainer(
        data, ModelConfig(name="afme", dim=16, attention_heads=2, noise_dim=4), cfg, None, store
    )
    log = trainer.train_epoch(0)
    assert len(calls["critic"]) == len(calls["generator"]) == 2
    assert log["generator"] == pytest.approx(0.5 * sum(calls["generator_values"]) / 2, rel=1e-5)
    native = train_mod.Trainer(data, ModelConfig(name="native", dim=16), cfg, None, store)
    native.train_epoch(0)
    assert calls["native"] == [0.5] * 6  # its own term, at its weight, in every batch


def test_a_critic_no_score_reads_is_not_trained(tiny_synth, monkeypatch):
    """AFME on one modality measured for every entity (no row to complete or check): the epoch
    runs no critic step and no generator term, and logs neither; the generator keeps its
    initial weights while the rest of the model trains."""
    from afme_lib.models.afme import AFME

    data = load_dataset(tiny_synth)
    full = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    store = FeatureStore(data.num_entities)
    store.add("text", full.features["text"] + 1.0, mask=torch.ones(data.num_entities, dtype=torch.bool))
    for hook in ("critic_loss", "generator_loss"):
        monkeypatch.setattr(AFME, hook, lambda *a, _h=hook: pytest.fail(f"{_h} called"))
    cfg = TrainConfig(
        epochs=1,
        batch_size=256,
        negatives=4,
        lambda_adv=0.5,
        adversarial_every=1,
        progress=False,
        device="cpu",
        compile="off",
    )
    trainer = train_mod.Trainer(
        data, ModelConfig(name="afme", dim=16, attention_heads=2, noise_dim=4), cfg, None, store
    )
    generator = [p.detach().clone() for p in trainer.model.generator_parameters()]
    entity = trainer.model.entity.weight.detach().clone()
    log = trainer.train_epoch(1)
    assert "kgc" in log and not {"critic", "generator", "wasserstein", "gp"} & set(log)
    assert all(torch.equal(a, b) for a, b in zip(generator, trainer.model.generator_parameters()))
    assert not torch.equal(entity, trainer.model.entity.weight)


def test_skipping_the_critic_is_announced(tiny_synth, capsys):
    data = load_dataset(tiny_synth)
    full = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    store = FeatureStore(data.num_entities)
    store.add("text", full.features["text"] + 1.0, mask=torch.ones(data.num_entities, dtype=torch.bool))
    model = ModelConfig(name="afme", dim=16, attention_heads=2, noise_dim=4)
    for features, announced in ((store, True), (full, False)):
        cfg = TrainConfig(
            epochs=1, batch_size=512, negatives=4, eval_every=0, progress=True, device="cpu", compile="off"
        )
        train_mod.Trainer(data, model, cfg, None, features).fit()
        out = capsys.readouterr().out
        assert ("critic and generator updates are skipped" in out) == announced


# --- a shared negative pool --------------------------------------------------------------------
def test_a_negative_pool_reaches_afme_and_shrinks_the_entities_a_step_fuses(tiny_synth, monkeypatch):
    """TrainConfig.negative_pool reaches the sampler, so an AFME step computes its per-entity work
    for at most 2 B + pool entities (a batch's known sides, answers and the pool) instead of the
    B x K negatives' spread; and AFME still learns with it."""
    from afme_lib.models.afme import AFME

    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    sizes = []
    real = AFME.score_batch

    def spy(self, heads, relations, tails, negatives, corrupt_head):
        sizes.append((len(heads), len(torch.unique(torch.cat([heads, tails, negatives.flatten()])))))
        return real(self, heads, relations, tails, negatives, corrupt_head)

    monkeypatch.setattr(AFME, "score_batch", spy)
    model = ModelConfig(name="afme", dim=16, attention_heads=2, noise_dim=4)
    for pool in (0, 12):
        cfg = TrainConfig(
            epochs=1, batch_size=64, negatives=16, negative_pool=pool, progress=False, device="cpu", compile="off"
        )
        trainer = train_mod.Trainer(data, model, cfg, None, store)
        assert trainer.sampler.pool == pool
        sizes.clear()
        first = trainer.train_epoch(1)["kgc"]
        for _ in range(4):
            last = trainer.train_epoch(2)["kgc"]
        if pool:
            assert all(n <= 2 * b + pool for b, n in sizes)
            assert last < 0.9 * first
        else:  # 64 x 16 independent negatives spread over most of tiny's 300 entities
            assert max(n for _, n in sizes) > 2 * 64 + 12


def test_compiler_notices_go_to_the_run_folder_not_the_terminal(tmp_path, capsys):
    import logging

    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in train_mod.COMPILER_LOGGERS
    }
    try:
        train_mod.keep_compiler_notices(tmp_path)
        logging.getLogger("torch._dynamo").warning("hit config.recompile_limit (8)")
        logging.getLogger("torch.utils.cpp_extension").warning("No CUDA runtime is found")
        captured = capsys.readouterr()
        assert "recompile_limit" not in captured.err + captured.out and "CUDA" not in captured.err
        log = (tmp_path / train_mod.COMPILER_LOG).read_text()
        assert "hit config.recompile_limit (8)" in log and "No CUDA runtime is found" in log
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers, logger.propagate = handlers, propagate
