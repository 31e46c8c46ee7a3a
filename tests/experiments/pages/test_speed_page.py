"""The models' speed page (benchmarks/speed_models.py): one block of rows per negative-pool
setting, each checked against the page's targets, and a hand-written reading that survives a rerun."""

from __future__ import annotations

import pytest
import torch
from conftest import load_script

from afme_lib.experiments.pages.writer import write_page

speed_models = load_script("speed_models")  # before the two scripts that import it
allocator = load_script("allocator")
moien_parts = load_script("moien_parts")


def figures(epoch: float, evaluation: float) -> dict:
    # a warm-up epoch, then three timed ones around the median (the rounds of the interleaved timing)
    return {
        "median_epoch_seconds": epoch,
        "epoch_seconds": [9 * epoch, 0.9 * epoch, epoch, 1.2 * epoch],
        "eval_seconds": evaluation,
        "mrr": 0.01,
    }


RESULTS = {
    "machine": "test",
    "settings": "dim 128",
    "datasets": {
        "MKG-Y|0": {"rotate": figures(1.0, 10.0), "afme": figures(4.5, 12.0), "native": figures(5.0, 15.0)},
        "MKG-Y|1024": {"rotate": figures(1.0, 10.0), "afme": figures(2.5, 12.0), "native": figures(6.0, 15.0)},
        "synth-default|0": {"rotate": figures(0.5, 1.0), "afme": figures(3.0, 1.0)},
    },
}


def test_every_pool_setting_gets_its_rows_and_its_target_checks():
    rows = {(r["dataset"], r["negatives"], r["model"]): r for r in speed_models.rows(RESULTS)}
    afme = rows["MKG-Y", "independent", "afme"]
    assert (afme["epoch_seconds"], afme["epoch_ratio"], afme["eval_ratio"]) == pytest.approx((4.5, 4.5, 1.2))
    assert afme["round_ratios"] == pytest.approx([4.5, 4.5, 4.5])
    assert rows["MKG-Y", "shared pool of 1024", "afme"]["epoch_ratio"] == pytest.approx(2.5)
    checks = {(c["dataset"], c["negatives"], c["what"]): c for c in speed_models.target_checks(RESULTS)}
    assert set(checks) == {
        ("MKG-Y", pool, what)
        for pool in ("independent", "shared pool of 1024")
        for what in ("epoch x RotatE", "eval x RotatE", "epoch s vs NATIVE")
    } | {("synth-default", "independent", "epoch x RotatE")}
    expected = {
        ("MKG-Y", "independent", "epoch x RotatE"): (4.5, 3.0, False),
        ("MKG-Y", "shared pool of 1024", "epoch x RotatE"): (2.5, 3.0, True),
        ("MKG-Y", "shared pool of 1024", "eval x RotatE"): (1.2, 3.0, True),
        ("MKG-Y", "shared pool of 1024", "epoch s vs NATIVE"): (2.5, 6.0, True),
        ("synth-default", "independent", "epoch x RotatE"): (6.0, 5.0, False),
    }
    for key, (value, target, met) in expected.items():
        assert (checks[key]["value"], checks[key]["target"], checks[key]["met"]) == (pytest.approx(value), target, met)
    page = speed_models.report(RESULTS, "python benchmarks/speed_models.py")
    assert sum(line.startswith("| MKG-Y |") for line in page) == 6 and page.count("## Targets") == 1


def test_per_round_ratios_pair_the_epochs_that_ran_side_by_side():
    rotate = {"epoch_seconds": [5.0, 1.0, 2.0, 1.0]}
    afme = {"epoch_seconds": [50.0, 4.0, 10.0, 6.0]}  # the warm-up round is left out
    assert speed_models.round_ratios(afme, rotate) == [4.0, 5.0, 6.0]
    assert speed_models.spread([4.0, 5.0, 6.0]) == "4.0–6.0"
    assert speed_models.spread([]) == "n/a"


def test_a_rerun_keeps_the_hand_written_reading(tmp_path):
    page = tmp_path / "models.md"
    write_page(page, speed_models.report(RESULTS, "first"))
    page.write_text(page.read_text() + "\n## Reading (by hand)\n\nMeasured on an idle machine.\n")
    write_page(page, speed_models.report(RESULTS, "second"))
    text = page.read_text()
    assert "Command: `second`" in text and "Command: `first`" not in text
    assert text.rstrip().endswith("Measured on an idle machine.")


# --- MoIEn's parts (benchmarks/moien_parts.py) ---------------------------------------------------
def test_moien_parts_times_each_part_and_counts_it_per_epoch(tiny_synth):
    """On the tiny preset (1,386 triples: 2 batches of 1024, adversarial_every 4) an epoch builds
    the table once, takes 1 critic step and 1 generator loss and 2 KGC steps; every part runs
    for real (the critic's weights move, the table is built) and is timed each round."""
    from types import SimpleNamespace

    from afme_lib.data.dataset import load_dataset
    from afme_lib.data.feature_store import FeatureStore

    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    args = SimpleNamespace(dim=16, epochs=2, device="cpu")
    trainer = speed_models.build(data, store, "afme", 0, args)
    critic = [p.detach().clone() for p in trainer.model.critic_parameters()]
    calls = moien_parts.part_calls(trainer)
    trainer.model.train()
    for call in calls.values():
        call(1)
    assert trainer.model._check_cache is not None
    assert not all(torch.equal(a, b) for a, b in zip(critic, trainer.model.critic_parameters()))
    assert trainer.model.entity.weight.grad is not None  # the last part, the KGC step, reached the embeddings
    assert moien_parts.per_epoch(trainer) == {
        "cross-check table": 1,
        "critic step": 1,
        "generator loss": 1,
        "KGC step": 2,
    }

    results = moien_parts.measure(data, store, 0, 2, args)
    assert set(results["seconds"]) == {*moien_parts.PARTS, "AFME epoch", moien_parts.SKIPPED, "RotatE epoch"}
    assert all(len(v) == 2 and min(v) > 0 for v in results["seconds"].values())


def test_moien_parts_page_scales_each_part_by_its_calls_per_epoch():
    results = {
        "machine": "test",
        "settings": "dim 128",
        "per_epoch": {"cross-check table": 1, "critic step": 3, "generator loss": 3, "KGC step": 10},
        "seconds": {
            "cross-check table": [0.3, 0.3],
            "critic step": [0.1, 0.1],
            "generator loss": [0.05, 0.05],
            "KGC step": [0.1, 0.1],
            "AFME epoch": [2.0, 2.0],
            moien_parts.SKIPPED: [1.5, 1.5],
            "RotatE epoch": [0.25, 0.25],
        },
    }
    f = moien_parts.summary(results)
    parts = f["parts"]
    assert (
        parts["critic step"]["ms"],
        parts["critic step"]["calls"],
        parts["critic step"]["epoch_seconds"],
        parts["critic step"]["x_rotate"],
    ) == pytest.approx((100, 3, 0.3, 1.2))
    assert (parts["KGC step"]["epoch_seconds"], parts["KGC step"]["x_rotate"]) == pytest.approx((1.0, 4.0))
    assert parts[moien_parts.SKIPPED]["x_rotate"] == pytest.approx(6.0)
    # MoIEn's parts: 0.3 + 3 x 0.1 + 3 x 0.05 = 0.75 s; the epoch without them 2.0 - 0.75 = 1.25 s
    assert (f["afme_x_rotate"], f["moien_seconds"], f["moien_x_rotate"]) == pytest.approx((8.0, 0.75, 3.0))
    assert (f["without_moien_seconds"], f["without_moien_x_rotate"], f["kgc_x_rotate"]) == pytest.approx(
        (1.25, 5.0, 4.0)
    )
    assert (f["skipped_seconds"], f["skipped_x_rotate"]) == pytest.approx((1.5, 6.0))
    assert len([line for line in moien_parts.report(results, "cmd") if line.startswith("| ")]) == 1 + len(parts)


def test_fusion_skipped_bypasses_the_per_pair_fusion_and_restores_it(tiny_synth, monkeypatch):
    """Within the context no pair goes through FusedPairs, e_r is lambda_r e_s plus the first
    token (gradient still reaching the token projections), and on leaving the real fusion is back."""
    from types import SimpleNamespace

    from afme_lib.data.dataset import load_dataset
    from afme_lib.data.feature_store import FeatureStore
    from afme_lib.models import fused_pairs

    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    model = speed_models.build(data, store, "afme", 0, SimpleNamespace(dim=16, epochs=2, device="cpu")).model
    model.eval()  # no structure shuffle: every pair reads its own e_s
    calls = []
    real = fused_pairs.FusedPairs.apply
    monkeypatch.setattr(fused_pairs.FusedPairs, "apply", lambda *a: calls.append(1) or real(*a))
    entities, relations = torch.arange(6), torch.zeros(6, dtype=torch.long)

    def fused():
        per = model.per_entity(entities, torch.zeros(6, dtype=torch.bool))
        return per, model._pairs(per, torch.arange(6), relations, distinct=True, completed=False)["fused"]

    with moien_parts.fusion_skipped(model):
        per, out = fused()
        assert not calls
        lam = model.fusion.structure_scale(relations)[:, None]
        torch.testing.assert_close(out, lam * per["structural"] + per["candidate_tokens"][:, 0])
        out.sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.inputs.parameters())
    fused()
    assert calls


# --- Keeping freed memory (benchmarks/allocator.py) ----------------------------------------------
def allocator_runs(defaults: list[float], retained: list[float]) -> dict:
    """Two models, two rounds of two timed epochs each; AFME's per-round medians are the lists."""

    def side(seconds: list[float], faults: int) -> dict:
        return {
            "rotate": {"seconds": [1.0] * 4, "faults": [0] * 4, "round_medians": [1.0, 1.0]},
            "afme": {
                "seconds": [s for s in seconds for _ in range(2)],
                "faults": [faults] * 4,
                "round_medians": seconds,
            },
        }

    return {
        "machine": "test",
        "settings": "dim 128",
        "runs": {"glibc defaults": side(defaults, 180_000), "retained": side(retained, 4_000)},
    }


def test_allocator_page_compares_the_settings_overall_and_round_by_round():
    rows = allocator.comparison(allocator_runs([2.4, 2.2], [2.0, 1.6]))
    # medians over all epochs: 2.3 s against 1.8 s; per round 2.4 / 2.0 and 2.2 / 1.6
    afme, rotate = rows["afme"], rows["rotate"]
    assert (afme["seconds"]["glibc defaults"], afme["seconds"]["retained"], afme["speedup"]) == pytest.approx(
        (2.3, 1.8, 2.3 / 1.8)
    )
    assert afme["round_speedups"] == pytest.approx([1.2, 2.2 / 1.6])
    assert (afme["faults"]["glibc defaults"], afme["faults"]["retained"]) == (180_000, 4_000)
    assert rotate["speedup"] == pytest.approx(1.0) and rotate["faults"]["glibc defaults"] == 0
    assert afme["x_rotate"] == pytest.approx({"glibc defaults": 2.3, "retained": 1.8})


def test_allocator_processes_run_with_the_setting_they_are_named_for(tmp_path, monkeypatch):
    """The benchmark's child process, for real: RotatE's epochs on the synthetic preset with
    glibc's defaults; and a "retained" process in which the settings could not apply (the user's
    own glibc tunables) is refused, not reported as retained."""
    argv = ["--work", str(tmp_path), "--models", "rotate", "--epochs", "1", "--dim", "8"]
    result = allocator.run_child("glibc defaults", argv)
    assert set(result) == {"rotate"}
    assert len(result["rotate"]["seconds"]) == 2 and min(result["rotate"]["seconds"]) > 0
    assert len(result["rotate"]["faults"]) == 2
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")
    with pytest.raises(SystemExit, match="retained process did not run with the settings"):
        allocator.run_child("retained", argv)
