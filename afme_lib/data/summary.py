"""One dictionary describing a dataset: counts, relation categories, degrees, modality coverage,
split hygiene (afme_lib/data/leakage.py); and the hygiene report as a table and a sentence."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from afme_lib.data.benchmarks import load_benchmark
from afme_lib.data.feature_store import FeatureStore, has_feature_files
from afme_lib.data.filters import CATEGORIES, degree_stats, relation_categories, triple_categories
from afme_lib.data.leakage import EVAL_SPLITS, hygiene_report


def dataset_summary(name_or_dir: str, data_dir: str | None = None, features: str | None = None) -> dict:
    dataset = load_benchmark(name_or_dir, data_dir=data_dir)
    rel_cats = Counter(relation_categories(dataset.train, dataset.num_relations))
    test_cats = Counter(triple_categories(dataset, "test").tolist())
    deg = degree_stats(dataset)
    summary = {
        "name": dataset.name,
        "path": str(dataset.path),
        "counts": dataset.counts(),
        "relation_categories": {c: rel_cats.get(c, 0) for c in CATEGORIES},
        "test_triples_by_category": {c: test_cats.get(c, 0) for c in CATEGORIES},
        "degrees": {k: deg[k] for k in ("mean_degree", "median_degree", "max_degree", "isolated_entities")},
        "unseen_entities_in": deg["unseen_in_train"],
        "hygiene": hygiene_report(dataset),
    }
    folder = Path(features) if features else dataset.path
    if features or (folder is not None and has_feature_files(folder)):
        store = FeatureStore.load(folder, dataset.num_entities, verbose=False)  # coverage below says it all
        # coverage as an exact present / N fraction (the store's float32 mean prints 0.949999988)
        summary["modalities"] = {
            m: {**c, "coverage": round(c["present"] / dataset.num_entities, 6)} for m, c in store.coverage().items()
        }
    else:
        summary["modalities"] = "none (structure only; give --features DIR)"
    return summary


def _share(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.1f}%)" if total else str(count)


def hygiene_table(report: dict) -> list[dict]:
    """The hygiene report (:func:`~afme_lib.data.leakage.hygiene_report`) as display rows
    ``{"figure", "train", "valid", "test"}`` (strings; "" where a figure does not apply)."""
    rows, distinct, over = report["rows"], report["distinct"], report["overlap"]
    pairs, memo = report["pair_shortcuts"], report.get("memorisation", {})

    def eval_row(figure: str, value) -> dict:
        return {"figure": figure, "train": "", **{s: value(s) for s in EVAL_SPLITS}}

    table = [
        {"figure": "rows", **{s: str(rows[s]) for s in rows}},
        {"figure": "distinct triples", **{s: str(distinct[s]) for s in rows}},
        {"figure": "duplicate rows", **{s: _share(report["duplicate_rows"][s], rows[s]) for s in rows}},
        eval_row("rows that are training triples", lambda s: _share(over[f"{s}_in_train"]["rows"], rows[s])),
        eval_row("distinct triples also in train", lambda s: _share(over[f"{s}_in_train"]["triples"], distinct[s])),
        {
            "figure": "distinct triples in both valid and test",
            "train": "",
            "valid": str(over["valid_in_test"]["triples"]),
            "test": str(over["valid_in_test"]["triples"]),
        },
        eval_row("rows with (h, t) linked in train", lambda s: _share(pairs[s]["pair_in_train"], rows[s])),
        eval_row("... under another relation", lambda s: _share(pairs[s]["pair_other_relation"], rows[s])),
        eval_row("rows with (t, h) linked in train", lambda s: _share(pairs[s]["reversed_pair"], rows[s])),
        eval_row("rows with an entity unseen in train", lambda s: _share(report["unseen_entity_rows"][s], rows[s])),
    ]
    if memo:
        table += [
            eval_row(
                "answer co-occurs with query entity in train",
                lambda s: f"{100 * memo[s]['answer_is_neighbour']:.1f}%" if memo[s] else "",
            ),
            eval_row("memorisation-rule MRR", lambda s: f"{memo[s]['mrr']:.3f}" if memo[s] else ""),
            eval_row("memorisation-rule Hits@1", lambda s: f"{memo[s]['hits@1']:.3f}" if memo[s] else ""),
        ]
    return table


def relation_overlap_lines(report: dict) -> list[str]:
    """One line per near-duplicate or inverse relation pair of the report (or one saying none)."""
    rel = report["relation_overlaps"]
    head = f"relation pairs sharing >= {100 * rel['threshold']:.0f}% of the smaller one's pairs (>= {rel['min_pairs']})"
    if not rel["pairs"]:
        return [f"{head}: none"]
    return [f"{head}:"] + [
        f"  {p['kind']}: {p['names'][0]} ~ {p['names'][1]}: {p['shared']} shared pairs, "
        f"{100 * p['share']:.1f}% of the smaller, Jaccard {p['jaccard']:.2f}"
        for p in rel["pairs"]
    ]


def hygiene_verdict(name: str, report: dict) -> str:
    """One plain-language sentence on what the test split measures."""
    rows, over, pairs = report["rows"]["test"], report["overlap"], report["pair_shortcuts"]["test"]
    if not rows:
        return f"{name}: no test triples."
    pct = lambda k: 100 * k / rows  # noqa: E731 -- share of test rows
    parts = []
    if over["test_in_train"]["rows"]:
        parts.append(f"{pct(over['test_in_train']['rows']):.1f}% of test rows are training triples")
    if pairs["pair_other_relation"]:
        parts.append(
            f"{pct(pairs['pair_other_relation']):.1f}% have their (head, tail) pair linked in train "
            "under another relation"
        )
    if pairs["reversed_pair"]:
        parts.append(f"{pct(pairs['reversed_pair']):.1f}% have it linked reversed")
    unseen = report.get("unseen_entity_rows", {}).get("test", 0)
    if pct(unseen) >= 10:
        parts.append(f"{pct(unseen):.1f}% hold an entity absent from train (only its features can place it)")
    if over["valid_in_train"]["rows"]:
        share = 100 * over["valid_in_train"]["rows"] / report["rows"]["valid"]
        parts.append(
            f"{share:.1f}% of valid rows are training triples"
            + (" (checkpoint selection then rewards memorisation)" if share >= 10 else "")
        )
    text = f"{name}: " + ("; ".join(parts) if parts else "no test triple or (head, tail) pair is in train")
    memo = report.get("memorisation", {}).get("test")
    if memo:
        text += f"; a rule that only recalls training neighbours scores test MRR {memo['mrr']:.3f}"
    if over["test_in_train"]["rows"] or over["valid_in_train"]["rows"]:
        text += f". Compare on a cleaned split: afme data clean {name} --out {name}-clean"
    return text + "."


def hygiene_lines(name: str, report: dict) -> list[str]:
    """The hygiene report as aligned text: the table, the relation pairs and the verdict."""
    table = hygiene_table(report)
    width = max(len(r["figure"]) for r in table)
    cols = {s: max(len(s), *(len(r[s]) for r in table)) for s in ("train", "valid", "test")}
    lines = ["  " + " " * width + "  " + "  ".join(s.rjust(cols[s]) for s in cols)]
    lines += ["  " + r["figure"].ljust(width) + "  " + "  ".join(r[s].rjust(cols[s]) for s in cols) for r in table]
    lines += ["  " + line for line in relation_overlap_lines(report)]
    return lines + ["  " + hygiene_verdict(name, report)]
