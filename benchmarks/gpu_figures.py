"""GPU figures: seconds per epoch and per full filtered evaluation, peak memory, the evaluation's
achieved fraction of the device's memory bandwidth, and the profiler's top kernels, for RotatE
and full AFME on MKG-W and KVC16K, with bf16 off and on.

One command, from the repository root of a machine with a CUDA GPU::

    python benchmarks/gpu_figures.py

writes ``reports/gpu/README.md`` (the table, the command, the machine), ``reports/gpu/figures.json``
(every number) and ``reports/gpu/profile-<dataset>-<model>-<amp>-<phase>.txt`` (torch.profiler
tables). Smoke test of the same code on a CPU (synthetic tiny graph, small models, seconds)::

    python benchmarks/gpu_figures.py --device cpu --smoke --out /tmp/gpu-smoke

What is measured, per (dataset, model, amp):

* **s / epoch**: ``--epochs`` epochs of ``Trainer.train_epoch``; the first is a warm-up (allocator,
  cuBLAS heuristics, compilation) and is reported separately. CUDA kernels run asynchronously, so
  ``torch.cuda.synchronize()`` is called before the clock starts and before it stops; otherwise
  the clock would stop while queued work still runs.
* **s / eval**: one full filtered evaluation of the test split (both sides, every entity as a
  candidate, train + valid + test filtered), after a warm-up evaluation of a few hundred triples,
  synchronised the same way. The engine evaluates in float32 whatever ``amp`` says (a bf16 score
  has 8 significant bits: ranking in it would create ties the model does not have), so the two
  amp settings differ in training only; both evaluations are still timed.
* **peak GiB**: ``torch.cuda.reset_peak_memory_stats()`` before a phase,
  ``torch.cuda.max_memory_allocated()`` after it; next to the training peak, the memory model's
  prediction (``afme_lib.engine.memory.plan``; ``afme memory`` prints the same).
* **bandwidth**: ``bytes / eval seconds``. ``bytes`` is counted by running the same evaluation
  once more under a ``TorchDispatchMode`` (:class:`TrafficCounter`) that sees every aten op: an op
  that launches a kernel reads each distinct element of its inputs once and writes its outputs
  once; views and allocations move nothing; gathers (``index``, ``index_select``, ``embedding``,
  ``gather``) read only the rows they return plus their indices; scatters read and write the rows
  they touch; a broadcast (stride-0) dimension is read once. That is the traffic of the kernels
  as written, each streaming its operands from memory. Data that stays in L2 between two kernels
  (50 MB on an H100) makes the real DRAM traffic smaller, so where temporaries fit in L2 the
  fraction overstates DRAM use; compiled kernels are invisible to the counter, so with
  ``--compile`` no bandwidth is reported. **fraction** = bandwidth / peak, peak = 2 x memory clock x
  bus width / 8 (``torch.cuda.get_device_properties``); the bandwidth of a 1 GiB device-to-device
  copy measured here (what a simple kernel reaches) is reported beside it.
* **profiles**: ``torch.profiler`` (CPU + CUDA activities) over ``--profile-batches`` training
  batches and over the evaluation of ``--profile-triples`` test triples; the profile files hold
  the op table by self device time, the README's section the top CUDA kernels and their share of
  all kernel time (on a CPU: ops by self CPU time). That section is where to look for the
  bottleneck before changing any code.

AFME reads modality features. ``--features-root DIR`` uses ``DIR/<dataset folder>/`` (the released
``<DATASET>-visual.pth`` ... files); without it, random stand-in features with the released layout
(MKG-W: image 383 + text 384 wide; KVC16K: four modalities, 384 wide each -- an assumption) are
generated: the cost of fusion does not depend on the values, only on the widths.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from afme_lib.data.benchmarks import load_benchmark
from afme_lib.data.feature_store import FeatureStore
from afme_lib.engine.evaluation import evaluate, random_baseline
from afme_lib.engine.memory import plan
from afme_lib.experiments.pages.writer import write_page
from afme_lib.experiments.run import build_trainer
from afme_lib.experiments.spec import RunSpec

COMMAND = "python benchmarks/gpu_figures.py"
DATASETS = ("MKG-W", "KVC16K")
MODELS = ("rotate", "afme")
AMPS = ("none", "bf16")
STANDIN_DIMS = {"MKG-W": {"image": 383, "text": 384}, "KVC16K": {"image": 384, "text": 384, "audio": 384, "video": 384}}
GiB = 2**30

aten = torch.ops.aten
# Ops that move no data (views without schema alias info, allocations, metadata).
FREE_OPS = {
    aten._unsafe_view.default,
    aten.detach.default,
    aten.lift_fresh.default,
    aten.empty.memory_format,
    aten.empty_like.default,
    aten.empty_strided.default,
    aten.new_empty.default,
    aten.new_empty_strided.default,
    aten.resize_.default,
    aten.set_.source_Storage_storage_offset,
    aten.sym_size.int,
    aten.sym_stride.int,
    aten.sym_numel.default,
    aten.sym_storage_offset.default,
    aten._local_scalar_dense.default,
}
GATHER_OPS = {"index", "index_select", "embedding", "gather", "take"}
SCATTER_OPS = {
    "index_put",
    "index_put_",
    "_index_put_impl_",
    "index_add",
    "index_add_",
    "index_copy",
    "index_copy_",
    "scatter",
    "scatter_",
    "scatter_add",
    "scatter_add_",
}


# --- bytes moved ------------------------------------------------------------------------------------
def distinct_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel must touch to read ``t`` once: its stride-0 (broadcast) dimensions count once."""
    elements = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            elements *= size
    return elements * t.element_size()


def _tensors(tree) -> list[torch.Tensor]:
    flat, _ = torch.utils._pytree.tree_flatten(tree)
    return [x for x in flat if isinstance(x, torch.Tensor)]


class TrafficCounter(TorchDispatchMode):
    """Counts the bytes every aten kernel reads and writes (rules in the module docstring)."""

    def __init__(self):
        super().__init__()
        self.read = self.written = self.ops = 0

    @property
    def total(self) -> int:
        return self.read + self.written

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in FREE_OPS or func.is_view:
            return out
        name = func.overloadpacket.__name__
        inputs, outputs = _tensors((args, kwargs)), _tensors(out)
        seen, unique = set(), []
        for t in inputs:
            key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if key not in seen:
                seen.add(key)
                unique.append(t)
        if name in GATHER_OPS:
            moved = sum(distinct_bytes(t) for t in outputs)
            index = sum(distinct_bytes(t) for t in unique[1:] if not t.is_floating_point())
            read, written = moved + index, moved
        elif name in SCATTER_OPS:
            values = sum(distinct_bytes(t) for t in unique[1:] if t.is_floating_point())
            index = sum(distinct_bytes(t) for t in unique[1:] if not t.is_floating_point())
            read, written = values + index + (values if "add" in name else 0), values
        elif name == "copy_":
            read, written = distinct_bytes(args[1]), distinct_bytes(args[0])
        else:
            read, written = sum(distinct_bytes(t) for t in unique), sum(distinct_bytes(t) for t in outputs)
        self.read += read
        self.written += written
        self.ops += 1
        return out


# --- the device ---------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nominal_bandwidth(device: torch.device) -> float | None:
    """Peak DRAM bandwidth in bytes/s: 2 (double data rate) x memory clock x bus width / 8."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device)
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    return 2 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None


def copy_bandwidth(device: torch.device, nbytes: int = GiB, repeats: int = 10) -> float:
    """Bytes/s of a device-to-device copy (read + write counted), after one warm-up copy."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    synchronize(device)
    return 2 * nbytes * repeats / (time.perf_counter() - start)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None


# --- inputs -------------------------------------------------------------------------------------------
def standin_features(num_entities: int, dims: dict[str, int], seed: int = 0) -> FeatureStore:
    generator = torch.Generator().manual_seed(seed)
    store = FeatureStore(num_entities)
    for modality, dim in dims.items():
        store.add(modality, torch.randn(num_entities, dim, generator=generator))
    return store


def dataset_inputs(name: str, args) -> tuple:
    """(dataset, feature store, feature source) for a benchmark name (or the smoke preset)."""
    if args.smoke:
        from afme_lib.data.synthetic import write_synthetic

        folder = write_synthetic(Path(args.out) / "synth-tiny", "tiny", seed=0)
        data = load_benchmark(str(folder))
        data = dataclasses.replace(data, train=data.train[:1024])  # two batches an epoch: seconds in all
        return data, FeatureStore.load(folder, data.num_entities, verbose=False), "synthetic tiny preset"
    data = load_benchmark(name, data_dir=args.data_dir)
    if args.features_root:
        folder = Path(args.features_root) / (data.path.name if data.path else name)
        return data, FeatureStore.load(folder, data.num_entities), f"released features from {folder}"
    dims = STANDIN_DIMS.get(data.name, {"image": 384, "text": 384})
    widths = ", ".join(f"{m} {d}" for m, d in dims.items())
    return data, standin_features(data.num_entities, dims), f"random stand-ins ({widths})"


def run_spec(data, model: str, amp: str, args, device: torch.device) -> RunSpec:
    extra = {"attention_layers": 1, "attention_heads": 2, "noise_dim": 8} if args.smoke and model == "afme" else {}
    return RunSpec.from_fields(
        {
            "dataset": data.name,
            "model": model,
            "dim": args.dim,
            "scorer": "rotate",
            **extra,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "negatives": args.negatives,
            "lr": 1e-3,
            "eval_every": 0,
            "eval_batch_size": args.eval_batch_size,
            "device": str(device),
            "amp": amp,
            "compile": "on" if args.compile else "off",
            "progress": False,
            "seed": 0,
        }
    )


def truncated(data, test_triples: int):
    return dataclasses.replace(data, test=data.test[:test_triples])


# --- profiles -------------------------------------------------------------------------------------------
def top_kernels(averages, device: torch.device, limit: int = 8) -> list[dict]:
    """The kernels with the largest self time on the GPU; on a CPU, the ops by self CPU time.

    On CUDA only the kernel events themselves are ranked: the aten op that launched a kernel
    carries the same device time, and counting both would double every share."""
    if device.type == "cuda":
        key = "self_device_time_total"
        events = [e for e in averages if e.device_type == DeviceType.CUDA and getattr(e, key, 0) > 0]
    else:
        key = "self_cpu_time_total"
        events = [e for e in averages if getattr(e, key, 0) > 0]
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    return [
        {"name": e.key, "calls": e.count, "self_ms": getattr(e, key) / 1e3, "share": getattr(e, key) / total}
        for e in events[:limit]
    ]


def profiled(fn, device: torch.device, path: Path) -> list[dict]:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    averages = prof.key_averages()  # aggregating the trace is slow in Python: once per profile
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.write_text(averages.table(sort_by=key, row_limit=30) + "\n")
    return top_kernels(averages, device)


# --- one configuration ----------------------------------------------------------------------------
def measure(data, features, model: str, amp: str, args, device: torch.device, out: Path) -> dict:
    spec = run_spec(data, model, amp, args, device)
    tag = f"{data.name}-{model}-{amp}"
    feature_dims = {m: int(f.shape[1]) for m, f in features.features.items()}
    predicted = plan(spec.model, spec.train, data.num_entities, data.num_relations, feature_dims, "device", device)
    trainer = build_trainer(spec, data, features)

    reset_peak(device)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        synchronize(device)
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        synchronize(device)
        epochs.append(time.perf_counter() - start)
    train_peak = peak_gib(device)

    def run_eval(dataset):
        return evaluate(
            trainer.model, dataset, "test", filter_index=trainer.filter_index, batch_size=args.eval_batch_size
        )

    run_eval(truncated(data, min(len(data.test), 256)))  # warm-up: kernels, allocator, cuBLAS
    reset_peak(device)
    synchronize(device)
    start = time.perf_counter()
    result = run_eval(data)
    synchronize(device)
    eval_seconds = time.perf_counter() - start
    eval_peak = peak_gib(device)

    traffic = None
    if not args.compile:
        counter = TrafficCounter()
        with counter:
            run_eval(data)
        traffic = {"bytes": counter.total, "read": counter.read, "written": counter.written, "ops": counter.ops}

    # Profiles: a few training batches (a shortened epoch) and the evaluation of a few triples.
    full = trainer.train_triples
    trainer.train_triples = full[: args.profile_batches * trainer.batch_size]
    train_top = profiled(lambda: trainer.train_epoch(args.epochs + 1), device, out / f"profile-{tag}-train.txt")
    trainer.train_triples = full
    small = truncated(data, min(len(data.test), args.profile_triples))
    eval_top = profiled(lambda: run_eval(small), device, out / f"profile-{tag}-eval.txt")

    steady = epochs[1:] or epochs
    figures = {
        "dataset": data.name,
        "model": model,
        "amp": amp,
        "entities": data.num_entities,
        "relations": data.num_relations,
        "train_triples": len(data.train),
        "test_triples": len(data.test),
        "epoch_seconds": epochs,
        "steady_epoch_seconds": sum(steady) / len(steady),
        "eval_seconds": eval_seconds,
        "test_mrr": result["mrr"],
        "random_mrr": random_baseline(data, "test", trainer.filter_index)["mrr"],
        "train_peak_gib": train_peak,
        "eval_peak_gib": eval_peak,
        "predicted_peak_gib": predicted.peak_bytes / GiB,
        "predicted_activation_gib": predicted.fixed["activations"] / GiB,
        "traffic": traffic,
        "bandwidth": traffic["bytes"] / eval_seconds if traffic else None,
        "profile_train": train_top,
        "profile_eval": eval_top,
    }
    return figures


# --- the report --------------------------------------------------------------------------------------
def _num(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def report_lines(results: dict) -> list[str]:
    machine, peak = results["machine"], results["machine"]["nominal_bandwidth"]
    copy_bw = machine["copy_bandwidth"]
    lines = [
        "# GPU figures: RotatE and AFME, bf16 off and on",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {machine['device_name']}, torch {machine['torch']}, {machine['platform']}; "
        f"nominal memory bandwidth {_num(peak and peak / 1e9, '.0f')} GB/s, "
        f"measured device-to-device copy {copy_bw / 1e9:.0f} GB/s.",
        "",
        f"Settings: dim {results['settings']['dim']} (RotatE: dim/2 complex coordinates; AFME: all components "
        f"on, RotatE scorer), batch {results['settings']['batch_size']}, {results['settings']['negatives']} "
        f"negatives, Adam; evaluation batch {results['settings']['eval_batch_size']}, filtered, both sides, "
        "float32. Features: " + "; ".join(f"{k}: {v}" for k, v in results["features"].items()) + ".",
        "",
        "| dataset | model | amp | s / epoch | first epoch s | s / full eval | test MRR | random MRR | train peak "
        "GiB (model) | eval peak GiB | eval GB moved | GB/s | fraction of peak | top eval kernel |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for f in results["figures"]:
        moved = f["traffic"]["bytes"] / 1e9 if f["traffic"] else None
        fraction = f["bandwidth"] / peak if f["bandwidth"] and peak else None
        top = f["profile_eval"][0] if f["profile_eval"] else None
        top_cell = f"{top['name'][:48]} ({top['share']:.0%})" if top else "n/a"
        lines.append(
            f"| {f['dataset']} | {f['model']} | {f['amp']} | {f['steady_epoch_seconds']:.2f} | "
            f"{f['epoch_seconds'][0]:.2f} | {f['eval_seconds']:.2f} | {f['test_mrr']:.4f} | {f['random_mrr']:.4f} | "
            f"{_num(f['train_peak_gib'], '.2f')} ({f['predicted_peak_gib']:.2f}) | "
            f"{_num(f['eval_peak_gib'], '.2f')} | {_num(moved, '.1f')} | "
            f"{_num(f['bandwidth'] and f['bandwidth'] / 1e9, '.0f')} | {_num(fraction, '.2f')} | {top_cell} |"
        )
    lines += [
        "",
        "The model's figure is the memory model's predicted peak (afme_lib/engine/memory.py), training state "
        "plus the larger of the batch activations and the evaluation temporaries.",
        "",
        "## Where the time goes (torch.profiler, self time)",
        "",
    ]
    for f in results["figures"]:
        for phase in ("train", "eval"):
            kernels = f[f"profile_{phase}"]
            cells = "; ".join(f"{k['name'][:60]} {k['share']:.0%}" for k in kernels[:5])
            lines.append(
                f"- {f['dataset']} {f['model']} {f['amp']} {phase}: {cells} "
                f"(`profile-{f['dataset']}-{f['model']}-{f['amp']}-{phase}.txt`)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--amp", nargs="+", default=list(AMPS), choices=list(AMPS))
    parser.add_argument("--data-dir", default="../shared/datasets")
    parser.add_argument("--features-root", help="folder holding <dataset folder>/<DATASET>-visual.pth ...")
    parser.add_argument("--dim", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--negatives", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, the first a warm-up")
    parser.add_argument("--profile-batches", type=int, default=5)
    parser.add_argument("--profile-triples", type=int, default=500)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--smoke", action="store_true", help="synthetic tiny graph and small models (checks the script)"
    )
    parser.add_argument("--out", default="reports/gpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or check the script with --device cpu --smoke")
    if args.smoke:
        args.datasets, args.dim, args.batch_size, args.negatives = ["synth-tiny"], 16, 512, 4
        args.eval_batch_size, args.epochs, args.profile_batches, args.profile_triples = 64, 2, 1, 4
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    results = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or "cpu",
            "torch": torch.__version__,
            "platform": platform.platform(),
            "nominal_bandwidth": nominal_bandwidth(device),
            "copy_bandwidth": copy_bandwidth(device, GiB if device.type == "cuda" else 64 * 2**20),
        },
        "settings": {k: v for k, v in vars(args).items()},
        "features": {},
        "figures": [],
    }
    for name in args.datasets:
        data, features, source = dataset_inputs(name, args)
        results["features"][data.name] = source
        for model in args.models:
            for amp in args.amp:
                figures = measure(data, features, model, amp, args, device, out)
                if device.type == "cuda":
                    torch.cuda.empty_cache()  # the finished configuration's trainer is gone: start clean
                results["figures"].append(figures)
                print(
                    f"{data.name} {model} amp={amp}: {figures['steady_epoch_seconds']:.2f} s/epoch, "
                    f"{figures['eval_seconds']:.2f} s/eval, MRR {figures['test_mrr']:.4f}",
                    flush=True,
                )
                # written after every configuration: an interrupted run keeps what it measured
                (out / "figures.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
                write_page(out / "README.md", report_lines(results))
    print("\n".join(report_lines(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
