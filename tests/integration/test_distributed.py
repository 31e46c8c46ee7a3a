"""torch.distributed on the CPU: two gloo processes against one.

Processes are started two ways: a real ``torchrun`` subprocess (the product path: ``afme
train`` unchanged) and, where only the worker side matters, ``torch.multiprocessing`` with a
forkserver that imports torch once for the whole session, each worker given the environment
torchrun would give it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Checked: a two-process
run reaches the one-process metrics within seed noise; a run stopped and resumed under torchrun
continues exactly as an uninterrupted one; only rank 0 writes; sharded evaluation equals the
one-process evaluation exactly; DDP's gradient is the global batch's; AFME's processes (critic
included) stay identical.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as tmp
from conftest import trained

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.dataset import load_dataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine import distributed
from afme_lib.engine.checkpoints import load_checkpoint
from afme_lib.engine.evaluation import evaluate
from afme_lib.engine.run_folder import BEST, LAST, read_log
from afme_lib.engine.training import Trainer
from afme_lib.experiments.run import evaluate_run
from afme_lib.interfaces.cli import main

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
EPOCHS, STOP_AT = 12, 8
ROTATE = [
    "--model",
    "rotate",
    "--dim",
    "32",
    "--batch-size",
    "128",
    "--negatives",
    "16",
    "--lr",
    "0.05",
    "--eval-every",
    "4",
    "--no-progress",
    "--device",
    "cpu",
    "--seed",
    "0",
]


def rotate_cfgs(seed=0, epochs=EPOCHS):
    return ModelConfig(name="rotate", dim=32), TrainConfig(
        epochs=epochs, batch_size=128, negatives=16, lr=0.05, eval_every=4, progress=False, device="cpu", seed=seed
    )


def small_afme(**train):
    model = ModelConfig(name="afme", dim=16, attention_layers=1, attention_heads=2, noise_dim=8)
    return model, TrainConfig(
        **{**dict(epochs=1, batch_size=1024, negatives=2, lr=0.02, eval_every=0, progress=False, device="cpu"), **train}
    )


def without_timings(record):
    if isinstance(record, dict):
        return {
            k: without_timings(v) for k, v in record.items() if k not in ("seconds", "train_seconds", "eval_seconds")
        }
    return record


# --- launching workers -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(index: int, world: int, port: int, job, spec: dict) -> None:
    """One process of a torchrun-like job: torchrun's environment, then ``job(rank, spec)``."""
    os.environ.update(
        RANK=str(index),
        LOCAL_RANK=str(index),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    try:
        job(index, spec)
    finally:
        distributed._destroy()  # multiprocessing workers leave through os._exit: no atexit


def launch(job, spec: dict, world: int = WORLD) -> None:
    """Run ``job`` in ``world`` processes of one gloo group; a worker's exception fails the test."""
    ctx = tmp.get_context("forkserver")
    # The forkserver imports these once (torch._dynamo: Adam imports it, ~3 s); every worker is a
    # fork of it, so no worker pays for the imports again.
    ctx.set_forkserver_preload(
        ["torch.distributed", "torch._dynamo", "afme_lib.interfaces.cli", "afme_lib.experiments.run"]
    )
    tmp.start_processes(
        _worker, args=(world, free_port(), job, spec), nprocs=world, join=True, start_method="forkserver"
    )


def torchrun(*afme_args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD}",
        "--monitor-interval",
        "0.1",
        "-m",
        "afme_lib.interfaces.cli",
        *afme_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


# --- jobs (module level: workers import them by name) ---------------------------------------------
def _job_train_runs(rank: int, spec: dict) -> None:
    """`afme train` as torchrun would run it: an uninterrupted run and one stopped early."""
    data, out = spec["data"], Path(spec["out"])
    for name, epochs in (("whole", EPOCHS), ("part", STOP_AT)):
        code = main(["train", "--dataset", data, "--out", str(out / name), "--epochs", str(epochs), *ROTATE])
        assert code == 0, f"rank {rank}: afme train exited with {code}"


def _job_afme_and_gradients(rank: int, spec: dict) -> None:
    data = load_dataset(spec["data"])
    store = FeatureStore.load(spec["data"], data.num_entities, verbose=False)
    out = Path(spec["out"])
    # (1) AFME trained one epoch with its critic: save the weights and the sharded test ranks.
    trainer = Trainer(data, *small_afme(), None, store)
    trainer.fit()
    torch.save(trainer.model.state_dict(), out / f"afme-state-{rank}.pt")
    result = evaluate(trainer.model, data, "test", filter_index=trainer.filter_index, return_ranks=True)
    torch.save({side: torch.from_numpy(r) for side, r in result["ranks"].items()}, out / f"afme-ranks-{rank}.pt")
    # (2) one DDP step on this rank's half of a fixed global batch: save the averaged gradients.
    for name, (model_cfg, train_cfg) in gradient_cases().items():
        trainer = Trainer(data, model_cfg, train_cfg, None, store)
        trainer.model.eval()  # AFME: no generator noise, so both sides compute the same function
        batch, negatives, corrupt_head = fixed_batch(data, train_cfg.negatives)
        mine = slice(rank, None, WORLD)  # the strided shard of distributed.shard_permutation
        terms = trainer._ddp("main", batch[mine], negatives[mine], corrupt_head[mine])
        sum(terms.values()).backward()
        torch.save(
            {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None},
            out / f"grad-{name}-{rank}.pt",
        )


def gradient_cases() -> dict:
    afme_model, afme_train = small_afme(lambda_adv=0.0)  # no generator term: the critic is unused here
    return {
        "rotate": (ModelConfig(name="rotate", dim=16), TrainConfig(negatives=8, device="cpu", progress=False)),
        "mm-concat": (ModelConfig(name="mm-concat", dim=16), TrainConfig(negatives=8, device="cpu", progress=False)),
        "afme": (afme_model, afme_train),
        "rotate-self-negatives": (
            ModelConfig(name="rotate", dim=16),
            TrainConfig(negatives=8, self_negatives=2.0, device="cpu", progress=False),
        ),
        "distmult-1vsall-self-negatives": (
            ModelConfig(name="distmult", dim=16),
            TrainConfig(loss="1vsall", self_negatives=1.0, device="cpu", progress=False),
        ),
    }


def fixed_batch(data, negatives: int):
    generator = torch.Generator().manual_seed(7)
    batch = data.train[:64]
    return (
        batch,
        torch.randint(data.num_entities, (64, negatives), generator=generator),
        torch.rand(64, generator=generator) < 0.5,
    )


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_process_runs(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_runs")
    launch(_job_train_runs, {"data": str(tiny_synth), "out": str(out)})
    return out


@pytest.fixture(scope="module")
def afme_job(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_afme")
    launch(_job_afme_and_gradients, {"data": str(tiny_synth), "out": str(out)})
    return out


# --- the torchrun path -----------------------------------------------------------------------------
def test_resume_under_torchrun_continues_exactly_and_only_rank_zero_writes(two_process_runs):
    whole, part = two_process_runs / "whole", two_process_runs / "part"
    assert load_checkpoint(part / LAST)["state"]["epoch"] == STOP_AT
    done = torchrun("train", "--resume", str(part), "--epochs", str(EPOCHS))
    # Shards and negatives are functions of (seed, epoch, rank): the continuation is exact.
    assert [without_timings(r) for r in read_log(part)] == [without_timings(r) for r in read_log(whole)]
    metrics = json.loads((part / "metrics.json").read_text())
    random = metrics["test"]["random"]
    assert without_timings(metrics) == without_timings(json.loads((whole / "metrics.json").read_text()))
    assert metrics["world_size"] == WORLD and metrics["epochs_run"] == EPOCHS
    # One writer: one log line per epoch, one summary line on stdout, only the run's own files.
    for run in (whole, part):
        assert [r["epoch"] for r in read_log(run)] == list(range(1, EPOCHS + 1))
        assert sorted(p.name for p in run.iterdir()) == sorted(["config.json", "log.jsonl", "metrics.json", BEST, LAST])
    summaries = [line for line in done.stdout.splitlines() if line.startswith("run ")]
    assert len(summaries) == 1  # rank 0 alone prints it
    assert summaries[0].startswith(f"run {part}: test MRR {metrics['test']['mrr']:.4f}")
    assert f"random ranking: MRR {random['mrr']:.4f}" in summaries[0]
    assert json.loads((whole / "config.json").read_text())["world_size"] == WORLD


def test_two_processes_reach_the_one_process_metrics_within_noise(two_process_runs, tiny_synth, tmp_path):
    """Same global batch, same epochs: the valid MRR of the 2-process run lies within the spread
    of 1-process runs over seeds, well above chance, and its final loss matches theirs."""
    # Warm entities' held-out triples: the ones structure can answer (cold ones need features).
    ours = json.loads((two_process_runs / "whole" / "metrics.json").read_text())["valid"]["by_group"]["warm"]
    ours_loss = read_log(two_process_runs / "whole")[-1]["loss"]
    single = []
    for seed in range(3):
        m = trained(str(tiny_synth), *rotate_cfgs(seed), tmp_path / f"s{seed}")
        single.append((m["valid"]["by_group"]["warm"]["mrr"], read_log(tmp_path / f"s{seed}")[-1]["loss"]))
    mrrs, losses = [s[0] for s in single], [s[1] for s in single]
    mean, spread = statistics.mean(mrrs), max(statistics.stdev(mrrs), 0.01)
    assert abs(ours["mrr"] - mean) <= 4 * spread, (ours["mrr"], mrrs)
    chance = 2 / (load_dataset(tiny_synth).num_entities + 1)  # a constant score: the middle rank
    assert ours["mrr"] > 3 * chance
    assert abs(ours_loss - statistics.mean(losses)) <= 0.1 * statistics.mean(losses), (ours_loss, losses)


def test_sharded_evaluation_equals_one_process_evaluation_exactly(two_process_runs):
    """metrics.json was evaluated by 2 processes (267 test triples: uneven blocks); one process
    evaluating the same checkpoint gets identical numbers, categories and sides included."""
    run = two_process_runs / "whole"
    recorded = json.loads((run / "metrics.json").read_text())
    for split in ("valid", "test"):
        assert evaluate_run(run, split, progress=False) == recorded[split]


# --- DDP internals (forkserver workers) ------------------------------------------------------------
def test_ddp_gradient_is_the_gradient_of_the_global_batch(afme_job, tiny_synth):
    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    for name, (model_cfg, train_cfg) in gradient_cases().items():
        trainer = Trainer(data, model_cfg, train_cfg, None, store)
        trainer.model.eval()
        batch, negatives, corrupt_head = fixed_batch(data, train_cfg.negatives)
        sum(trainer._main_losses(batch, negatives, corrupt_head).values()).backward()
        expected = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
        assert expected, name
        for rank in range(WORLD):
            got = torch.load(afme_job / f"grad-{name}-{rank}.pt")
            assert got.keys() == expected.keys(), name
            for key, grad in expected.items():
                torch.testing.assert_close(got[key], grad, rtol=1e-5, atol=1e-7, msg=f"{name} {key} rank {rank}")


def test_afme_processes_stay_identical_and_its_sharded_ranks_match_one_process(afme_job, tiny_synth):
    states = [torch.load(afme_job / f"afme-state-{rank}.pt") for rank in range(WORLD)]
    assert any(k.startswith("critic.") for k in states[0])
    for key, value in states[0].items():  # DDP kept every parameter, the critic's included, in step
        assert torch.equal(states[1][key], value), key
    data = load_dataset(tiny_synth)
    store = FeatureStore.load(tiny_synth, data.num_entities, verbose=False)
    trainer = Trainer(data, *small_afme(), None, store)
    trainer.model.load_state_dict(states[0])
    single = evaluate(trainer.model, data, "test", return_ranks=True)["ranks"]
    for rank in range(WORLD):
        sharded = torch.load(afme_job / f"afme-ranks-{rank}.pt")
        for side in ("tail", "head"):
            np.testing.assert_array_equal(sharded[side].numpy(), single[side])


# --- in-process helpers ----------------------------------------------------------------------------
@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shards_cover_the_permutation_and_rebuild_the_global_batches(n, world):
    shards = [distributed.shard_permutation(n, epoch=3, seed=5, rank_=r, world=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-n // world)
    merged = torch.stack(shards, 1).flatten()  # position j of the padded permutation is shard j % W
    assert sorted(set(merged.tolist())) == list(range(n))
    assert len(merged) - n == (-n) % world  # the padding repeats the first few entries once
    # batch i of every rank together = positions [i b W, (i+1) b W) of the shared permutation
    b = 2
    for i in range(len(shards[0]) // b):
        together = torch.cat([s[i * b : (i + 1) * b] for s in shards]).sort().values
        assert torch.equal(together, merged[i * b * world : (i + 1) * b * world].sort().values)
    # another epoch, another permutation; the same epoch, the same one
    assert not torch.equal(distributed.shard_permutation(50, 4, 5, 0, 2), distributed.shard_permutation(50, 3, 5, 0, 2))
    assert torch.equal(distributed.shard_permutation(50, 4, 5, 1, 2), distributed.shard_permutation(50, 4, 5, 1, 2))


def test_shard_bounds_split_evenly():
    for n, world in [(267, 2), (10, 3), (1, 2), (0, 2)]:
        bounds = [distributed.shard_bounds(n, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(e - s for s, e in bounds) - min(e - s for s, e in bounds) <= 1


def test_rank_seeds_differ_by_rank_and_epoch():
    seeds = {distributed.rank_seed(0, epoch, rank) for epoch in range(1, 20) for rank in range(4)}
    assert len(seeds) == 19 * 4 and all(0 <= s < 2**63 for s in seeds)


def test_without_torchrun_nothing_is_initialised(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info, device = distributed.init_from_env(torch.device("cpu"))
    assert (info.rank, info.world_size, info.active, info.is_main) == (0, 1, False, True)
    assert device == torch.device("cpu") and not torch.distributed.is_initialized()
    rows = torch.arange(6.0).view(3, 2)
    assert distributed.all_gather_rows(rows) is rows
    assert torch.equal(distributed.all_reduce(rows, "max"), rows)
    distributed.barrier()  # a no-op with one process
