"""Configuration dataclasses, one per concern; each is serialised whole into every run folder.

Ablation switches are plain boolean fields of :class:`ModelConfig`, so notebooks, grids and
the CLI set them the same way and a run folder always says which variant produced it.

Every field is declared with :func:`option`: its default, a one-line help and what it allows (a
range or choices). That declaration is the single source for validation (``validate()``, run by
the constructor, so ``ModelConfig(...)``, ``from_dict``, notebooks, grids and the CLI all check
the same way) and for ``afme train --help``. A bad value raises
:class:`~afme_lib.core.errors.OptionError` naming the field, the value and what is allowed.
Combinations that need more than one config (a model and its loss, the machine) are checked in
:mod:`afme_lib.engine.checks`.

The choice lists below belong to the modules that use them (losses.py, sampling.py, train.py,
models/scorers.py); they are declared here, on the ground floor, and those modules import them,
so that this module imports nothing of the library.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields

from afme_lib.core.errors import OptionError, did_you_mean, literal

LOSSES = ("nssa", "margin", "softplus", "bce", "1vsall")  # bce: another name for softplus
SAMPLED_LOSSES = LOSSES[:-1]  # on K sampled negatives; 1vsall scores every entity instead
SAMPLERS = ("uniform", "bernoulli")
AMP_MODES = ("none", "bf16", "fp16")
COMPILE_MODES = ("auto", "on", "off")
SCORER_NAMES = ("transe", "transe-l1", "transe-l2", "distmult", "complex", "rotate")
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"


@dataclass(frozen=True)
class Allowed:
    """What one field accepts (besides its type) and its one-line ``help``.

    Bounds: ``at_least`` <= value <= ``at_most``, ``above`` < value < ``below`` (None: no bound).
    ``choices``: the allowed values. ``pattern``: a regular expression a string must match whole,
    described to users as ``pattern_text``.
    """

    help: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple | None = None
    pattern: str | None = None
    pattern_text: str = ""

    def describe(self) -> str:
        """What is allowed, in words: "one of a, b", ">= 0", "between 0 and 1", ...; "" for anything."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.pattern is not None:
            return self.pattern_text
        low = (
            f">= {_num(self.at_least)}"
            if self.at_least is not None
            else (f"> {_num(self.above)}" if self.above is not None else "")
        )
        high = (
            f"<= {_num(self.at_most)}"
            if self.at_most is not None
            else (f"< {_num(self.below)}" if self.below is not None else "")
        )
        if self.at_least is not None and self.at_most is not None:
            return f"between {_num(self.at_least)} and {_num(self.at_most)}"
        return " and ".join(p for p in (low, high) if p)

    def violated_by(self, value) -> bool:
        if self.choices is not None:
            return value not in self.choices
        if self.pattern is not None:
            return re.fullmatch(self.pattern, value) is None
        return (
            (self.at_least is not None and value < self.at_least)
            or (self.above is not None and value <= self.above)
            or (self.at_most is not None and value > self.at_most)
            or (self.below is not None and value >= self.below)
        )


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def option(default, help: str, **limits):
    """A dataclass field with its default and its :class:`Allowed` declaration (``help`` and the
    ``limits``: at_least, above, at_most, below, choices, pattern) in the metadata."""
    meta = {"allowed": Allowed(help, **limits)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def allowed(cls, name: str) -> Allowed:
    """The :class:`Allowed` declaration of field ``name`` of ``cls``."""
    return next(f for f in fields(cls) if f.name == name).metadata["allowed"]


def field_kind(f) -> str:
    """ "bool", "int", "float", "float?" (a number or None), "str", "list" (of names, or None) or
    "dict", from the annotation."""
    annotation = str(f.type)
    if annotation == "float | None":
        return "float?"
    return "list" if annotation.startswith("list") else annotation


@dataclass
class ModelConfig:
    """What model is built: its registered ``name``, sizes, scorer, the AFME components and their
    ablation switches, and the modalities it reads. One flat class for every model; a model
    ignores the fields it has no use for."""

    name: str = option("rotate", "model to train, by registered name")  # choices: afme_lib.models.registry
    dim: int = option(64, "entity embedding size in real numbers (complex scorers: dim/2 complex, so even)", at_least=1)
    scorer: str = option(
        "rotate",
        "score function under the multi-modal models that take one (afme, mm-concat, "
        "otkge, native); structure-only models are their own scorer",
        choices=SCORER_NAMES,
    )
    p_norm: int = option(1, "TransE distance norm", choices=(1, 2))
    init_range: float = option(0.0, "embeddings start uniform in [-a, a]; 0: the scorer's own default", at_least=0)
    # --- AFME (MoIFu / MoIEn) and its ablation switches ---
    denoising: bool = option(
        True,
        "relation-driven gates on the modality tokens and the row cross-check "
        "(cross_check_margin); off: every gate is 1 and no row is checked",
    )
    dynamic_weights: bool = option(
        True, "confidence/relevance softmax over the tokens; off: uniform over present modalities"
    )
    gan: bool = option(True, "MoIEn generator fills missing and enhances degraded modalities")
    self_attention: bool = option(True, "attention layers in the generator; off: a per-token MLP")
    relation_context: bool = option(True, "gates and weights see the relation; off: they ignore it")
    noise_dim: int = option(16, "size of the generator's noise z (e_mod = e_s (+) z)", at_least=1)
    attention_layers: int = option(2, "generator layers (attention or MLP)", at_least=1)
    attention_heads: int = option(4, "attention heads (fewer when they do not divide the width)", at_least=1)
    enhance_mix: float = option(
        0.0,
        "AFME: initial share of a generated feature mixed into a measured one (0: MoIEn fills missing rows only)",
        at_least=0,
        at_most=1,
    )
    reconstruction: float = option(
        10.0, "AFME: weight of MoIEn's reconstruction term on hidden measured rows", at_least=0
    )
    token_start: float = option(
        0.3,
        "AFME: initial scale of the modality tokens, as a fraction of the structural "
        "embeddings' RMS (small: the model starts as its scorer alone)",
        above=0,
    )
    structure_start: float = option(
        0.95, "AFME: initial lambda_r, the weight of the structural embedding in e_r", above=0, below=1
    )
    cross_check_margin: float = option(
        2.0,
        "AFME: row-level denoising (0: off): the entity asked about has each "
        "measured row cross-checked against MoIEn's completion of it from its other "
        "modalities; a row whose agreement lies this many standard deviations below "
        "its modality's mean is trusted half and blended into the completion",
        at_least=0,
    )
    adversarial_rows: int = option(256, "AFME: entities per step in MoIEn's critic and generator updates", at_least=1)
    structure_dropout: float = option(
        0.05,
        "models that read features: share of a batch's entities whose structural "
        "embedding is replaced by the learned 'unknown' vector that entities with no "
        "training triple use",
        at_least=0,
        below=1,
    )
    structure_shuffle: float | None = option(
        None,
        "models that read features: share of training rows given another entity's "
        "structural embedding, so that the features learn to answer for cold entities "
        "(AFME: per (entity, relation) pair, times 1 - lambda_r); none: the model's own "
        "default, 0.4 for AFME (reports/main/selection.md) and 0 for the others",
        at_least=0,
        at_most=1,
    )
    dropout: float = option(0.0, "dropout in the generator", at_least=0, below=1)
    modalities: list[str] | None = option(
        None,
        "modalities to use; none given: every one the features hold; empty (CLI: --modalities none): structure only",
    )

    def __post_init__(self):
        self.validate()

    def validate(self) -> ModelConfig:
        """Check (and normalise: numbers to int/float, tuples to lists) every field; raise OptionError."""
        _validate_fields(self)
        if self.modalities is not None:
            for m in self.modalities:
                if not m.strip():
                    raise OptionError("modalities", f"names must be non-empty (got {literal(self.modalities)})")
            if len(set(self.modalities)) != len(self.modalities):
                raise OptionError("modalities", f"names a modality twice (got {literal(self.modalities)})")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        return _from_dict(cls, values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    """How a run trains and is evaluated: epochs, batches, negatives and the loss, the optimisers'
    learning rates, the adversarial schedule, the seed and the machine (device, AMP, compile)."""

    # Defaults that learn: RotatE and AFME on the synthetic presets (tests/interfaces/test_cli.py trains tiny with them).
    epochs: int = option(50, "training epochs; 0 trains nothing and evaluates the initial model", at_least=0)
    batch_size: int = option(
        512, "positive triples per step (a batch larger than the training set: one step per epoch)", at_least=1
    )
    negatives: int = option(16, "negatives per positive, drawn from all entities (sampled losses)", at_least=1)
    lr: float = option(1e-2, "Adam learning rate", above=0)
    loss: str = option(
        "nssa",
        "nssa (self-adversarial), margin, softplus (= bce) on sampled negatives; 1vsall: "
        "cross-entropy over all entities",
        choices=LOSSES,
    )
    label_smoothing: float = option(0.0, "target mass spread over all entities (loss 1vsall only)", at_least=0, below=1)
    margin: float = option(6.0, "margin gamma of the nssa and margin losses", at_least=0)
    adv_temperature: float = option(1.0, "self-adversarial temperature of nssa; 0: uniform weights", at_least=0)
    negative_pool: int = option(
        0,
        "draw each batch's negatives from one shared pool of this many uniformly drawn "
        "entities (fewer distinct entities per step: AFME's per-entity work shrinks, "
        "afme_lib/engine/sampling.py); 0: every negative drawn independently",
        at_least=0,
    )
    self_negatives: float = option(
        1.0,
        "self-negatives: the entity a query asks about is one more negative of its "
        "own query ((h, r, h) for (h, r, ?)), counted this many times among the K "
        "sampled ones (1vsall: 1 + this many times), unless the training graph holds "
        "that self-loop (afme_lib/engine/sampling.py); 0: off. Without them a model answers "
        "many queries with the asked entity itself (reports/self-negatives)",
        at_least=0,
    )
    sampler: str = option(
        "uniform",
        "which side a negative corrupts: uniform, or bernoulli by the relation's tails per head",
        choices=SAMPLERS,
    )
    weight_decay: float = option(0.0, "Adam weight decay", at_least=0)
    regularization: float = option(0.0, "N3 weight on the batch's embeddings (DistMult / ComplEx)", at_least=0)
    # AFME's joint schedule
    lambda_adv: float = option(
        0.01, "weight of the adversarial terms (AFME generator, MMKRL, NATIVE); 0: off", at_least=0
    )
    lambda_gp: float = option(10.0, "gradient-penalty weight of the WGAN critic", at_least=0)
    n_critic: int = option(1, "critic steps per batch", at_least=1)
    adversarial_every: int = option(
        4,
        "a model with a critic (AFME's MoIEn) takes its critic steps and adds its "
        "generator term every this many batches (MoIEn is ~60 % of an AFME step on "
        "a small graph; reports/main/selection.md)",
        at_least=1,
    )
    disc_lr: float = option(1e-4, "critic learning rate", above=0)
    gen_lr: float = option(2e-3, "learning rate of a generator trained by its own objective (AFME's MoIEn)", above=0)
    adv_epsilon: float = option(
        0.1, "MMKRL's adversarial perturbation size, relative to the representation's norm", at_least=0
    )
    # engine
    seed: int = option(0, "random seed (model, sampling, order)", at_least=0, at_most=2**32 - 1)
    device: str = option(
        "auto",
        "auto: cuda when there is one, else cpu",
        pattern=DEVICE_PATTERN,
        pattern_text="auto, cpu, cuda, cuda:N or mps",
    )
    amp: str = option("none", "mixed precision in training (GPU only)", choices=AMP_MODES)
    compile: str = option(
        "auto",
        "torch.compile the training step and RotatE's evaluation kernel: on, off, or auto "
        "(on when the run is long enough to repay compiling, afme_lib/engine/training.py); a compiler that "
        "fails falls back to eager",
        choices=COMPILE_MODES,
    )
    eval_every: int = option(5, "validate every N epochs (and after the last); 0: never", at_least=0)
    patience: int = option(0, "validations without improvement before stopping; 0: never stop early", at_least=0)
    checkpoint_every: int = option(1, "write the last checkpoint every N epochs (and after the last)", at_least=1)
    eval_batch_size: int = option(256, "queries per evaluation step", at_least=1)
    eval_chunk_size: int = option(0, "candidates per evaluation chunk; 0: chosen from free memory", at_least=0)
    progress: bool = option(True, "progress: bars on a terminal, one line per epoch in a log file or pipe")

    def __post_init__(self):
        self.validate()

    def validate(self) -> TrainConfig:
        """Check (and normalise) every field and the pairs within this config; raise OptionError."""
        _validate_fields(self)
        if self.label_smoothing and self.loss != "1vsall":
            raise OptionError(
                "label_smoothing",
                f"applies to {{loss}} 1vsall only (got {self.label_smoothing} with {{loss}} {self.loss})",
            )
        return self

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        if isinstance(values, dict) and "extra" in values:
            # config.json of an earlier format: adv_epsilon in an "extra" mapping (its other keys
            # never changed a run).
            values = dict(values)
            legacy = values.pop("extra") or {}
            if "adv_epsilon" in legacy:
                values.setdefault("adv_epsilon", legacy["adv_epsilon"])
        if isinstance(values, dict) and isinstance(values.get("compile"), bool):
            # config.json of an earlier format: compile as a switch (true/false meant on/off).
            values = {**values, "compile": "on" if values["compile"] else "off"}
        return _from_dict(cls, values)

    def to_dict(self) -> dict:
        return asdict(self)


def _validate_fields(config) -> None:
    for f in fields(config):
        given = getattr(config, f.name)
        value = _typed(f.name, field_kind(f), given)
        rule: Allowed = f.metadata["allowed"]
        if value is not None and not isinstance(value, (list, dict)) and rule.violated_by(value):
            hint = did_you_mean(value, rule.choices) if rule.choices and isinstance(value, str) else ""
            raise OptionError(f.name, f"must be {rule.describe()} (got {literal(given)}){hint}")
        setattr(config, f.name, value)


def _typed(name: str, kind: str, value):
    """``value`` as a plain ``kind`` (numpy numbers become int / float); OptionError when it is not one."""
    got = f"(got {literal(value)})"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise OptionError(name, f"must be true or false {got}")
    if kind == "int":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise OptionError(name, f"must be an integer {got}")
    if kind == "float?" and value is None:
        return None
    if kind in ("float", "float?"):
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            raise OptionError(name, f"must be a finite number {got}")
        raise OptionError(name, f"must be a number {got}")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise OptionError(name, f"must be text {got}")
    if kind == "list":
        if value is None:
            return None
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise OptionError(name, f"must be a list of names or None {got}")
    if kind == "dict":
        if isinstance(value, dict):
            return value
        raise OptionError(name, f"must be a mapping {got}")
    raise TypeError(f"field {name!r} has an annotation ({kind}) that validation does not know")


def _from_dict(cls, values: dict):
    if not isinstance(values, dict):
        raise OptionError(cls.__name__, f"must be built from a mapping of field: value (got {literal(values)})")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise OptionError(
            str(unknown[0]),
            f"is not a {cls.__name__} field{did_you_mean(unknown[0], known)}; fields: {', '.join(known)}",
        )
    return cls(**values)


# The flat spelling of a run (afme_lib/experiments/spec.py): its inputs, ``model`` (ModelConfig's
# name) and every other field of the two dataclasses by its own name (they share none).
RUN_INPUTS = ("dataset", "features", "data_dir", "feature_placement")
MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig) if f.name != "name")
TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig))
RUN_FIELDS = (*RUN_INPUTS, "model", *MODEL_FIELDS, *TRAIN_FIELDS)
