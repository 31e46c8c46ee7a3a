"""NATIVE (Zhang et al., SIGIR 2024): relation-guided dual adaptive fusion over any modality set
and collaborative modality adversarial training, under RotatE (``config.scorer``).

Fusion. For entity e seen through relation r, with tokens x_0 = e_s (structure) and
x_m = s_m rms(P_m f_m) for each modality m the entity has::

    w_m   = softmax_m( (omega . tanh(x_m)) / tau_r )      over the present tokens
    tau_r = sigmoid(theta_r)                               one learned temperature per relation
    e_r   = sum_m w_m x_m
    score(h, r, t) = scorer(e_r(h), r, e_r(t))

"Dual adaptive": the logits adapt to the entity's own modality content, the temperature to the
relation (a relation may prefer a sharp choice of one modality or an even mix). Missing
modalities get weight exactly 0; ``dynamic_weights=False`` makes the weights uniform and
``relation_context=False`` shares one temperature across relations.

Collaborative modality adversarial training (``training_losses``; off with ``gan=False`` or
``lambda_adv = 0``). One generator G produces every modality at once from noise and the entity's
whole (detached) token set, g = G(z (+) x_0 (+) ... (+) x_M), rescaled to each modality's token
norm. Replacing the head's, the tail's or both modality tokens by generated ones gives three
adversarial triples whose fused embeddings use all M generated modalities. The KGC model is the
WGAN critic::

    L_adv = lambda_adv * ( mean_k E[S(fake_k)] - E[S(real)] )
    L_gp  = lambda_adv * lambda_gp * E[(||grad_x S(x, r)|| - 1)^2],  x between [h;t]_real and [h;t]_fake

The generator maximises E[S(fake)]: its output passes a gradient-reversal layer into L_adv, so
the one optimiser step descends L_adv for the KGC model and ascends it for G (the authors
alternate two optimisers; with Adam the reversed gradient's scale does not matter).
Choices where the paper leaves room are listed in docs/baselines.md (NATIVE section).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import KGModel, LossContext
from afme_lib.models.enhance import gradient_penalty
from afme_lib.models.modality_inputs import ModalityInputs, rms_normalise
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import scorer_from_config

GENERATOR_HIDDEN = 512  # the authors' generator width
TABLE_CHUNK = 8192  # entities fused at a time when building a whole entity table


class _ReverseGradient(torch.autograd.Function):
    """Identity forward, negated gradient backward: what descends for the critic ascends for G."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    return _ReverseGradient.apply(x)


def fusion_weights(
    tokens: torch.Tensor, present: torch.Tensor, omega: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """w [n, T] = softmax over present tokens of (omega . tanh(x_m)) / tau, tokens [n, T, D],
    present [n, T] (the structural token always present), temperature [n]."""
    logits = torch.tanh(tokens) @ omega / temperature[:, None]
    return torch.softmax(logits.masked_fill(~present, float("-inf")), dim=-1)


class ModalityGenerator(nn.Module):
    """g = G(z (+) x_0 (+) ... (+) x_M): one MLP producing all M modality tokens [n, M, D]."""

    def __init__(self, num_modalities: int, dim: int, noise_dim: int, hidden: int = GENERATOR_HIDDEN):
        super().__init__()
        self.num_modalities, self.dim, self.noise_dim = num_modalities, dim, noise_dim
        self.net = nn.Sequential(
            nn.Linear(noise_dim + (num_modalities + 1) * dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, num_modalities * dim),
        )

    def forward(self, tokens: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.net(torch.cat([noise, tokens.flatten(1)], -1))
        return out.view(len(tokens), self.num_modalities, self.dim)


@register_model("native")
class NATIVE(KGModel):
    """NATIVE: relation-guided adaptive fusion of the structural and modality tokens, and the
    collaborative modality adversarial terms as ``training_losses`` (formulas in the module
    docstring)."""

    relation_conditioned = True
    recommended_train_options = {"lambda_adv": 1e-4, "lambda_gp": 0.1}  # the authors' mu and beta
    sampled_loss_only = True  # trained as in the paper, on sampled negatives (1vsall is refused)

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        dim = self.init_embeddings(scorer_from_config(config))
        self.inputs = ModalityInputs(features, dim, config.modalities, init_scale=self.embedding_scale())
        if len(self.inputs):
            self.enable_unknown_entities()  # entities with no training triple (models/base.py)
        m = len(self.inputs)
        self.token_names = ["structure"] + self.inputs.names
        self.omega = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        # theta_r as in the authors' code: uniform in the entity init range, so tau_r ~ 0.5 at first
        bound = self.scorer.init_range or self.scorer.default_init_range(config.dim)
        self.temperature_logit = nn.Parameter(
            torch.empty(num_relations if config.relation_context else 1).uniform_(-bound, bound)
        )
        self.use_gan = config.gan and m > 0
        if self.use_gan:
            self.generator = ModalityGenerator(m, dim, config.noise_dim)

    # --- fusion --------------------------------------------------------------------------------
    def tokens(self, entities: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[e_s, x_1..x_M] [n, M+1, D] and presence [n, M+1] (structure always present)."""
        structural = self.structural(entities)
        if len(self.inputs) == 0:
            return structural[:, None], torch.ones(len(entities), 1, dtype=torch.bool, device=entities.device)
        modal, present = self.inputs(entities)
        return (torch.cat([structural[:, None], modal], 1), torch.cat([torch.ones_like(present[:, :1]), present], 1))

    def temperature(self, relations: torch.Tensor) -> torch.Tensor:
        idx = relations if self.config.relation_context else torch.zeros_like(relations)
        return torch.sigmoid(self.temperature_logit[idx])

    def weights(self, tokens: torch.Tensor, present: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        if not self.config.dynamic_weights:
            uniform = present.to(tokens.dtype)
            return uniform / uniform.sum(-1, keepdim=True)
        return fusion_weights(
            tokens, present, self.omega.to(tokens.dtype), self.temperature(relations).to(tokens.dtype)
        )

    def fuse(self, tokens: torch.Tensor, present: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """e_r [n, D] for aligned tokens [n, T, D], presence [n, T] and relations [n]."""
        w = self.weights(tokens, present, relations)
        return torch.einsum("nt,ntd->nd", w, tokens)

    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def entity_repr(self, entities: torch.Tensor, relations: torch.Tensor | None = None) -> torch.Tensor:
        if relations is None:
            raise ValueError("NATIVE representations depend on the relation: pass relations")
        ent, rel = torch.broadcast_tensors(entities, relations)
        # Tokens once per distinct entity; only the softmax temperature depends on the relation.
        unique, inverse = torch.unique(ent.reshape(-1), return_inverse=True)
        tokens, present = self.tokens(unique)
        fused = self.fuse(tokens[inverse], present[inverse], rel.reshape(-1))
        return fused.view(*ent.shape, -1)

    def entity_table(self, relation: int | None = None) -> torch.Tensor:
        if relation is None:
            raise ValueError("NATIVE is relation-conditioned: entity_table needs a relation")
        ids = torch.arange(self.num_entities, device=self.device)
        parts = []
        for chunk in ids.split(TABLE_CHUNK):
            tokens, present = self.tokens(chunk)
            parts.append(self.fuse(tokens, present, torch.full_like(chunk, int(relation))))
        return torch.cat(parts)

    def introspect(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fusion weights [n, M+1] (structure first) and modality presence [n, M]."""
        ent, rel = torch.broadcast_tensors(entities, relations)
        tokens, present = self.tokens(ent.reshape(-1))
        return {"weights": self.weights(tokens, present, rel.reshape(-1)), "measured": present[:, 1:]}

    # --- collaborative modality adversarial training -------------------------------------------
    def generate(self, tokens: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generated modality tokens [n, M, D], each rescaled to its modality's token norm s_m sqrt(D).

        The generator is conditioned on detached tokens: the critic should not lower a fake's
        score by reshaping the generator's input (that path would be reversed with G's gradient)."""
        tokens = tokens.detach()
        if noise is None:
            noise = torch.randn(len(tokens), self.config.noise_dim, device=tokens.device, dtype=tokens.dtype)
        raw = self.generator(tokens, noise)
        return rms_normalise(raw) * self.inputs.log_scale.exp()[:, None].to(raw.dtype)

    def adversarial_scores(self, batch: torch.Tensor, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Scores of the real triples and of the three adversarial versions, plus the fused
        real / fake embeddings (for the gradient penalty). ``noise`` [2B, noise_dim] for heads then tails."""
        h, r, t = batch.unbind(1)
        ents, rels = torch.cat([h, t]), torch.cat([r, r])
        tokens, present = self.tokens(ents)
        real = self.fuse(tokens, present, rels)
        generated = reverse_gradient(self.generate(tokens, noise))
        fake_tokens = torch.cat([tokens[:, :1], generated], 1)
        fake = self.fuse(fake_tokens, torch.ones_like(present), rels)
        (real_h, real_t), (fake_h, fake_t) = real.chunk(2), fake.chunk(2)
        rel = self.relation_repr(r)
        fakes = torch.stack(
            [
                self.scorer.score(fake_h, rel, real_t),
                self.scorer.score(real_h, rel, fake_t),
                self.scorer.score(fake_h, rel, fake_t),
            ]
        )
        return {
            "real": self.scorer.score(real_h, rel, real_t),
            "fake": fakes,
            "real_pair": torch.cat([real_h, real_t], -1),
            "fake_pair": torch.cat([fake_h, fake_t], -1),
            "rel": rel,
        }

    def training_losses(
        self, batch: torch.Tensor, negatives: torch.Tensor, corrupt_head: torch.Tensor, context: LossContext
    ) -> dict[str, torch.Tensor]:
        """{"native_adv", "native_gp"} weighted by lambda_adv (and lambda_gp); {} when off."""
        if not self.use_gan or context.lambda_adv <= 0 or not torch.is_grad_enabled():
            return {}
        out = self.adversarial_scores(batch)
        adv = out["fake"].float().mean(1).mean() - out["real"].float().mean()
        terms = {"native_adv": context.lambda_adv * adv}
        if context.lambda_gp > 0:
            gp = self._score_penalty(out["real_pair"], out["fake_pair"], out["rel"])
            terms["native_gp"] = context.lambda_adv * context.lambda_gp * gp.float()
        return terms

    @torch.compiler.disable  # double backward: outside any compiled graph (aot_autograd lacks it)
    def _score_penalty(self, real_pair: torch.Tensor, fake_pair: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
        """WGAN-GP term of the score as a critic of fused [head; tail] pairs."""
        width = real_pair.shape[-1] // 2

        def critic(pair, r):
            return self.scorer.score(pair[:, :width], r, pair[:, width:])

        return gradient_penalty(critic, real_pair, fake_pair, rel)
