"""Entity representations seen per modality and fused, mapped to 2-D with UMAP (umap-learn).

Views of a trained model (:func:`representation_views`):

- ``structure``: the learned structural embedding e_s of every entity;
- one per modality m: the projected feature token h_m = s_m rms(P_m f_m) (entities with the
  modality only);
- ``fused``: the representation the scorer sees, ``model.entity_table(relation)`` (AFME's
  fusion depends on the relation, so a relation must be chosen).

UMAP. The k nearest neighbours are computed exactly with torch (blocks of a distance matrix)
and handed to umap-learn as ``precomputed_knn``: exact neighbours are what umap-learn itself
uses on small data, and this skips compiling its own neighbour search (the first UMAP call
in a process still JIT-compiles the layout code, ~5-10 s on a CPU). ``n_neighbors`` is capped at
``rows - 1``. A view with fewer than :data:`MIN_UMAP_ROWS` rows is mapped with PCA instead
and a message says so; fewer than 3 rows are skipped with a message.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

MIN_UMAP_ROWS = 10
CHUNK = 1024


def representation_views(model, relation: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{view: (vectors [N, D], rows present [N] bool)}`` on the CPU (see module docstring)."""
    views = {}
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            ids = torch.arange(model.num_entities, device=model.device)
            all_rows = torch.ones(model.num_entities, dtype=torch.bool)
            if hasattr(model, "entity"):
                views["structure"] = (model.entity.weight.detach().float().cpu(), all_rows)
            inputs = getattr(model, "inputs", None)
            if inputs is not None and len(inputs):
                tokens, present = inputs(ids)
                for i, name in enumerate(inputs.names):
                    views[name] = (tokens[:, i].float().cpu(), present[:, i].cpu())
            if model.relation_conditioned and relation is None:
                raise ValueError(f"{type(model).__name__} fuses per relation: pass relation= to get the fused view")
            table = model.entity_table(relation if model.relation_conditioned else None)
            if table.is_complex():
                table = torch.view_as_real(table).flatten(1)
            views["fused"] = (table.float().cpu(), all_rows)
        finally:
            model.train(was_training)
    return views


def exact_knn(x: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices [n, k] int32 and euclidean distances [n, k] float32 of each row's k nearest rows,
    the row itself first (distance 0), as umap-learn's ``precomputed_knn`` expects."""
    x = x.double()
    n = x.shape[0]
    idx = torch.empty(n, k, dtype=torch.long)
    dist = torch.empty(n, k, dtype=torch.float64)
    for start in range(0, n, CHUNK):
        d = torch.cdist(x[start : start + CHUNK], x)
        rows = torch.arange(start, min(start + CHUNK, n))
        d[rows - start, rows] = -1.0  # the row itself sorts first even when another row coincides
        values, order = d.topk(k, dim=1, largest=False)
        idx[start : start + CHUNK], dist[start : start + CHUNK] = order, values.clamp(min=0.0)
    return idx.numpy().astype(np.int32), dist.numpy().astype(np.float32)


def pca_2d(x: torch.Tensor) -> np.ndarray:
    """First two principal coordinates (zero-padded when the data spans fewer dimensions)."""
    centred = x.double() - x.double().mean(0)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    coords = (u * s)[:, :2]
    if coords.shape[1] < 2:
        coords = torch.cat([coords, torch.zeros(len(x), 2 - coords.shape[1], dtype=coords.dtype)], 1)
    return coords.numpy()


def map_2d(x: torch.Tensor, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of the rows of ``x`` and the method used ("umap" or "pca", see module doc)."""
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"{n} rows: too few to map")
    if n < MIN_UMAP_ROWS:
        return pca_2d(x), "pca"
    import umap

    k = max(2, min(int(n_neighbors), n - 1))
    knn_idx, knn_dist = exact_knn(x, k)
    with warnings.catch_warnings():
        # umap-learn warns that a fixed random_state disables its parallelism: intended (reproducible maps)
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden")
        warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
        reducer = umap.UMAP(
            n_neighbors=k, min_dist=min_dist, random_state=seed, precomputed_knn=(knn_idx, knn_dist, None), n_jobs=1
        )
        coords = reducer.fit_transform(x.double().numpy())
    return np.asarray(coords, dtype=np.float64), "umap"


def embedding_frame(
    views: dict[str, tuple[torch.Tensor, torch.Tensor]],
    entities: pd.DataFrame | None = None,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    max_points: int | None = 3000,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[str]]:
    """Map every view to 2-D; return a long table (view, entity id, x, y, method, + the columns
    of ``entities``, an :func:`~afme_lib.analysis.explore.entity_table`) and messages about
    views mapped with PCA or skipped.

    With ``max_points``, one random subset of entities (the same in every view, drawn with
    ``seed``) is mapped, so large graphs stay fast and the views stay comparable.
    """
    n = len(next(iter(views.values()))[0]) if views else 0
    keep = torch.ones(n, dtype=torch.bool)
    messages = []
    if max_points is not None and n > max_points:
        gen = torch.Generator().manual_seed(seed)
        keep = torch.zeros(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=gen)[:max_points]] = True
        messages.append(f"{max_points} of {n} entities drawn at random (seed {seed}) and mapped in every view")
    frames = []
    for view, (vectors, present) in views.items():
        rows = (present & keep).nonzero().flatten()
        try:
            coords, method = map_2d(vectors[rows], n_neighbors, min_dist, seed)
        except ValueError as err:
            messages.append(f"{view}: skipped ({err})")
            continue
        if method != "umap":
            messages.append(
                f"{view}: only {len(rows)} entities have this view; UMAP needs at least "
                f"{MIN_UMAP_ROWS}, so it is mapped with PCA"
            )
        frame = pd.DataFrame({"view": view, "id": rows.numpy(), "x": coords[:, 0], "y": coords[:, 1], "method": method})
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["view", "id", "x", "y", "method"])
    if entities is not None and len(out):
        out = out.merge(entities, left_on="id", right_index=True, how="left")
    return out, messages


def embedding_figure(frame: pd.DataFrame, color: str | None = "type", title: str = "", columns: int = 3):
    """One scatter panel per view, points coloured by an entity column (categorical or numeric);
    axes are per panel (UMAP coordinates are not comparable across views)."""
    import plotly.express as px

    color = color if color in frame.columns else None
    hover = [c for c in ("entity", "degree", "type", "top relation", "missing modalities") if c in frame.columns]
    fig = px.scatter(
        frame,
        x="x",
        y="y",
        color=color,
        facet_col="view",
        facet_col_wrap=columns,
        hover_data=hover,
        title=title or f"Entity representations per view (UMAP){f', coloured by {color}' if color else ''}",
        opacity=0.75,
        height=330 * max(1, -(-frame["view"].nunique() // columns)),
    )
    fig.update_xaxes(matches=None, showticklabels=False, title_text="")
    fig.update_yaxes(matches=None, showticklabels=False, title_text="")
    fig.update_traces(marker={"size": 5})
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("view=", "")))
    return fig
