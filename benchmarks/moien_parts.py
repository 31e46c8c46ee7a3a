"""What each part of AFME's epoch costs on the synthetic default preset, beside RotatE's epoch.

The speed page (benchmarks/speed_models.py) gives AFME's whole epoch and AFME's without MoIEn
(``afme-no-gan``). This script splits MoIEn's share into its parts. It uses the speed page's
settings: dim 128, batch 1024, 16 negatives, a shared pool of ``--negative-pool`` (1024 by
default; 0 for independent negatives), one torch thread. After one warm-up epoch of each model,
the following run in turn, ``--rounds`` times:

- the cross-check table: every measured row through the generator, once per epoch;
- one critic step with its gradient penalty (every ``adversarial_every``-th batch);
- the generator's loss, forward and backward (the same batches);
- one KGC step, forward and backward: the per-step completions of missing rows included, the
  optimiser step not;
- AFME's whole epoch and RotatE's whole epoch;
- AFME's epoch with MoIFu's per-pair fusion skipped (:func:`fusion_skipped`, on a third trainer):
  a lower bound on AFME's epoch under any cheaper per-pair gate.

Each part's median is multiplied by how often an epoch runs it, then divided by RotatE's epoch.

    python benchmarks/moien_parts.py --work /tmp/speedwork

writes ``reports/speed/moien-parts.md`` (keeping its hand-written reading) and ``moien-parts.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed_models  # noqa: E402  (the speed page's datasets and trainer settings)

from afme_lib.core.atomic import write_text  # noqa: E402
from afme_lib.engine.device import resolve_device  # noqa: E402
from afme_lib.engine.timing import machine_name, time_calls_interleaved  # noqa: E402
from afme_lib.experiments.pages.writer import write_page  # noqa: E402

PARTS = ("cross-check table", "critic step", "generator loss", "KGC step")
SKIPPED = "AFME epoch, fusion skipped"


def a_batch(trainer) -> torch.Tensor:
    """One batch of training triples drawn at random (the same for every trainer of a dataset):
    the files list triples in an order an epoch's shuffled batches do not have."""
    order = torch.randperm(len(trainer.train_triples), generator=torch.Generator().manual_seed(0))
    return trainer.train_triples[order[: trainer.batch_size].to(trainer.train_triples.device)]


def part_calls(trainer) -> dict:
    """One call per part of an AFME trainer's epoch (module docstring), each on :func:`a_batch`."""
    model = trainer.model
    batch = a_batch(trainer)
    h, r, t = batch.unbind(1)

    def table(_):
        model._check_cache = None  # the table is rebuilt at its first read of an epoch
        model._check_table()

    def generator_loss(_):
        model.zero_grad(set_to_none=True)
        model.generator_loss(torch.cat([h, t]), torch.cat([r, r])).backward()

    return {
        "cross-check table": table,
        "critic step": lambda _: trainer._critic_steps(batch),
        "generator loss": generator_loss,
        "KGC step": kgc_step(trainer),
    }


def kgc_step(trainer):
    """One KGC step of ``trainer`` on :func:`a_batch`, forward and backward, without the optimiser."""
    batch = a_batch(trainer)

    def step(_):
        trainer._adversarial = False  # the batches between MoIEn's updates
        negatives, corrupt_head = trainer.sampler.sample(batch)
        trainer.model.zero_grad(set_to_none=True)
        sum(trainer._batch_loss(batch, negatives, corrupt_head).values()).backward()

    return step


@contextmanager
def fusion_skipped(model):
    """Within: the model's per-pair fusion (:class:`~afme_lib.models.fused_pairs.FusedPairs`)
    replaced by lambda_r e_s plus the pair's first token, one [n, D] gather that keeps a gradient
    path to the token table. Everything else in the epoch runs as it is, so its time bounds from
    below what an epoch would cost with any per-pair gate. For timing only: the model learns
    nothing meaningful meanwhile."""

    def skip(structure, token_table, token_norm, available, gate_table, ctx, generated, index):
        return structure + token_table[:, 0].index_select(0, index)

    model.fusion._fused_pairs = skip  # an instance attribute shadows the method
    try:
        yield
    finally:
        del model.fusion._fused_pairs


def per_epoch(trainer) -> dict[str, int]:
    """How many times one epoch runs each part."""
    batches = math.ceil(len(trainer.train_triples) / trainer.batch_size)
    adversarial = math.ceil(batches / trainer.cfg.adversarial_every)
    return {
        "cross-check table": 1 if trainer.model.cross_check else 0,
        "critic step": adversarial,
        "generator loss": adversarial,
        "KGC step": batches,
    }


def measure(data, features, pool: int, rounds: int, args) -> dict:
    """Seconds of every part and of both epochs, ``rounds`` times each, taken in turn."""
    afme = speed_models.build(data, features, "afme", pool, args)
    rotate = speed_models.build(data, features, "rotate", pool, args)
    bound = speed_models.build(data, features, "afme", pool, args)

    def skipped_epoch(i):
        with fusion_skipped(bound.model):
            bound.train_epoch(i + 1)

    for epoch in (afme.train_epoch, rotate.train_epoch, skipped_epoch):
        epoch(1)
    afme.model.train()
    parts = part_calls(afme)
    epochs = {
        "AFME epoch": lambda i: afme.train_epoch(i + 1),
        "RotatE epoch": lambda i: rotate.train_epoch(i + 1),
        SKIPPED: skipped_epoch,
    }
    seconds = time_calls_interleaved({**parts, **epochs}, rounds, afme.device)
    return {"seconds": seconds, "per_epoch": per_epoch(afme)}


def summary(results: dict) -> dict:
    """The page's figures: per part, the median call, calls per epoch, seconds per epoch and that
    over RotatE's epoch; and the epoch's splits (MoIEn's share, the KGC steps, the fusion skipped)."""
    seconds, counts = results["seconds"], results["per_epoch"]
    median = {label: statistics.median(values) for label, values in seconds.items()}
    rotate = median["RotatE epoch"]
    parts = {}
    for label in (*PARTS, "AFME epoch", SKIPPED, "RotatE epoch"):
        calls = counts.get(label, 1)
        parts[label] = {
            "ms": 1000 * median[label],
            "ms_min": 1000 * min(seconds[label]),
            "ms_max": 1000 * max(seconds[label]),
            "calls": calls,
            "epoch_seconds": calls * median[label],
            "x_rotate": calls * median[label] / rotate,
        }
    moien = sum(counts[p] * median[p] for p in PARTS if p != "KGC step")
    left = median["AFME epoch"] - moien
    return {
        "parts": parts,
        "afme_x_rotate": median["AFME epoch"] / rotate,
        "moien_seconds": moien,
        "moien_x_rotate": moien / rotate,
        "without_moien_seconds": left,
        "without_moien_x_rotate": left / rotate,
        "kgc_x_rotate": counts["KGC step"] * median["KGC step"] / rotate,
        "skipped_seconds": median[SKIPPED],
        "skipped_x_rotate": median[SKIPPED] / rotate,
    }


def report(results: dict, command: str) -> list[str]:
    f = summary(results)
    lines = [
        "# MoIEn's parts of AFME's epoch (synthetic default preset)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']}. Settings: {results['settings']}.",
        "",
        "| part | ms per call (median, min–max) | calls per epoch | s per epoch | x RotatE epoch |",
        "|---|---|---|---|---|",
    ]
    for label, part in f["parts"].items():
        lines.append(
            f"| {label} | {part['ms']:.0f} ({part['ms_min']:.0f}–{part['ms_max']:.0f}) | {part['calls']} | "
            f"{part['epoch_seconds']:.2f} | {part['x_rotate']:.2f} |"
        )
    lines += [
        "",
        f"- AFME's epoch: {f['afme_x_rotate']:.1f}x RotatE's.",
        f"- The table, the critic steps and the generator's loss: {f['moien_seconds']:.2f} s per epoch "
        f"({f['moien_x_rotate']:.1f}x RotatE's epoch). The epoch without them: {f['without_moien_seconds']:.2f} "
        f"s, {f['without_moien_x_rotate']:.1f}x RotatE's.",
        f"- The KGC steps alone, forward and backward without the optimiser: {f['kgc_x_rotate']:.1f}x RotatE's epoch.",
        f"- With MoIFu's per-pair fusion skipped (a lower bound for any cheaper per-pair gate): "
        f"{f['skipped_seconds']:.2f} s, {f['skipped_x_rotate']:.1f}x RotatE's epoch.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/speed", help="where the synthetic preset is written")
    parser.add_argument("--negative-pool", type=int, default=1024, help="0: independent negatives")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="reports/speed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.datasets, args.epochs = ["synth-default"], 2
    data, features = speed_models.datasets(args)["synth-default"]
    results = measure(data, features, args.negative_pool, args.rounds, args)
    results["machine"] = machine_name(resolve_device(args.device), args.threads)
    results["settings"] = (
        f"dim {args.dim}, batch 1024, 16 negatives, {speed_models.pool_name(args.negative_pool)}, "
        f"{args.rounds} rounds after a warm-up epoch"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "moien-parts.json", json.dumps(results, indent=2) + "\n")
    command = "python benchmarks/moien_parts.py " + " ".join(argv if argv is not None else sys.argv[1:])
    page = report(results, command)
    write_page(out / "moien-parts.md", page)
    print("\n".join(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
