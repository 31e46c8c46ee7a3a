"""The models' speed page (benchmarks/speed_models.py): one block of rows per negative-pool
setting, each checked against issue 18's targets, and a hand-written reading that survives a rerun."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import speed_models  # noqa: E402

from afme_lib.reports.pages import write_page  # noqa: E402


def figures(epoch: float, evaluation: float) -> dict:
    # a warm-up epoch, then three timed ones around the median (the rounds of the interleaved timing)
    return {"median_epoch_seconds": epoch, "epoch_seconds": [9 * epoch, 0.9 * epoch, epoch, 1.2 * epoch],
            "eval_seconds": evaluation, "mrr": 0.01}


RESULTS = {
    "machine": "test", "settings": "dim 128",
    "datasets": {
        "MKG-Y|0": {"rotate": figures(1.0, 10.0), "afme": figures(4.5, 12.0), "native": figures(5.0, 15.0)},
        "MKG-Y|1024": {"rotate": figures(1.0, 10.0), "afme": figures(2.5, 12.0), "native": figures(6.0, 15.0)},
        "synth-default|0": {"rotate": figures(0.5, 1.0), "afme": figures(3.0, 1.0)},
    },
}


def test_every_pool_setting_gets_its_rows_and_its_target_checks():
    page = "\n".join(speed_models.report(RESULTS, "python benchmarks/speed_models.py"))
    assert "| MKG-Y | independent | afme | 4.50 | 4.5 | 4.5–4.5 | 12.00 | 1.2 | 1.00 |" in page
    assert "| MKG-Y | shared pool of 1024 | afme | 2.50 | 2.5 |" in page
    assert "- MKG-Y, independent: AFME epoch 4.5x RotatE's (per round 4.5–4.5x) (target <= 3x): not met" in page
    assert "- MKG-Y, shared pool of 1024: AFME epoch 2.5x RotatE's (per round 2.5–2.5x) (target <= 3x): met" in page
    assert "- MKG-Y, shared pool of 1024: AFME eval 1.2x RotatE's (target <= 3x): met" in page
    assert "- MKG-Y, shared pool of 1024: AFME epoch 2.50 s vs NATIVE 6.00 s (target: no slower): met" in page
    assert "- synth-default, independent: AFME epoch 6.0x RotatE's (per round 6.0–6.0x) (target <= 5x): not met" in page


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
