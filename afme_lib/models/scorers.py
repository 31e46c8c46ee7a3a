"""Score functions: the pure math mapping (head, relation, tail) representations to a plausibility.

Higher score = more plausible. Every scorer works on plain real tensors whose last dimension holds
the parameters; complex vectors are stored as ``[real half | imaginary half]``. ``dim`` below is the
model size of :class:`~afme_lib.core.config.ModelConfig` (real numbers per entity; the complex scorers
read it as ``dim / 2`` complex coordinates).

==========  ==============================================  =========  ===========
scorer      score(h, r, t)                                  entity     relation
==========  ==============================================  =========  ===========
TransE      -||h + r - t||_p   (p = 1 or 2)                 dim        dim
DistMult    <h, r, t> = sum_k h_k r_k t_k                   dim        dim
ComplEx     Re(sum_k h_k r_k conj(t_k))                     dim/2 C    dim/2 C
RotatE      -sum_k |h_k e^{i theta_k} - t_k|                dim/2 C    dim/2 phases
==========  ==============================================  =========  ===========

``score`` broadcasts over leading dimensions (e.g. [B, 1, D] against [B, K, D]). ``score_all``
scores every row of a candidate table as the missing side of B queries, one candidate chunk at a
time so temporaries stay within ``B x chunk x D``; it uses a matrix product where the math allows.
"""

from __future__ import annotations

import math

import torch

SIDES = ("tail", "head")
# Elements per CPU step of the elementwise scorers (RotatE, TransE-L1): about 4 MB of float32, so
# the B x step x D temporaries stay in cache. Measured on a 2-core CPU (RotatE, B=256, N=15000,
# D/2=125): 32 candidates per step run ~10x faster than 1024.
CPU_TILE_ELEMENTS = 2**20


class Scorer:
    """One score function. Subclasses implement ``score``, ``_query`` and ``_against``."""

    name: str = ""

    def __init__(self, init_range: float | None = None):
        # None or 0 (ModelConfig's "scorer default") -> the scorer's own default range.
        self.init_range = float(init_range) if init_range else None

    # --- sizes and initialisation -----------------------------------------------------------------
    def entity_dim(self, dim: int) -> int:
        return int(dim)

    def relation_dim(self, dim: int) -> int:
        return int(dim)

    def default_init_range(self, dim: int) -> float:
        raise NotImplementedError

    def init_entity_(self, weight: torch.Tensor, dim: int) -> torch.Tensor:
        """Fill ``weight`` [*, entity_dim(dim)] uniformly in [-a, a] (a: ``init_range`` or the default)."""
        _check_width(weight, self.entity_dim(dim), "entity", self.name)
        bound = self.init_range or self.default_init_range(dim)
        with torch.no_grad():
            return weight.uniform_(-bound, bound)

    def init_relation_(self, weight: torch.Tensor, dim: int) -> torch.Tensor:
        _check_width(weight, self.relation_dim(dim), "relation", self.name)
        bound = self.init_range or self.default_init_range(dim)
        with torch.no_grad():
            return weight.uniform_(-bound, bound)

    def enable_compile(self) -> None:
        """Run the evaluation kernel through torch.compile, where the scorer has one (RotatE)."""

    # --- scores -----------------------------------------------------------------------------------
    def score(self, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_all(
        self, q: torch.Tensor, r: torch.Tensor, table: torch.Tensor, side: str, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Scores [B, N]: side="tail" -> score(q_b, r_b, table_j); side="head" -> score(table_j, r_b, q_b).

        ``q`` [B, De] known entities, ``r`` [B, Dr] (or broadcastable), ``table`` [N, De]. At most
        ``chunk_size`` candidates (None: all) are scored per step -- fewer for the elementwise
        scorers on CPU, whose steps are capped to stay in cache. The result has q's dtype.
        """
        if side not in SIDES:
            raise ValueError(f"side must be 'tail' or 'head', got {side!r}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        query = self._query(q, r, side)
        step = table.shape[0] if chunk_size is None else int(chunk_size)
        cap = self._step_cap(q, table)
        if cap is not None:
            step = min(step, cap)
        return _fill_chunks(query, table, step, self._against, q.shape[0], q.dtype)

    def score_candidates(
        self, known: torch.Tensor, r: torch.Tensor, candidates: torch.Tensor, corrupt_head: torch.Tensor
    ) -> torch.Tensor:
        """Scores [B, K] of K candidates per row for the missing side of each row.

        Row b asks for a head (``corrupt_head[b]``: score(c, r_b, known_b)) or a tail
        (score(known_b, r_b, c)). The per-row query (e.g. the known entity rotated by r) is
        computed once and compared with the K candidates -- training's negative scores, without
        rotating or translating every negative.
        """
        head_query = self._query(known, r, "head")
        tail_query = self._query(known, r, "tail")
        pick = corrupt_head[:, None]
        if isinstance(head_query, tuple):
            query = tuple(torch.where(pick, a, b) for a, b in zip(head_query, tail_query))
        else:
            query = torch.where(pick, head_query, tail_query)
        return self._against_rows(query, candidates)

    def _query(self, q: torch.Tensor, r: torch.Tensor, side: str):
        """Per-query work done once for all candidates (e.g. h*r, or h rotated by r)."""
        raise NotImplementedError

    def _against_rows(self, query, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [B, K] of prepared queries [B, ...] against their own candidates [B, K, De]."""
        return torch.einsum("bd,bkd->bk", query, candidates)  # the matrix-product scorers

    def _against(self, query, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [B, c] of the prepared queries against a chunk of candidates [c, De]."""
        raise NotImplementedError

    def _step_cap(self, q: torch.Tensor, table: torch.Tensor) -> int | None:
        """Most candidates per step: elementwise scorers on CPU keep their B x step x width
        temporaries cache-sized; matrix products (BLAS blocks itself) and accelerators (large steps
        amortise kernel launches) take the whole chunk."""
        width = self._elementwise_width(q)
        if width is None or table.device.type != "cpu":
            return None
        return max(8, CPU_TILE_ELEMENTS // max(1, q.shape[0] * width))

    def _elementwise_width(self, q: torch.Tensor) -> int | None:
        return None  # per-candidate width of the B x c x width temporaries; None: matrix product

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, init_range={self.init_range})"


class TransE(Scorer):
    """TransE (Bordes et al. 2013): score = -||h + r - t||_p, p in {1, 2}.

    score_all, p=2: ||a - t||^2 = ||a||^2 - 2 a.t + ||t||^2 with a = q + r (tail side) or the
    candidate compared with a = q - r (head side: ||h + r - q|| = ||h - (q - r)||), a matrix product.
    The expansion cancels when the vectors are close relative to their norms, so both sides are
    first centred on the candidate chunk's mean; rounding can still push it slightly below 0, so it
    is clamped before the square root. Half-precision inputs are expanded in float32.
    p=1: broadcast |a - t| in cache-sized steps (twice as fast as ``torch.cdist`` on CPU here).
    Default init: uniform in [-6/sqrt(dim), 6/sqrt(dim)] as in the paper.
    """

    def __init__(self, p_norm: int = 1, init_range: float | None = None):
        super().__init__(init_range)
        if p_norm not in (1, 2):
            raise ValueError(f"TransE p_norm must be 1 or 2, got {p_norm!r}")
        self.p_norm = int(p_norm)
        self.name = f"transe-l{self.p_norm}"

    def default_init_range(self, dim: int) -> float:
        return 6.0 / math.sqrt(dim)

    def score(self, h, r, t):
        return -torch.linalg.vector_norm(h + r - t, ord=self.p_norm, dim=-1)

    def _query(self, q, r, side):
        return q + r if side == "tail" else q - r

    def _elementwise_width(self, q):
        return q.shape[-1] if self.p_norm == 1 else None

    def _against_rows(self, a, candidates):
        return -torch.linalg.vector_norm(a[:, None] - candidates, ord=self.p_norm, dim=-1)

    def _against(self, a, candidates):
        if self.p_norm == 1:
            diff = a[:, None] - candidates[None]
            if _needs_grad(a, candidates):
                return -diff.abs().sum(-1)
            return diff.abs_().sum(-1).neg_()
        work = torch.float32 if a.dtype in (torch.float16, torch.bfloat16) else a.dtype
        # Distances are translation invariant; centring on the chunk mean removes a shared offset
        # whose norm would otherwise dominate the expansion and cancel away the digits we need.
        centre = candidates.detach().to(work).mean(0)  # any point works: no gradient needed
        a, c = a.to(work) - centre, candidates.to(work) - centre
        sq = torch.addmm((a * a).sum(-1, keepdim=True) + (c * c).sum(-1), a, c.T, alpha=-2)
        return -_safe_sqrt(sq.clamp_min(0))


class DistMult(Scorer):
    """DistMult (Yang et al. 2015): score = <h, r, t> = sum_k h_k r_k t_k.

    Symmetric in h and t, so both sides are (q * r) @ table^T.
    Default init: Glorot-style uniform bound sqrt(6 / (dim + dim)).
    """

    name = "distmult"

    def default_init_range(self, dim: int) -> float:
        return math.sqrt(3.0 / dim)

    def score(self, h, r, t):
        return (h * r * t).sum(-1)

    def _query(self, q, r, side):
        return q * r

    def _against(self, qr, candidates):
        return qr @ candidates.T


class ComplEx(Scorer):
    """ComplEx (Trouillon et al. 2016): score = Re(sum_k h_k r_k conj(t_k)), vectors [re | im].

    Expanded: sum_k hr*rr*tr + hi*rr*ti + hr*ri*ti - hi*ri*tr. Both sides reduce to one product:
    tail side Re(w . conj(t)) = wr.tr + wi.ti with w = q r; head side Re(h . w) = hr.wr - hi.wi with
    w = r conj(q). Default init: Glorot-style uniform bound sqrt(3 / dim).
    """

    name = "complex"

    def entity_dim(self, dim: int) -> int:
        return _even(dim, self.name)

    def relation_dim(self, dim: int) -> int:
        return _even(dim, self.name)

    def default_init_range(self, dim: int) -> float:
        return math.sqrt(3.0 / dim)

    def score(self, h, r, t):
        hr, hi = _halves(h)
        rr, ri = _halves(r)
        tr, ti = _halves(t)
        return (rr * (hr * tr + hi * ti) + ri * (hr * ti - hi * tr)).sum(-1)

    def _query(self, q, r, side):
        qr, qi = _halves(q)
        rr, ri = _halves(r)
        if side == "tail":  # w = q r, matched against [tr | ti]
            return torch.cat([qr * rr - qi * ri, qr * ri + qi * rr], -1)
        # w = r conj(q) = (rr qr + ri qi) + i (ri qr - rr qi); Re(h w) = hr.Re(w) - hi.Im(w)
        return torch.cat([rr * qr + ri * qi, rr * qi - ri * qr], -1)

    def _against(self, w, candidates):
        return w @ candidates.T


class RotatE(Scorer):
    """RotatE (Sun et al. 2019): score = -sum_k |h_k e^{i theta_k} - t_k| (sum of complex moduli).

    Entities are dim/2 complex numbers [re | im]; a relation is dim/2 real numbers x with phases
    theta = phase_scale * x, so every rotation has unit modulus. The margin gamma belongs to the loss.
    Head prediction rotates the known tail back: |h e^{i theta} - t| = |h - t e^{-i theta}|.

    Init as in the paper's code: entities uniform in [-(gamma + epsilon) / (dim/2), +...] (dim/2 is
    its ``hidden_dim``, the number of complex coordinates; ``init_range`` overrides the bound),
    phases uniform in [-pi, pi] (x in [-pi/phase_scale, pi/phase_scale]). With phase_scale = 1 the
    parameters are the phases themselves; the paper's code stores x in the entity range and uses
    phase_scale = pi / range, which makes one optimiser step move phases much further.

    ``compile=True`` runs the no-grad candidate kernel through ``torch.compile`` (one fused loop
    instead of several passes over B x c x D/2 temporaries), falling back to eager if compilation
    fails.
    """

    name = "rotate"

    def __init__(
        self,
        init_range: float | None = None,
        gamma: float = 6.0,
        epsilon: float = 2.0,
        phase_scale: float | str = "paper",
        compile: bool = False,
    ):
        super().__init__(init_range)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        # "paper": theta = x * pi / range with x initialised in the entity range, as RotatE's own
        # code does; resolved in init_relation_ once the dimension is known. Phases stored
        # directly (phase_scale=1) move ~50x slower under Adam and train far more slowly.
        self.phase_scale = phase_scale if phase_scale == "paper" else float(phase_scale)
        self.compile = bool(compile)

    def enable_compile(self) -> None:
        self.compile = True

    def entity_dim(self, dim: int) -> int:
        return _even(dim, self.name)

    def relation_dim(self, dim: int) -> int:
        return _even(dim, self.name) // 2

    def default_init_range(self, dim: int) -> float:
        return (self.gamma + self.epsilon) / (_even(dim, self.name) // 2)

    def init_relation_(self, weight, dim):
        _check_width(weight, self.relation_dim(dim), "relation", self.name)
        if self.phase_scale == "paper":
            self.phase_scale = math.pi / (self.init_range or self.default_init_range(dim))
        bound = math.pi / self.phase_scale
        with torch.no_grad():
            return weight.uniform_(-bound, bound)

    def _rotate(self, x, r, sign: float = 1.0):
        """x e^{i sign theta} as (real, imag) halves."""
        xr, xi = _halves(x)
        if self.phase_scale == "paper":
            raise RuntimeError(
                "RotatE(phase_scale='paper') is resolved by init_relation_(weight, dim); "
                "call it first or pass a numeric phase_scale"
            )
        theta = r * self.phase_scale if self.phase_scale != 1.0 else r
        cos, sin = torch.cos(theta), torch.sin(theta) * sign
        return xr * cos - xi * sin, xr * sin + xi * cos

    def score(self, h, r, t):
        hr, hi = self._rotate(h, r)
        tr, ti = _halves(t)
        dr, di = hr - tr, hi - ti
        return -_safe_sqrt(dr * dr + di * di).sum(-1)

    def _query(self, q, r, side):
        return self._rotate(q, r, 1.0 if side == "tail" else -1.0)

    def _elementwise_width(self, q):
        return q.shape[-1] // 2

    def _against_rows(self, query, candidates):
        ar, ai = query
        cr, ci = _halves(candidates)
        dr, di = ar[:, None] - cr, ai[:, None] - ci
        return -_safe_sqrt(dr * dr + di * di).sum(-1)

    def _against(self, query, candidates):
        ar, ai = query
        cr, ci = _halves(candidates)
        if _needs_grad(ar, candidates):
            dr, di = ar[:, None] - cr[None], ai[:, None] - ci[None]
            return -_safe_sqrt(dr * dr + di * di).sum(-1)
        if self.compile:
            kernel = _compiled_modulus_kernel()
            if kernel is not None:
                # Query batches and candidate chunks vary (a relation's last batch, the chunk each
                # evaluation's memory budget allows): one graph for every size, not one per size.
                for part in (ar, ai, cr, ci):
                    torch._dynamo.maybe_mark_dynamic(part, 0)
                try:
                    return kernel(ar, ai, cr, ci)
                except Exception as err:  # noqa: BLE001 -- any compiler failure: eager is always correct
                    _disable_compiled_kernel(err)
        return _modulus_kernel_inplace(ar, ai, cr, ci)


# --- kernels and helpers ------------------------------------------------------------------------
class _SafeSqrt(torch.autograd.Function):
    """sqrt with gradient 0 (not inf * 0 = NaN) where the value is 0, like torch.linalg.vector_norm."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * 0.5 / y.masked_fill(y == 0, math.inf)


def _needs_grad(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _SafeSqrt.apply(x)
    return torch.sqrt(x)


def _modulus_kernel(ar, ai, cr, ci):
    """-sum_k |a_bk - c_jk| for queries a [B, D] and candidates c [c, D] (real/imag parts): [B, c]."""
    dr, di = ar[:, None] - cr[None], ai[:, None] - ci[None]
    return -torch.sqrt(dr * dr + di * di).sum(-1)


def _modulus_kernel_inplace(ar, ai, cr, ci):
    # Same value as _modulus_kernel with two temporaries instead of five (no autograd here).
    dr, di = ar[:, None] - cr[None], ai[:, None] - ci[None]
    dr.mul_(dr)
    di.mul_(di)
    return dr.add_(di).sqrt_().sum(-1).neg_()


_COMPILED = {"kernel": None, "failed": False}


def _compiled_modulus_kernel():
    # Module-level cache: a compiled function on the scorer would make models unpicklable.
    if _COMPILED["failed"]:
        return None
    if _COMPILED["kernel"] is None:
        try:
            _COMPILED["kernel"] = torch.compile(_modulus_kernel, dynamic=False)
        except Exception as err:  # noqa: BLE001
            _disable_compiled_kernel(err)
            return None
    return _COMPILED["kernel"]


def _disable_compiled_kernel(err: Exception) -> None:
    import warnings

    _COMPILED.update(kernel=None, failed=True)
    warnings.warn(
        f"RotatE: torch.compile of the scoring kernel failed ({type(err).__name__}: {err}); using the eager kernel",
        RuntimeWarning,
        stacklevel=3,
    )


def _fill_chunks(query, table, step, against, rows, dtype) -> torch.Tensor:
    n = table.shape[0]
    out = torch.empty(rows, n, dtype=dtype, device=table.device)
    step = max(1, min(step, n))
    for start in range(0, n, step):
        # The last window is shifted back to full width (re-scoring < step candidates), so every
        # call sees the same shape: a compiled kernel then compiles once, not once per remainder.
        start = min(start, n - step)
        out[:, start : start + step] = against(query, table[start : start + step])
    return out


def _halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # split, not two slices: each slice's backward writes into a zero gradient of the whole x,
    # split's concatenates the two (RotatE's training step on the synthetic preset: 51 -> 46 ms)
    half = x.shape[-1] // 2
    return x.split([half, x.shape[-1] - half], -1)


def _even(dim: int, name: str) -> int:
    if int(dim) % 2:
        raise ValueError(f"{name} stores dim/2 complex numbers as [real | imag]: dim must be even, got {dim}")
    return int(dim)


def _check_width(weight: torch.Tensor, expected: int, what: str, name: str) -> None:
    if weight.shape[-1] != expected:
        raise ValueError(f"{name} {what} weight has {weight.shape[-1]} columns, expected {expected}")


# --- factory ------------------------------------------------------------------------------------
# The names are ModelConfig.scorer's choices (afme_lib.core.config.SCORER_NAMES; a test keeps the two equal).
SCORERS = {
    "transe": TransE,
    "transe-l1": lambda **kw: TransE(p_norm=1, **kw),
    "transe-l2": lambda **kw: TransE(p_norm=2, **kw),
    "distmult": DistMult,
    "complex": ComplEx,
    "rotate": RotatE,
}


def make_scorer(name: str, **kw) -> Scorer:
    """Scorer by name. ``p_norm`` is read by "transe" only (the other scorers, "transe-l1" and
    "transe-l2" included, ignore it), so a caller can pass ``ModelConfig.p_norm`` whatever the name;
    every other keyword goes to the scorer's constructor (e.g. ``init_range``, RotatE's ``gamma``)."""
    key = name.lower()
    if key not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; known: {sorted(SCORERS)}")
    p_norm = kw.pop("p_norm", 1)
    if key == "transe":
        kw["p_norm"] = p_norm
    return SCORERS[key](**kw)


def scorer_from_config(config, name: str | None = None, **kw) -> Scorer:
    """The scorer a :class:`ModelConfig` asks for: ``name`` (default ``config.scorer``) with the
    config's ``p_norm`` and ``init_range`` (0 = scorer default); ``kw`` adds scorer options."""
    return make_scorer(name or config.scorer, p_norm=config.p_norm, init_range=config.init_range, **kw)
