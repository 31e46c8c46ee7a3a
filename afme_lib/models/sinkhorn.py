"""Entropic optimal transport: Sinkhorn plans, barycentric maps and free-support barycentres.

Between discrete measures a = sum_i a_i delta_{x_i} (n points) and b = sum_j b_j delta_{y_j}
(m points) with cost C_ij, the entropic transport plan (Cuturi, 2013) is

    P = argmin { <P, C> - eps H(P) :  P 1 = a,  P^T 1 = b },   H(P) = -sum_ij P_ij (log P_ij - 1)

and has the form P_ij = u_i K_ij v_j with K = exp(-C / eps). Sinkhorn's algorithm alternates
u = a / (K v) and v = b / (K^T u) from u = v = 1. We iterate the same updates on the potentials
f = eps log u, g = eps log v (the "log domain"):

    f_i = eps log a_i - eps logsumexp_j((g_j - C_ij) / eps)
    g_j = eps log b_j - eps logsumexp_i((f_i - C_ij) / eps)
    P_ij = exp((f_i + g_j - C_ij) / eps)

which is the same sequence of plans but never forms exp(-C / eps) itself, so a small eps or a
large cost cannot underflow K to zero (and divide by zero). Every function batches over leading
dimensions: many small transport problems are solved at once.

A plan transports each source point to the P-weighted mean of the targets it sends mass to (the
*barycentric map* T(x_i) = sum_j P_ij y_j / a_i). The free-support Wasserstein barycentre of
measures nu_1..nu_K with weights lambda_k (Cuturi & Doucet, 2014) is the fixed point of
X <- sum_k lambda_k T_k(X), T_k the barycentric map of the plan from X to nu_k; OTKGE's fusion is
one step of it started from the structural embedding (see otkge.py).
"""

from __future__ import annotations

import torch


def _uniform(size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full(like.shape[:-2] + (size,), 1.0 / size, dtype=like.dtype, device=like.device)


def sinkhorn(
    cost: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    epsilon: float = 0.1,
    iterations: int = 100,
) -> torch.Tensor:
    """Entropic transport plans [..., n, m] for costs [..., n, m] and marginals a [..., n], b [..., m].

    ``a`` / ``b`` default to uniform weights. After the last update the column marginals are
    exact (P^T 1 = b up to rounding); the row marginals converge geometrically with
    ``iterations``. Differentiable, but OTKGE calls it under ``no_grad``.
    """
    if epsilon <= 0:
        raise ValueError(f"sinkhorn needs epsilon > 0, got {epsilon!r}")
    if iterations < 1:
        raise ValueError(f"sinkhorn needs at least one iteration, got {iterations!r}")
    n, m = cost.shape[-2:]
    a = _uniform(n, cost) if a is None else a.to(cost.dtype)
    b = _uniform(m, cost) if b is None else b.to(cost.dtype)
    log_a, log_b = a.log(), b.log()
    scaled = cost / epsilon  # C / eps, reused by every update
    g = torch.zeros_like(b)
    for _ in range(iterations):
        f = epsilon * (log_a - torch.logsumexp(g[..., None, :] / epsilon - scaled, dim=-1))
        g = epsilon * (log_b - torch.logsumexp(f[..., :, None] / epsilon - scaled, dim=-2))
    return torch.exp((f[..., :, None] + g[..., None, :]) / epsilon - scaled)


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C_ij = ||x_i - y_j||^2 for points x [..., n, d] and y [..., m, d] (exact, no expansion)."""
    return (x[..., :, None, :] - y[..., None, :, :]).pow(2).sum(-1)


def barycentric_map(plan: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """T(x_i) = sum_j P_ij y_j / sum_j P_ij: where each source point goes, [..., n, d].

    ``plan`` [..., n, m], ``targets`` the target points y [..., m, d]."""
    mass = plan.sum(-1, keepdim=True)
    return (plan @ targets) / mass.clamp_min(torch.finfo(plan.dtype).tiny)


def free_support_barycenter(
    measures: list[tuple[torch.Tensor, torch.Tensor | None]],
    lambdas: torch.Tensor,
    init: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 10,
    sinkhorn_iterations: int = 200,
) -> torch.Tensor:
    """Support [n, d] of the entropic W2 barycentre of ``measures`` with weights ``lambdas`` [K].

    Each measure is (points [n_k, d], weights [n_k] or None for uniform); the barycentre keeps
    ``init``'s n points with uniform weights and moves them by X <- sum_k lambda_k T_k(X), where
    T_k is the barycentric map of the entropic plan (squared Euclidean cost) from X to measure k.
    """
    if len(measures) != len(lambdas):
        raise ValueError(f"{len(measures)} measures but {len(lambdas)} barycentre weights")
    x = init
    for _ in range(iterations):
        moved = torch.zeros_like(x)
        for (points, weights), lam in zip(measures, lambdas):
            plan = sinkhorn(squared_distances(x, points), None, weights, epsilon, sinkhorn_iterations)
            moved = moved + lam * barycentric_map(plan, points)
        x = moved
    return x
