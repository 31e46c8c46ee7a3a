"""What NATIVE's gradient penalty gives and costs under a distance score, on the synthetic default
preset at the main job's settings.

NATIVE uses the KGC score as the critic of its adversarial training and adds a WGAN-GP term,
(||grad_x S(x, r)|| - 1)^2 at pairs x between real and generated [head; tail]. Under a distance
score (RotatE, TransE) the gradient of S with respect to x has the same norm at almost every x:
each coordinate of the difference contributes a unit-length gradient to head and tail, whatever
its size. The penalty is then a constant with no gradient, and the double backward that computes
it is pure cost. This script measures both:

- the penalty on ``--batches`` random training batches of a freshly built NATIVE, its spread and
  the largest absolute gradient it sends to any parameter; the same for a DistMult score (whose
  gradient norm varies), as the control;
- NATIVE's training epoch with the penalty (its recipe, ``lambda_gp`` 0.1) and without it
  (``lambda_gp`` 0), and RotatE's epoch, interleaved over ``--rounds`` rounds on one thread.

    python benchmarks/native_penalty.py     # -> reports/speed/native-penalty.{md,json}

The page keeps its hand-written reading when it is rebuilt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace

import torch

from afme_lib.core.atomic import write_text
from afme_lib.engine.timing import machine_name, time_calls_interleaved
from afme_lib.experiments import main_job
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import build_trainer
from afme_lib.experiments.spec import resolve_path
from afme_lib.models.enhance import gradient_penalty

DATASET = "synth:default"


def trainer(model: str, seed: int, **train_changes):
    spec = main_job.model_spec(model, DATASET, seed, main_job.TRAINING)
    if train_changes:
        spec = replace(spec, train=replace(spec.train, **train_changes))
    return build_trainer(spec)


def random_batches(t, count: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = len(t.train_triples)
    return [t.train_triples[torch.randint(n, (t.batch_size,), generator=g)] for _ in range(count)]


def largest_gradient(model, loss: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return max((float(p.grad.abs().max()) for p in model.parameters() if p.grad is not None), default=0.0)


def penalty_check(t, batches: list[torch.Tensor]) -> dict:
    """NATIVE's weighted penalty term (lambda_adv * lambda_gp * penalty) on each batch, the largest
    absolute gradient it sends to any parameter, and for scale the largest of the batch's whole loss."""
    model, weight = t.model, t.cfg.lambda_adv * t.cfg.lambda_gp
    values, largest, whole = [], 0.0, 0.0
    for batch in batches:
        out = model.adversarial_scores(batch)
        term = weight * model._score_penalty(out["real_pair"], out["fake_pair"], out["rel"])
        values.append(float(term.detach()))
        largest = max(largest, largest_gradient(model, term))
        t._adversarial = True  # a batch with the adversarial terms, as every NATIVE batch is
        negatives, corrupt_head = t.sampler.sample(batch)
        whole = max(whole, largest_gradient(model, sum(t._batch_loss(batch, negatives, corrupt_head).values())))
    return {"values": values, "max_abs_grad": largest, "loss_max_abs_grad": whole, "weight": weight}


def control_check(t, batches: list[torch.Tensor]) -> dict:
    """The same penalty with a DistMult score of the same fused pairs (its gradient norm varies)."""
    model = t.model
    values = []
    for batch in batches:
        out = model.adversarial_scores(batch)
        width = out["real_pair"].shape[-1] // 2

        def critic(pair, r, width=width):
            return (pair[:, :width] * r * pair[:, width:]).sum(-1)

        rel = torch.randn(len(batch), width)
        penalty = gradient_penalty(critic, out["real_pair"], out["fake_pair"], rel)
        values.append(float(t.cfg.lambda_adv * t.cfg.lambda_gp * penalty.detach()))
    return {"values": values}


def epoch_seconds(seed: int, rounds: int) -> dict[str, list[float]]:
    with_gp = trainer("native", seed)
    without = trainer("native", seed, lambda_gp=0.0)
    rotate = trainer("rotate", seed)
    for t in (with_gp, without, rotate):
        t.model.train()
        t.train_epoch(1)  # warm-up
    calls = {
        "NATIVE epoch, penalty on": lambda i: with_gp.train_epoch(i + 1),
        "NATIVE epoch, penalty off": lambda i: without.train_epoch(i + 1),
        "RotatE epoch": lambda i: rotate.train_epoch(i + 1),
    }
    return time_calls_interleaved(calls, rounds, with_gp.device)


def report(results: dict, command: str) -> list[str]:
    gp, control = results["penalty"], results["control"]
    seconds = {label: statistics.median(v) for label, v in results["seconds"].items()}
    rotate = seconds["RotatE epoch"]
    on, off = seconds["NATIVE epoch, penalty on"], seconds["NATIVE epoch, penalty off"]
    lines = [
        "# NATIVE's gradient penalty under a distance score (synthetic default preset)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']}. Settings: the main job's for NATIVE ({results['settings']}), seed "
        f"{results['seed']}; {len(gp['values'])} random training batches.",
        "",
        f"The penalty term as added to the loss (lambda_adv x lambda_gp = {gp['weight']:.3g} times the "
        "penalty); for scale, the largest gradient of the batch's whole loss on the same batches is "
        f"{gp['loss_max_abs_grad']:.3g}.",
        "",
        "| critic | term, min | term, max | largest gradient it sends to a parameter |",
        "|---|---:|---:|---:|",
        f"| NATIVE's RotatE score (as trained) | {min(gp['values']):.9g} | {max(gp['values']):.9g} | "
        f"{gp['max_abs_grad']:.3g} |",
        f"| a DistMult score of the same pairs (control) | {min(control['values']):.6g} | "
        f"{max(control['values']):.6g} | |",
        "",
        "| epoch | median s (min–max) | x RotatE epoch |",
        "|---|---|---:|",
    ]
    for label, values in results["seconds"].items():
        lines.append(
            f"| {label} | {seconds[label]:.3f} ({min(values):.3f}–{max(values):.3f}) | {seconds[label] / rotate:.2f} |"
        )
    lines += [
        "",
        f"- The penalty term costs {on - off:.3f} s of NATIVE's {on:.3f} s epoch ({100 * (on - off) / on:.0f} %).",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="reports/speed/native-penalty.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    native = trainer("native", args.seed)
    native.model.train()
    batches = random_batches(native, args.batches, args.seed)
    results = {
        "machine": machine_name(native.device, 1),
        "settings": main_job.settings_text(main_job.TRAINING).split(";")[0]
        + f"; lambda_adv {native.cfg.lambda_adv}, lambda_gp {native.cfg.lambda_gp}",
        "seed": args.seed,
        "penalty": penalty_check(native, batches),
        "control": control_check(native, batches),
        "seconds": epoch_seconds(args.seed, args.rounds),
    }
    command = ("python benchmarks/native_penalty.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    out = resolve_path(args.out)
    write_page(out, report(results, command))
    write_text(out.with_suffix(".json"), json.dumps(results, indent=1) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
