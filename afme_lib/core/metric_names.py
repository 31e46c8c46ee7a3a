"""The ranking metrics' vocabulary: names, labels and units, in one place.

:func:`afme_lib.engine.evaluation.compute_metrics` returns :data:`METRIC_KEYS`; the run log's validation
records, ``metrics.json``, a grid's ``results.csv`` and metric choices, and every table and figure
use these names. MRR and Hits@k are fractions in [0, 1] (:data:`PERCENT`: shown x100 in tables);
MR is a rank; ``count`` is the number of queries ranked. Kept on the ground floor, free of torch,
so the grid and the CLI can name metrics without loading the engine.
"""

from __future__ import annotations

HITS_AT = (1, 3, 10)
RANK_METRICS = ("mrr", "mr", *(f"hits@{k}" for k in HITS_AT))  # what a set of ranks is summarised by
METRIC_KEYS = (*RANK_METRICS, "count")  # compute_metrics' keys
# Beside the ranks, every evaluation records the share of queries answered with the asked entity.
TABLE_METRICS = (*RANK_METRICS, "self_answer")  # what a grid may tabulate
PERCENT = ("mrr", *(f"hits@{k}" for k in HITS_AT), "self_answer")
LABELS = {
    "mrr": "MRR",
    "mr": "MR",
    **{f"hits@{k}": f"Hits@{k}" for k in HITS_AT},
    "count": "queries",
    "self_answer": "self-answers",
}


def label(metric: str) -> str:
    """The display name of ``metric`` (the name itself when it is not a ranking metric)."""
    return LABELS.get(metric, metric)
