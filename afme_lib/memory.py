"""The memory model: what a run holds on its device, per entity and in all, known before it starts.

Parameters. Every model's parameter count is affine in the graph's size,
``P(N, R) = a N + b R + c``: ``a`` reals per entity (embedding tables), ``b`` per relation
(relation tables, AFME's per-relation contexts and temperatures) and ``c`` for the dense layers
(projections, fusion, generator, critic). :func:`measure_layout` finds a, b, c exactly by
building the model at three tiny sizes, so the model adapts to any registered model and
ablation without a hand-kept formula per model. All parameters are float32 (bf16 autocast
changes activations, never the parameters or the optimiser state).

Bytes on the device, with B = ``batch_size``, K = ``negatives``, B_e = ``eval_batch_size``,
``w`` = reals per entity representation, ``d_m`` = width of modality m::

    per entity   embeddings     4a
                 gradients      4a          (dense: nn.Embedding gradients are full tables)
                 Adam moments   8a          (exp_avg and exp_avg_sq, float32 each)
                 features       sum_m (4 d_m + 1)   resident features + bool presence mask;
                                sum_m 1 when features stay in host memory (pinned / mmap)
                 evaluation     5 B_e       one row of the [B_e, N] float32 scores and of one
                                            bool comparison mask
                              + 4w          models whose entity table is a copy (AFME: one
                                            relation's table at a time; plain embedding models
                                            score against the weight itself: 0)
    per relation 16b                        (parameter, gradient, two Adam moments)
    fixed        16c + 4T                   dense parameters; T parameter tensors each hold an
                                            Adam step counter (a float32 scalar)
                 activations    B x s       s = bytes saved for backward per positive triple,
                                            measured on a probe batch (float32, K negatives)
                 eval chunk     8 B_e c w   the scorer's chunk temporaries at the smallest chunk,
                                            c = min(N, 1024); with more free memory evaluation
                                            takes bigger chunks (below), an elastic share that
                                            the peak does not count

    peak = N (embeddings + gradients + Adam + features) + 16 b R + 16 c + 4T
           + max(activations, N x evaluation + eval chunk)

(validation runs while the training state is allocated, after the batch's activations are freed).
:func:`plan` computes this; :meth:`MemoryPlan.fits` compares it with free memory less a 10%
headroom (allocator fragmentation, the CUDA context's later growth); ``afme memory`` prints it.

Evaluation chunk. The scorer materialises about ``B_e x chunk x w`` float32 values per step,
two such tensors alive at once, so ``chunk = budget / (8 B_e w)`` clamped to [1024, N]. The
budget (:func:`eval_chunk_budget`) is a quarter of the free CUDA memory (mem_get_info) -- the
rest stays for the [B_e, N] scores, the model and allocator slack -- and on the CPU a quarter of
the available RAM (psutil) capped at 256 MB (the CPU scorers tile far below that anyway).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from afme_lib.config import ModelConfig, TrainConfig

F32 = 4
MIN_CHUNK = 1024
CPU_CHUNK_BUDGET = 256 * 2**20  # bytes for the scorer's per-chunk intermediates on CPU
CUDA_FREE_FRACTION = 0.25  # share of free GPU memory given to those intermediates
CPU_FREE_FRACTION = 0.25
HEADROOM = 0.10  # share of free memory a plan leaves unused
PROBE_BATCH = 8  # positives in the activation probe
PLACEMENTS = ("auto", "device", "pinned", "mmap")


# --- free memory and the evaluation chunk ---------------------------------------------------------
def available_bytes(device) -> int | None:
    """Free memory of ``device`` in bytes: CUDA's mem_get_info, psutil's available RAM on the
    CPU (None when psutil is not installed)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def eval_chunk_budget(device, free_bytes: int | None = None) -> int:
    """Bytes the evaluation scorer may spend on one chunk's temporaries (see the module doc).

    ``free_bytes`` replaces the measured free memory (planning for another machine)."""
    device = torch.device(device)
    free = available_bytes(device) if free_bytes is None else int(free_bytes)
    if device.type == "cuda":
        return int(free * CUDA_FREE_FRACTION)
    if free is None:
        return CPU_CHUNK_BUDGET
    return int(min(CPU_CHUNK_BUDGET, free * CPU_FREE_FRACTION))


def chunk_for_budget(num_entities: int, width: int, batch_size: int, budget: int) -> int:
    """Candidates per scorer chunk: ``budget / (2 * 4 * batch_size * width)`` clamped to [1024, N]."""
    per_candidate = 2 * F32 * max(int(batch_size), 1) * max(int(width), 1)
    return int(max(1, min(int(num_entities), max(MIN_CHUNK, int(budget) // per_candidate))))


# --- parameter layout -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ParameterLayout:
    """A model's parameter count ``per_entity * N + per_relation * R + fixed`` and what
    evaluation and training add on top of it (see the module doc)."""

    per_entity: int
    per_relation: int
    fixed: int
    tensors: int
    table_width: int
    table_copy: bool
    activation_bytes_per_positive: int
    reads_features: bool = False

    def count(self, num_entities: int, num_relations: int) -> int:
        return self.per_entity * num_entities + self.per_relation * num_relations + self.fixed


def _probe_features(num_entities: int, feature_dims: dict[str, int] | None):
    from afme_lib.data.features import FeatureStore

    if not feature_dims:
        return None
    store = FeatureStore(num_entities)
    for modality, dim in feature_dims.items():
        store.add(modality, torch.randn(num_entities, int(dim)))
    return store


def _build(model_cfg: ModelConfig, num_entities: int, num_relations: int, feature_dims):
    from afme_lib.models.registry import create_model

    return create_model(model_cfg, num_entities, num_relations, _probe_features(num_entities, feature_dims))


def _count(model) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), len(params)


def _saved_activation_bytes(model, train_cfg: TrainConfig, num_entities: int) -> int:
    """Bytes autograd saves for backward in one training batch loss of PROBE_BATCH positives.

    The loss is the trainer's own (``Trainer._batch_loss`` on a stand-in holding only what it
    reads), so every term a model adds is probed too. Counted once per storage; parameters
    (already in the model's bytes) are skipped."""
    from types import SimpleNamespace

    from afme_lib.train import Trainer

    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in param_storages:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    b, k = PROBE_BATCH, max(int(train_cfg.negatives), 1)
    batch = torch.stack([torch.randint(num_entities, (b,)), torch.zeros(b, dtype=torch.long),
                         torch.randint(num_entities, (b,))], 1)
    negatives = torch.randint(num_entities, (b, k))
    corrupt_head = torch.rand(b) < 0.5
    has_critic = bool(model.critic_parameters()) if hasattr(model, "critic_parameters") else False
    trainer = SimpleNamespace(cfg=train_cfg, model=model, device=torch.device("cpu"),
                              critic_optimizer=object() if has_critic else None)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        terms = Trainer._batch_loss(trainer, batch, negatives, corrupt_head)
    del terms
    return sum(seen.values())


def measure_layout(model_cfg: ModelConfig, feature_dims: dict[str, int] | None = None,
                   train_cfg: TrainConfig | None = None) -> ParameterLayout:
    """The exact parameter layout of ``model_cfg`` with features of widths ``feature_dims``.

    Builds the model three times on the CPU: at (N, R) = (n0, 1), (n0 + 1, 1) and (n0, 2), where
    n0 is large enough for the activation probe to see distinct entities. The caller's random
    state is left untouched.
    """
    from afme_lib.models.modality import ModalityInputs

    train_cfg = train_cfg or TrainConfig()
    n0 = max(64, 4 * PROBE_BATCH * (int(train_cfg.negatives) + 2))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = _build(model_cfg, n0, 1, feature_dims)
        p_base, tensors = _count(base)
        per_entity = _count(_build(model_cfg, n0 + 1, 1, feature_dims))[0] - p_base
        per_relation = _count(_build(model_cfg, n0, 2, feature_dims))[0] - p_base
        with torch.no_grad():
            table = base.entity_table(0) if base.relation_conditioned else base.entity_table()
        copy = table.untyped_storage().data_ptr() not in {p.untyped_storage().data_ptr() for p in base.parameters()}
        activations = _saved_activation_bytes(base, train_cfg, n0)
        reads = any(isinstance(m, ModalityInputs) and len(m) for m in base.modules())
    return ParameterLayout(per_entity=per_entity, per_relation=per_relation, fixed=p_base - per_entity * n0 - per_relation,
                           tensors=tensors, table_width=int(table.shape[1]), table_copy=bool(copy),
                           activation_bytes_per_positive=math.ceil(activations / PROBE_BATCH), reads_features=reads)


# --- the plan -------------------------------------------------------------------------------------
@dataclass
class MemoryPlan:
    """Device bytes of one run (see the module doc for every term)."""

    model: str
    num_entities: int
    num_relations: int
    layout: ParameterLayout
    feature_dims: dict[str, int]
    feature_placement: str  # "device": features on the device; else in host memory
    batch_size: int
    eval_batch_size: int
    eval_chunk: int  # candidates per chunk evaluation would use at the planned free memory
    per_entity: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)

    @property
    def parameters(self) -> int:
        return self.layout.count(self.num_entities, self.num_relations)

    @property
    def parameter_bytes(self) -> int:
        """float32 parameters: sum of numel * 4 over ``model.parameters()``."""
        return F32 * self.parameters

    @property
    def gradient_bytes(self) -> int:
        """Dense gradients, one per parameter (an upper bound where an ablation leaves some unused)."""
        return F32 * self.parameters

    @property
    def optimiser_bytes(self) -> int:
        """Adam's state: two float32 moments per parameter and a float32 step per parameter tensor."""
        return 2 * F32 * self.parameters + F32 * self.layout.tensors

    @property
    def state_bytes(self) -> int:
        """Parameters, gradients, Adam state and device-resident features."""
        n = self.num_entities
        per = sum(self.per_entity[k] for k in ("embeddings", "gradients", "optimiser", "features"))
        return n * per + self.fixed["relations"] + self.fixed["dense"] + self.fixed["adam_steps"]

    @property
    def evaluation_bytes(self) -> int:
        """The evaluation temporaries: [B_e, N] scores and mask, the entity table copy, the chunk."""
        return self.num_entities * self.per_entity["evaluation"] + self.fixed["eval_chunk"]

    @property
    def peak_bytes(self) -> int:
        return self.state_bytes + max(self.fixed["activations"], self.evaluation_bytes)

    @property
    def host_bytes(self) -> int:
        """Feature bytes kept in host memory (0 when they live on the device)."""
        if self.feature_placement == "device":
            return 0
        return self.num_entities * sum(F32 * d for d in self.feature_dims.values())

    @property
    def eval_chunk_bytes(self) -> int:
        """The chunk temporaries at the planned free memory (elastic: not part of the peak)."""
        return 2 * F32 * self.eval_batch_size * self.eval_chunk * self.layout.table_width

    def fits(self, free_bytes: int) -> bool:
        """True when the peak stays within ``free_bytes`` less the 10% headroom."""
        return self.peak_bytes <= (1 - HEADROOM) * free_bytes

    def bytes_per_entity(self) -> int:
        return sum(self.per_entity.values())

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(eval_chunk_bytes=self.eval_chunk_bytes, parameters=self.parameters, parameter_bytes=self.parameter_bytes, optimiser_bytes=self.optimiser_bytes,
                   bytes_per_entity=self.bytes_per_entity(), state_bytes=self.state_bytes,
                   evaluation_bytes=self.evaluation_bytes, peak_bytes=self.peak_bytes, host_bytes=self.host_bytes)
        return out


def plan(model_cfg: ModelConfig, train_cfg: TrainConfig, num_entities: int, num_relations: int,
         feature_dims: dict[str, int] | None = None, feature_placement: str = "device", device="cpu",
         free_bytes: int | None = None, layout: ParameterLayout | None = None) -> MemoryPlan:
    """The memory plan of one run. ``feature_dims`` {modality: width} of the features the model
    reads (None or {} without features; only the modalities ``model_cfg.modalities`` selects are
    counted); ``free_bytes`` stands in for the device's free memory when sizing the evaluation
    chunk (default: measured on ``device``); ``layout`` reuses a :func:`measure_layout` result."""
    dims = dict(feature_dims or {})
    if model_cfg.modalities is not None and dims:
        missing = sorted(set(model_cfg.modalities) - set(dims))
        if missing:
            raise ValueError(f"modalities {missing} requested but feature widths are known only for {sorted(dims)}")
        dims = {m: dims[m] for m in model_cfg.modalities}
    layout = layout or measure_layout(model_cfg, dims, train_cfg)
    if not layout.reads_features:  # structural models ignore the feature store: it never reaches the device
        dims = {}
    a, b_eval = layout.per_entity, int(train_cfg.eval_batch_size)
    resident = feature_placement == "device"
    per_entity = {
        "embeddings": F32 * a,
        "gradients": F32 * a,
        "optimiser": 2 * F32 * a,
        "features": sum((F32 * d if resident else 0) + 1 for d in dims.values()),
        "evaluation": (F32 + 1) * b_eval + (F32 * layout.table_width if layout.table_copy else 0),
    }
    budget = eval_chunk_budget(device, free_bytes)
    chunk = chunk_for_budget(num_entities, layout.table_width, b_eval, budget)
    fixed = {
        "relations": 4 * F32 * layout.per_relation * num_relations,
        "dense": 4 * F32 * layout.fixed,
        "adam_steps": F32 * layout.tensors,
        "activations": int(train_cfg.batch_size) * layout.activation_bytes_per_positive,
        "eval_chunk": 2 * F32 * b_eval * min(int(num_entities), MIN_CHUNK) * layout.table_width,
    }
    return MemoryPlan(model=model_cfg.name, num_entities=int(num_entities), num_relations=int(num_relations),
                      layout=layout, feature_dims=dims, feature_placement=feature_placement,
                      batch_size=int(train_cfg.batch_size), eval_batch_size=b_eval, eval_chunk=chunk,
                      per_entity=per_entity, fixed=fixed)


def fits(plan_: MemoryPlan, device=None, free_bytes: int | None = None) -> bool:
    """Whether ``plan_`` fits the free memory of ``device`` (or the given ``free_bytes``)."""
    free = free_bytes if free_bytes is not None else available_bytes(device if device is not None else "cpu")
    return True if free is None else plan_.fits(free)


def choose_feature_placement(requested: str, model_cfg: ModelConfig, train_cfg: TrainConfig, num_entities: int,
                             num_relations: int, feature_dims: dict[str, int] | None, device) -> str:
    """Resolve ``"auto"``: features stay on the device when the whole run fits there, else in
    pinned host memory (gathered per batch). Explicit placements are returned unchanged; on
    the CPU "auto" is "device" (host memory either way)."""
    if requested not in PLACEMENTS:
        raise ValueError(f"unknown feature placement {requested!r}; expected one of {', '.join(PLACEMENTS)}")
    device = torch.device(device)
    if requested != "auto":
        return requested
    if device.type != "cuda" or not feature_dims:
        return "device"
    free = available_bytes(device)
    resident = plan(model_cfg, train_cfg, num_entities, num_relations, feature_dims, "device", device, free)
    return "device" if resident.fits(free) else "pinned"


# --- inputs of the CLI: graph sizes and feature widths without loading them ----------------------
def graph_counts(dataset: str, data_dir: str | None = None) -> tuple[int, int]:
    """(entities, relations) of a dataset folder or registered name, from the id files' count
    lines; a registered benchmark that is not on disk uses its registered counts."""
    from afme_lib.data.registry import DatasetNotFoundError, find_entry, resolve_dataset

    try:
        folder = resolve_dataset(dataset, data_dir)
    except DatasetNotFoundError:
        entry = find_entry(dataset)
        if entry is None:
            raise
        return int(entry.counts["entities"]), int(entry.counts["relations"])
    counts = []
    for name in ("entity2id.txt", "relation2id.txt"):
        with open(Path(folder) / name, encoding="utf-8") as fh:
            counts.append(int(fh.readline().split()[0]))
    return counts[0], counts[1]


def feature_dims_in(folder: str | Path) -> dict[str, int]:
    """{modality: width} of the feature files in ``folder``, read from their headers (mmap)."""
    from afme_lib.data.features import feature_shapes

    return {m: (shape[1] if len(shape) > 1 else 1) for m, shape in feature_shapes(folder).items()}


def parse_dims(items: list[str] | None) -> dict[str, int]:
    """``["image=383", "text=384"]`` -> {"image": 383, "text": 384}."""
    dims = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--feature-dims expects MODALITY=WIDTH items like image=383, got {item!r}")
        dims[name] = int(value)
    return dims


# --- the table ------------------------------------------------------------------------------------
def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def table_lines(plans: list[MemoryPlan], free_bytes: int | None = None) -> list[str]:
    """A markdown table: bytes per entity by component, then totals for the planned graph."""
    lines = ["| model | params | embeddings B/ent | grads B/ent | Adam B/ent | features B/ent | eval B/ent "
             "| total B/ent | fixed MiB | activations MiB | peak GiB | host GiB |" + (" fits |" if free_bytes else ""),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---|" if free_bytes else "")]
    for p in plans:
        fixed = p.fixed["relations"] + p.fixed["dense"] + p.fixed["adam_steps"]
        e = p.per_entity
        row = (f"| {p.model} | {p.parameters:,} | {e['embeddings']} | {e['gradients']} | {e['optimiser']} | "
               f"{e['features']} | {e['evaluation']} | {p.bytes_per_entity()} | {fixed / 2**20:.1f} | "
               f"{p.fixed['activations'] / 2**20:.1f} | {_gib(p.peak_bytes)} | {_gib(p.host_bytes)} |")
        if free_bytes:
            row += f" {'yes' if p.fits(free_bytes) else 'NO'} |"
        lines.append(row)
    return lines


# --- `afme memory` --------------------------------------------------------------------------------
DEFAULT_MODELS = ("transe", "distmult", "complex", "rotate", "ikrl", "mm-concat", "afme")


def add_memory_parser(subparsers) -> None:
    """Register ``afme memory`` on the CLI's sub-command parsers."""
    from afme_lib.cli import _add_config_flags

    p = subparsers.add_parser("memory", help="bytes per entity and peak device memory of a run, before running it")
    p.add_argument("--dataset", required=True, help="registered name (counts known even before download) or folder")
    p.add_argument("--data-dir", help="folder holding downloaded benchmarks")
    p.add_argument("--features", help="feature folder: widths read from the files' headers")
    p.add_argument("--feature-dims", nargs="+", metavar="MODALITY=WIDTH", help="feature widths, e.g. image=383 text=384")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="models to plan (default: all)")
    p.add_argument("--feature-placement", default="device", choices=["device", "pinned", "mmap"],
                   help="where features live: device memory, or pinned / memory-mapped host memory (default: device)")
    p.add_argument("--free-gb", type=float, help="free device memory to plan for (default: measured on --device)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_config_flags(p, ModelConfig, skip=("name",))
    _add_config_flags(p, TrainConfig, skip=("extra",))
    p.set_defaults(func=cmd_memory)


def cmd_memory(args) -> int:
    import json

    from afme_lib.cli import _given_fields
    from afme_lib.errors import AfmeError

    model_fields = _given_fields(args, ModelConfig)
    train_cfg = TrainConfig.from_dict(_given_fields(args, TrainConfig))
    name = train_cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available() and not args.free_gb:
        raise AfmeError("--device cuda without a CUDA device here: give --free-gb to plan for one")
    entities, relations = graph_counts(args.dataset, args.data_dir)
    dims = feature_dims_in(args.features) if args.features else {}
    dims.update(parse_dims(args.feature_dims))
    free = int(args.free_gb * 2**30) if args.free_gb else available_bytes(device)
    plans = [plan(ModelConfig.from_dict({**model_fields, "name": name}), train_cfg, entities, relations, dims,
                  args.feature_placement, device, free) for name in args.models]
    if args.json:
        print(json.dumps({"entities": entities, "relations": relations, "free_bytes": free,
                          "plans": [p.to_dict() for p in plans]}, indent=2))
        return 0
    where = f"{free / 2**30:.1f} GiB free" if free else "free memory unknown"
    print(f"{args.dataset}: {entities:,} entities, {relations:,} relations; features {dims or 'none'}; "
          f"device {device} ({where}); batch {train_cfg.batch_size} x {train_cfg.negatives} negatives, "
          f"eval batch {train_cfg.eval_batch_size}")
    for line in table_lines(plans, free):
        print(line)
    return 0

