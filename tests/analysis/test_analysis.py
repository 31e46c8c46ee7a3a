"""afme_lib.analysis: tables against brute-force references, corruption exactness, weight
aggregation, ground-truth scoring, UMAP wiring, robustness curves, predictions and the panel."""

from __future__ import annotations

import json
import math
import sys
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from afme_lib.analysis import (
    corruption,
    curves,
    embeddings,
    explore,
    figures,
    modality_weights,
    panel,
    predictions,
    quality,
    robustness,
    tables,
)
from afme_lib.core.config import ModelConfig
from afme_lib.data.dataset import KGDataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import relation_categories
from afme_lib.engine.evaluation import evaluate
from afme_lib.models.registry import create_model

N, R = 40, 3


# --- a small graph, its features and an untrained AFME --------------------------------------------
@pytest.fixture(scope="module")
def kg() -> KGDataset:
    gen = torch.Generator().manual_seed(0)
    triples = torch.stack(
        [
            torch.randint(0, N, (260,), generator=gen),
            torch.randint(0, R, (260,), generator=gen),
            torch.randint(0, N, (260,), generator=gen),
        ],
        1,
    )
    triples = torch.unique(triples, dim=0)
    triples = triples[torch.randperm(len(triples), generator=gen)]
    return KGDataset(
        name="small",
        path=None,
        entity_names=[f"e{i}" for i in range(N)],
        relation_names=[f"r{i}" for i in range(R)],
        train=triples[:200],
        valid=triples[200:220],
        test=triples[220:245],
    )


@pytest.fixture(scope="module")
def store() -> FeatureStore:
    gen = torch.Generator().manual_seed(1)
    out = FeatureStore(N)
    for name, dim, missing in (("text", 6, 5), ("image", 4, 9)):
        values = torch.randn(N, dim, generator=gen) * (10.0 if name == "image" else 1.0)
        values[torch.randperm(N, generator=gen)[:missing]] = 0.0  # all-zero rows are missing
        out.add(name, values)
    return out


@pytest.fixture(scope="module")
def kg_folder(kg, store, tmp_path_factory):
    """The small graph and its features as an OpenKE folder with feature files."""
    from afme_lib.data.openke import write_id_map, write_triples

    folder = tmp_path_factory.mktemp("small") / "small"
    folder.mkdir()
    write_id_map(folder / "entity2id.txt", kg.entity_names)
    write_id_map(folder / "relation2id.txt", kg.relation_names)
    for split in ("train", "valid", "test"):
        write_triples(folder / f"{split}2id.txt", kg.split(split).numpy())
    store.save(folder, "small")
    return folder


@pytest.fixture(scope="module")
def model(kg, store):
    torch.manual_seed(0)
    cfg = ModelConfig(name="afme", dim=8, attention_layers=1, attention_heads=2, noise_dim=4)
    return create_model(cfg, N, R, store).eval()


# --- explore --------------------------------------------------------------------------------------
def test_split_table_counts(kg):
    table = explore.split_table(kg)
    train_ents = set(kg.train[:, [0, 2]].flatten().tolist())
    for split in ("train", "valid", "test"):
        t = kg.split(split)
        ents = set(t[:, [0, 2]].flatten().tolist())
        assert table.loc[split].tolist() == [len(t), len(ents), len(set(t[:, 1].tolist())), len(ents - train_ents)]


def test_relation_table_against_brute_force(kg):
    table = explore.relation_table(kg)
    cats = relation_categories(kg.train, R)
    for r in range(R):
        rows = {tuple(x) for x in kg.train.tolist() if x[1] == r}
        heads, tails = {h for h, _, _ in rows}, {t for _, _, t in rows}
        row = table.loc[r]
        assert row["relation"] == f"r{r}" and row["category"] == cats[r]
        assert (row["train"], row["distinct heads"], row["distinct tails"]) == (len(rows), len(heads), len(tails))
        assert row["tails per head"] == round(len(rows) / len(heads), 2)
        assert row["valid"] == int((kg.valid[:, 1] == r).sum())


def test_entity_table_degrees_and_top_relation(kg, store):
    meta = {"entity_types": [i % 3 for i in range(N)]}
    table = explore.entity_table(kg, store, meta)
    for e in range(N):
        counts = [0] * R
        deg = 0
        for h, r, t in kg.train.tolist():
            counts[r] += (h == e) + (t == e)
            deg += (h == e) + (t == e)
        assert table.loc[e, "degree"] == deg
        # ties resolve to the lowest relation id, like argmax
        assert table.loc[e, "top relation"] == (f"r{counts.index(max(counts))}" if deg else "-")
        assert table.loc[e, "type"] == f"type {e % 3}"
        expected_missing = sum(not bool(store.masks[m][e]) for m in store.modalities)
        assert table.loc[e, "missing modalities"] == expected_missing


def test_coverage_and_missingness_patterns(store):
    cov = explore.coverage_table(store, {"modalities": {"text": {"corrupted": {"count": 2}}}})
    assert cov.loc["text", ["dim", "present", "missing"]].tolist() == [6, 35, 5]
    assert cov.loc["image", "coverage"] == round(31 / 40, 4)
    assert cov.loc["text", "degraded (truth)"] == 2 and math.isnan(cov.loc["image", "degraded (truth)"])
    patterns = explore.missingness_patterns(store)
    t, i = store.masks["text"], store.masks["image"]
    expected = {
        "text+image": int((t & i).sum()),
        "text": int((t & ~i).sum()),
        "image": int((~t & i).sum()),
        "none": int((~t & ~i).sum()),
    }
    assert {k: v for k, v in expected.items() if v} == patterns["entities"].to_dict()
    assert patterns["entities"].sum() == N


# --- quality --------------------------------------------------------------------------------------
def test_neighbour_agreement_against_brute_force():
    x = torch.randn(23, 5, generator=torch.Generator().manual_seed(3)).double()
    got = quality.neighbour_agreement(x, k=4)
    for i in range(len(x)):
        sims = sorted(
            (float(torch.nn.functional.cosine_similarity(x[i], x[j], dim=0)) for j in range(len(x)) if j != i),
            reverse=True,
        )
        assert got[i].item() == pytest.approx(sum(sims[:4]) / 4, abs=1e-9)
    assert quality.neighbour_agreement(x[:3], k=10)[0].item() == pytest.approx(
        float(torch.nn.functional.cosine_similarity(x[0:1], x[1:3]).mean()), abs=1e-9
    )  # k capped at n - 1
    assert torch.isnan(quality.neighbour_agreement(x[:1])).all()


def test_neighbour_agreement_singles_out_noise_rows():
    gen = torch.Generator().manual_seed(0)
    prototypes = torch.randn(4, 16, generator=gen)
    x = prototypes[torch.arange(60) % 4] + 0.2 * torch.randn(60, 16, generator=gen)
    x[:5] = torch.randn(5, 16, generator=gen) * x.std()  # pure noise, same spread
    score = quality.neighbour_agreement(x, k=5)
    assert score[:5].max() < score[5:].min()


def test_feature_quality_labels_rows_from_metadata(store):
    meta = {
        "modalities": {
            "text": {"corrupted": {"ids": [int(store.masks["text"].nonzero()[0])]}},
            "image": {"corrupted": {"ids": []}},
        }
    }
    rows = quality.feature_quality(store, 3, meta)
    assert len(rows) == int(store.masks["text"].sum() + store.masks["image"].sum())
    text = rows[rows["modality"] == "text"]
    assert (text["truth"] == "degraded").sum() == 1
    norms = store.features["text"][store.masks["text"]].norm(dim=1)
    assert text["norm"].to_numpy() == pytest.approx(norms.numpy(), rel=1e-6)
    summary = quality.quality_summary(rows)
    assert summary.loc[("text", "degraded"), "rows"] == 1


# --- curves ---------------------------------------------------------------------------------------
def test_learning_curves_from_a_log_with_a_torn_last_line(tmp_path):
    lines = [
        {"epoch": 1, "loss": 2.0, "kgc": 1.5, "critic": 0.1, "seconds": 0.5},
        {"epoch": 2, "loss": 1.0, "kgc": 0.9, "critic": 0.2, "seconds": 0.4, "valid": {"mrr": 0.3, "hits@10": 0.6}},
    ]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"epoch": 3, "lo')
    table = curves.learning_curves(tmp_path)
    assert table["epoch"].tolist() == [1, 2]
    assert table["kgc"].tolist() == [1.5, 0.9]
    assert math.isnan(table.loc[0, "valid mrr"]) and table.loc[1, "valid mrr"] == 0.3
    assert curves.loss_columns(table) == ["loss", "kgc", "critic"]
    fig = curves.learning_curve_figure(table)
    assert [t.name for t in fig.data] == ["loss", "kgc", "critic", "valid MRR", "valid Hits@10"]
    assert list(fig.data[3].y) == pytest.approx([30.0])


# --- metrics --------------------------------------------------------------------------------------
def test_metrics_table_in_percent():
    block = {"mrr": 0.25, "mr": 12.345, "hits@1": 0.1, "hits@3": 0.2, "hits@10": 0.5, "count": 8}
    run = {"test": {**block, "by_side": {"tail": block}, "by_category": {"1-N": {**block, "mrr": 0.5}}}, "valid": {}}
    table = tables.metrics_table(run, "test")
    assert table.index.tolist() == [("all", "all"), ("side", "tail"), ("category", "1-N")]
    assert table.loc[("all", "all")].tolist() == [25.0, 12.35, 10.0, 20.0, 50.0, 8]
    assert table.loc[("category", "1-N"), "MRR"] == 50.0


def test_models_table_puts_models_beside_a_random_ranking():
    def block(mrr):
        return {"mrr": mrr, "mr": 3.0, "hits@1": mrr / 2, "hits@3": mrr, "hits@10": 0.9, "count": 40}

    random = block(0.3)
    metrics = {
        m: {"test": {**block(v), "self_answer": 0.05, "random": random}} for m, v in (("afme", 0.6), ("rotate", 0.5))
    }
    table = tables.models_table(metrics)
    assert table.index.tolist() == ["afme", "rotate", "random ranking"]
    assert table.loc["afme", "MRR"] == 60.0 and table.loc["random ranking", "MRR"] == 30.0
    assert table.loc["rotate", "self-answers"] == 5.0 and math.isnan(table.loc["random ranking", "self-answers"])
    fig = tables.models_figure(table)
    assert [t.name for t in fig.data] == ["afme", "rotate", "random ranking"]
    assert list(fig.data[0].x) == ["MRR", "Hits@1", "Hits@3", "Hits@10"] and fig.data[0].y[0] == 60.0


def test_mean_std_and_its_formatting():
    results = pd.DataFrame(
        {
            "variant": ["b", "a", "b", "a", "c"],
            "seed": [0, 0, 1, 1, 0],
            "mrr": [0.1, 0.3, 0.2, 0.5, 0.4],
            "hits@10": [0.5, 0.6, 0.7, 0.8, 0.9],
        }
    )
    summary = tables.mean_std(results, ["variant"], ["mrr", "hits@10"])
    assert summary.index.tolist() == ["b", "a", "c"]  # first appearance, not sorted
    assert summary.loc["a", "mrr_mean"] == pytest.approx(0.4)
    assert summary.loc["a", "mrr_std"] == pytest.approx(np.std([0.3, 0.5], ddof=1))
    assert summary.loc["c", "n"] == 1 and math.isnan(summary.loc["c", "mrr_std"])
    text = tables.format_mean_std(summary, ["mrr"])
    assert text.loc["a", "MRR"] == "40.00 ± 14.14"
    assert text.loc["c", "MRR"] == "40.00 ± n/a"
    fig = tables.mean_std_figure(summary, ["mrr", "hits@10"])
    assert [t.name for t in fig.data] == ["b", "a", "c"]
    assert list(fig.data[1].y) == pytest.approx([40.0, 70.0])
    assert list(fig.data[2].error_y.array) == [0.0, 0.0]


# --- modality weights -----------------------------------------------------------------------------
class StubAFME:
    """Deterministic introspection: weights and gates are functions of (entity, relation)."""

    token_names = ["structure", "text", "image"]
    training = False
    device = torch.device("cpu")

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def introspect(self, entities, relations):
        e, r = entities.double(), relations.double()
        raw = torch.stack([e + 1, r + 1, (e * r) % 3 + 1], 1)
        return {
            "weights": raw / raw.sum(1, keepdim=True),
            "gates": torch.stack([(e % 5) / 5, (r + 1) / 4], 1),
            "measured": torch.stack([entities % 2 == 0, entities % 3 != 0], 1),
        }


def test_relation_profile_equals_the_brute_force_means(kg):
    stub = StubAFME()
    prof = modality_weights.relation_profile(stub, kg, "train", batch_size=7)
    for r in range(R):
        occ = [(h, r) for h, rr, _ in kg.train.tolist() if rr == r] + [
            (t, r) for _, rr, t in kg.train.tolist() if rr == r
        ]
        outs = [stub.introspect(torch.tensor([e]), torch.tensor([rel])) for e, rel in occ]
        w = torch.cat([o["weights"] for o in outs]).mean(0)
        assert prof.weights.loc[f"r{r}"].to_numpy() == pytest.approx(w.numpy())
        assert prof.occurrences[f"r{r}"] == len(occ)
        for m, name in enumerate(["text", "image"]):
            measured = [float(o["gates"][0, m]) for o in outs if bool(o["measured"][0, m])]
            assert prof.gates.loc[f"r{r}", name] == pytest.approx(sum(measured) / len(measured))
            assert prof.measured.loc[f"r{r}", name] == pytest.approx(len(measured) / len(occ))
    heads_only = modality_weights.relation_profile(stub, kg, "train", positions=("head",))
    assert heads_only.occurrences.sum() == len(kg.train)


def test_relation_profile_of_a_relation_absent_from_the_split_is_nan(kg):
    small = KGDataset("s", None, kg.entity_names, kg.relation_names + ["unused"], kg.train, kg.valid, kg.test)
    prof = modality_weights.relation_profile(StubAFME(), small)
    assert prof.occurrences["unused"] == 0
    assert prof.weights.loc["unused"].isna().all() and prof.gates.loc["unused"].isna().all()


def test_relation_profile_of_a_real_afme(kg, model):
    prof = modality_weights.relation_profile(model, kg, "valid")
    assert list(prof.weights.columns) == model.token_names
    assert prof.weights.sum(axis=1).to_numpy() == pytest.approx(np.ones(R), abs=1e-5)  # softmax weights average to 1
    e, r = kg.valid[:, 0], kg.valid[:, 1]
    with torch.no_grad():
        w = torch.cat([model.introspect(e, r)["weights"], model.introspect(kg.valid[:, 2], r)["weights"]])
    rel = torch.cat([r, r])
    for k in range(R):
        assert prof.weights.iloc[k].to_numpy() == pytest.approx(w[rel == k].mean(0).numpy(), abs=1e-6)
    single = modality_weights.entity_weights(model, int(e[0]), int(r[0]))
    assert single["weight"].to_numpy() == pytest.approx(w[0].numpy(), abs=1e-6)
    assert math.isnan(single.loc["structure", "gate"])


def test_profile_needs_an_afme(kg):
    rotate = create_model(ModelConfig(name="rotate", dim=8), N, R)
    with pytest.raises(TypeError, match=f"^{type(rotate).__name__} has no modality weights to show; train an AFME"):
        modality_weights.relation_profile(rotate, kg)


META = {
    "relations": [
        {"name": "r0", "informative_modalities": ["text"]},
        {"name": "r1", "informative_modalities": ["image", "audio"]},
        {"name": "r2", "informative_modalities": []},
    ],
    "modalities": {"text": {}, "image": {}, "audio": {}},
}


def test_truth_matrix():
    truth = modality_weights.truth_matrix(META, ["r0", "r1", "r2"], ["text", "image", "audio"])
    assert truth.to_numpy().tolist() == [[True, False, False], [False, True, True], [False, False, False]]
    with pytest.raises(ValueError, match="metadata.json describes other relations"):
        modality_weights.truth_matrix(META, ["r0", "rX", "r2"], ["text"])
    with pytest.raises(ValueError, match=r"modalities \['video'\] are not in metadata.json"):
        modality_weights.truth_matrix(META, ["r0", "r1", "r2"], ["video"])


def _weights(rows) -> pd.DataFrame:
    return pd.DataFrame(
        rows, index=pd.Index(["r0", "r1", "r2"], name="relation"), columns=["structure", "text", "image", "audio"]
    )


def test_truth_agreement_scores_perfect_anti_and_uniform_weights():
    truth = modality_weights.truth_matrix(META, ["r0", "r1", "r2"], ["text", "image", "audio"])
    perfect = _weights([[0.2, 0.6, 0.1, 0.1], [0.2, 0.0, 0.4, 0.4], [0.7, 0.1, 0.1, 0.1]])
    table, score = modality_weights.truth_agreement(perfect, truth)
    assert table.loc["r0", ["auc", "gap", "top1"]].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert table.loc["r1", ["auc", "gap", "top1"]].tolist() == pytest.approx([1.0, 0.4, 1.0])
    assert table.loc["r2", "kind"] == "not scored" and math.isnan(table.loc["r2", "auc"])
    assert score == pytest.approx(
        {
            "relations_scored": 2,
            "auc": 1.0,
            "gap": 0.45,
            "top1": 1.0,
            "structure_weight_scored": 0.2,
            "structure_weight_unscored": 0.7,
        }
    )

    anti = _weights([[0.2, 0.0, 0.4, 0.4], [0.2, 0.6, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1]])
    _, score = modality_weights.truth_agreement(anti, truth)
    assert (score["auc"], score["top1"]) == (0.0, 0.0) and score["gap"] < 0

    uniform = _weights([[0.25] * 4] * 3)
    table, score = modality_weights.truth_agreement(uniform, truth)
    assert score["auc"] == 0.5 and score["gap"] == 0.0
    # all three modalities tie for the top: the informative share of the tie
    assert table.loc["r0", "top1"] == pytest.approx(1 / 3) and table.loc["r1", "top1"] == pytest.approx(2 / 3)


def test_truth_long_and_figures(kg, model):
    truth = modality_weights.truth_matrix(META, ["r0", "r1", "r2"], ["text", "image", "audio"])
    weights = _weights([[0.2, 0.6, 0.1, 0.1], [0.2, 0.0, 0.4, 0.4], [math.nan] * 4])
    long = modality_weights.truth_long(weights, truth)
    assert len(long) == 6  # the NaN relation is dropped
    assert long.set_index(["relation", "modality"]).loc[("r1", "audio")].tolist() == [0.4, "informative"]
    fig = modality_weights.heatmap(weights, "t", truth)
    marked = set(zip(fig.data[1].x, fig.data[1].y))
    assert marked == {("text", "r0"), ("image", "r1"), ("audio", "r1")}
    prof = modality_weights.relation_profile(model, kg)
    assert modality_weights.weight_heatmap(prof).data[0].z.shape == (R, 3)
    assert modality_weights.gate_heatmap(prof).data[0].z.shape == (R, 2)


# --- embeddings -----------------------------------------------------------------------------------
def test_exact_knn_against_brute_force():
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(2))
    x[7] = x[3]  # a duplicate row must not take the row's own first slot
    idx, dist = embeddings.exact_knn(x, 5)
    assert idx.dtype == np.int32 and dist.dtype == np.float32
    full = torch.cdist(x.double(), x.double())
    for i in range(30):
        assert idx[i, 0] == i and dist[i, 0] == 0.0
        others = sorted(float(full[i, j]) for j in range(30) if j != i)[:4]
        assert dist[i, 1:] == pytest.approx(others, abs=1e-5)
        assert dist[i, 1:].tolist() == pytest.approx(full[i, idx[i, 1:]].tolist(), abs=1e-5)


def test_map_2d_falls_back_to_pca_and_refuses_tiny_views():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)).double()
    coords, method = embeddings.map_2d(x)
    assert method == "pca" and coords.shape == (6, 2)
    centred = x - x.mean(0)
    assert (coords @ coords.T) == pytest.approx(
        (centred @ torch.linalg.svd(centred)[2][:2].T @ torch.linalg.svd(centred)[2][:2] @ centred.T).numpy(), abs=1e-9
    )
    with pytest.raises(ValueError, match="2 rows: too few to map"):
        embeddings.map_2d(x[:2])


def test_map_2d_hands_exact_neighbours_to_umap(monkeypatch):
    seen = {}

    class FakeUMAP:  # umap-learn's layout is JIT-compiled (seconds): check the wiring only
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def fit_transform(self, data):
            seen["rows"] = len(data)
            return np.zeros((len(data), 2))

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    coords, method = embeddings.map_2d(x, n_neighbors=50, seed=4)
    assert method == "umap" and coords.shape == (12, 2) and seen["rows"] == 12
    assert seen["n_neighbors"] == 11 and seen["random_state"] == 4  # capped at rows - 1
    idx, dist, _ = seen["precomputed_knn"]
    ref_idx, ref_dist = embeddings.exact_knn(x, 11)
    assert (idx == ref_idx).all() and (dist == ref_dist).all()


def test_representation_views_and_frame(kg, store, model):
    views = embeddings.representation_views(model, relation=1)
    assert list(views) == ["structure", "text", "image", "fused"]
    assert torch.equal(views["text"][1], store.masks["text"])
    with torch.no_grad():
        assert torch.allclose(views["fused"][0], model.entity_table(1))
    with pytest.raises(ValueError, match="pass relation="):
        embeddings.representation_views(model)
    few = {"a": (torch.randn(N, 3), torch.arange(N) < 8), "b": (torch.randn(N, 3), torch.arange(N) < 2)}
    frame, messages = embeddings.embedding_frame(few, explore.entity_table(kg), max_points=None)
    assert frame["view"].unique().tolist() == ["a"] and len(frame) == 8
    assert frame["degree"].tolist() == explore.entity_table(kg)["degree"].iloc[:8].tolist()
    assert messages == [
        "a: only 8 entities have this view; UMAP needs at least 10, so it is mapped with PCA",
        "b: skipped (2 rows: too few to map)",
    ]
    sub, messages = embeddings.embedding_frame(
        {"a": (torch.randn(N, 3), torch.ones(N, dtype=torch.bool))}, max_points=5, seed=1
    )
    assert len(sub) == 5 and messages[0] == "5 of 40 entities drawn at random (seed 1) and mapped in every view"
    fig = embeddings.embedding_figure(frame.assign(type="t"), "type")
    assert len(fig.data) == 1


# --- corruption -----------------------------------------------------------------------------------
def _changed_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).any(1)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_add_noise_changes_exactly_the_requested_rows(store, fraction):
    before = {m: store.features[m].clone() for m in store.modalities}
    noisy = corruption.add_noise(store, 1.5, fraction=fraction, seed=3)
    for m in store.modalities:
        present = int(store.masks[m].sum())
        changed = _changed_rows(noisy.features[m], store.features[m])
        assert int(changed.sum()) == round(fraction * present)
        assert not (changed & ~store.masks[m]).any()  # missing rows stay missing and zero
        assert torch.equal(noisy.masks[m], store.masks[m])
        assert torch.equal(store.features[m], before[m])  # the input is untouched


def test_add_noise_scale_is_relative_to_each_feature_std():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(4000, 3, generator=gen) * torch.tensor([1.0, 10.0, 100.0]) + 5.0
    big = FeatureStore(4000)
    big.add("x", values)
    noisy = corruption.add_noise(big, 0.5, seed=1)
    delta = noisy.features["x"] - values
    expected = 0.5 * values.std(0, unbiased=False)
    assert delta.std(0).numpy() == pytest.approx(expected.numpy(), rel=0.05)
    assert torch.equal(corruption.add_noise(big, 0.0).features["x"], values)


def test_noise_is_reproducible_and_independent_per_modality(store):
    a = corruption.add_noise(store, 1.0, seed=5)
    b = corruption.add_noise(store, 1.0, seed=5)
    c = corruption.add_noise(store, 1.0, seed=6)
    only_text = corruption.add_noise(store, 1.0, modalities=["text"], seed=5)
    assert torch.equal(a.features["text"], b.features["text"])
    assert not torch.equal(a.features["text"], c.features["text"])
    assert torch.equal(only_text.features["text"], a.features["text"])  # the image draw does not shift text's
    assert torch.equal(only_text.features["image"], store.features["image"])


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_drop_rows_makes_exactly_the_requested_share_missing(store, fraction):
    dropped = corruption.drop_rows(store, fraction, modalities=["image"], seed=2)
    present = int(store.masks["image"].sum())
    lost = store.masks["image"] & ~dropped.masks["image"]
    assert int(lost.sum()) == round(fraction * present)
    assert not (dropped.masks["image"] & ~store.masks["image"]).any()
    assert (dropped.features["image"][lost] == 0).all()
    kept = dropped.masks["image"]
    assert torch.equal(dropped.features["image"][kept], store.features["image"][kept])
    assert torch.equal(dropped.masks["text"], store.masks["text"])


def test_corruption_argument_errors(store):
    with pytest.raises(ValueError, match=r"modalities \['audio'\] are not in the feature store"):
        corruption.drop_rows(store, 0.5, modalities=["audio"])
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\], got 1.5"):
        corruption.drop_rows(store, 1.5)
    with pytest.raises(ValueError, match="noise level must be >= 0, got -1"):
        corruption.add_noise(store, -1)
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        corruption.corrupt(store, "blur", 1.0)


def test_with_features_keeps_the_weights_and_reads_the_new_store(kg, store, model):
    h, r, t = kg.test.unbind(1)
    rng = torch.get_rng_state()
    same = corruption.with_features(model, store)
    assert torch.equal(torch.get_rng_state(), rng)  # building the copy drew no numbers from the global RNG
    with torch.no_grad():
        assert torch.equal(same.score(h, r, t), model.score(h, r, t))
    gone = corruption.with_features(model, corruption.drop_rows(store, 1.0))
    with torch.no_grad():
        assert not gone.introspect(h, r)["measured"].any()
        assert model.introspect(h, r)["measured"].any()  # the original still sees its features
        assert not torch.equal(gone.score(h, r, t), model.score(h, r, t))
    assert not gone.training


def test_with_features_errors(store, model):
    rotate = create_model(ModelConfig(name="rotate", dim=8), N, R)
    with pytest.raises(TypeError, match=f"^{type(rotate).__name__} reads no modality features"):
        corruption.with_features(rotate, store)
    narrow = FeatureStore(N)
    narrow.add("text", torch.randn(N, 3))
    narrow.add("image", store.features["image"])
    with pytest.raises(
        ValueError, match="modality 'text': the store has 3 features per row, the model was trained on 6"
    ):
        corruption.with_features(model, narrow)


# --- robustness -----------------------------------------------------------------------------------
def test_curve_at_test_time_level_zero_is_the_plain_evaluation(kg, store, model):
    curve = robustness.curve_test_time(model, kg, store, "missing", [0.0, 1.0], seeds=(0, 1))
    assert curve.columns.tolist() == robustness.COLUMNS
    assert curve[["level", "seed"]].values.tolist() == [[0.0, 0], [1.0, 0], [1.0, 1]]
    plain = evaluate(model, kg, "test")
    assert curve.loc[0, "mrr"] == plain["mrr"]
    blind = evaluate(corruption.with_features(model, corruption.drop_rows(store, 1.0)), kg, "test")
    assert curve.loc[1, "mrr"] == blind["mrr"]


def test_corrupted_feature_folder_is_written_once_and_loads_back(store, tmp_path, monkeypatch):
    folder = robustness.corrupted_feature_folder(store, tmp_path, "small", "missing", 0.5, seed=1, source="/x")
    loaded = FeatureStore.load(folder, N, verbose=False)
    expected = corruption.drop_rows(store, 0.5, seed=1)
    for m in store.modalities:
        assert torch.equal(loaded.masks[m], expected.masks[m])
        assert torch.equal(loaded.features[m], expected.features[m])
    monkeypatch.setattr(robustness, "corrupt", lambda *a, **k: pytest.fail("the folder should have been reused"))
    assert robustness.corrupted_feature_folder(store, tmp_path, "small", "missing", 0.5, seed=1, source="/x") == folder
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_curve_at_train_time_reuses_clean_metrics_and_trains_corrupted_runs(kg_folder, tmp_path):
    from afme_lib.experiments.comparisons import curve_train_time  # the curve trains: it lives above analysis
    from afme_lib.experiments.spec import RunSpec

    spec = RunSpec.from_fields(
        {
            "dataset": str(kg_folder),
            "features": str(kg_folder),
            "model": "afme",
            "dim": 8,
            "epochs": 1,
            "batch_size": 2048,
            "negatives": 2,
            "eval_every": 1,
            "progress": False,
            "device": "cpu",
            "attention_layers": 1,
        }
    )
    clean = {"test": {"mrr": 0.5, "mr": 2.0, "hits@1": 0.4, "hits@3": 0.5, "hits@10": 0.9}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = curve_train_time(spec, "noise", [0.0, 1.0], tmp_path, clean_metrics=clean)
    assert curve["level"].tolist() == [0.0, 1.0] and curve.loc[0, "mrr"] == 0.5
    run = tmp_path / "noise-1"
    assert curve.loc[1, "mrr"] == json.loads((run / "metrics.json").read_text())["test"]["mrr"]
    assert json.loads((run / "config.json").read_text())["features"].startswith(str(tmp_path / "features"))


def test_degradation_and_figure():
    rows = [
        ("test time", "noise", "full", 0.0, 0, 0.40),
        ("test time", "noise", "full", 2.0, 0, 0.20),
        ("test time", "noise", "full", 2.0, 1, 0.30),
        ("test time", "noise", "full", 1.0, 0, 0.35),
        ("train time", "noise", "full", 0.0, 0, 0.40),
        ("train time", "noise", "full", 2.0, 0, 0.38),
    ]
    frame = pd.DataFrame(rows, columns=["phase", "kind", "variant", "level", "seed", "mrr"]).assign(**{"hits@10": 0.5})
    table = robustness.degradation(frame)
    assert table.loc[("test time", "noise", "full")].tolist() == pytest.approx([40.0, 2.0, 25.0, -15.0])
    assert table.loc[("train time", "noise", "full"), "change (points)"] == pytest.approx(-2.0)
    summary = robustness.summarize_curves(frame)
    point = summary[(summary["phase"] == "test time") & (summary["level"] == 2.0)].iloc[0]
    assert (point["mrr"], point["runs"]) == (pytest.approx(0.25), 2)
    assert point["mrr_std"] == pytest.approx(np.std([0.2, 0.3], ddof=1))
    fig = robustness.robustness_figure(frame)
    assert {t.name for t in fig.data} == {"full, test time", "full, train time"}


# --- predictions and the panel --------------------------------------------------------------------
def test_top_predictions_are_the_highest_scores_with_their_split(kg, model):
    h, r, t = (int(v) for v in kg.train[0])
    top = predictions.top_predictions(model, kg, h, r, "tail", k=5)
    with torch.no_grad():
        scores = model.score(torch.full((N,), h), torch.full((N,), r), torch.arange(N))
    order = scores.argsort(descending=True)[:5]
    assert top["id"].tolist() == order.tolist()
    assert top["score"].to_numpy() == pytest.approx(scores[order].numpy(), abs=1e-3)
    known = predictions.known_answers(kg, h, r, "tail")
    assert known[t] == "train"
    assert top["known"].tolist() == [known.get(i, "") for i in order.tolist()]
    assert len(predictions.top_predictions(model, kg, h, r, "head", k=100)) == N
    test_h, test_r, test_t = (int(v) for v in kg.test[0])
    assert predictions.known_answers(kg, test_t, test_r, "head")[test_h] in ("test", "valid", "train")


def test_panel_updates_when_relation_or_entity_change(kg, model):
    prof = modality_weights.relation_profile(model, kg)
    p = panel.modality_panel(model, kg, prof, k=3)
    assert p.relation.options[0] == ("r0", 0)
    assert "Top 3 tails" in p.table.value and len(p.chart.outputs) == 1
    first = p.table.value
    p.relation.value = (p.relation.value + 1) % R
    assert p.table.value != first
    chart = p.chart.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert [bar["name"] for bar in chart["data"]] == ["fusion weight", "mean gate"]
    assert chart["data"][0]["x"] == model.token_names
    p.entity.value = ""
    assert "Mean weights of the relation" in p.table.value
    mean_chart = p.chart.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"]
    assert mean_chart == pytest.approx(prof.weights.loc[f"r{p.relation.value}"].tolist())
    p.entity.value = "nobody<b>"
    assert p.table.value == "<p>No entity named <code>nobody&lt;b&gt;</code>.</p>" and p.chart.outputs == ()


# --- saving figures -------------------------------------------------------------------------------
def test_save_figure_writes_html_and_plotlyjs_once(tmp_path):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    written = figures.save_figures({"one": fig, "two": fig}, tmp_path / "figs", png=False)
    assert written == [tmp_path / "figs" / "one.html", tmp_path / "figs" / "two.html"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["one.html", "plotly.min.js", "two.html"]
    assert 'src="plotly.min.js"' in (tmp_path / "figs" / "one.html").read_text()


def test_figures_under_a_reports_tree_share_one_plotlyjs(tmp_path):
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a"], y=[1]))
    figures.save_figure(fig, tmp_path / "reports" / "grid-a" / "figures" / "one", png=False)
    figures.save_figure(fig, tmp_path / "reports" / "grid-b" / "two", png=False)
    shared = tmp_path / "reports" / "assets" / "plotly.min.js"
    assert shared.is_file() and shared.stat().st_size > 1_000_000
    assert sorted(p.name for p in (tmp_path / "reports").rglob("plotly.min.js")) == ["plotly.min.js"]
    assert 'src="../../assets/plotly.min.js"' in (tmp_path / "reports" / "grid-a" / "figures" / "one.html").read_text()
    assert 'src="../assets/plotly.min.js"' in (tmp_path / "reports" / "grid-b" / "two.html").read_text()


def test_png_export_failure_warns_once_and_never_raises(tmp_path, monkeypatch):
    import plotly.graph_objects as go

    monkeypatch.setattr(figures, "_png_state", {"error": None})
    monkeypatch.setattr(figures, "_kaleido_installed", lambda: True)
    fig = go.Figure()
    monkeypatch.setattr(type(fig), "write_image", lambda self, path: (_ for _ in ()).throw(RuntimeError("no Chrome")))
    with pytest.warns(RuntimeWarning, match=r"PNG export skipped for this session \(RuntimeError: no Chrome\)"):
        assert figures.save_figure(fig, tmp_path / "a.png") == [tmp_path / "a.html"]
    assert not figures.png_available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second figure neither retries nor warns again
        assert figures.save_figure(fig, tmp_path / "b") == [tmp_path / "b.html"]
