"""Synthetic multi-modal knowledge graphs with known ground truth: the embedded default dataset.

The released benchmarks ship no image/text features, so this generator is what every test,
notebook and the README's main job run on without a download. It is built so that the claims
of a multi-modal model can be *seen*: which modality decides which relation is known, some
entities can only be answered through their features, and each stressor that an AFME
component exists for is a parameter.

Generative story (version 2)
----------------------------
1. **Entities.** ``num_items`` *items* (films, people ...) and, for every latent attribute
   ``a`` with ``K_a`` values, one *value entity* per value (``attr2=v03``: the "Comedy" or
   "France" of a real KG). Item ``i`` has a type, a community (both visible to the graph only)
   and one value ``attr[i, a]`` per attribute; each is a balanced random assignment.
2. **Attribute relations**, one per attribute: ``(i, has_a, value entity of attr[i, a])``
   for every item, so each is N-1 and functional. Which value an item has is encoded in the
   features of the modalities that encode ``a`` and nowhere else (no community, no type): for an
   item whose attribute triples are not in training, its features are the only evidence.
3. **Structural relations** follow a block model over items: relation ``s`` links an item of
   community ``c`` to items of community ``community_map[c]`` (a cyclic shift, so diagonal
   scorers such as RotatE represent every relation), heads drawn from half of the types and
   tails from another half, with the relation's link pattern (1-1, 1-N, N-1, N-N) from a
   configuration model. No modality says anything about them: structure-only models learn them.
4. **Features.** Modality ``m`` encodes its *strong* attributes ``A_m`` and, at a lower
   amplitude ``weak_strength``, its *weak* ones (a redundant second source, which is what lets a
   missing modality be completed from the others). Every attribute value has a fixed random
   prototype ``P_{m,a}[v] ~ N(0, I)`` in ``R^{d_m}``; an item's row is::

       x_m[i] = scale_m * ( sum_a w_a P_{m,a}[attr[i, a]] / sqrt(sum_a w_a^2) + noise_m * eps_i )

   (unit-variance signal; ``w_a`` = 1 strong, ``weak_strength`` weak). Stressors, per modality:
   ``noise`` (Gaussian, relative to the signal); ``corrupted`` rows (degraded content with the
   same spread as a clean row, so no norm gives it away: ``corruption="noise"`` is pure noise,
   ``"swap"`` another item's clean row, plausible but wrong); ``missing`` rows (all zero, which
   :class:`FeatureStore` reads as missing); ``scale`` (modalities differ in magnitude on purpose,
   so weighting by raw size is punished). A modality with no attribute is pure noise: a model
   should learn to ignore it. A value entity has no row by default; with ``value_features`` it
   has one in the modalities that strongly encode its attribute: its own prototype plus noise
   (the name "Comedy" is text).
5. **Entity groups and the split.** Items are *warm*, *cold* (``cold_fraction``) or *zero-shot*
   (``zero_shot_fraction``). Warm items keep every attribute triple in train. Cold items keep
   only structural triples in train; all their attribute triples are held out, so only their
   features can answer them. Zero-shot items have no training triple at all. Each cold and
   zero-shot item is assigned to valid or test (in the ratio of ``valid_fraction`` to
   ``test_fraction``) and its held-out triples go there, so both splits have every slice.
   Structural triples between warm/cold items are held out at random with those fractions,
   except any that would leave an item, a value entity or a relation without training triples.
   ``entity2group.txt`` (see :mod:`afme_lib.data.groups`) records each entity's group.
6. **Siblings** (``sibling_groups`` > 0; the ``siblings`` preset). Groups of
   ``sibling_size`` items share every attribute value, and each member's feature rows are the
   first member's plus a little noise (``sibling_noise``, relative to the row's spread):
   near-duplicates. A symmetric relation ``sibling`` links every member to every other one; its
   triples are held out at random like structural ones. Features make a member most similar to
   itself, and within a group of three or more a symmetric relation's one consistent
   embedding is the identity with every member alike; so a model that never learnt that
   ``(a, sibling, a)`` is false answers ``(a, sibling, ?)`` with ``a``: the case self-negatives
   (``TrainConfig.self_negatives``) exist for.

Randomness comes from independent streams keyed by the seed and the stage (entities, each
relation, the split, each modality by name), so changing a modality's noise leaves the graph
and the other modalities unchanged, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from afme_lib.core.errors import AfmeError
from afme_lib.data.dataset import KGDataset
from afme_lib.data.feature_store import SUFFIX_FOR, FeatureStore
from afme_lib.data.filters import CATEGORIES, relation_categories
from afme_lib.data.groups import GROUPS_FILE, write_groups
from afme_lib.data.openke import write_id_map, write_triples

GENERATOR = "afme_lib.data.synthetic"
FORMAT_VERSION = 2
_SPLIT_FILES = {"train": "train2id.txt", "valid": "valid2id.txt", "test": "test2id.txt"}
_SLUG = {"1-1": "1to1", "1-N": "1toN", "N-1": "Nto1", "N-N": "NtoN"}
CORRUPTIONS = ("noise", "swap")
# Stage tags of the random streams (changing one stage never shifts another's draws).
_ENTITIES, _RELATIONS, _SPLIT, _FEATURES, _SIBLINGS = 1, 2, 3, 4, 5
WARM, COLD, ZERO_SHOT, VALUE = "warm", "cold", "zero-shot", "value"


@dataclass(frozen=True)
class ModalitySpec:
    """One modality: which attributes it encodes and how its feature rows are degraded."""

    attributes: tuple[int, ...]  # attributes it encodes at full strength (empty + no weak: pure noise)
    dim: int
    noise: float = 0.3  # Gaussian noise std relative to the unit-variance signal
    scale: float = 1.0  # multiplies the whole row (modalities differ in magnitude on purpose)
    corrupted: float = 0.0  # fraction of items whose row is degraded content
    missing: float = 0.0  # fraction of items whose row is all zero (disjoint from corrupted)
    weak: tuple[int, ...] = ()  # attributes it encodes at amplitude weak_strength (redundant copies)
    weak_strength: float = 0.6
    corruption: str = "noise"  # "noise": same-spread noise; "swap": another item's clean row


def _tiny_modalities() -> dict[str, ModalitySpec]:
    # Each attribute strongly in one modality and weakly in another (a second source); numeric: noise.
    return {
        "text": ModalitySpec((0,), dim=24, noise=0.3, scale=1.0, corrupted=0.10, missing=0.10, weak=(1,)),
        "image": ModalitySpec((1,), dim=24, noise=0.3, scale=10.0, corrupted=0.10, missing=0.15, weak=(2,)),
        "audio": ModalitySpec((2,), dim=16, noise=0.3, scale=1.0, corrupted=0.10, missing=0.10, weak=(0,)),
        "numeric": ModalitySpec((), dim=8, noise=1.0, scale=0.1),
    }


@dataclass
class SynthConfig:
    """Everything the generator needs; the defaults are the ``tiny`` preset."""

    name: str = "synth-tiny"  # dataset name: feature files are <name>-textual.pth, ...
    num_items: int = 300
    num_types: int = 2
    attribute_values: tuple[int, ...] = (6, 6, 5)  # K_a: values of each attribute (= its value entities)
    modalities: dict[str, ModalitySpec] = field(default_factory=_tiny_modalities)
    structural_relations: tuple[str, ...] = ("N-1", "N-N", "1-N", "N-N")  # intended category of each
    structural_triples: int = 600  # target per structural relation before dedup
    fanout: float = 3.0  # mean multiplicity of an "N" side; each relation scales it by U(0.8, 1.25)
    num_communities: int = 8  # communities C of the structural block model
    cold_fraction: float = 0.2
    zero_shot_fraction: float = 0.05
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    value_features: bool = (
        False  # value entities get a feature row in the modalities that strongly encode their attribute
    )
    sibling_groups: int = 0  # groups of items with the same attributes and near-duplicate rows, linked by "sibling"
    sibling_size: int = 3  # items per sibling group
    sibling_noise: float = (
        0.05  # a sibling's row = its group's first row + this much noise (relative to the row's spread)
    )
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        if self.num_items < 10 or self.num_types < 1:
            raise ValueError("num_items must be >= 10 and num_types >= 1")
        if not self.attribute_values or min(self.attribute_values) < 2:
            raise ValueError(
                f"attribute_values {tuple(self.attribute_values)}: need at least one attribute, each with >= 2 values"
            )
        n_attr = len(self.attribute_values)
        if not self.modalities:
            raise ValueError("modalities is empty")
        for m, spec in self.modalities.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", m):
                raise ValueError(
                    f"modality name {m!r}: use letters, digits and '_' (feature files are <name>-<modality>.pth)"
                )
            bad = [a for a in (*spec.attributes, *spec.weak) if not 0 <= a < n_attr]
            if bad:
                raise ValueError(f"modality {m!r} encodes attributes {bad} outside [0, {n_attr})")
            if set(spec.attributes) & set(spec.weak):
                raise ValueError(f"modality {m!r}: an attribute cannot be both strong and weak")
            if spec.dim < 1 or spec.noise < 0 or spec.scale <= 0 or spec.weak_strength <= 0:
                raise ValueError(f"modality {m!r}: need dim >= 1, noise >= 0, scale > 0, weak_strength > 0")
            if not (0 <= spec.corrupted and 0 <= spec.missing and spec.corrupted + spec.missing < 1):
                raise ValueError(f"modality {m!r}: corrupted + missing fractions must lie in [0, 1)")
            if spec.corruption not in CORRUPTIONS:
                raise ValueError(f"modality {m!r}: corruption {spec.corruption!r} not one of {CORRUPTIONS}")
        for cat in self.structural_relations:
            if cat not in CATEGORIES:
                raise ValueError(f"unknown category {cat!r}; expected one of {CATEGORIES}")
        if self.fanout < 2.5:
            raise ValueError(f"fanout {self.fanout} < 2.5: 'N' sides would not read as N (threshold 1.5)")
        if self.num_communities < 1:
            raise ValueError("num_communities must be >= 1")
        if not (
            0 <= self.cold_fraction
            and 0 <= self.zero_shot_fraction
            and self.cold_fraction + self.zero_shot_fraction < 0.9
        ):
            raise ValueError(
                "cold_fraction and zero_shot_fraction must be >= 0 and sum below 0.9 (warm items teach the features)"
            )
        if self.valid_fraction <= 0 or self.test_fraction <= 0 or self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction and test_fraction must be > 0 and sum below 1")
        if (
            self.sibling_size < 2
            or not 0 <= self.sibling_groups * self.sibling_size <= self.num_items
            or self.sibling_noise < 0
        ):
            raise ValueError(
                f"sibling_groups {self.sibling_groups} of {self.sibling_size}: need sibling_size >= 2, "
                "sibling_groups x sibling_size <= num_items and sibling_noise >= 0"
            )

    @property
    def num_entities(self) -> int:
        return self.num_items + sum(self.attribute_values)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SynthConfig:
        """Rebuild a config from :meth:`to_dict` output (e.g. ``metadata.json["config"]``)."""
        values = dict(values)
        values["attribute_values"] = tuple(values["attribute_values"])
        values["modalities"] = {
            m: ModalitySpec(**{**spec, "attributes": tuple(spec["attributes"]), "weak": tuple(spec.get("weak", ()))})
            for m, spec in values["modalities"].items()
        }
        values["structural_relations"] = tuple(values["structural_relations"])
        return cls(**values)


PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(),
    "default": SynthConfig(
        name="synth-default",
        num_items=1200,
        num_types=3,
        attribute_values=(12, 10, 12, 10, 12, 10),
        modalities={
            # Each of text / image / audio strongly encodes two attributes (so the relation-driven
            # gate has coordinates to select) and weakly two of the others' (every attribute has a
            # second, weaker source, so a missing row can be completed); numeric encodes nothing.
            "text": ModalitySpec((0, 1), dim=64, noise=0.3, scale=1.0, corrupted=0.08, missing=0.08, weak=(2, 4)),
            "image": ModalitySpec((2, 3), dim=64, noise=0.3, scale=10.0, corrupted=0.08, missing=0.12, weak=(1, 5)),
            "audio": ModalitySpec((4, 5), dim=48, noise=0.3, scale=1.0, corrupted=0.08, missing=0.10, weak=(0, 3)),
            "numeric": ModalitySpec((), dim=16, noise=1.0, scale=0.1),
        },
        structural_relations=("1-1", "1-N", "N-1", "N-N", "N-N", "N-1"),
        structural_triples=1500,
        fanout=4.0,
        num_communities=24,
        cold_fraction=0.15,
        zero_shot_fraction=0.05,
        seed=0,
    ),
    # Every item is a sibling and every held-out triple a sibling triple: the attribute relations
    # (all in train) teach the features, and the test asks only (a, sibling, ?) and (?, sibling, b).
    "siblings": SynthConfig(
        name="synth-siblings",
        num_items=300,
        structural_relations=(),
        cold_fraction=0.0,
        zero_shot_fraction=0.0,
        valid_fraction=0.15,
        test_fraction=0.15,
        sibling_groups=60,
        sibling_size=5,
        seed=0,
    ),
}


def _rng(seed: int, *stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stage])


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """A random labelling of n items with k labels, each used n // k or n // k + 1 times."""
    return rng.permutation(np.arange(n) % k)


def _shift(rng: np.random.Generator, k: int) -> np.ndarray:
    """The map v -> (v + s) mod k for a random shift s."""
    return (np.arange(k) + rng.integers(k)) % k


def _multiplicity(rng: np.random.Generator, n: int, many: bool, fanout: float) -> np.ndarray:
    return 1 + rng.poisson(fanout - 1, n) if many else np.ones(n, dtype=np.int64)


def _pair(rng, heads_pool: np.ndarray, tails_pool: np.ndarray, target: int, category: str, fanout: float):
    """Configuration-model pairing of ~``target`` links from a head pool to a tail pool (entity ids).

    An "N" side gives each chosen entity ``1 + Poisson(fanout - 1)`` stubs, a "1" side one stub;
    shuffled head stubs are paired with shuffled tail stubs. Self-loops and duplicates are
    dropped later.
    """
    many_heads, many_tails = category[0] == "N", category[-1] == "N"
    # A "1" side uses each entity once, so its pool caps the triple count; the "N" side is
    # then sized for that cap, so that its mean multiplicity stays ~fanout.
    if not many_tails:
        target = min(target, len(heads_pool))
    if not many_heads:
        target = min(target, len(tails_pool))
    n_heads = min(len(heads_pool), math.ceil(target / (fanout if many_tails else 1.0)))
    n_tails = min(len(tails_pool), math.ceil(target / (fanout if many_heads else 1.0)))
    heads = rng.choice(heads_pool, n_heads, replace=False)
    tails = rng.choice(tails_pool, n_tails, replace=False)
    head_stubs = rng.permutation(np.repeat(heads, _multiplicity(rng, n_heads, many_tails, fanout)))
    tail_stubs = rng.permutation(np.repeat(tails, _multiplicity(rng, n_tails, many_heads, fanout)))
    n = min(len(head_stubs), len(tail_stubs), target)
    return head_stubs[:n], tail_stubs[:n]


def value_entity_ids(cfg: SynthConfig) -> list[np.ndarray]:
    """Entity ids of each attribute's value entities (they follow the items, attribute by attribute)."""
    starts = cfg.num_items + np.cumsum([0, *cfg.attribute_values[:-1]])
    return [start + np.arange(k) for start, k in zip(starts, cfg.attribute_values)]


def _attribute_relations(cfg: SynthConfig, attrs: np.ndarray) -> tuple[list[dict], list[np.ndarray]]:
    """One functional relation per attribute: item -> the value entity of its value."""
    records, parts = [], []
    items = np.arange(cfg.num_items)
    for a, ids in enumerate(value_entity_ids(cfg)):
        strong = [m for m, s in cfg.modalities.items() if a in s.attributes]
        weak = [m for m, s in cfg.modalities.items() if a in s.weak]
        records.append(
            {
                "id": a,
                "name": f"r{a:02d}_has_attr{a}",
                "kind": "attribute",
                "attribute": a,
                "intended_category": "N-1",
                "informative_modalities": strong,
                "weak_modalities": weak,
            }
        )
        parts.append(np.stack([items, np.full(len(items), a), ids[attrs[:, a]]], 1))
    return records, parts


def _structural_relations(
    cfg: SynthConfig, types: np.ndarray, community: np.ndarray, first_id: int
) -> tuple[list[dict], list[np.ndarray]]:
    """Block-model relations among items: cells are (community, allowed type)."""
    records, parts = [], []
    for i, category in enumerate(cfg.structural_relations):
        r = first_id + i
        rng = _rng(cfg.seed, _RELATIONS, r)
        fanout = float(cfg.fanout * rng.uniform(0.8, 1.25))
        community_map = _shift(rng, cfg.num_communities)  # community[t] = community_map[community[h]]
        n_side = math.ceil(cfg.num_types / 2)  # type-constrained, but not so narrow that 1-x sides starve
        head_types = np.sort(rng.choice(cfg.num_types, n_side, replace=False))
        tail_types = np.sort(rng.choice(cfg.num_types, n_side, replace=False))
        records.append(
            {
                "id": r,
                "name": f"r{r:02d}_struct_{_SLUG[category]}",
                "kind": "structural",
                "attribute": None,
                "intended_category": category,
                "fanout": round(fanout, 4),
                "community_map": community_map.tolist(),
                "head_types": head_types.tolist(),
                "tail_types": tail_types.tolist(),
                "informative_modalities": [],
                "weak_modalities": [],
            }
        )
        head_ok, tail_ok = np.isin(types, head_types), np.isin(types, tail_types)
        n_allowed = int(head_ok.sum())
        heads, tails = [], []
        for c in range(cfg.num_communities):  # loops over cells, never entities
            pool_h = np.flatnonzero(head_ok & (community == c))
            pool_t = np.flatnonzero(tail_ok & (community == community_map[c]))
            target = round(cfg.structural_triples * len(pool_h) / max(n_allowed, 1))
            if target and len(pool_t):
                h, t = _pair(rng, pool_h, pool_t, target, category, fanout)
                heads.append(h)
                tails.append(t)
        h, t = (np.concatenate(x) if x else np.empty(0, dtype=np.int64) for x in (heads, tails))
        keep = h != t
        parts.append(np.stack([h[keep], np.full(int(keep.sum()), r), t[keep]], 1))
    return records, parts


def sibling_groups(cfg: SynthConfig) -> np.ndarray:
    """Each entity's sibling group, or -1 [num_entities]: ``sibling_groups`` disjoint groups of
    ``sibling_size`` items drawn from their own random stream (no other draw moves with them)."""
    group = np.full(cfg.num_entities, -1, dtype=np.int64)
    members = cfg.sibling_groups * cfg.sibling_size
    if members:
        chosen = _rng(cfg.seed, _SIBLINGS).permutation(cfg.num_items)[:members]
        group[chosen] = np.arange(members) // cfg.sibling_size
    return group


def _first_sibling(group: np.ndarray) -> np.ndarray:
    """For every entity, the lowest id of its sibling group (itself when it has none)."""
    first = np.arange(len(group))
    grouped = np.flatnonzero(group >= 0)
    lowest = np.full(group.max() + 1 if len(grouped) else 0, len(group))
    np.minimum.at(lowest, group[grouped], grouped)
    first[grouped] = lowest[group[grouped]]
    return first


def _sibling_relation(cfg: SynthConfig, group: np.ndarray, rel_id: int) -> tuple[list[dict], list[np.ndarray]]:
    """The symmetric relation linking every member of a sibling group to every other (none
    without groups)."""
    if not cfg.sibling_groups:
        return [], []
    members = np.flatnonzero(group >= 0)
    heads, tails = np.meshgrid(members, members, indexing="ij")
    pairs = (group[heads] == group[tails]) & (heads != tails)
    informative = [m for m, spec in cfg.modalities.items() if spec.attributes]
    record = {
        "id": rel_id,
        "name": f"r{rel_id:02d}_sibling_NtoN",
        "kind": "sibling",
        "attribute": None,
        "intended_category": "N-N",
        "informative_modalities": informative,
        "weak_modalities": [],
        "groups": group.tolist(),
    }
    return [record], [np.stack([heads[pairs], np.full(int(pairs.sum()), rel_id), tails[pairs]], 1)]


def _dedupe(triples: np.ndarray, n: int, m: int) -> np.ndarray:
    keys = (triples[:, 0] * m + triples[:, 1]) * n + triples[:, 2]
    _, first = np.unique(keys, return_index=True)  # sorted by (h, r, t), duplicates dropped
    return triples[first]


def _groups(cfg: SynthConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Group label of every entity and, for cold / zero-shot items, the held-out split (1 valid, 2 test)."""
    n_items = cfg.num_items
    order = rng.permutation(n_items)
    n_zero, n_cold = round(cfg.zero_shot_fraction * n_items), round(cfg.cold_fraction * n_items)
    group = np.full(cfg.num_entities, WARM, dtype=object)
    group[n_items:] = VALUE
    group[order[:n_zero]] = ZERO_SHOT
    group[order[n_zero : n_zero + n_cold]] = COLD
    held_split = np.zeros(cfg.num_entities, dtype=np.int64)
    share = cfg.valid_fraction / (cfg.valid_fraction + cfg.test_fraction)
    for members in (order[:n_zero], order[n_zero : n_zero + n_cold]):  # each group split valid / test
        n_valid = round(share * len(members))
        held_split[members[:n_valid]] = 1
        held_split[members[n_valid:]] = 2
    return group, held_split


def _split(
    cfg: SynthConfig,
    triples: np.ndarray,
    kinds: np.ndarray,
    group: np.ndarray,
    held_split: np.ndarray,
    rng: np.random.Generator,
    num_relations: int,
) -> dict[str, np.ndarray]:
    """Assign every triple to train / valid / test (see the module docstring, step 5)."""
    h, t = triples[:, 0], triples[:, 2]
    where = np.zeros(len(triples), dtype=np.int64)  # 0 train, 1 valid, 2 test
    zero_h, zero_t = group[h] == ZERO_SHOT, group[t] == ZERO_SHOT
    # A zero-shot endpoint decides: the head's split if it is zero-shot, else the tail's.
    where[zero_t] = held_split[t[zero_t]]
    where[zero_h] = held_split[h[zero_h]]
    cold_attr = (kinds == "attribute") & (group[h] == COLD)
    where[cold_attr] = held_split[h[cold_attr]]
    free = (kinds != "attribute") & ~zero_h & ~zero_t  # structural and sibling triples
    u = rng.random(len(triples))
    draw = np.where(u < cfg.valid_fraction, 1, np.where(u < cfg.valid_fraction + cfg.test_fraction, 2, 0))
    where[free] = draw[free]
    # Held-out free triples that would leave an entity or a relation without training triples
    # go back to train; that only raises training degrees, so one vectorised pass is enough.
    train = triples[where == 0]
    ent_deg = np.bincount(train[:, [0, 2]].ravel(), minlength=cfg.num_entities)
    rel_deg = np.bincount(train[:, 1], minlength=num_relations)
    orphan = free & ((ent_deg[h] == 0) | (ent_deg[t] == 0) | (rel_deg[triples[:, 1]] == 0))
    where[orphan] = 0
    return {name: triples[where == i] for i, name in enumerate(("train", "valid", "test"))}


def _prototypes(cfg: SynthConfig, m: str, spec: ModalitySpec) -> tuple[np.random.Generator, dict[int, np.ndarray]]:
    rng = _rng(cfg.seed, _FEATURES, zlib.crc32(m.encode()))
    return rng, {a: rng.normal(size=(cfg.attribute_values[a], spec.dim)) for a in (*spec.attributes, *spec.weak)}


def _features(
    cfg: SynthConfig, attrs: np.ndarray, siblings: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Feature matrix of every modality (float32, [num_entities, d_m]) and its ground-truth record."""
    n_items = cfg.num_items
    value_ids = value_entity_ids(cfg)
    out, records = {}, {}
    for m, spec in cfg.modalities.items():
        rng, proto = _prototypes(cfg, m, spec)
        amplitude = {a: 1.0 for a in spec.attributes} | {a: spec.weak_strength for a in spec.weak}
        norm = math.sqrt(sum(w * w for w in amplitude.values())) or 1.0
        signal = np.zeros((n_items, spec.dim))
        for a, w in amplitude.items():
            signal += w * proto[a][attrs[:, a]]
        signal /= norm
        has_signal = bool(amplitude)
        x_items = signal + spec.noise * rng.normal(size=(n_items, spec.dim))
        if cfg.sibling_groups:  # every sibling: its group's first row, nearly (its own stream)
            first = _first_sibling(siblings)[:n_items]
            others = np.flatnonzero(first != np.arange(n_items))
            spread = math.sqrt((1.0 if has_signal else 0.0) + spec.noise**2)
            jitter = _rng(cfg.seed, _SIBLINGS, zlib.crc32(m.encode())).normal(size=(len(others), spec.dim))
            x_items[others] = x_items[first[others]] + cfg.sibling_noise * spread * jitter
        order = rng.permutation(n_items)
        n_missing, n_corrupted = round(spec.missing * n_items), round(spec.corrupted * n_items)
        missing = np.sort(order[:n_missing])
        corrupted = np.sort(order[n_missing : n_missing + n_corrupted])
        if spec.corruption == "swap":  # another item's clean row: plausible content, wrong entity
            donors = rng.permutation(np.setdiff1d(np.arange(n_items), order[: n_missing + n_corrupted]))[:n_corrupted]
            x_items[corrupted] = x_items[donors]
        else:  # pure noise with the spread of a clean row
            spread = math.sqrt((1.0 if has_signal else 0.0) + spec.noise**2)
            x_items[corrupted] = spread * rng.normal(size=(n_corrupted, spec.dim))
        x_items[missing] = 0.0
        x = np.zeros((cfg.num_entities, spec.dim))
        x[:n_items] = x_items
        valued = []
        if cfg.value_features:
            for a in spec.attributes:  # "Comedy" is text: the value's own prototype, plus noise
                ids = value_ids[a]
                x[ids] = proto[a] + spec.noise * rng.normal(size=(len(ids), spec.dim))
                valued.append(ids)
        x *= spec.scale
        out[m] = x.astype(np.float32)
        absent_values = np.setdiff1d(np.arange(n_items, cfg.num_entities), np.concatenate(valued) if valued else [])
        records[m] = {
            "attributes": list(spec.attributes),
            "weak": list(spec.weak),
            "dim": spec.dim,
            "noise": spec.noise,
            "scale": spec.scale,
            "corruption": spec.corruption,
            "missing": {"count": int(n_missing), "ids": missing.tolist()},  # items only
            "corrupted": {"count": int(n_corrupted), "ids": corrupted.tolist()},
            "value_entities_without_row": int(len(absent_values)),
        }
    return out, records


def generate(config: SynthConfig | str = "tiny", seed: int | None = None) -> tuple[KGDataset, FeatureStore, dict]:
    """Generate a synthetic graph: ``(dataset, features, metadata)``, deterministic in the seed.

    ``config`` is a :class:`SynthConfig` or a preset name; ``seed`` overrides its seed.
    ``metadata`` is the ground truth written as ``metadata.json`` (see the module docstring).
    """
    cfg = _resolve(config, seed)
    n_items, n = cfg.num_items, cfg.num_entities
    rng = _rng(cfg.seed, _ENTITIES)
    types = _balanced(rng, n_items, cfg.num_types)
    attrs = np.stack([_balanced(rng, n_items, k) for k in cfg.attribute_values], 1)  # [items, A]
    community = _balanced(rng, n_items, cfg.num_communities)
    siblings = sibling_groups(cfg)
    attrs = attrs[_first_sibling(siblings)[:n_items]]  # siblings share every attribute

    attr_records, attr_parts = _attribute_relations(cfg, attrs)
    struct_records, struct_parts = _structural_relations(cfg, types, community, len(attr_records))
    sibling_records, sibling_parts = _sibling_relation(cfg, siblings, len(attr_records) + len(struct_records))
    relations = attr_records + struct_records + sibling_records
    triples = _dedupe(np.concatenate(attr_parts + struct_parts + sibling_parts).astype(np.int64), n, len(relations))
    kinds = np.array([rec["kind"] for rec in relations])[triples[:, 1]]
    split_rng = _rng(cfg.seed, _SPLIT)
    group, held_split = _groups(cfg, split_rng)
    splits = _split(cfg, triples, kinds, group, held_split, split_rng, len(relations))
    observed = relation_categories(torch.from_numpy(splits["train"]), len(relations))
    for rec, cat in zip(relations, observed):
        rec["category"] = cat
        rec["triples"] = {s: int((part[:, 1] == rec["id"]).sum()) for s, part in splits.items()}

    width = max(5, len(str(n_items - 1)))
    entity_names = [f"e{i:0{width}d}_type{c}" for i, c in enumerate(types.tolist())]
    entity_names += [f"attr{a}=v{v:02d}" for a, k in enumerate(cfg.attribute_values) for v in range(k)]
    dataset = KGDataset(
        name=cfg.name,
        path=None,
        entity_names=entity_names,
        relation_names=[rec["name"] for rec in relations],
        entity_groups=group.tolist(),
        **{s: torch.from_numpy(part) for s, part in splits.items()},
    )
    values, modality_records = _features(cfg, attrs, siblings)
    store = FeatureStore(n)
    for m, x in values.items():
        store.add(m, torch.from_numpy(x), source=f"<synthetic {m}>")
        modality_records[m]["file"] = f"{cfg.name}-{SUFFIX_FOR.get(m, m)}.pth"

    # Per-entity truth over all entities (value entities: -1 except their own attribute).
    full_attrs = np.full((n, len(cfg.attribute_values)), -1, dtype=np.int64)
    full_attrs[:n_items] = attrs
    for a, ids in enumerate(value_entity_ids(cfg)):
        full_attrs[ids, a] = np.arange(len(ids))
    pad = np.full(n - n_items, -1)
    degree = np.bincount(splits["train"][:, [0, 2]].ravel(), minlength=n)
    metadata = {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "seed": cfg.seed,
        "counts": dataset.counts()
        | {"items": n_items, "value_entities": n - n_items, "isolated_entities": int((degree == 0).sum())},
        "config": cfg.to_dict(),
        "relations": relations,
        "modalities": modality_records,
        "num_types": cfg.num_types,
        "entity_types": np.concatenate([types, pad]).tolist(),
        "attribute_values": list(cfg.attribute_values),
        # entity_attributes[a][i]: value of attribute a for entity i (-1: none)
        "entity_attributes": full_attrs.T.tolist(),
        "num_communities": cfg.num_communities,
        "entity_communities": np.concatenate([community, pad]).tolist(),
        "entity_groups": group.tolist(),
        "group_counts": {g: int((group == g).sum()) for g in (WARM, COLD, ZERO_SHOT, VALUE)},
    }
    return dataset, store, metadata


def _resolve(config: SynthConfig | str, seed: int | None) -> SynthConfig:
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown synthetic preset {config!r}; expected one of {sorted(PRESETS)}")
        config = PRESETS[config]
    if seed is not None:
        config = replace(config, seed=int(seed))
    config.validate()
    return config


def _render_json(obj, indent: int = 0) -> str:
    """JSON with nested structure indented but flat lists on one line (entity id lists stay short)."""
    pad = " " * indent
    if isinstance(obj, dict) and obj:
        items = [f"{pad}  {json.dumps(str(k))}: {_render_json(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        items = [f"{pad}  {_render_json(v, indent + 2)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def read_metadata(folder: str | Path) -> dict:
    """The ground truth of a folder written by :func:`write_synthetic`."""
    return json.loads((Path(folder) / "metadata.json").read_text(encoding="utf-8"))


def read_ground_truth(folder: str | Path) -> dict | None:
    """The ground truth of a dataset folder, or None for real data (no ``metadata.json``)."""
    return read_metadata(folder) if (Path(folder) / "metadata.json").is_file() else None


def write_synthetic(out_dir: str | Path, preset_or_config: SynthConfig | str = "tiny", seed: int | None = None) -> Path:
    """Generate and write one folder holding the dataset, the features and ``metadata.json``.

    Files: ``entity2id.txt``, ``relation2id.txt``, ``train2id.txt``, ``valid2id.txt``,
    ``test2id.txt`` (OpenKE), ``entity2group.txt`` (warm / cold / zero-shot / value),
    ``<name>-textual.pth`` ... (:meth:`FeatureStore.save`) and ``metadata.json``. The folder loads
    with ``load_dataset(out_dir)`` and ``FeatureStore.load(out_dir, N)``. A folder written earlier
    by this function is replaced (its files are removed first, so no stale feature file
    survives); any other non-empty folder is refused.
    """
    out = Path(out_dir)
    dataset, store, metadata = generate(preset_or_config, seed)
    if out.is_dir() and any(out.iterdir()):
        meta_path = out / "metadata.json"
        try:
            previous = read_metadata(out) if meta_path.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = {}
        if previous.get("generator") != GENERATOR:
            raise AfmeError(f"{out}: folder is not empty and holds no synthetic dataset; refusing to write into it")
        for name in previous.get("files", []):
            (out / Path(name).name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    write_id_map(out / "entity2id.txt", dataset.entity_names)
    write_id_map(out / "relation2id.txt", dataset.relation_names)
    for split, filename in _SPLIT_FILES.items():
        write_triples(out / filename, dataset.split(split).numpy())
    write_groups(out / GROUPS_FILE, metadata["entity_groups"])
    feature_files = [p.name for p in store.save(out, dataset.name)]
    metadata["files"] = [
        "entity2id.txt",
        "relation2id.txt",
        *_SPLIT_FILES.values(),
        GROUPS_FILE,
        *feature_files,
        "metadata.json",
    ]
    (out / "metadata.json").write_text(_render_json(metadata) + "\n", encoding="utf-8")
    return out
