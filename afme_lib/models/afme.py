"""AFME: MoIFu fusion + MoIEn completion under a pluggable score function (RotatE default).

For an entity e seen through relation r::

    e_s                            learned structural embedding (the "unknown" vector for an
                                   entity with no training triple, see models/base.py)
    h_m = s_m rms(P_m f_m)         frozen features of each modality, projected (modality.py)
    g_m = s_m G(e_s, z, {f_k})     MoIEn: per entity, from structure and the shown modalities' raw
                                   features read through its own projections (enhance.py; its
                                   RMS capped at 1: never longer than a measured token)
    t_m = h_m                      if m is measured for e
          g_m                      if it is missing and e has a measured row (completed)
          (1 - b_m) h_m + b_m g_m  if ``enhance_mix`` > 0 (enhance a possibly degraded row)
                                   (for the entity asked about; a candidate answer keeps h_m)
    e_r = lambda_r e_s + sum_m w_m(e, r) gate_m(e, r) * t_m      MoIFu (fusion.py)
    score(h, r, t) = scorer(e_r(h), r, e_r(t))

Row-level denoising (``cross_check_margin``, 2 by default, 0 turns it off; ours). The gate
above sees one row at a time and cannot tell a row of pure noise with a clean row's spread from
a clean row (synthetic default: the energy ratio alpha differed by 0.05 between them, and the
weights did not move). The cross-check completes each measured row with MoIEn from the entity's
*other* modalities (with the unknown vector in place of e_s, from which the generator recalls
an entity's own rows, noise included) and blends a row that disagrees into its completion::

    a_m   = cos(h_m, G_m(unknown, {f_k}_{k != m}))                no gradient
    z_m   = (a_m - mean_m) / std_m                                over the modality's measured rows
    trust = sigmoid(k (z_m + margin)),      t_m = trust h_m + (1 - trust) completion

with margin = ``cross_check_margin`` and k = 4. Only the entity asked about is checked; a
candidate answer keeps its measured rows (blended candidates became confident-but-wrong
answers, as generated ones do, see :meth:`AFME.score_batch`). Checking both sides of every
triple cost clean rows more than it gained on corrupted ones. How the side, the rule and the
margin were chosen, on which split and seeds: reports/main/selection.md.

A fixed rule, not learned: learned, margin and slope drifted toward trusting every row
(audio's slope fell from 4 to 0.4, a constant 20 % blend), since warm entities, whose attribute
triples the KGC loss sees, are answered through e_s whatever their rows say, so the loss pays
for distrust and never for misplaced trust. Standardised rather than a threshold on the cosine
(our reasoning, not measured apart): "disagrees" is then relative to what the modality's rows
usually show, and an untrained generator's completions agree with no row. In training the
checks come from a table of every entity built once per epoch, which also sets mean_m and std_m
(saved with the model for evaluation).

Ablations (:mod:`afme_lib.core.ablations`), each switch removing one component. ``denoising``
False: MoIFu's gates and the row cross-check, denoising at the element and at the row level.
``gan`` False: the completion of missing rows (they get weight 0), the critic and the adversarial
term; the cross-check keeps the generator, then trained by the reconstruction term alone.
``self_attention`` False: the generator's attention, which reaches both the completions of
missing rows and the cross-check's. ``dynamic_weights`` and ``relation_context``: parts of MoIFu
only (fusion.py).

Featureless entities. MoIEn completes a missing row from the rows an entity shows. An entity
that shows none (the synthetic graphs' attribute-value entities; a real graph's entities no
feature file covers) is not completed: from e_s alone the generator could only guess, from a
mapping it learnt on entities whose rows it saw, and on the synthetic presets' validation splits
such guesses for the value entities asked about in (?, has_a, v) queries cost AFME 0.9 to 7.5
points of MRR on clean cold attribute queries (reports/main/diagnosis/featureless.md). It is read from
structure alone, as every baseline reads it. For the same reason the cross-check leaves an
entity's only measured row as it is: there is no other row to check it against.

Cold entities. An entity whose attribute triples are all held out still has a trained e_s, but
one that says nothing about those relations; at test time it adds noise to exactly the queries
the features should answer. In training, a share ``structure_shuffle * (1 - lambda_r)`` of the
pairs get another entity's e_s (:meth:`AFME._simulate_cold`): relations that the features decide
learn to answer without help from e_s (and lower lambda_r), relations that structure decides
(lambda_r near 1) are hardly disturbed.

Cost. h_m, g_m and the gate's W_g^m t_m depend on the entity only, so each call computes them
once per distinct entity; per (entity, relation) pair only elementwise work remains. Only the
entities a batch asks about are completed and checked (candidates are read as measured; without
the check, so are the asked-about entities with every row measured), and the check's generator
pass reads out only the row it checks. An evaluation computes the per-entity tensors once for
all entities and reuses them for every relation's table. A training step's per-entity work
therefore grows with the distinct entities its batch touches;
``TrainConfig.negative_pool`` bounds them (MKG-Y: ~10.6k per batch of 1024 with independent
negatives, ~2.7k with a pool of 1024; reports/speed/models.md).

Training. The KGC loss trains the embeddings, projections and MoIFu. It does not train the
generator: generated tokens enter the KGC forward detached. Missing rows are completed at each
step, from e_s as it stands and fresh noise. MoIEn learns from its own objective on a subsample
of the batch's entities (``adversarial_rows``): each measured modality is hidden from the
generator with probability 1/2 and the generator must recreate it, judged by a conditional
WGAN-GP critic (enhance.py, own optimiser) plus a reconstruction term::

    L_G = -E[D(g_m | e_s, m)] + lambda_rec * E[||g_m - h_m||^2] / E[||h_m||^2]    (hidden measured rows)
    L_D = E[D(g_m)] - E[D(h_m)] + lambda_gp * GP

The reconstruction term (``ModelConfig.reconstruction``, 10 by default) is ours, and so is its
weight: with the critic alone (or at weight 1) the generator's tokens decoded the entity's
attributes at chance on the synthetic preset; what completing a missing row needs is the
entity's own row, not a plausible row of the modality. The generator has its own learning rate
(``TrainConfig.gen_lr``): at the main one (1e-2) it learnt only the modality's mean token. Inputs to G and D (e_s, the tokens) are detached, so MoIEn's
losses reach only the generator and the critic. On data where every entity has every row and no row is cross-checked (one modality, e.g. MKG-Y
with name text; or denoising off) and ``enhance_mix`` is 0, no score reads the generator, so
:meth:`AFME.generator_in_use` is False and the engine skips MoIEn's updates (on MKG-Y they were about
a fifth of AFME's epoch).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from afme_lib.core.config import ModelConfig
from afme_lib.data.feature_store import FeatureStore
from afme_lib.models.base import KGModel, take_rows
from afme_lib.models.enhance import CompletionGenerator, ModalityCritic, gradient_penalty
from afme_lib.models.fusion import MoIFu
from afme_lib.models.modality_inputs import ModalityInputs
from afme_lib.models.registry import register_model
from afme_lib.models.scorers import scorer_from_config

TABLE_CHUNK = 8192  # entities fused at a time when building a whole entity table
TRUST_SLOPE = 4.0  # slope k of the trust in a measured row (module docstring)
DEDUPE_BELOW = 0.8  # fuse distinct (entity, relation) pairs once when they are under this share of the pairs


@register_model("afme")
class AFME(KGModel):
    """AFME (see the module docstring): relation-chosen modality weights, residual fusion that
    starts as the scorer alone, MoIEn that completes missing modalities per entity."""

    relation_conditioned = True
    default_structure_shuffle = 0.4  # reports/main/selection.md
    shuffles_per_pair = True  # scaled by lambda_r (_simulate_cold), not in structural()

    def __init__(
        self, config: ModelConfig, num_entities: int, num_relations: int, features: FeatureStore | None = None
    ):
        super().__init__(config, num_entities, num_relations)
        dim = self.init_embeddings(scorer_from_config(config))
        self.inputs = ModalityInputs(
            features, dim, config.modalities, init_scale=config.token_start * self.embedding_scale()
        )
        m = len(self.inputs)
        self.token_names = ["structure"] + self.inputs.names
        self.fusion = MoIFu(
            m,
            dim,
            num_relations,
            config.denoising,
            config.dynamic_weights,
            config.relation_context,
            config.structure_start,
        )
        # The GAN component: completing missing rows (and enhancing measured ones), with the critic
        # and the adversarial term. The row cross-check is denoising's: it also needs a
        # completion network, so without the GAN the generator stays for it alone, trained by
        # the reconstruction term only (module docstring, "Ablations").
        self.use_gan = config.gan and m > 0
        self.cross_check = m >= 2 and config.denoising and config.cross_check_margin > 0
        self.enhance = False
        if m:
            self.enable_unknown_entities()
        if self.use_gan or self.cross_check:
            self.generator = CompletionGenerator(
                self.inputs.feature_dims,
                dim,
                config.noise_dim,
                config.attention_layers,
                config.attention_heads,
                config.self_attention,
                config.dropout,
            )
        if self.use_gan:
            # The critic always attends: with per-token MLPs its score would split into
            # a(e_s) + b(x) and stop being conditioned on the entity (the self_attention
            # ablation is about the generator).
            self.critic = ModalityCritic(m, dim, 1, config.attention_heads, self_attention=True)
            self.enhance = config.enhance_mix > 0
            if self.enhance:
                mix = min(max(config.enhance_mix, 1e-3), 1 - 1e-3)
                self.mix_logit = nn.Parameter(torch.full((m,), math.log(mix / (1 - mix))))
        self._table_cache: dict | None = None
        self._check_cache: tuple | None = None
        if self.cross_check:
            # A fixed rule, not learned (module docstring).
            self.trust_margin = float(config.cross_check_margin)
            self.trust_slope = TRUST_SLOPE
            # Each modality's mean and spread of the agreement over its measured rows, from the
            # latest table (evaluation standardises with them; saved with the model).
            self.register_buffer("agreement_mean", torch.zeros(m))
            self.register_buffer("agreement_std", torch.ones(m))

    # --- per-entity part ---------------------------------------------------------------------
    def _check_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training only: the cross-check (agreement, completion) of every entity, built at the
        first call after ``train()`` (once per epoch) and read by every step of the epoch. The
        completions are stored before the modality scale s_m, which the reader applies, since the
        KGC loss moves s_m every step."""
        if self._check_cache is None:
            parts, present = [], []
            with torch.no_grad():
                for chunk in torch.arange(self.num_entities, device=self.device).split(TABLE_CHUNK):
                    raw = self.inputs.raw(chunk)
                    tokens, measured = self.inputs(chunk, raw)
                    parts.append(self._cross_check(raw, tokens, measured, scaled=False))
                    present.append(measured)
            self._check_cache = tuple(torch.cat(p) for p in zip(*parts))
            self._agreement_statistics(self._check_cache[0], self._checkable(torch.cat(present)))
        return self._check_cache

    def _scaled(self, unit: torch.Tensor) -> torch.Tensor:
        """Generated unit-RMS tokens [n, M, D] on the measured tokens' scale s_m (detached: MoIEn's
        outputs are not trained by the KGC loss)."""
        return unit * self.inputs.log_scale.detach().exp()[:, None].to(unit.dtype)

    def _cross_check_of(
        self, entities: torch.Tensor, raw: list[torch.Tensor], tokens: torch.Tensor, measured: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_cross_check` of ``entities``: computed here in evaluation; in training read from
        the epoch's table (:meth:`_check_table`), since completing every measured row of each
        entity a batch asks about would triple AFME's step."""
        if not self.training:
            return self._cross_check(raw, tokens, measured)
        agreement, completion = self._check_table()
        return take_rows(agreement, entities), self._scaled(take_rows(completion, entities))

    @torch.no_grad()
    def _agreement_statistics(self, agreement: torch.Tensor, checked: torch.Tensor) -> None:
        """Per-modality mean and standard deviation of the agreement over the ``checked`` rows."""
        w = checked.to(agreement.dtype)
        count = w.sum(0).clamp_min(1.0)
        mean = (agreement * w).sum(0) / count
        var = ((agreement - mean).pow(2) * w).sum(0) / count
        self.agreement_mean.copy_(mean)
        self.agreement_std.copy_(var.sqrt().clamp_min(1e-3))

    def _trust(self, agreement: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
        """Trust [n, M] in each row: sigmoid(k (z + margin)), z the agreement standardised by its
        modality's statistics; 1 for rows that are not checked (not measured, or the entity's
        only measured row)."""
        z = (agreement - self.agreement_mean) / self.agreement_std
        trust = torch.sigmoid(self.trust_slope * (z + self.trust_margin))
        return torch.where(self._checkable(measured), trust, torch.ones_like(trust))

    @torch.no_grad()
    def _cross_check(
        self, raw: list[torch.Tensor], tokens: torch.Tensor, measured: torch.Tensor, scaled: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(agreement [n, M], completion [n, M, D]): each measured row completed by MoIEn from the
        entity's other modalities, and the cosine between the row and its completion (0 and zeros
        where the row is not checked: not measured, or the entity's only measured row). No gradient: a check the fusion reads, not a target.
        ``scaled`` False leaves the completions at unit RMS (before s_m)."""
        rows, cols = self._checkable(measured).nonzero(as_tuple=True)
        agreement, completion = tokens.new_zeros(measured.shape), torch.zeros_like(tokens)
        if len(rows) == 0:
            return agreement, completion
        pick = torch.arange(len(rows), device=rows.device)
        shown = measured[rows].clone()
        shown[pick, cols] = False
        # The unknown vector, not e_s: from an entity's own e_s the generator recalls its rows,
        # a pure-noise one included (synthetic default: a noise row agreed 0.72 with its
        # completion from e_s, 0.53 from the unknown vector; a clean row 0.90 and 0.86).
        unknown = self.unknown.to(tokens.dtype)[None]  # one row for all: its part is computed once
        view = self.generator.view(raw)[rows]
        generated = self._capped(self.generator(unknown, view, shown, None, only=cols))
        if scaled:
            generated = generated * self.inputs.log_scale.exp()[cols, None].to(generated.dtype)
        real = tokens[rows, cols]
        return (
            agreement.index_put((rows, cols), torch.nn.functional.cosine_similarity(real, generated, dim=-1)),
            completion.index_put((rows, cols), generated),
        )

    def _generate(
        self,
        raw: list[torch.Tensor],
        structural: torch.Tensor,
        shown: torch.Tensor,
        noise: torch.Tensor | None,
        scaled: bool = True,
    ) -> torch.Tensor:
        """MoIEn's tokens [n, M, D] on the measured tokens' scale, s_m rms(G(e_s, z, the shown
        modalities' raw feature rows ``raw``, from ModalityInputs.raw)); ``scaled`` False: before s_m."""
        generated = self._capped(self.generator(structural, self.generator.view(raw), shown, noise))
        # The scale s_m is detached: MoIEn's losses must reach only the generator.
        return self._scaled(generated) if scaled else generated

    @staticmethod
    def _capped(generated: torch.Tensor) -> torch.Tensor:
        """The generator predicts the unit-RMS token; one whose RMS exceeds 1 is scaled down to it
        (the generator's output at initialisation is several times longer than a measured token
        and would swamp the fusion), a shorter one is kept short: a prediction that hedges
        between values has a small norm, and rescaling it to full length would make it commit."""
        rms = generated.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
        return generated / rms.clamp_min(1.0)

    def _noise(self, n: int, device) -> torch.Tensor | None:
        return torch.randn(n, self.config.noise_dim, device=device) if self.training else None

    def per_entity(self, entities: torch.Tensor, queried: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Everything that depends on the entity alone, for distinct flat ``entities`` [n].

        ``tokens``, ``token_norm``, ``gate_inputs`` and ``available`` are the entity as asked about
        (MoIEn's completions of missing rows, the cross-check's blend of measured ones);
        ``candidate_*`` are the entity as a candidate answer (measured rows as they are). Only the
        ``queried`` rows [n] (bool; None: all) are completed and checked, since only the entities
        a batch asks about are read that way; the others keep their measured rows on both sides."""
        structural = self.structural(entities)
        if len(self.inputs) == 0:
            return {"structural": structural}
        raw = self.inputs.raw(entities)
        tokens, measured = self.inputs(entities, raw)
        candidate = {
            "tokens": tokens,
            "token_norm": tokens.norm(dim=-1),
            "gate_inputs": self.fusion.gate_inputs(tokens),
        }
        out = {"structural": structural, "measured": measured, **{f"candidate_{k}": v for k, v in candidate.items()}}
        if not (self.use_gan or self.cross_check):  # nothing to complete or check: both sides as measured
            return {**out, **candidate, "available": measured}
        if self.use_gan and not self.cross_check:
            # Without the check only the rows MoIEn completes differ from the measured ones; the
            # others are read as candidates are (MKG-Y, text only and never missing: no row).
            need = self._needs_completion(measured)
            queried = need if queried is None else queried & need
        rows = None if queried is None else queried.nonzero(as_tuple=True)[0]
        if rows is not None and len(rows) == len(entities):
            rows = None
        if rows is not None and len(rows) == 0:
            return {**out, **candidate, "available": measured}
        pick = (lambda t: t) if rows is None else (lambda t: t[rows])
        asked = self._as_asked(pick(entities), [pick(f) for f in raw], pick(tokens), pick(measured), pick(structural))
        asked_gate = self.fusion.gate_inputs(asked)
        if rows is None:
            return {
                **out,
                "tokens": asked,
                "token_norm": asked.norm(dim=-1),
                "gate_inputs": asked_gate,
                "available": self._available_as_asked(measured),
            }
        # The other rows are as measured: only the asked rows' tensors are new.
        gate_inputs = candidate["gate_inputs"].index_put((rows,), asked_gate) if asked_gate.numel() else asked_gate
        return {
            **out,
            "tokens": tokens.index_put((rows,), asked),
            "gate_inputs": gate_inputs,
            "token_norm": candidate["token_norm"].index_put((rows,), asked.norm(dim=-1)),
            "available": measured.index_put((rows,), self._available_as_asked(measured[rows])),
        }

    def _as_asked(
        self,
        entities: torch.Tensor,
        raw: list[torch.Tensor],
        tokens: torch.Tensor,
        measured: torch.Tensor,
        structural: torch.Tensor,
    ) -> torch.Tensor:
        """The tokens [n, M, D] of entities asked about: each measured row blended toward its
        completion as far as the cross-check distrusts it, each missing row completed by MoIEn."""
        if self.cross_check:
            agreement, completion = self._cross_check_of(entities, raw, tokens, measured)
            trust = self._trust(agreement, measured)[..., None].to(tokens.dtype)
            tokens = trust * tokens + (1 - trust) * completion
        if not self.use_gan:  # w/o GAN: missing rows stay missing (weight 0 in the fusion)
            return tokens
        rows = self._needs_completion(measured).nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            return tokens
        # Detached: the KGC loss must not train the generator (MoIEn has its own objective).
        with torch.no_grad():
            generated = self._generate(
                [f[rows] for f in raw], structural[rows], measured[rows], self._noise(len(rows), structural.device)
            )
        filled = torch.where(measured[rows, :, None], tokens[rows], generated)
        if self.enhance:
            mix = torch.sigmoid(self.mix_logit)[:, None].to(tokens.dtype)
            filled = torch.where(measured[rows, :, None], (1 - mix) * tokens[rows] + mix * generated, filled)
        return tokens.index_put((rows,), filled)

    def _needs_completion(self, measured: torch.Tensor) -> torch.Tensor:
        """Entities [n] (bool) whose rows MoIEn completes when asked about: those with a missing
        row, or all of them with ``enhance_mix``; never one with no measured row, since a
        completion is read from the modalities an entity shows (module docstring, "Featureless
        entities")."""
        shows = measured.any(1)
        return shows & ~measured.all(1) if not self.enhance else shows

    def _available_as_asked(self, measured: torch.Tensor) -> torch.Tensor:
        """Which tokens [n, M] an entity asked about has: its measured rows and, with the GAN,
        every row of an entity MoIEn completes."""
        if not self.use_gan:
            return measured
        return measured | self._needs_completion(measured)[:, None]

    @staticmethod
    def _checkable(measured: torch.Tensor) -> torch.Tensor:
        """Measured rows [n, M] the cross-check can check: those of an entity with another
        measured row to complete them from."""
        return measured & (measured.sum(1, keepdim=True) > 1)

    def _pairs(
        self,
        per: dict,
        index: torch.Tensor,
        relations: torch.Tensor,
        distinct: bool = False,
        internals: bool = False,
        completed: bool = True,
    ) -> dict[str, torch.Tensor]:
        """MoIFu for the pairs (per-entity row ``index``, relation) -> fused [n, D] (and, with
        ``internals``, the gates, weights and parts of e_r that introspection shows).

        Unless the caller says the pairs are ``distinct``, each distinct pair is fused once (a
        batch's negatives repeat pairs on small graphs) and the result gathered back. With
        ``completed`` False (a candidate answer, see :meth:`score_batch`), generated tokens are left
        out: the entity is fused from what was measured."""
        if len(self.inputs) == 0:
            return {"fused": take_rows(per["structural"], index)}
        if not distinct:
            keys = index * self.num_relations + relations
            unique, inverse = torch.unique(keys, return_inverse=True)
            # Worth it only when pairs repeat often (small graphs); a sparse repeat costs more
            # gathering back than it saves.
            if len(unique) < DEDUPE_BELOW * len(keys):
                out = self._pairs(
                    per, unique // self.num_relations, unique % self.num_relations, True, internals, completed
                )
                return {k: take_rows(v, inverse) for k, v in out.items()}
        if self.training and self.structure_shuffle > 0:
            index_s = self._simulate_cold(index, relations, len(per["structural"]))
        else:
            index_s = index
        structural = take_rows(per["structural"], index_s)
        side = "" if completed else "candidate_"
        tokens, token_norm, gate_inputs = (per[side + k] for k in ("tokens", "token_norm", "gate_inputs"))
        measured = take_rows(per["measured"], index)
        if completed:
            available = take_rows(per["available"], index)
            generated = available & ~measured if self.use_gan else None
        else:
            available, generated = measured, None
        return self.fusion(
            structural,
            tokens,
            take_rows(token_norm, index),
            available,
            gate_inputs,
            relations,
            internals,
            generated,
            index=index,
        )

    def _simulate_cold(self, index: torch.Tensor, relations: torch.Tensor, rows: int) -> torch.Tensor:
        """Training only: the per-entity rows whose e_s the pairs read. A share
        ``structure_shuffle * (1 - lambda_r)`` of the pairs read another entity's row of the
        ``rows`` at hand, as an entity whose structural embedding says nothing about relation r
        does (a cold entity's attribute triples are all held out). The share follows lambda_r, so
        relations that structure decides (lambda_r near 1) are hardly touched, while relations the
        features decide learn to answer when e_s is no help. (The swap is made on the row ids, so
        one gather serves: a ``where`` over the gathered vectors cost more than the gather.)"""
        lam = self.fusion.structure_scale(relations).detach()
        swap = torch.rand(len(relations), device=relations.device) < self.structure_shuffle * (1 - lam)
        other = torch.randint(0, rows, (len(relations),), device=relations.device)
        return torch.where(swap, other, index)

    # --- representations ---------------------------------------------------------------------
    def relation_repr(self, relations: torch.Tensor) -> torch.Tensor:
        return self.relation(relations)

    def entity_repr(
        self, entities: torch.Tensor, relations: torch.Tensor | None = None, completed: bool = True
    ) -> torch.Tensor:
        """e_r of ``entities`` (any shape) broadcast with ``relations``; ``completed`` False leaves
        MoIEn's tokens out (the representation of a candidate answer)."""
        if relations is None:
            raise ValueError("AFME representations depend on the relation: pass relations")
        ent, rel = torch.broadcast_tensors(entities, relations)
        unique, inverse = torch.unique(ent.reshape(-1), return_inverse=True)
        queried = None if completed else torch.zeros(len(unique), dtype=torch.bool, device=unique.device)
        fused = self._pairs(self.per_entity(unique, queried), inverse, rel.reshape(-1), completed=completed)["fused"]
        return fused.view(*ent.shape, -1)

    def score(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Scores of triples read as tail queries: the head completed, the tail as measured."""
        return self.scorer.score(
            self.entity_repr(heads, relations),
            self.relation_repr(relations),
            self.entity_repr(tails, relations, completed=False),
        )

    def score_negatives(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        negatives: torch.Tensor,
        corrupt_head: torch.Tensor,
    ) -> torch.Tensor:
        known = torch.where(corrupt_head, tails, heads)
        return self.scorer.score_candidates(
            self.entity_repr(known, relations),
            self.relation_repr(relations),
            self.entity_repr(negatives, relations[:, None], completed=False),
            corrupt_head,
        )

    def score_batch(
        self,
        heads: torch.Tensor,
        relations: torch.Tensor,
        tails: torch.Tensor,
        negatives: torch.Tensor,
        corrupt_head: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Positives [B] and corrupted triples [B, K] with one per-entity pass for the whole batch.

        Roles follow the query each row trains: the known side (the tail when ``corrupt_head``)
        is the entity asked about and is completed by MoIEn; the answer and the negatives are
        candidates, fused from what was measured: letting candidates carry generated tokens made
        confident-but-wrong completions outrank measured answers (reports/main/selection.md),
        while completing the entity asked about is what answers for an entity whose modality is
        missing."""
        b, k = negatives.shape
        known = torch.where(corrupt_head, tails, heads)
        answer = torch.where(corrupt_head, heads, tails)
        unique, inverse = torch.unique(torch.cat([known, answer, negatives.reshape(-1)]), return_inverse=True)
        queried = torch.zeros(len(unique), dtype=torch.bool, device=unique.device).index_fill_(0, inverse[:b], True)
        per = self.per_entity(unique, queried)
        query = self._pairs(per, inverse[:b], relations, completed=True)["fused"]
        rest = self._pairs(per, inverse[b:], torch.cat([relations, relations.repeat_interleave(k)]), completed=False)[
            "fused"
        ]
        # split, not two slices: a slice's backward fills a zero gradient of the whole [B + B K, D]
        target, cand = rest.split([b, b * k])
        cand = cand.view(b, k, -1)
        rel = self.relation_repr(relations)
        flip = corrupt_head[:, None]
        pos = self.scorer.score(torch.where(flip, target, query), rel, torch.where(flip, query, target))
        return pos, self.scorer.score_candidates(query, rel, cand, corrupt_head)

    def _all_entities(self) -> dict[str, torch.Tensor]:
        """Per-entity tensors of every entity; cached while the model is in eval mode without
        gradients (one evaluation builds every relation's table from them)."""
        cacheable = not self.training and not torch.is_grad_enabled()
        if cacheable and self._table_cache is not None:
            return self._table_cache
        per = self.per_entity(torch.arange(self.num_entities, device=self.device))
        self._table_cache = per if cacheable else None
        return per

    def train(self, mode: bool = True):
        self._table_cache = None  # parameters may change from here on
        self._check_cache = None
        return super().train(mode)

    def cached_tensors(self) -> list[torch.Tensor]:
        """The epoch's cross-check table (training) and every entity's per-entity tensors (evaluation)."""
        return [*(self._check_cache or ()), *(self._table_cache or {}).values()]

    def _load_from_state_dict(self, *args, **kwargs):
        self._table_cache = self._check_cache = None
        return super()._load_from_state_dict(*args, **kwargs)

    def _table(self, relation: int | None, completed: bool) -> torch.Tensor:
        if relation is None:
            raise ValueError("AFME is relation-conditioned: entity_table needs a relation")
        per = self._all_entities()
        ids = torch.arange(self.num_entities, device=self.device)
        rel = torch.full((min(TABLE_CHUNK, self.num_entities),), int(relation), dtype=torch.long, device=self.device)
        return torch.cat(
            [
                self._pairs(per, chunk, rel[: len(chunk)], distinct=True, completed=completed)["fused"]
                for chunk in ids.split(TABLE_CHUNK)
            ]
        )

    def entity_table(self, relation: int | None = None) -> torch.Tensor:
        """Every entity as a candidate answer for ``relation`` (measured modalities only)."""
        return self._table(relation, completed=False)

    def tables(self, relation: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(every entity as the known side of a query -- missing modalities completed by MoIEn --,
        every entity as a candidate)."""
        candidates = self.entity_table(relation)
        asked = self._table(relation, completed=True) if self.use_gan or self.cross_check else candidates
        return asked, candidates

    def introspect(self, entities: torch.Tensor, relations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean gate per modality [n, M], shares of e_r [n, M+1] (structure first; see
        MoIFu.shares), the softmax weights over modalities [n, M] and which rows are measured."""
        ent, rel = torch.broadcast_tensors(entities, relations)
        if len(self.inputs) == 0:
            return {}
        unique, inverse = torch.unique(ent.reshape(-1), return_inverse=True)
        per = self.per_entity(unique)
        out = self._pairs(per, inverse, rel.reshape(-1), internals=True)
        return {
            "gates": out["gates"].mean(-1),
            "weights": MoIFu.shares(out["structure"], out["modal"]),
            "modality_weights": out["weights"],
            "measured": per["measured"][inverse],
        }

    # --- MoIEn -------------------------------------------------------------------------------
    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters()) if self.use_gan else []

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.parameters()) if self.use_gan or self.cross_check else []

    def main_parameters(self) -> list[nn.Parameter]:
        skip = {id(p) for p in self.critic_parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def generator_in_use(self) -> bool:
        """Whether any score reads MoIEn's generator: it completes a missing row, checks a
        measured one or enhances one. On data with every row measured and no check, neither the
        critic nor the generator loss can change the model's output."""
        return self.cross_check or (self.use_gan and (self.enhance or not self.inputs.complete))

    def _adversarial_batch(self, entities: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Hidden measured rows of up to ``adversarial_rows`` distinct entities of the batch:
        conditioning e_s, real tokens, generated ones, modality ids (all rows [k, ...])."""
        unique = torch.unique(entities)
        if len(unique) > self.config.adversarial_rows:
            unique = unique[torch.randperm(len(unique), device=unique.device)[: self.config.adversarial_rows]]
        with torch.no_grad():
            structural = self.structural(unique)
            raw = self.inputs.raw(unique)
            tokens, measured = self.inputs(unique, raw)
        hidden = measured & (torch.rand(measured.shape, device=measured.device) < 0.5)
        rows, cols = hidden.nonzero(as_tuple=True)
        if len(rows) == 0:
            return None
        generated = self._generate(
            raw, structural, measured & ~hidden, torch.randn(len(unique), self.config.noise_dim, device=unique.device)
        )
        return {"cond": structural[rows], "real": tokens[rows, cols], "fake": generated[rows, cols], "modality": cols}

    def _zero(self) -> torch.Tensor:
        return self.entity.weight.new_zeros(())

    def critic_loss(self, entities: torch.Tensor, relations: torch.Tensor, lambda_gp: float) -> dict[str, torch.Tensor]:
        """WGAN-GP critic loss E[D(fake)] - E[D(real)] + lambda_gp * GP on hidden measured rows."""
        with torch.no_grad():
            batch = self._adversarial_batch(entities)
        if batch is None:  # nothing measured in this batch: a loss the engine can still backward
            zero = self._zero()
            return {"loss": zero.clone().requires_grad_(), "wasserstein": zero, "gp": zero}
        cond, mod, real, fake = batch["cond"], batch["modality"], batch["real"], batch["fake"]
        wasserstein = self.critic(real, cond, mod).mean() - self.critic(fake, cond, mod).mean()
        gp = gradient_penalty(self.critic, real, fake, cond, mod)
        return {"loss": -wasserstein + lambda_gp * gp, "wasserstein": wasserstein.detach(), "gp": gp.detach()}

    def generator_loss(self, entities: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
        """-E[D(g)] + lambda_rec * relative squared error, on hidden measured rows (module doc)."""
        batch = self._adversarial_batch(entities)
        if batch is None:
            return self._zero()
        fake, real = batch["fake"], batch["real"]
        # Without the GAN (a generator kept for the cross-check alone) only the reconstruction term.
        loss = -self.critic(fake, batch["cond"], batch["modality"]).mean() if self.use_gan else self._zero()
        if self.config.reconstruction > 0:
            loss = loss + self.config.reconstruction * (fake - real).pow(2).sum(-1).mean() / real.pow(2).sum(
                -1
            ).mean().clamp_min(1e-12)
        return loss
