"""The training loop: any registered model, any dataset, CPU or CUDA, resumable.

One epoch walks a device-side permutation of the training triples in batches; each batch draws
K negatives per positive on the device, scores positives and negatives in one call each, and
steps the optimiser on the KGC loss (+ lambda_adv x MoIEn's generator loss for models with a
critic, whose WGAN-GP loss is minimised ``n_critic`` times by its own optimiser; both every
``adversarial_every``-th batch; skipped where the model says no score reads its generator,
``generator_in_use``).
Non-finite losses are detected without a host sync per batch and stop the run with a
:class:`NonFiniteLossError` naming the epoch, the batch and the loss term.

Under torchrun (several processes, see afme_lib/engine/distributed.py) the model is wrapped in
DistributedDataParallel: ``batch_size`` stays the global batch, each process trains on its
shard of every epoch's permutation with ceil(batch_size / W) positives per step and its own
negatives, the logged losses are averaged over the processes, validation is sharded, and only
rank 0 writes the log and the checkpoints.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from afme_lib.core import console
from afme_lib.core.config import ModelConfig, TrainConfig
from afme_lib.core.errors import AfmeError
from afme_lib.core.metric_names import RANK_METRICS
from afme_lib.data.dataset import KGDataset
from afme_lib.data.feature_store import FeatureStore
from afme_lib.data.filters import FilterIndex
from afme_lib.engine import distributed
from afme_lib.engine.allocator import retain_freed_memory
from afme_lib.engine.checkpoints import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from afme_lib.engine.device import autocast_context, resolve_device
from afme_lib.engine.evaluation import evaluate
from afme_lib.engine.losses import kgc_loss, one_vs_all_loss, weigh_self_logit
from afme_lib.engine.run_folder import BEST, LAST, append_log, truncate_log
from afme_lib.engine.sampling import KnownLoops, NegativeSampler, asked_entities
from afme_lib.models.base import KGModel, LossContext
from afme_lib.models.registry import create_model
from afme_lib.models.structural import EmbeddingModel


class NonFiniteLossError(AfmeError):
    """A loss term was NaN or infinite: names the epoch, the batch and the term."""

    def __init__(self, epoch: int, batch: int, term: str):
        self.epoch, self.batch, self.term = epoch, batch, term
        super().__init__(
            f"non-finite {term} loss at epoch {epoch}, batch {batch}; the run stopped and its "
            "last good checkpoint is kept (try a lower learning rate or --amp none)"
        )


@dataclass
class TrainState:
    """The trainer's counters, saved in every checkpoint: epochs done, the best valid MRR and its
    epoch, validations without improvement, training seconds, the per-epoch history."""

    epoch: int = 0  # epochs completed
    best_mrr: float = -1.0
    best_epoch: int = 0
    bad_validations: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    history: list = field(default_factory=list)


def loss_context(cfg: TrainConfig, known_loop: KnownLoops | None = None) -> LossContext:
    """The part of ``cfg`` a model's training hooks may read (see :class:`LossContext`);
    ``known_loop``: the training graph's self-loops, which self-negatives leave alone."""

    def sampled_loss(pos: torch.Tensor, neg: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        return kgc_loss(cfg.loss, pos, neg, cfg.margin, cfg.adv_temperature, counts)

    return LossContext(
        sampled_loss=sampled_loss,
        known_loop=known_loop,
        lambda_adv=cfg.lambda_adv,
        lambda_gp=cfg.lambda_gp,
        adv_epsilon=cfg.adv_epsilon,
    )


def _self_negative_kept(
    context: LossContext, asked: torch.Tensor, relations: torch.Tensor, answers: torch.Tensor
) -> torch.Tensor:
    """[B] bool: the asked entity may serve as a negative of its own query: it is not the row's
    answer (a self-loop positive) and (asked, r, asked) is no known training fact."""
    keep = asked != answers
    if context.known_loop is not None:
        keep = keep & ~context.known_loop(asked, relations)
    return keep


def batch_losses(
    model: KGModel,
    cfg: TrainConfig,
    batch: torch.Tensor,
    negatives: torch.Tensor,
    corrupt_head: torch.Tensor,
    device: torch.device,
    context: LossContext | None = None,
) -> dict[str, torch.Tensor]:
    """The named loss terms of one training batch (their sum is the loss the main optimiser steps on).

    ``batch`` [B, 3] positives (h, r, t), ``negatives`` [B, K] entity ids replacing the head
    (``corrupt_head[b]``) or the tail of row b. Terms, in this order: ``kgc`` (the sampled loss
    ``cfg.loss`` of positive vs negative scores, or 1vsall's cross-entropy over every entity; with
    ``cfg.self_negatives`` w > 0 the entity each row's query asks about is one more negative,
    scored in the same call and counted w times, or under 1vsall counted 1 + w times in the
    softmax of both queries), ``reg`` (``cfg.regularization`` x mean |e|^3 of the batch's
    entities), ``extra`` (the model's
    ``extra_loss``), the model's ``training_losses`` (each under its own name), and ``generator``
    (lambda_adv x ``generator_loss``, for a model with a generator). ``context`` defaults to
    :func:`loss_context` of ``cfg``. The trainer, the memory model's activation probe and the
    shared model contract test all call this, so what is measured and tested is what is trained.
    """
    context = context or loss_context(cfg)
    h, r, t = batch.unbind(1)
    with autocast_context(device, cfg.amp):
        weight = cfg.self_negatives
        if cfg.loss == "1vsall":  # tail and head queries of every positive, each against all entities
            tail_scores, head_scores = model.score_all(h, r, "tail"), model.score_all(t, r, "head")
            if weight > 0:  # each query's asked entity is already a candidate: weigh its logit
                tail_scores = weigh_self_logit(tail_scores, h, _self_negative_kept(context, h, r, t), weight)
                head_scores = weigh_self_logit(head_scores, t, _self_negative_kept(context, t, r, h), weight)
            tail_side = one_vs_all_loss(tail_scores, t, cfg.label_smoothing)
            head_side = one_vs_all_loss(head_scores, h, cfg.label_smoothing)
            terms = {"kgc": (tail_side + head_side) / 2}
        elif weight > 0:  # the asked entity as one more negative of its row, counted `weight` times
            asked = asked_entities(batch, corrupt_head)
            pos, neg = model.score_batch(h, r, t, torch.cat([negatives, asked[:, None]], 1), corrupt_head)
            pos, neg = pos.float(), neg.float()
            keep = _self_negative_kept(context, asked, r, torch.where(corrupt_head, h, t))
            counts = torch.cat([torch.ones_like(neg[:, 1:]), (weight * keep.to(neg.dtype))[:, None]], 1)
            terms = {"kgc": context.sampled_loss(pos, neg, counts)}
        else:
            pos, neg = model.score_batch(h, r, t, negatives, corrupt_head)
            pos, neg = pos.float(), neg.float()
            terms = {"kgc": context.sampled_loss(pos, neg)}
        if cfg.regularization > 0:
            reg = model.entity_repr(batch[:, [0, 2]], r[:, None]).float().abs().pow(3).mean()
            terms["reg"] = cfg.regularization * reg
        extra = model.extra_loss(h, r, t)
        if extra is not None:
            terms["extra"] = extra
        terms.update(model.training_losses(batch, negatives, corrupt_head, context))
        if context.lambda_adv > 0 and model.generator_in_use():
            ents, rels = torch.cat([h, t]), torch.cat([r, r])
            terms["generator"] = context.lambda_adv * model.generator_loss(ents, rels).float()
    return terms


# "auto" compiles a run whose work, epochs x training triples x scored candidates per positive x
# dim, reaches this. Measured on a 2-core CPU (one thread): compiling costs ~7 s for RotatE's step
# (+3 s for its evaluation kernel) and ~165 s for AFME's, and saves ~65 % of a RotatE step and
# ~20 % of an AFME step; on the synthetic default preset (9.9k triples, dim 64, 16 negatives) that
# repays RotatE after ~65 epochs and AFME after ~320, i.e. around 2e9 and 1e10 work units. A 200-
# epoch RotatE on MKG-W (34k triples, dim 500, 64 negatives; reports/speed) is ~2e11.
COMPILE_WORK = 1e10


COMPILER_LOGGERS = (
    "torch._dynamo",
    "torch._inductor",
    "torch.utils.cpp_extension",
    "torch.fx.experimental.symbolic_shapes",
)
COMPILER_LOG = "compiler.log"


def keep_compiler_notices(run_dir: Path) -> None:
    """The compiler's notices (recompilations, graph breaks, toolchain warnings) go to
    ``<run_dir>/compiler.log`` instead of the terminal, where they would bury the run's own lines."""
    handler = logging.FileHandler(run_dir / COMPILER_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in COMPILER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if isinstance(h, logging.FileHandler)] + [handler]
        logger.propagate = False


def compiles(model_cfg: ModelConfig, cfg: TrainConfig, num_train: int, num_entities: int) -> bool:
    """Whether a run trains through torch.compile: ``cfg.compile`` "on" / "off" as asked; "auto"
    when the run's work (see :data:`COMPILE_WORK`) is large enough to repay compiling. A function
    of the configs and the data sizes only, so a run and its resume decide alike."""
    if cfg.compile != "auto":
        return cfg.compile == "on"
    candidates = num_entities if cfg.loss == "1vsall" else cfg.negatives + 1
    return cfg.epochs * num_train * candidates * model_cfg.dim >= COMPILE_WORK


def epoch_line(record: dict, epochs: int, elapsed: float, remaining: float) -> str:
    """One epoch's log record as a line: ``epoch 3/10  loss 0.8123  kgc 0.8011  4.1 s  valid mrr
    0.1234 ...  elapsed 0:12  remaining ~0:29`` (``remaining``: this run's pace so far times the
    epochs left)."""
    parts = [f"epoch {record['epoch']}/{epochs}"]
    parts += [f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "seconds", "valid", "stopped_early")]
    parts.append(f"{record['seconds']:.1f} s")
    if "valid" in record:
        parts.append(
            "valid " + " ".join(f"{k} {v:.1f}" if k == "mr" else f"{k} {v:.4f}" for k, v in record["valid"].items())
        )
    parts.append(f"elapsed {console.duration(elapsed)}")
    parts.append("stopped early" if record.get("stopped_early") else f"remaining ~{console.duration(remaining)}")
    return "  ".join(parts)


class Trainer:
    """One training run: builds the model ``model_cfg`` for ``dataset`` (a KGDataset, with an
    optional FeatureStore), its optimisers, negative sampler and filter index, and trains it.
    The configs are taken as checked (a run spec checks them when it is built); ``device`` is the
    resolved device (None: resolved here from ``train_cfg.device``). Runs are started by
    :func:`afme_lib.experiments.run.run`, which builds the trainer.

    :meth:`fit` runs the epochs (validation every ``eval_every``, best-valid checkpoint, early
    stopping), writing ``log.jsonl`` and checkpoints into ``run_dir`` (None: nothing is written);
    :meth:`resume` continues from ``checkpoint-last.pt``; :meth:`restore` loads a checkpoint.
    ``state`` (:class:`TrainState`) holds the counters a checkpoint carries.
    """

    def __init__(
        self,
        dataset: KGDataset,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        run_dir: str | Path | None,
        features: FeatureStore | None = None,
        device: torch.device | None = None,
    ):
        self.dataset, self.model_cfg, self.cfg = dataset, model_cfg, train_cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dist, self.device = distributed.init_from_env(
            device if device is not None else resolve_device(train_cfg.device)
        )
        if self.device.type == "cpu":
            retain_freed_memory()  # each step reuses the pages of the last one (afme_lib/engine/allocator.py)
        seed_everything(train_cfg.seed)
        self.model = create_model(model_cfg, dataset.num_entities, dataset.num_relations, features).to(self.device)
        self.model.observe_training_graph(dataset.train)
        self.optimizer = torch.optim.Adam(self._main_groups(), weight_decay=train_cfg.weight_decay)
        critic = self.model.critic_parameters()
        self.critic_optimizer = torch.optim.Adam(critic, lr=train_cfg.disc_lr, betas=(0.5, 0.9)) if critic else None
        self.train_triples = dataset.train.to(self.device)
        self.sampler = NegativeSampler(
            dataset.num_entities,
            train_cfg.negatives,
            train_cfg.sampler,
            dataset.train,
            dataset.num_relations,
            train_cfg.negative_pool,
        ).to(self.device)
        self.state = TrainState()
        self.filter_index = FilterIndex.from_dataset(dataset).to(self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and train_cfg.amp == "fp16")
        self.loss_context = loss_context(train_cfg, KnownLoops(dataset.train, dataset.num_relations).to(self.device))
        # Batches between a generator's updates (TrainConfig.adversarial_every) use this context,
        # without the generator term; _adversarial says which kind this batch is.
        self._kgc_only_context = replace(self.loss_context, lambda_adv=0.0)
        self._adversarial = True
        # A generator no score reads (AFME with nothing to complete or check): its updates and
        # its critic's would cost time and change nothing, so they are skipped (models/base.py).
        self._generator_in_use = self.model.generator_in_use()
        self._critic_in_use = self.critic_optimizer is not None and self._generator_in_use
        self.compiled = compiles(model_cfg, train_cfg, len(dataset.train), dataset.num_entities)
        if self.compiled and self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            keep_compiler_notices(self.run_dir)
        self._compiled = torch.compile(self._batch_loss) if self.compiled else None
        if self.compiled:
            self.model.enable_compile()  # evaluation's all-candidates kernel too (RotatE)
        # Positives per step in this process: the global batch split over the processes.
        self.batch_size = math.ceil(train_cfg.batch_size / self.dist.world_size)
        self.progress = train_cfg.progress and self.dist.is_main
        self._ddp = self._ddp_critic = None
        if self.dist.active:
            # Plain embedding models use every parameter in every step; the others may not
            # (ablations, a batch without measured features), which DDP must be told.
            plain = isinstance(self.model, EmbeddingModel)
            self._ddp = distributed.wrap_ddp(
                self.model, {"main": self._main_losses}, self.device, find_unused_parameters=not plain, ignore=critic
            )
            if critic:  # the critic has its own optimiser, so its own wrapper
                self._ddp_critic = distributed.wrap_ddp(
                    nn.ParameterList(critic), {"critic": self._critic_loss}, self.device
                )

    def _group_lr(self, name: str) -> float:
        return self.cfg.gen_lr if name == "generator" else self.cfg.lr

    def _main_groups(self) -> list[dict]:
        """The main optimiser's parameter groups: the model's generator (if any) at ``gen_lr``,
        everything else at ``lr``."""
        generator = {id(p) for p in self.model.generator_parameters()}
        main = [p for p in self.model.main_parameters() if id(p) not in generator]
        groups = [{"params": main, "lr": self._group_lr("main"), "name": "main"}]
        if generator:
            params = [p for p in self.model.main_parameters() if id(p) in generator]
            groups.append({"params": params, "lr": self._group_lr("generator"), "name": "generator"})
        return groups

    # --- one batch ---------------------------------------------------------------------------
    def _batch_loss(
        self, batch: torch.Tensor, negatives: torch.Tensor, corrupt_head: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        context = self.loss_context if self._adversarial else self._kgc_only_context
        return batch_losses(self.model, self.cfg, batch, negatives, corrupt_head, self.device, context)

    def _step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch loss terms. Negatives are drawn outside the compiled graph: RNG calls with a
        batch-dependent size break its dynamic-shape recompile. Under DDP the loss goes through
        the wrapper's forward, or its backward would skip the gradient all-reduce."""
        negatives, corrupt_head = self.sampler.sample(batch)
        if self._ddp is not None:
            return self._ddp("main", batch, negatives, corrupt_head)
        return self._main_losses(batch, negatives, corrupt_head)

    def _main_losses(
        self, batch: torch.Tensor, negatives: torch.Tensor, corrupt_head: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The batch loss, through torch.compile when asked for (fused kernels: ~4x faster on a
        CPU for RotatE); a compiler that fails (no C++ toolchain, unsupported op) falls back to
        eager with a warning rather than ending the run."""
        if self._compiled is not None:
            try:
                return self._compiled(batch, negatives, corrupt_head)
            except Exception as err:  # noqa: BLE001 -- any compiler failure: eager is always correct
                warnings.warn(
                    f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                    "training continues in eager mode",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._compiled = None
        return self._batch_loss(batch, negatives, corrupt_head)

    def _critic_loss(self, ents: torch.Tensor, rels: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast_context(self.device, self.cfg.amp):
            return self.model.critic_loss(ents, rels, self.cfg.lambda_gp)

    def _critic_steps(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        h, r, t = batch.unbind(1)
        ents, rels = torch.cat([h, t]), torch.cat([r, r])
        out = {}
        for _ in range(self.cfg.n_critic):
            out = (
                self._ddp_critic("critic", ents, rels)
                if self._ddp_critic is not None
                else self._critic_loss(ents, rels)
            )
            self.critic_optimizer.zero_grad(set_to_none=True)
            out["loss"].float().backward()
            self.critic_optimizer.step()
        return {"critic": out["loss"].detach(), "wasserstein": out["wasserstein"], "gp": out["gp"]}

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """This process's positions of the training triples for ``epoch``, in batch order.

        One process: a permutation from the global RNG (its state is checkpointed). Several:
        the process's shard of a permutation shared by all of them, and the global RNG reseeded
        from (seed, epoch, rank) for the process's own negatives -- both functions of the epoch,
        so a resumed run repeats them exactly."""
        n = len(self.train_triples)
        if not self.dist.active:
            return torch.randperm(n, device=self.device)
        torch.manual_seed(distributed.rank_seed(self.cfg.seed, epoch, self.dist.rank))
        return distributed.shard_permutation(n, epoch, self.cfg.seed, self.dist.rank, self.dist.world_size).to(
            self.device
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        cfg = self.cfg
        batches = self._epoch_order(epoch).split(self.batch_size)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        first_bad: dict[str, torch.Tensor] = {}
        bar = console.progress_bar(batches, self.progress, desc=f"epoch {epoch}", leave=False, unit="batch")
        for i, idx in enumerate(bar):
            batch = self.train_triples[idx]
            # (models without a generator keep their own adversarial terms, MMKRL's and NATIVE's, in every batch)
            self._adversarial = not self._generator_in_use or i % cfg.adversarial_every == 0
            adversarial = self._critic_in_use and cfg.lambda_adv > 0 and self._adversarial
            terms = self._critic_steps(batch) if adversarial else {}
            loss_terms = self._step(batch)
            loss = sum(loss_terms.values())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            terms.update(loss_terms)
            terms["loss"] = loss
            for name, value in terms.items():  # accumulate on the device: no sync per batch
                value = value.detach().float()
                sums[name] = sums.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1  # adversarial terms are not in every batch
                bad = first_bad.setdefault(name, torch.full((), -1, device=self.device))
                first_bad[name] = torch.where((bad < 0) & ~torch.isfinite(value), torch.full_like(bad, i + 1), bad)
        if self.dist.active:  # every process must see the same means and the same verdict
            sums, first_bad = self._agree(sums, first_bad, len(batches))
        # One host sync per term, once per epoch. Report the earliest bad batch and, within it, the
        # term that went bad rather than the total "loss" it poisons.
        bad_at = {name: int(bad) for name, bad in first_bad.items() if int(bad) > 0}
        if bad_at:
            name = min(bad_at, key=lambda n: (bad_at[n], n == "loss"))
            raise NonFiniteLossError(epoch, bad_at[name], name)
        return {name: float(total) / counts[name] for name, total in sums.items()}

    def _agree(self, sums: dict, first_bad: dict, batches: int) -> tuple[dict, dict]:
        """Loss sums averaged over the processes, and each term's earliest bad batch in any of
        them: one all-reduce each, once per epoch."""
        names = sorted(sums)
        mean = distributed.all_reduce(torch.stack([sums[n] for n in names]), "sum") / self.dist.world_size
        never = batches + 1  # "no bad batch" must lose the minimum against any real batch index
        bad = torch.stack(
            [torch.where(first_bad[n] > 0, first_bad[n], torch.full_like(first_bad[n], never)) for n in names]
        )
        bad = distributed.all_reduce(bad, "min")
        return (
            {n: mean[i] for i, n in enumerate(names)},
            {n: torch.where(bad[i] == never, torch.full_like(bad[i], -1), bad[i]) for i, n in enumerate(names)},
        )

    # --- checkpoints ---------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict() if self.critic_optimizer else None,
            "scaler": self.scaler.state_dict(),
            "state": {k: v for k, v in vars(self.state).items() if k != "history"},
            "rng": rng_state(),
        }

    def save(self, name: str) -> None:
        if self.run_dir is not None and self.dist.is_main:  # one writer: rank 0
            save_checkpoint(self.run_dir / name, self._payload())

    def restore(self, path: Path, with_training_state: bool = True) -> None:
        payload = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(payload["model"])
        if not with_training_state:
            return
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.critic_optimizer is not None and payload["critic_optimizer"] is not None:
            self.critic_optimizer.load_state_dict(payload["critic_optimizer"])
        # load_state_dict also restores the saved param_groups' lr: re-apply the configured values
        # so a resume with --lr (e.g. after a non-finite loss) really changes them. No scheduler
        # exists, so for a plain resume these are the values that were saved.
        for group in self.optimizer.param_groups:
            group["lr"], group["weight_decay"] = self._group_lr(group.get("name", "main")), self.cfg.weight_decay
        if self.critic_optimizer is not None:
            for group in self.critic_optimizer.param_groups:
                group["lr"] = self.cfg.disc_lr
        self.scaler.load_state_dict(payload["scaler"])
        self.state = TrainState(**payload["state"])
        set_rng_state(payload["rng"])

    def resume(self) -> None:
        """Continue from ``checkpoint-last.pt``; log lines of epochs after it are dropped (redone)."""
        last = self.run_dir / LAST
        if last.is_file():
            self.restore(last)
        if self.dist.is_main:
            truncate_log(self.run_dir, self.state.epoch)

    # --- the loop ------------------------------------------------------------------------------
    def validate(self) -> dict:
        return evaluate(
            self.model,
            self.dataset,
            "valid",
            filter_index=self.filter_index,
            batch_size=self.cfg.eval_batch_size,
            chunk_size=self.cfg.eval_chunk_size or None,
            progress=self.progress,
        )

    def fit(self, on_validation: Callable[[int, dict], bool] | None = None) -> TrainState:
        """Train until ``epochs`` (or early stopping); each epoch is logged, checkpointed and, when
        the output is a log rather than a terminal, printed as one line (:mod:`afme_lib.core.console`).

        ``on_validation(epoch, result)`` is called with each periodic validation's full
        :func:`~afme_lib.engine.evaluation.evaluate` result; returning True stops the run there as
        an early stop (logged as ``"pruned": true``): how a hyper-parameter search prunes a trial."""
        cfg, st = self.cfg, self.state
        began, first_epoch = time.perf_counter(), st.epoch
        if self.model.generator_parameters() and not self._generator_in_use and self.progress:
            # A terminal too, not only a log: a researcher must not wonder where the GAN's losses went.
            print(
                f"{self.model_cfg.name}: no score reads the generator on these features (every row measured, "
                "none cross-checked), so its critic and generator updates are skipped",
                flush=True,
            )
        while st.epoch < cfg.epochs and not st.stopped_early:
            epoch = st.epoch + 1
            start = time.perf_counter()
            try:
                losses = self.train_epoch(epoch)
            except NonFiniteLossError as err:
                if self.run_dir is not None and self.dist.is_main:
                    append_log(self.run_dir, {"epoch": epoch, "error": str(err)})
                raise
            seconds = time.perf_counter() - start
            st.train_seconds += seconds
            st.epoch = epoch
            record = {"epoch": epoch, **losses, "seconds": round(seconds, 4)}
            validated = cfg.eval_every > 0 and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs)
            if validated:
                valid = self.validate()
                record["valid"] = {k: valid[k] for k in (*RANK_METRICS, "self_answer")}
                if valid["mrr"] > st.best_mrr:
                    st.best_mrr, st.best_epoch, st.bad_validations = valid["mrr"], epoch, 0
                    self.save(BEST)
                else:
                    st.bad_validations += 1
                if cfg.patience and st.bad_validations >= cfg.patience:
                    st.stopped_early = record["stopped_early"] = True
                if on_validation is not None and on_validation(epoch, valid):
                    st.stopped_early = record["stopped_early"] = record["pruned"] = True
            st.history.append(record)
            if self.run_dir is not None and self.dist.is_main:
                append_log(self.run_dir, record)  # log first: a kill before the save redoes this epoch
                if epoch % max(cfg.checkpoint_every, 1) == 0 or epoch == cfg.epochs or st.stopped_early:
                    self.save(LAST)
            if self.progress and console.lines():
                elapsed = time.perf_counter() - began
                left = 0.0 if st.stopped_early else (cfg.epochs - epoch) * elapsed / (epoch - first_epoch)
                console.log_line(epoch_line(record, cfg.epochs, elapsed, left))
        if self.run_dir is not None and not (self.run_dir / LAST).is_file():
            self.save(LAST)  # epochs=0: the initial model, so every finished run has a checkpoint
        distributed.barrier()  # the others may now read what rank 0 wrote (checkpoint-best.pt)
        return st
