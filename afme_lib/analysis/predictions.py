"""Top-k answers of one query, with the split each known answer comes from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from afme_lib.data.dataset import SPLITS, KGDataset


def known_answers(dataset: KGDataset, entity: int, relation: int, side: str = "tail") -> dict[int, str]:
    """``{answer: split}`` of the query (entity, relation, ?) (side "tail") or (?, relation, entity)."""
    if side not in ("tail", "head"):
        raise ValueError(f"side must be 'tail' or 'head', got {side!r}")
    known_col, answer_col = (0, 2) if side == "tail" else (2, 0)
    out: dict[int, str] = {}
    for split in reversed(SPLITS):  # train last, so an answer in several splits is labelled train
        t = dataset.split(split)
        hit = (t[:, known_col] == entity) & (t[:, 1] == relation)
        out.update({int(a): split for a in t[hit, answer_col].tolist()})
    return out


@torch.no_grad()
def top_predictions(
    model, dataset: KGDataset, entity: int, relation: int, side: str = "tail", k: int = 10
) -> pd.DataFrame:
    """The ``k`` highest-scoring answers of the query: rank, entity id and name, score, and
    ``known`` (the split holding that true triple, "" for a new prediction). Unfiltered: known
    answers stay in the list, marked."""
    if side not in ("tail", "head"):
        raise ValueError(f"side must be 'tail' or 'head', got {side!r}")
    was_training = model.training
    model.eval()
    try:
        device = model.device
        scores = (
            model.score_all(
                torch.tensor([int(entity)], device=device), torch.tensor([int(relation)], device=device), side
            )[0]
            .float()
            .cpu()
        )
    finally:
        model.train(was_training)
    k = min(int(k), len(scores))
    values, ids = scores.topk(k)
    known = known_answers(dataset, entity, relation, side)
    names = np.asarray(dataset.entity_names, dtype=object)
    return pd.DataFrame(
        {
            "rank": np.arange(1, k + 1),
            "id": ids.numpy(),
            "entity": names[ids.numpy()],
            "score": values.numpy().round(4),
            "known": [known.get(int(i), "") for i in ids.tolist()],
        }
    ).set_index("rank")
