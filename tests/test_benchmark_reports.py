"""The benchmark scripts' report pages, on the tiny synthetic preset: every compared model gets its
paired gain against RotatE, and a hand-written reading survives regenerating the page."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import text_features_gain  # noqa: E402


def test_text_features_page_pairs_every_model_with_rotate_and_keeps_the_reading(tiny_synth, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data / "tiny")
    monkeypatch.chdir(data)  # a dataset folder given by name resolves against the working directory
    out = tmp_path / "report"
    common = ["--datasets", "tiny", "--extra-features", "--structure-only", "--data-dir", str(data),
              "--features-root", str(tmp_path / "features"), "--runs", str(tmp_path / "runs"), "--out", str(out),
              "--models", "rotate", "transe", "afme", "mmkrl", "--seeds", "0", "--epochs", "1", "--dim", "8",
              "--batch-size", "512", "--negatives", "4", "--eval-every", "1", "--device", "cpu"]
    assert text_features_gain.main(common) == 0
    page = (out / "README.md").read_text()
    assert "RotatE vs afme / mmkrl" in page and "Paired gain transe" not in page and "Smoke run" in page
    for pair in ("afme - rotate", "mmkrl - rotate", "mmkrl - transe"):  # MMKRL also against its backbone
        section = page.split(f"Paired gain {pair} ")[1]
        assert section.splitlines()[4].startswith("| tiny | 1 | ")  # one paired seed, numbers filled in
    assert (tmp_path / "features" / "tiny" / "tiny-textual.pth").is_file()

    reading = "## Reading (by hand)\n- a conclusion a person wrote\n"
    (out / "README.md").write_text(page + "\n" + reading)
    assert text_features_gain.main([*common, "--report-only"]) == 0
    again = (out / "README.md").read_text()
    assert again == page + "\n" + reading  # finished runs reused, the table unchanged, the reading kept once
