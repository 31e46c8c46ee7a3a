"""Synthetic multi-modal knowledge graphs with known ground truth: the embedded default dataset.

The released benchmarks ship no image/text features, so this generator is what every test,
notebook and the README's main job run on without a download. It is built to test AFME's
claims: relation-driven denoising (some feature rows are degraded), per-relation modality
weighting (each relation is predicted by known modalities only), GAN completion (modalities
share information, so a missing one can be inferred from the others).

Generative story
----------------
1. **Entities.** Entity ``i`` has a latent type ``type[i]`` in ``[0, num_types)``, a hidden
   community ``comm[i]`` in ``[0, C)`` and one value per latent categorical attribute,
   ``attr[i, a]`` in ``[0, K_a)``; each is a balanced random assignment (every value is held by
   ``N / K`` entities, up to rounding). Modalities encode attributes only: types and
   communities are visible to nothing but the graph.
2. **Every relation follows the communities.** Relation ``r`` has a shift ``s_r`` and every
   triple satisfies ``comm[t] = (comm[h] + s_r) mod C``: a block model, which is what makes
   held-out triples predictable from structure (tails drawn uniformly from a large pool would
   leave even an oracle at MRR ~0.01).
3. **Attribute relations** are tied to one attribute ``a(r)`` and a shift of its values:
   ``attr[t, a(r)] = (attr[h, a(r)] + u_r) mod K_a(r)`` (``value_map`` in the metadata). The
   modalities that encode ``a(r)`` (``informative_modalities``) narrow the tails ``K``-fold,
   which structure alone learns only for well-connected entities.
4. **Structural relations** draw heads from a random half of the types and tails from another
   half (``head_types`` / ``tail_types``); no modality says anything about them.

   Maps are cyclic shifts rather than arbitrary permutations because shifts commute: one
   Fourier basis diagonalises them all, so diagonal scorers (RotatE, ComplEx) can represent
   every relation; with a random permutation per relation they could only memorise.
5. **Link patterns.** Links are drawn cell by cell: heads of cell (value ``v``, community
   ``c``) link to tails of cell (``value_map[v]``, ``community_map[c]``) by a configuration
   model. An "N" side gives each chosen entity ``1 + Poisson(f_r - 1)`` link stubs (``f_r`` is
   the relation's fanout), a "1" side one stub; shuffled head stubs are paired with shuffled
   tail stubs, and self-loops and duplicates are dropped. So 1-N means every tail has one
   head and a head ~``f_r`` tails, N-N that a cell's heads share a pool of ~``target / f_r``
   tails, etc. The categories :func:`relation_categories` finds on the training split match
   the intended ones for the presets (``metadata.json`` records both).
6. **Features.** Modality ``m`` encodes the attributes ``A_m``. Each encoded attribute value
   has a fixed random prototype ``P_{m,a}[v] ~ N(0, I / |A_m|)`` in ``R^{d_m}``, so

       x_m[i] = scale_m * ( sum_{a in A_m} P_{m,a}[attr[i, a]] + noise_m * eps_i ),  eps_i ~ N(0, I)

   i.e. the signal has unit variance per dimension and ``noise_m`` is the noise std relative
   to it. A modality with ``A_m`` empty carries noise only. A fraction ``corrupted_m`` of the
   entities (*degraded* rows) get pure noise ``scale_m * sqrt(s + noise_m^2) * eps`` instead,
   with ``s`` the signal variance (1, or 0 for an empty modality): same spread, no content, so
   a norm does not give them away. A disjoint fraction ``missing_m`` get an all-zero row, which
   :class:`FeatureStore` reads as missing. ``scale_m`` differs between modalities on purpose,
   so that weighting by raw magnitude is punished.
7. **Split.** Triples are deduplicated and a random ``valid_fraction`` / ``test_fraction`` is
   held out, except triples whose head, tail or relation would then be absent from training.

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

from afme_lib.data.dataset import KGDataset
from afme_lib.data.features import SUFFIX_FOR, FeatureStore
from afme_lib.data.filters import CATEGORIES, relation_categories
from afme_lib.data.openke import write_id_map, write_triples
from afme_lib.errors import AfmeError

GENERATOR = "afme_lib.data.synthetic"
FORMAT_VERSION = 1
_SPLIT_FILES = {"train": "train2id.txt", "valid": "valid2id.txt", "test": "test2id.txt"}
_SLUG = {"1-1": "1to1", "1-N": "1toN", "N-1": "Nto1", "N-N": "NtoN"}
# Stage tags of the random streams (changing one stage never shifts another's draws).
_ENTITIES, _RELATIONS, _SPLIT, _FEATURES = 1, 2, 3, 4


@dataclass(frozen=True)
class ModalitySpec:
    """One modality: which attributes it encodes and how its feature rows are degraded."""

    attributes: tuple[int, ...]  # latent attribute indices it encodes (empty: noise only)
    dim: int
    noise: float = 0.5  # Gaussian noise std relative to the unit-variance signal
    scale: float = 1.0  # multiplies the whole row (modalities differ in magnitude on purpose)
    corrupted: float = 0.0  # fraction of entities whose row is pure noise
    missing: float = 0.0  # fraction of entities whose row is all zero (disjoint from corrupted)


def _tiny_modalities() -> dict[str, ModalitySpec]:
    # text and image share attribute 1, so either can partly stand in for the other.
    return {
        "text": ModalitySpec((0, 1), dim=32, noise=0.5, scale=1.0, corrupted=0.05, missing=0.05),
        "image": ModalitySpec((1, 2), dim=24, noise=0.8, scale=10.0, corrupted=0.10, missing=0.15),
        "audio": ModalitySpec((3,), dim=16, noise=1.2, scale=1.0, corrupted=0.10, missing=0.25),
    }


@dataclass
class SynthConfig:
    """Everything the generator needs; the defaults are the ``tiny`` preset."""

    name: str = "synth-tiny"  # dataset name: feature files are <name>-textual.pth, ...
    num_entities: int = 300
    num_types: int = 3
    attribute_values: tuple[int, ...] = (4, 4, 4, 4)  # K_a, the number of values of each attribute
    modalities: dict[str, ModalitySpec] = field(default_factory=_tiny_modalities)
    # (attribute, intended category) of each attribute relation
    attribute_relations: tuple[tuple[int, str], ...] = (
        (0, "1-1"), (1, "1-N"), (2, "N-1"), (3, "N-N"), (0, "N-N"), (2, "1-N"),
    )
    structural_relations: tuple[str, ...] = ("N-1", "N-N")  # intended category of each
    triples_per_relation: int = 600  # target before dedup; a "1" side caps it at its cells' sizes
    fanout: float = 4.0  # mean multiplicity of an "N" side; each relation scales it by U(0.8, 1.25)
    num_communities: int = 6  # hidden communities C: every relation shifts the head's to the tail's
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        if self.num_entities < 2 or self.num_types < 1:
            raise ValueError("num_entities must be >= 2 and num_types >= 1")
        if not self.attribute_values or min(self.attribute_values) < 2:
            raise ValueError(f"attribute_values {tuple(self.attribute_values)}: need at least one attribute, each with >= 2 values")
        n_attr = len(self.attribute_values)
        if not self.modalities:
            raise ValueError("modalities is empty")
        for m, spec in self.modalities.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", m):
                raise ValueError(f"modality name {m!r}: use letters, digits and '_' (feature files are <name>-<modality>.pth)")
            bad = [a for a in spec.attributes if not 0 <= a < n_attr]
            if bad:
                raise ValueError(f"modality {m!r} encodes attributes {bad} outside [0, {n_attr})")
            if spec.dim < 1 or spec.noise < 0 or spec.scale <= 0:
                raise ValueError(f"modality {m!r}: need dim >= 1, noise >= 0, scale > 0")
            if not (0 <= spec.corrupted and 0 <= spec.missing and spec.corrupted + spec.missing < 1):
                raise ValueError(f"modality {m!r}: corrupted + missing fractions must lie in [0, 1)")
        for a, cat in self.attribute_relations:
            if not 0 <= a < n_attr:
                raise ValueError(f"attribute relation on attribute {a} outside [0, {n_attr})")
            if cat not in CATEGORIES:
                raise ValueError(f"unknown category {cat!r}; expected one of {CATEGORIES}")
        for cat in self.structural_relations:
            if cat not in CATEGORIES:
                raise ValueError(f"unknown category {cat!r}; expected one of {CATEGORIES}")
        if not self.attribute_relations and not self.structural_relations:
            raise ValueError("no relations: give attribute_relations and/or structural_relations")
        if self.fanout < 2.5:
            raise ValueError(f"fanout {self.fanout} < 2.5: 'N' sides would not read as N (threshold 1.5)")
        if self.num_communities < 1:
            raise ValueError("num_communities must be >= 1")
        if self.valid_fraction < 0 or self.test_fraction < 0 or self.valid_fraction + self.test_fraction >= 1:
            raise ValueError("valid_fraction and test_fraction must be >= 0 and sum below 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SynthConfig":
        """Rebuild a config from :meth:`to_dict` output (e.g. ``metadata.json["config"]``)."""
        values = dict(values)
        values["attribute_values"] = tuple(values["attribute_values"])
        values["modalities"] = {
            m: ModalitySpec(**{**spec, "attributes": tuple(spec["attributes"])}) for m, spec in values["modalities"].items()
        }
        values["attribute_relations"] = tuple((int(a), c) for a, c in values["attribute_relations"])
        values["structural_relations"] = tuple(values["structural_relations"])
        return cls(**values)


PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(),
    "default": SynthConfig(
        name="synth-default",
        num_entities=1200,
        num_types=5,
        attribute_values=(8, 8, 6, 6, 5),
        modalities={
            # Overlaps (attr 2 in text+image, attr 3 in image+audio) make completion possible;
            # numeric encodes nothing: a modality every relation should learn to ignore.
            "text": ModalitySpec((0, 1, 2), dim=128, noise=0.6, scale=1.0, corrupted=0.05, missing=0.05),
            "image": ModalitySpec((2, 3), dim=96, noise=0.8, scale=10.0, corrupted=0.10, missing=0.20),
            "audio": ModalitySpec((3, 4), dim=48, noise=1.2, scale=1.0, corrupted=0.10, missing=0.30),
            "numeric": ModalitySpec((), dim=32, noise=1.0, scale=0.1, corrupted=0.0, missing=0.10),
        },
        attribute_relations=(
            (0, "1-1"), (0, "1-N"), (0, "N-N"),
            (1, "N-1"), (1, "N-N"), (1, "1-N"),
            (2, "1-1"), (2, "N-N"), (2, "N-1"),
            (3, "1-N"), (3, "N-N"), (3, "1-1"),
            (4, "N-1"), (4, "N-N"),
        ),
        structural_relations=("1-1", "1-N", "N-1", "N-N", "N-N", "N-1"),
        triples_per_relation=600,
        fanout=4.0,
        num_communities=8,
        seed=0,
    ),
}


def _rng(seed: int, *stage: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stage])


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """A random labelling of n items with k labels, each used n // k or n // k + 1 times."""
    return rng.permutation(np.arange(n) % k)


def _shift(rng: np.random.Generator, k: int) -> np.ndarray:
    """The map v -> (v + s) mod k for a random shift s (s = 0: "same value" relations)."""
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


def _relations(cfg: SynthConfig, attrs: np.ndarray, types: np.ndarray, community: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Draw every relation; return its ground-truth record and the deduplicated (h, r, t) triples.

    Links are drawn cell by cell: heads of cell (value v, community c) link to tails of cell
    (value_map[v], community_map[c]); a structural relation has one value, its allowed types.
    """
    specs = [("attribute", a, c) for a, c in cfg.attribute_relations] + [("structural", None, c) for c in cfg.structural_relations]
    records, parts = [], []
    for r, (kind, attr, category) in enumerate(specs):
        rng = _rng(cfg.seed, _RELATIONS, r)
        fanout = float(cfg.fanout * rng.uniform(0.8, 1.25))
        # Maps are cyclic shifts, not arbitrary permutations: shifts commute, so one Fourier basis
        # diagonalises all of them and RotatE / ComplEx can represent every relation exactly.
        community_map = _shift(rng, cfg.num_communities)  # community[t] = community_map[community[h]]
        rec: dict = {"id": r, "kind": kind, "attribute": attr, "intended_category": category, "fanout": round(fanout, 4),
                     "community_map": community_map.tolist()}
        if kind == "attribute":
            k = cfg.attribute_values[attr]
            value_map = _shift(rng, k)  # attr[t] = value_map[attr[h]]
            rec["value_map"] = value_map.tolist()
            rec["informative_modalities"] = [m for m, s in cfg.modalities.items() if attr in s.attributes]
            rec["name"] = f"r{r:02d}_attr{attr}_{_SLUG[category]}"
            head_value, tail_value, maps = attrs[:, attr], attrs[:, attr], value_map
        else:
            n_side = math.ceil(cfg.num_types / 2)  # type-constrained, but not so narrow that 1-x sides starve
            head_types = np.sort(rng.choice(cfg.num_types, n_side, replace=False))
            tail_types = np.sort(rng.choice(cfg.num_types, n_side, replace=False))
            rec.update(head_types=head_types.tolist(), tail_types=tail_types.tolist(), informative_modalities=[])
            rec["name"] = f"r{r:02d}_struct_{_SLUG[category]}"
            # one "value": allowed (0) or not (-1), so the cell loop below serves both kinds
            head_value = np.where(np.isin(types, head_types), 0, -1)
            tail_value = np.where(np.isin(types, tail_types), 0, -1)
            maps = np.array([0])
        n_allowed = int((head_value >= 0).sum())
        heads, tails = [], []
        for v in range(len(maps)):  # loops over cells (values x communities), never entities
            for c in range(cfg.num_communities):
                pool_h = np.flatnonzero((head_value == v) & (community == c))
                pool_t = np.flatnonzero((tail_value == maps[v]) & (community == community_map[c]))
                target = round(cfg.triples_per_relation * len(pool_h) / n_allowed)
                if target and len(pool_t):
                    h, t = _pair(rng, pool_h, pool_t, target, category, fanout)
                    heads.append(h)
                    tails.append(t)
        h, t = (np.concatenate(x) if x else np.empty(0, dtype=np.int64) for x in (heads, tails))
        keep = h != t
        parts.append(np.stack([h[keep], np.full(int(keep.sum()), r), t[keep]], 1))
        records.append(rec)
    triples = np.concatenate(parts).astype(np.int64)
    n, m = cfg.num_entities, len(specs)
    keys = (triples[:, 0] * m + triples[:, 1]) * n + triples[:, 2]
    _, first = np.unique(keys, return_index=True)  # sorted by (h, r, t), duplicates dropped
    return records, triples[first]


def _split(cfg: SynthConfig, triples: np.ndarray, num_relations: int) -> dict[str, np.ndarray]:
    """Hold out valid/test at random, keeping in train every entity and relation they mention.

    Held-out triples that would leave an entity or relation without training triples go back
    to train; that only raises training degrees, so one vectorised pass is enough.
    """
    rng = _rng(cfg.seed, _SPLIT)
    n = len(triples)
    order = rng.permutation(n)
    held = np.zeros(n, dtype=bool)
    held[order[: round((cfg.valid_fraction + cfg.test_fraction) * n)]] = True
    train = triples[~held]
    ent_deg = np.bincount(train[:, [0, 2]].ravel(), minlength=cfg.num_entities)
    rel_deg = np.bincount(train[:, 1], minlength=num_relations)
    orphan = (ent_deg[triples[:, 0]] == 0) | (ent_deg[triples[:, 2]] == 0) | (rel_deg[triples[:, 1]] == 0)
    held &= ~orphan
    held_order = order[held[order]]
    share = cfg.valid_fraction / (cfg.valid_fraction + cfg.test_fraction) if held.any() else 0.0
    n_valid = round(share * len(held_order))
    # Sorting the indices keeps each split in (h, r, t) order: tidy, diffable files.
    return {
        "train": triples[~held],
        "valid": triples[np.sort(held_order[:n_valid])],
        "test": triples[np.sort(held_order[n_valid:])],
    }


def _features(cfg: SynthConfig, attrs: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Feature matrix of every modality (float32) and its ground-truth record."""
    n = cfg.num_entities
    out, records = {}, {}
    for m, spec in cfg.modalities.items():
        rng = _rng(cfg.seed, _FEATURES, zlib.crc32(m.encode()))
        signal = np.zeros((n, spec.dim))
        for a in spec.attributes:
            prototypes = rng.normal(0.0, math.sqrt(1.0 / len(spec.attributes)), (cfg.attribute_values[a], spec.dim))
            signal += prototypes[attrs[:, a]]
        x = signal + spec.noise * rng.normal(size=(n, spec.dim))
        order = rng.permutation(n)
        n_missing, n_corrupted = round(spec.missing * n), round(spec.corrupted * n)
        missing = np.sort(order[:n_missing])
        corrupted = np.sort(order[n_missing : n_missing + n_corrupted])
        spread = math.sqrt((1.0 if spec.attributes else 0.0) + spec.noise**2)
        x[corrupted] = spread * rng.normal(size=(n_corrupted, spec.dim))
        x *= spec.scale
        x[missing] = 0.0
        out[m] = x.astype(np.float32)
        records[m] = {
            "attributes": list(spec.attributes),
            "dim": spec.dim,
            "noise": spec.noise,
            "scale": spec.scale,
            "missing": {"count": int(n_missing), "ids": missing.tolist()},
            "corrupted": {"count": int(n_corrupted), "ids": corrupted.tolist()},
        }
    return out, records


def generate(config: SynthConfig | str = "tiny", seed: int | None = None) -> tuple[KGDataset, FeatureStore, dict]:
    """Generate a synthetic graph: ``(dataset, features, metadata)``, deterministic in the seed.

    ``config`` is a :class:`SynthConfig` or a preset name; ``seed`` overrides its seed.
    ``metadata`` is the ground truth written as ``metadata.json`` (see the module docstring).
    """
    cfg = _resolve(config, seed)
    n = cfg.num_entities
    rng = _rng(cfg.seed, _ENTITIES)
    types = _balanced(rng, n, cfg.num_types)
    attrs = np.stack([_balanced(rng, n, k) for k in cfg.attribute_values], 1)  # [N, A]
    community = _balanced(rng, n, cfg.num_communities)  # hidden: no modality encodes it

    relations, triples = _relations(cfg, attrs, types, community)
    splits = _split(cfg, triples, len(relations))
    observed = relation_categories(torch.from_numpy(splits["train"]), len(relations))
    for rec, cat in zip(relations, observed):
        rec["category"] = cat
        rec["triples"] = {s: int((part[:, 1] == rec["id"]).sum()) for s, part in splits.items()}

    width = max(5, len(str(n - 1)))
    entity_names = [f"e{i:0{width}d}_type{c}" for i, c in enumerate(types.tolist())]
    dataset = KGDataset(
        name=cfg.name,
        path=None,
        entity_names=entity_names,
        relation_names=[rec["name"] for rec in relations],
        **{s: torch.from_numpy(part) for s, part in splits.items()},
    )
    values, modality_records = _features(cfg, attrs)
    store = FeatureStore(n)
    for m, x in values.items():
        store.add(m, torch.from_numpy(x), source=f"<synthetic {m}>")
        modality_records[m]["file"] = f"{cfg.name}-{SUFFIX_FOR.get(m, m)}.pth"

    degree = np.bincount(splits["train"][:, [0, 2]].ravel(), minlength=n)
    metadata = {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "name": cfg.name,
        "seed": cfg.seed,
        "counts": dataset.counts() | {"isolated_entities": int((degree == 0).sum())},
        "config": cfg.to_dict(),
        "relations": relations,
        "modalities": modality_records,
        "num_types": cfg.num_types,
        "entity_types": types.tolist(),
        "attribute_values": list(cfg.attribute_values),
        # entity_attributes[a][i]: value of attribute a for entity i
        "entity_attributes": attrs.T.tolist(),
        "num_communities": cfg.num_communities,
        "entity_communities": community.tolist(),
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


def write_synthetic(out_dir: str | Path, preset_or_config: SynthConfig | str = "tiny", seed: int | None = None) -> Path:
    """Generate and write one folder holding the dataset, the features and ``metadata.json``.

    Files: ``entity2id.txt``, ``relation2id.txt``, ``train2id.txt``, ``valid2id.txt``,
    ``test2id.txt`` (OpenKE), ``<name>-textual.pth`` ... (:meth:`FeatureStore.save`) and
    ``metadata.json``. The folder loads with ``load_dataset(out_dir)`` and
    ``FeatureStore.load(out_dir, N)``. A folder written earlier by this function is replaced
    (its files are removed first, so no stale feature file survives); any other non-empty
    folder is refused.
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
    feature_files = [p.name for p in store.save(out, dataset.name)]
    metadata["files"] = ["entity2id.txt", "relation2id.txt", *_SPLIT_FILES.values(), *feature_files, "metadata.json"]
    (out / "metadata.json").write_text(_render_json(metadata) + "\n", encoding="utf-8")
    return out
