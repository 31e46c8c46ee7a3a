"""The README's main job end to end on the tiny preset (1 epoch): report sections and the oracle row."""

import re

import pytest

from afme_lib import main_job
from afme_lib.data.dataset import load_dataset
from afme_lib.data.synthetic import read_metadata
from afme_lib.data.synthetic_oracle import oracle_mrr_by_kind
from afme_lib.evaluate import random_baseline


def test_main_job_writes_the_report_and_reuses_finished_runs(tmp_path, capsys):
    out = tmp_path / "main"
    assert main_job.main(["--preset", "tiny", "--epochs", "1", "--dim", "8", "--out", str(out)]) == 0
    report = (out / "README.md").read_text()
    for model in main_job.MODELS:
        assert (out / "runs" / model / "metrics.json").is_file()
        assert re.search(rf"^\| {re.escape(model)} \| \d+\.\d\d \|", report, re.M)
    data = out / "data-tiny"
    oracle = oracle_mrr_by_kind(load_dataset(data), read_metadata(data))
    row = re.search(r"^\| rule oracle \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", report, re.M)
    assert [float(x) for x in row.groups()] == pytest.approx(
        [100 * oracle[k] for k in ("all", "attribute", "structural")], abs=0.006)
    assert "Agreement with the truth over the 3 attribute relations: AUC" in report
    # the random-ranking baseline beside every metrics table
    random = random_baseline(load_dataset(data), "test")
    assert (f"| random ranking | {100 * random['mrr']:.2f} | {random['mr']:.1f} | {100 * random['hits@1']:.2f} | "
            f"{100 * random['hits@3']:.2f} | {100 * random['hits@10']:.2f} | | | |") in report
    assert "| random ranking | " + " | ".join(f"{100 * c['mrr']:.2f}" for c in random["by_category"].values()) in report
    assert re.search(rf"^\| random ranking \| {100 * random['mrr']:.2f} \| [\d.]+ \| [\d.]+ \|$", report, re.M)
    # every relation of the preset has a weight row whose weights sum to 1
    rows = re.findall(r"^\| (r\d\d_\w+) \| [^|]+ \|((?: [\d.]+ \|)+)$", report, re.M)
    assert len(rows) == 7
    for _, cells in rows:
        assert sum(float(c) for c in cells.split("|") if c.strip()) == pytest.approx(1.0, abs=0.03)
    # a second call reuses the finished runs (nothing retrained: the logs are unchanged)
    logs = {m: (out / "runs" / m / "log.jsonl").read_text() for m in main_job.MODELS}
    capsys.readouterr()
    assert main_job.main(["--preset", "tiny", "--epochs", "1", "--dim", "8", "--out", str(out)]) == 0
    assert logs == {m: (out / "runs" / m / "log.jsonl").read_text() for m in main_job.MODELS}
