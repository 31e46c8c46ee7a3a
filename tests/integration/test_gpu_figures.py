"""The GPU benchmark script on the CPU: its byte counter against hand counts, and the whole
script on the synthetic tiny graph (``--device cpu --smoke``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_figures.py"


@pytest.fixture(scope="module")
def gpu_figures():
    spec = importlib.util.spec_from_file_location("gpu_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_traffic_counter_counts_what_each_kernel_reads_and_writes(gpu_figures):
    a, b = torch.randn(100, 8), torch.randn(8)
    idx = torch.arange(10)
    with gpu_figures.TrafficCounter() as counter:
        c = a + b  # reads 3200 + 32, writes 3200
    assert (counter.read, counter.written, counter.ops) == (3232, 3200, 1)
    with gpu_figures.TrafficCounter() as counter:
        c.sum()  # reads 3200, writes one float
        a.view(-1).t()  # views: nothing
        a + b.expand(100, 8)  # the broadcast operand is read once: as above
    assert (counter.read, counter.written) == (3200 + 3232, 4 + 3200)
    with gpu_figures.TrafficCounter() as counter:
        a[idx]  # a gather reads its 10 rows and the index, not the table
    assert (counter.read, counter.written) == (10 * 32 + 80, 10 * 32)
    with gpu_figures.TrafficCounter() as counter:
        c.mul_(2.0)  # in place: read and write the tensor
        c[:, :4].copy_(a[:, :4])  # copy into a slice: the slice's bytes each way
    assert (counter.read, counter.written) == (3200 + 1600, 3200 + 1600)
    with gpu_figures.TrafficCounter() as counter:
        torch.zeros(5, 8).index_add_(0, idx[:5], a[:5])  # zeros writes 160; the scatter adds rows
    assert (counter.read, counter.written) == (160 + 40 + 160, 160 + 160)


def test_distinct_bytes_and_devices_without_cuda(gpu_figures):
    assert gpu_figures.distinct_bytes(torch.zeros(4, 1).expand(4, 6)) == 16
    assert gpu_figures.distinct_bytes(torch.zeros(3, 5, dtype=torch.float64)) == 120
    cpu = torch.device("cpu")
    assert gpu_figures.nominal_bandwidth(cpu) is None and gpu_figures.peak_gib(cpu) is None
    assert gpu_figures.copy_bandwidth(cpu, nbytes=2**20, repeats=2) > 0


def test_smoke_run_writes_the_report_and_the_figures(gpu_figures, tmp_path, capsys):
    """One amp setting keeps it short (parsing profiler traces is slow); both are the default."""
    args = ["--device", "cpu", "--smoke", "--amp", "bf16", "--out", str(tmp_path)]
    assert gpu_figures.main(args) == 0
    results = json.loads((tmp_path / "figures.json").read_text())
    combos = [(f["model"], f["amp"]) for f in results["figures"]]
    assert combos == [("rotate", "bf16"), ("afme", "bf16")]
    for f in results["figures"]:
        assert f["dataset"] == "synth-tiny" and len(f["epoch_seconds"]) == 2 and f["eval_seconds"] > 0
        assert 0 < f["test_mrr"] <= 1 and f["traffic"]["bytes"] > 0 and f["bandwidth"] > 0
        assert f["train_peak_gib"] is None and f["predicted_peak_gib"] > 0  # no CUDA: no allocator peak
        assert f["profile_train"] and f["profile_eval"]
        for phase in ("train", "eval"):
            table = (tmp_path / f"profile-synth-tiny-{f['model']}-{f['amp']}-{phase}.txt").read_text()
            assert "Self CPU" in table
    readme = (tmp_path / "README.md").read_text().splitlines()
    assert readme[2] == "Command: `python benchmarks/gpu_figures.py " + " ".join(args) + "`"
    rows = [line for line in readme if line.startswith("| synth-tiny |")]
    assert [row.split(" | ")[1:3] for row in rows] == [["rotate", "bf16"], ["afme", "bf16"]]
    random = {f["random_mrr"] for f in results["figures"]}  # one test split: one random-ranking MRR
    assert len(random) == 1 and 0 < min(random) < 0.05
    assert [row.split(" | ")[7] for row in rows] == [f"{min(random):.4f}"] * 2
    assert sum(line.startswith("- synth-tiny ") for line in readme) == 4  # train + eval profile per row
    assert "synth-tiny afme amp=bf16: " in capsys.readouterr().out


def test_without_cuda_the_default_device_is_refused(gpu_figures, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit):
        gpu_figures.main([])
    assert (
        "no CUDA device: run on a GPU machine, or check the script with --device cpu --smoke" in capsys.readouterr().err
    )
