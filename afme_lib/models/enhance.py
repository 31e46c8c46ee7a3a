"""MoIEn: structure-guided completion of modality tokens with a WGAN-GP critic (AFME, 3.2).

Generator (:class:`CompletionGenerator`), for an entity with structural embedding e_s, noise z
(z = 0 at evaluation: deterministic) and the modalities shown to it::

    v_m    = rms(Q_m f_m)                                  its own reading of the raw features
    b_m    = A_m (e_s (+) z)                               one base token per modality, plus b_s
    x_m    = c_m + sigmoid(W_d^m (b_m * c'_m) + b_d^m)     c_m = v_m if shown, else a learned mask;
                                                           c'_m = v_m if shown, else 1
    [s, x_1..x_M]^(L) = L blocks of multi-head self-attention over the M+1 tokens
    g_m    = O_m x_m^(L)                                   the generated token in the model space

The article writes W_d (e_mod * h~_m) although e_mod (D + noise) and h~_m (D) differ in size;
A_m is our bridge. "Modulated by the denoised features where they exist": c'_m = 1 for a
missing modality, so the generator must then rely on structure and, through attention, on the
other modalities. Attention runs over the sequence of modality tokens with the structural token
included, so intra- and inter-modal interactions are real (the sketch attends over a length-1
sequence, which is a no-op). ``self_attention=False`` puts a per-token MLP in its place (in the
generator: AFME's critic always attends, or it would stop being conditioned on the entity).

Critic: judges a modality feature x for modality m conditioned on the entity's structure, by
self-attention over the two tokens [S e_s + type_s, x + type_m] and a linear read-out of their
concatenation (the article's W_p [h^(1) || h^real(1)] + b_p without the sigmoid, since a
Wasserstein critic outputs an unbounded score). It is trained with the gradient penalty on
interpolates between *real and generated* features (Gulrajani et al., 2017).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from afme_lib.models.modality_inputs import rms_normalise


def _heads_for(dim: int, wanted: int) -> int:
    """Largest head count <= wanted that divides dim (dim 250 with 4 wanted heads -> 2)."""
    return max(h for h in range(1, max(1, wanted) + 1) if dim % h == 0)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention written out in plain ops.

    The sequences are a handful of tokens, so explicit math costs nothing, and unlike fused
    attention kernels it is twice differentiable, which the critic's gradient penalty needs.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = _heads_for(dim, heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """Attention output [n, t, D] of every token of ``x`` [n, t, D]; with ``query`` [n] (a token
        position per sequence), only that token's output [n, D] (keys and values still all t)."""
        n, t, d = x.shape
        hd = d // self.heads
        if query is None:
            q, k, v = self.qkv(x).view(n, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            k, v = F.linear(x, weight[d:], bias[d:]).view(n, t, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
            q = F.linear(x[torch.arange(n, device=x.device), query], weight[:d], bias[:d]).view(n, self.heads, 1, hd)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        mixed = self.dropout(att) @ v  # [n, heads, t or 1, hd]
        if query is not None:
            return self.out(mixed.reshape(n, d))
        return self.out(mixed.transpose(1, 2).reshape(n, t, d))


class TokenMixer(nn.Module):
    """Pre-norm transformer blocks over a short token sequence; or per-token MLPs (ablation)."""

    def __init__(self, dim: int, layers: int, heads: int, self_attention: bool = True, dropout: float = 0.0):
        super().__init__()
        self.self_attention = self_attention
        self.norms1 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        self.norms2 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(layers))
        if self_attention:
            self.mixers = nn.ModuleList(SelfAttention(dim, heads, dropout) for _ in range(layers))
        else:
            self.mixers = nn.ModuleList(
                nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)) for _ in range(layers)
            )
        self.ffns = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)) for _ in range(layers)
        )

    def forward(self, tokens: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """Mixed tokens [n, t, D]; with ``query`` [n] (a position per sequence) only that token's
        [n, D]: its last block then runs for one token, not t (the cross-check reads one)."""
        x = tokens
        last = len(self.mixers) - 1
        for i, (norm1, mix, norm2, ffn) in enumerate(zip(self.norms1, self.mixers, self.norms2, self.ffns)):
            y = norm1(x)
            if query is not None and i == last:
                rows = torch.arange(len(x), device=x.device)
                x = x[rows, query] + (mix(y, query) if self.self_attention else mix(y[rows, query]))
            else:
                x = x + mix(y)
            x = x + ffn(norm2(x))
        return x


class CompletionGenerator(nn.Module):
    """AFME's generator: every modality's token for one entity, from its structure and the
    tokens shown to it (the same inputs for every relation, so it runs once per entity)::

        v_m    = rms(Q_m f_m)                                   its own reading of the raw features
        e_mod  = e_s (+) z,   b_m = A_m e_mod                   (b_0: the structural token)
        x_m    = c_m + sigmoid(W_d^m (b_m * c'_m) + b_d^m)      c_m  = v_m if shown, else a learned mask
                                                                c'_m = v_m if shown, else 1
        [s, x_1..x_M]^(L) = L blocks of self-attention over the M+1 tokens
        g_m    = O_m x_m^(L)

    The article's first layer is sigmoid(W_d (e_mod * h~_m) + b_d); used alone it multiplies every
    shown token by a function of e_s, coordinate by coordinate, and the content of the other
    modalities reaches the attention scrambled: measured, a generator built that way still decoded
    attributes at chance after 1,000 reconstruction steps on the synthetic preset, while with the
    residual c_m it decoded them at 0.5-0.7. So the shown token is added back (our choice).

    The generator reads the raw features through its own Q_m, not the fusion's tokens h_m (our
    choice): P_m is shaped by the KGC loss alone, which keeps what answers queries when every row is
    there; a modality's weaker second signal, the one a missing row's completion needs, is what
    it may drop. Q_m is trained by MoIEn's objective with the rest of the generator."""

    def __init__(
        self,
        feature_dims: list[int],
        dim: int,
        noise_dim: int,
        layers: int,
        heads: int,
        self_attention: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        m = len(feature_dims)
        self.num_modalities, self.dim, self.noise_dim = m, dim, noise_dim
        self.read = nn.ModuleList(nn.Linear(d, dim, bias=False) for d in feature_dims)  # Q_m
        self.base = nn.Linear(dim + noise_dim, (m + 1) * dim)  # A_s, A_1..A_M
        self.modulate_weight = nn.Parameter(torch.randn(m, dim, dim) / math.sqrt(dim))  # W_d^m
        self.modulate_bias = nn.Parameter(torch.zeros(m, dim))  # b_d^m
        self.mask = nn.Parameter(torch.zeros(m, dim))  # what a hidden / missing token looks like
        self.token_type = nn.Parameter(0.02 * torch.randn(m + 1, dim))
        self.mixer = TokenMixer(dim, layers, heads, self_attention, dropout)
        self.out_weight = nn.Parameter(torch.randn(m, dim, dim) / math.sqrt(dim))  # O_m
        self.out_bias = nn.Parameter(torch.zeros(m, dim))

    def view(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The generator's own reading v_m = rms(Q_m f_m) [n, M, D] of each modality's raw rows [n, d_m]."""
        return torch.stack([rms_normalise(read(f)) for read, f in zip(self.read, features)], 1)

    def forward(
        self,
        structural: torch.Tensor,
        tokens: torch.Tensor,
        shown: torch.Tensor,
        noise: torch.Tensor | None = None,
        only: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generated tokens g [n, M, D] from e_s [n, D] (or one row [1, D] shared by all), the shown
        modalities' readings ``tokens`` [n, M, D] (:meth:`view`) and which are shown [n, M] (the
        others are ignored). ``noise`` None means z = 0 (evaluation). With ``only`` [n] (a
        modality per row), just that modality's token [n, D], at a fraction of the cost."""
        n = tokens.shape[0]
        if noise is None:
            noise = structural.new_zeros(structural.shape[0], self.noise_dim)
        base = (
            self.base(torch.cat([structural, noise], -1)).view(-1, self.num_modalities + 1, self.dim).expand(n, -1, -1)
        )
        visible = shown[..., None]
        carrier = torch.where(visible, tokens, torch.ones_like(tokens))
        modulated = torch.sigmoid(
            torch.einsum("nmd,med->nme", base[:, 1:] * carrier, self.modulate_weight) + self.modulate_bias
        )
        content = torch.where(visible, tokens, self.mask.to(tokens.dtype).expand(n, -1, -1))
        sequence = torch.cat([base[:, :1], content + modulated], 1) + self.token_type
        if only is None:
            return torch.einsum("nmd,med->nme", self.mixer(sequence)[:, 1:], self.out_weight) + self.out_bias
        mixed = self.mixer(sequence, only + 1)
        out = torch.empty_like(mixed)
        for m in range(self.num_modalities):  # a handful: O_m applied to the rows that want modality m
            rows = (only == m).nonzero(as_tuple=True)[0]
            out[rows] = mixed[rows] @ self.out_weight[m].T + self.out_bias[m]
        return out


class ModalityCritic(nn.Module):
    """MoIEn's WGAN critic: scores a feature row of modality m as real or generated *for a given
    entity*, from two tokens (the projected structural embedding e_s and the row, each plus its
    token-type vector) mixed by the same attention / MLP stack as the generator; the readout
    (W_p, b_p) of the two mixed tokens is one unbounded score per row."""

    def __init__(self, num_modalities: int, dim: int, layers: int, heads: int, self_attention: bool = True):
        super().__init__()
        self.structure = nn.Linear(dim, dim)
        self.token_type = nn.Parameter(0.02 * torch.randn(num_modalities + 1, dim))
        self.mixer = TokenMixer(dim, layers, heads, self_attention)
        self.readout = nn.Linear(2 * dim, 1)  # W_p, b_p

    def forward(self, features: torch.Tensor, structural: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Critic score [n] of feature rows [n, D] of modality ids [n] for entities with e_s [n, D]."""
        tokens = torch.stack(
            [self.structure(structural) + self.token_type[0], features + self.token_type[1 + modality]], 1
        )
        mixed = self.mixer(tokens)
        return self.readout(mixed.flatten(1)).squeeze(-1)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *critic_args) -> torch.Tensor:
    """WGAN-GP term E[(||grad_x critic(x)||_2 - 1)^2] at x = eps * real + (1 - eps) * fake.

    One eps ~ U(0, 1) per sample; ``critic(x, *critic_args)`` returns one score per row.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(mixed, *critic_args)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
