"""Configuration dataclasses, one per concern; each is serialised whole into every run folder.

Ablation switches are plain boolean fields of :class:`ModelConfig`, so notebooks, grids and
the CLI set them the same way and a run folder always says which variant produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class ModelConfig:
    name: str = "rotate"  # registered model name (see afme_lib.models.registry)
    dim: int = 64  # entity embedding size (real numbers; complex scorers use dim/2 complex)
    scorer: str = "rotate"  # score function under multi-modal models
    p_norm: int = 1  # TransE distance norm (1 or 2)
    init_range: float = 0.0  # 0: scorer default
    # --- AFME (MoIFu / MoIEn) and its ablation switches ---
    denoising: bool = True  # relation-driven gates; off => gates are identically 1
    dynamic_weights: bool = True  # confidence/relevance softmax; off => uniform over present modalities
    gan: bool = True  # MoIEn generator fills missing / enhances degraded modalities
    self_attention: bool = True  # off => a per-token MLP replaces the attention layers
    relation_context: bool = True  # off => gates and weights ignore the relation
    noise_dim: int = 16  # z in e_mod = e_s (+) z
    attention_layers: int = 2
    attention_heads: int = 4
    enhance_mix: float = 0.5  # how much a generated feature replaces a present (possibly degraded) one
    dropout: float = 0.0
    modalities: list[str] | None = None  # None: every modality the feature store holds

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return _from_dict(cls, values)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 512
    negatives: int = 16
    lr: float = 1e-3
    loss: str = "nssa"  # nssa (self-adversarial), margin, softplus, bce; 1vsall (cross-entropy over all entities)
    label_smoothing: float = 0.0  # 1vsall only
    margin: float = 6.0
    adv_temperature: float = 1.0
    sampler: str = "uniform"  # uniform | bernoulli
    weight_decay: float = 0.0
    regularization: float = 0.0  # N3/L2 weight on the batch's embeddings (DistMult / ComplEx)
    # AFME's joint schedule
    lambda_adv: float = 0.01
    lambda_gp: float = 10.0
    n_critic: int = 1
    disc_lr: float = 1e-4
    # engine
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # none | bf16 | fp16 (GPU only)
    compile: bool = False
    eval_every: int = 5
    patience: int = 0  # validations without improvement before stopping; 0 = never stop early
    checkpoint_every: int = 1
    eval_batch_size: int = 256
    eval_chunk_size: int = 0  # candidates per chunk in evaluation; 0 = choose from free memory
    progress: bool = True
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return _from_dict(cls, values)

    def to_dict(self) -> dict:
        return asdict(self)


def _from_dict(cls, values: dict):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    return cls(**values)
