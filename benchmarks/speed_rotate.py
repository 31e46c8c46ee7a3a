"""Speed of RotatE training and full filtered evaluation: afme-workbench vs PyKEEN, same machine.

Both train RotatE with the same settings (complex dimension ``--complex-dim``, i.e. 2x that many
reals per entity; batch 1024; 64 negatives per positive; self-adversarial loss, margin 6,
temperature 1; Adam) and run the filtered test evaluation (both sides, all entities). Printed and
written to ``reports/speed/``: seconds per epoch and per full evaluation, and our speed-up ratios.

PyKEEN's full evaluation takes many minutes on a small CPU, so by default it is timed on the first
``--pykeen-eval-triples`` test triples and scaled linearly to the whole split (evaluation cost is
linear in the number of queries; the scaling is printed). ``--pykeen-eval-triples 0`` times it all.

    python benchmarks/speed_rotate.py --dataset MKG-W --data-dir ../shared/datasets
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from afme_lib.data.benchmarks import load_benchmark
from afme_lib.engine.evaluation import evaluate
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import build_trainer
from afme_lib.experiments.spec import RunSpec


def time_ours(data, args, compile_: bool) -> dict:
    # PyKEEN's RotatE gets the same settings below; it has no self-negatives, so ours has none either.
    spec = RunSpec.from_fields(
        {
            "dataset": data.name,
            "model": "rotate",
            "dim": 2 * args.complex_dim,
            "epochs": args.epochs,
            "batch_size": 1024,
            "negatives": 64,
            "lr": 1e-3,
            "margin": 6.0,
            "adv_temperature": 1.0,
            "self_negatives": 0.0,
            "eval_every": 0,
            "compile": "on" if compile_ else "off",
            "device": args.device,
            "progress": False,
            "seed": 0,
        }
    )
    trainer = build_trainer(spec, data)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        epochs.append(time.perf_counter() - start)
    start = time.perf_counter()
    result = evaluate(trainer.model, data, "test", filter_index=trainer.filter_index, batch_size=256)
    eval_seconds = time.perf_counter() - start
    # The first compiled epoch pays for compilation: report steady-state epochs separately.
    steady = epochs[1:] if len(epochs) > 1 else epochs
    return {
        "epoch_seconds": epochs,
        "steady_epoch_seconds": sum(steady) / len(steady),
        "eval_seconds": eval_seconds,
        "test_mrr": result["mrr"],
        "device": str(trainer.device),
    }


def time_pykeen(data, args) -> dict:
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.losses import NSSALoss
    from pykeen.models import RotatE
    from pykeen.training import SLCWATrainingLoop
    from pykeen.triples import TriplesFactory

    ent = {f"e{i}": i for i in range(data.num_entities)}
    rel = {f"r{i}": i for i in range(data.num_relations)}
    factory = TriplesFactory(mapped_triples=data.train, entity_to_id=ent, relation_to_id=rel)
    torch.manual_seed(0)
    model = RotatE(
        triples_factory=factory,
        embedding_dim=args.complex_dim,
        loss=NSSALoss(margin=6.0, adversarial_temperature=1.0),
        random_seed=0,
    ).to(args.device_resolved)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=factory,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": 64},
    )
    epochs = []
    for _ in range(args.pykeen_epochs):
        start = time.perf_counter()
        loop.train(triples_factory=factory, num_epochs=1, batch_size=1024, use_tqdm=False)
        epochs.append(time.perf_counter() - start)
    test = data.test if args.pykeen_eval_triples <= 0 else data.test[: args.pykeen_eval_triples]
    evaluator = RankBasedEvaluator(filtered=True)
    start = time.perf_counter()
    evaluator.evaluate(
        model,
        test.to(args.device_resolved),
        batch_size=256,
        use_tqdm=False,
        additional_filter_triples=[data.train, data.valid],
    )
    measured = time.perf_counter() - start
    scale = len(data.test) / len(test)
    return {
        "epoch_seconds": epochs,
        "steady_epoch_seconds": sum(epochs) / len(epochs),
        "eval_seconds": measured * scale,
        "eval_seconds_measured": measured,
        "eval_triples_measured": len(test),
        "eval_scale": scale,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="MKG-W")
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--complex-dim", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pykeen-epochs", type=int, default=1)
    parser.add_argument("--pykeen-eval-triples", type=int, default=300)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-pykeen", action="store_true")
    parser.add_argument("--out", default="reports/speed")
    args = parser.parse_args()
    args.device_resolved = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )

    data = load_benchmark(args.dataset, data_dir=args.data_dir)
    results = {
        "machine": {
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "settings": {k: v for k, v in vars(args).items()},
    }
    # Our first Trainer sets the process's malloc (afme_lib/engine/allocator.py) before anything is timed,
    # so PyKEEN, timed later in this process, runs under the same allocator settings.
    results["ours_compiled"] = time_ours(data, args, compile_=True)
    results["ours_eager"] = time_ours(data, args, compile_=False)
    if not args.skip_pykeen:
        results["pykeen"] = time_pykeen(data, args)

    rows = [
        ("afme-workbench, torch.compile", results["ours_compiled"]),
        ("afme-workbench, eager", results["ours_eager"]),
    ]
    if "pykeen" in results:
        rows.append(("PyKEEN", results["pykeen"]))
    lines = [
        f"# RotatE speed on {data.name}: afme-workbench vs PyKEEN",
        "",
        f"Command: `python benchmarks/speed_rotate.py --dataset {args.dataset} --complex-dim {args.complex_dim} "
        f"--epochs {args.epochs} --pykeen-epochs {args.pykeen_epochs} --pykeen-eval-triples {args.pykeen_eval_triples}`",
        f"Machine: {results['machine']['platform']}, {results['machine']['threads']} torch threads, "
        f"torch {results['machine']['torch']}, device {results['ours_compiled']['device']}.",
        f"Settings: RotatE, {args.complex_dim} complex coordinates, batch 1024, 64 negatives per positive, "
        "self-adversarial loss (margin 6, temperature 1), Adam lr 1e-3; filtered test evaluation, both sides.",
        "",
        "| implementation | s / epoch (steady) | s / full filtered test evaluation |",
        "|---|---|---|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['steady_epoch_seconds']:.1f} | {r['eval_seconds']:.1f} |")
    if "pykeen" in results:
        pk = results["pykeen"]
        for name, r in rows[:2]:
            lines.append("")
            lines.append(
                f"**{name}**: epoch {pk['steady_epoch_seconds'] / r['steady_epoch_seconds']:.1f}x faster, "
                f"evaluation {pk['eval_seconds'] / r['eval_seconds']:.1f}x faster than PyKEEN."
            )
        if pk["eval_scale"] > 1:
            lines.append("")
            lines.append(
                f"PyKEEN's evaluation was timed on {pk['eval_triples_measured']} test triples "
                f"({pk['eval_seconds_measured']:.1f} s) and scaled x{pk['eval_scale']:.2f} to the full split."
            )
    compiled = results["ours_compiled"]["epoch_seconds"]
    lines += ["", f"First compiled epoch (includes compilation): {compiled[0]:.1f} s."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{data.name}-{results['ours_compiled']['device'].split(':')[0]}"
    (out / f"rotate-{tag}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    write_page(out / f"rotate-{tag}.md", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
