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
                              + 4w t        models whose entity table is a copy, t copies at a time
                                            (AFME: one relation's candidate table, and with MoIEn
                                            its query table too; plain embedding models score
                                            against the weight itself: t = 0)
                              + e           what the model caches for evaluation (AFME: every
                                            entity's per-entity tensors, built once per evaluation)
                 training cache u           what the model caches while it trains (AFME: the
                                            epoch's cross-check table, [N, M] + [N, M, D] float32)
    per relation 16b                        (parameter, gradient, two Adam moments)
    fixed        16c + 4T                   dense parameters; T parameter tensors each hold an
                                            Adam step counter (a float32 scalar)
                 activations    B x s       s = bytes saved for backward per positive triple,
                                            measured on a probe batch (float32, K negatives)
                 eval chunk     8 B_e c w   the scorer's chunk temporaries at the smallest chunk,
                                            c = min(N, 1024); with more free memory evaluation
                                            takes bigger chunks (afme_lib/engine/device.py), an elastic share that
                                            the peak does not count

    peak = N (embeddings + gradients + Adam + features) + 16 b R + 16 c + 4T
           + max(activations + N u, N x evaluation + eval chunk)

The caches (e, u, and a model's fixed-size ones such as OTKGE's transport maps) are measured
like the parameters: ``KGModel.cached_tensors()`` after a probe batch and after an evaluation
table, at two graph sizes.

(validation runs while the training state is allocated, after the batch's activations are freed).
:func:`plan` computes this; :meth:`MemoryPlan.fits` compares it with free memory less a 10%
headroom (allocator fragmentation, the CUDA context's later growth); ``afme memory`` (afme_lib/interfaces/cli.py)
prints it.

The evaluation chunk's budget and size come from :mod:`afme_lib.engine.device` (evaluation asks it on
every call; the plan asks it for the planned free memory).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.data.feature_store import FeatureStore, feature_shapes
from afme_lib.engine.device import F32, MIN_CHUNK, available_bytes, chunk_for_budget, eval_chunk_budget
from afme_lib.engine.training import batch_losses
from afme_lib.models.modality_inputs import ModalityInputs
from afme_lib.models.registry import create_model

HEADROOM = 0.10  # share of free memory a plan leaves unused
PROBE_BATCH = 8  # positives in the activation probe
PLACEMENTS = ("auto", "device", "pinned", "mmap")


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
    activation_bytes_per_positive: int
    reads_features: bool = False
    table_copies: int = 0  # [N, table_width] copies evaluation holds at once (query and candidate tables)
    training_cache: tuple[int, int] = (0, 0)  # bytes (per entity, fixed) cached while training
    evaluation_cache: tuple[int, int] = (0, 0)  # bytes (per entity, fixed) cached for an evaluation

    @property
    def table_copy(self) -> bool:
        """Whether the entity table evaluation scores against is a copy, not a parameter."""
        return self.table_copies > 0

    def count(self, num_entities: int, num_relations: int) -> int:
        return self.per_entity * num_entities + self.per_relation * num_relations + self.fixed


def _probe_features(num_entities: int, feature_dims: dict[str, int] | None) -> FeatureStore | None:
    if not feature_dims:
        return None
    store = FeatureStore(num_entities)
    # One entity's rows missing: with every row measured AFME would skip MoIEn's updates
    # (generator_in_use), so a one-modality probe would leave out the generator's activations that a
    # run on data with any missing row pays.
    mask = torch.ones(num_entities, dtype=torch.bool)
    mask[0] = False
    for modality, dim in feature_dims.items():
        store.add(modality, torch.randn(num_entities, int(dim)), mask=mask)
    return store


def _build(model_cfg: ModelConfig, num_entities: int, num_relations: int, feature_dims):
    return create_model(model_cfg, num_entities, num_relations, _probe_features(num_entities, feature_dims))


def _count(model) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), len(params)


def _parameter_storages(model) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def _probe_losses(model, train_cfg: TrainConfig, num_entities: int) -> dict[str, torch.Tensor]:
    """The trainer's loss terms (:func:`afme_lib.engine.training.batch_losses`) of one random training batch
    of PROBE_BATCH positives, in train mode."""
    b, k = PROBE_BATCH, max(int(train_cfg.negatives), 1)
    batch = torch.stack(
        [torch.randint(num_entities, (b,)), torch.zeros(b, dtype=torch.long), torch.randint(num_entities, (b,))], 1
    )
    negatives = torch.randint(num_entities, (b, k))
    corrupt_head = torch.rand(b) < 0.5
    model.train()
    return batch_losses(model, train_cfg, batch, negatives, corrupt_head, torch.device("cpu"))


def _saved_activation_bytes(model, train_cfg: TrainConfig, num_entities: int) -> int:
    """Bytes autograd saves for backward in one training batch loss of PROBE_BATCH positives.

    The loss is the trainer's own (:func:`afme_lib.engine.training.batch_losses`), so every term a model adds
    is probed too. Counted once per storage; parameters (already in the model's bytes) are skipped."""
    param_storages = _parameter_storages(model)
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in param_storages:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        terms = _probe_losses(model, train_cfg, num_entities)
    del terms
    return sum(seen.values())


def _cache_bytes(model) -> int:
    """Bytes of the distinct storages in ``model.cached_tensors()`` (parameters excluded)."""
    params = _parameter_storages(model)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in model.cached_tensors()}
    return sum(size for ptr, size in storages.items() if ptr not in params)


def _probe_caches(model, train_cfg: TrainConfig, num_entities: int) -> tuple[int, int, int]:
    """(bytes cached after a training batch, bytes cached after building evaluation's tables, the
    number of distinct [N, w] table copies evaluation holds at once) of ``model``."""
    _probe_losses(model, train_cfg, num_entities)
    training = _cache_bytes(model)
    model.eval()
    with torch.no_grad():
        tables = model.tables(0) if model.relation_conditioned else model.tables()
    copies = len({t.untyped_storage().data_ptr() for t in tables} - _parameter_storages(model))
    return training, _cache_bytes(model), copies


def _affine(at_n0: int, at_2n0: int, n0: int) -> tuple[int, int]:
    """(per entity, fixed) of a byte count measured at n0 and 2 n0 entities."""
    per = max(math.ceil((at_2n0 - at_n0) / n0), 0)
    return per, max(at_n0 - per * n0, 0)


def measure_layout(
    model_cfg: ModelConfig, feature_dims: dict[str, int] | None = None, train_cfg: TrainConfig | None = None
) -> ParameterLayout:
    """The exact parameter layout of ``model_cfg`` with features of widths ``feature_dims``.

    Builds the model three times on the CPU: at (N, R) = (n0, 1), (n0 + 1, 1) and (n0, 2), where
    n0 is large enough for the activation probe to see distinct entities. The caller's random
    state is left untouched.
    """
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
        activations = _saved_activation_bytes(base, train_cfg, n0)
        reads = any(isinstance(m, ModalityInputs) and len(m) for m in base.modules())
        train_n0, eval_n0, copies = _probe_caches(base, train_cfg, n0)
        train_2n0, eval_2n0, _ = _probe_caches(_build(model_cfg, 2 * n0, 1, feature_dims), train_cfg, 2 * n0)
    return ParameterLayout(
        per_entity=per_entity,
        per_relation=per_relation,
        fixed=p_base - per_entity * n0 - per_relation,
        tensors=tensors,
        table_width=int(table.shape[1]),
        activation_bytes_per_positive=math.ceil(activations / PROBE_BATCH),
        reads_features=reads,
        table_copies=copies,
        training_cache=_affine(train_n0, train_2n0, n0),
        evaluation_cache=_affine(eval_n0, eval_2n0, n0),
    )


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
        """The evaluation temporaries: [B_e, N] scores and mask, the entity table copies, the
        model's evaluation cache, the chunk."""
        return (
            self.num_entities * self.per_entity["evaluation"]
            + self.fixed["evaluation_cache"]
            + self.fixed["eval_chunk"]
        )

    @property
    def training_bytes(self) -> int:
        """What a training step adds to the state: its activations and the model's training cache."""
        return (
            self.fixed["activations"]
            + self.num_entities * self.per_entity["training_cache"]
            + self.fixed["training_cache"]
        )

    @property
    def peak_bytes(self) -> int:
        return self.state_bytes + max(self.training_bytes, self.evaluation_bytes)

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
        out.update(
            eval_chunk_bytes=self.eval_chunk_bytes,
            parameters=self.parameters,
            parameter_bytes=self.parameter_bytes,
            optimiser_bytes=self.optimiser_bytes,
            bytes_per_entity=self.bytes_per_entity(),
            state_bytes=self.state_bytes,
            evaluation_bytes=self.evaluation_bytes,
            training_bytes=self.training_bytes,
            peak_bytes=self.peak_bytes,
            host_bytes=self.host_bytes,
        )
        return out


def plan(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    num_entities: int,
    num_relations: int,
    feature_dims: dict[str, int] | None = None,
    feature_placement: str = "device",
    device="cpu",
    free_bytes: int | None = None,
    layout: ParameterLayout | None = None,
) -> MemoryPlan:
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
        "evaluation": (F32 + 1) * b_eval + F32 * layout.table_width * layout.table_copies + layout.evaluation_cache[0],
        "training_cache": layout.training_cache[0],
    }
    budget = eval_chunk_budget(device, free_bytes)
    chunk = chunk_for_budget(num_entities, layout.table_width, b_eval, budget)
    fixed = {
        "relations": 4 * F32 * layout.per_relation * num_relations,
        "dense": 4 * F32 * layout.fixed,
        "adam_steps": F32 * layout.tensors,
        "activations": int(train_cfg.batch_size) * layout.activation_bytes_per_positive,
        "eval_chunk": 2 * F32 * b_eval * min(int(num_entities), MIN_CHUNK) * layout.table_width,
        "training_cache": layout.training_cache[1],
        "evaluation_cache": layout.evaluation_cache[1],
    }
    return MemoryPlan(
        model=model_cfg.name,
        num_entities=int(num_entities),
        num_relations=int(num_relations),
        layout=layout,
        feature_dims=dims,
        feature_placement=feature_placement,
        batch_size=int(train_cfg.batch_size),
        eval_batch_size=b_eval,
        eval_chunk=chunk,
        per_entity=per_entity,
        fixed=fixed,
    )


def fits(plan_: MemoryPlan, device=None, free_bytes: int | None = None) -> bool:
    """Whether ``plan_`` fits the free memory of ``device`` (or the given ``free_bytes``)."""
    free = free_bytes if free_bytes is not None else available_bytes(device if device is not None else "cpu")
    return True if free is None else plan_.fits(free)


def choose_feature_placement(
    requested: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    num_entities: int,
    num_relations: int,
    feature_dims: dict[str, int] | None,
    device,
) -> str:
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


# --- inputs of `afme memory`: feature widths without loading the features ----------------------
def feature_dims_in(folder: str | Path) -> dict[str, int]:
    """{modality: width} of the feature files in ``folder``, read from their headers (mmap)."""
    return {m: (shape[1] if len(shape) > 1 else 1) for m, shape in feature_shapes(folder).items()}
