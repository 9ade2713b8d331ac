"""Training loop shared by the sequence models.

AdamW, validation NDCG@10 after every epoch, early stopping with ``patience``,
optionally an exponential moving average of the weights (``ema_epochs`` > 0, a span in epochs, or
``ema_decay`` > 0, a decay per step: updated after every step; validation, ``best.pt`` and the
returned model use the averaged weights),
and a checkpoint after every epoch (``last.pt``: model, optimizer, epoch, RNG
states, best metric; ``best.pt``: the best weights), which one run at a time may hold (a
second run on the same directory fails instead of overwriting the first's). ``fit(resume=True)``
continues from ``last.pt``: the epoch's shuffle and sampled negatives derive
from (seed, epoch) and the global RNG state (dropout, BERT4Rec masks) is
restored, so a resumed run produces the same next-epoch loss as one that never
stopped. CUDA + bf16 autocast when available and asked for, CPU otherwise.

Under ``torchrun`` (``training.distributed``) every rank trains on its share of each
epoch's batches, ``batch_size`` being the total over the ranks, with gradients averaged
after every backward pass; rank 0 alone evaluates, checkpoints (with every rank's RNG
state) and calls ``on_epoch_end``, and its early-stopping decision reaches all ranks. The
model is not wrapped in ``DistributedDataParallel``: the losses call the models' ``encode``
/ ``predict_vectors`` rather than ``forward``, which DDP's hooks need.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from encore.core.config import ConfigError, TrainingConfig
from training import distributed
from training.data import TRAIN_TARGETS, SequenceData
from training.evaluation import EXCLUDE_MODES, autocast_context, evaluate_model
from training.losses import CONTRASTIVE, LOSSES, LossSettings, NegativeSampler, sequence_model_loss

log = logging.getLogger(__name__)

VALID_METRIC = "ndcg@10"
LR_SCHEDULES = ("constant", "cosine")


def scheduled_lr(settings: "TrainSettings", step: int, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total_steps``: constant, or a linear
    warm-up over ``warmup_share`` of the steps followed by a cosine decay to 0 (SASRec+ / nanoGPT).
    A function of the step alone, so a resumed run continues the same schedule."""
    if settings.lr_schedule == "constant":
        return settings.lr
    warmup = max(1, round(settings.warmup_share * total_steps))
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainSettings:
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (linear warm-up, then cosine decay to 0 at the last epoch)
    warmup_share: float = 0.05  # cosine: share of all steps (epochs x batches) spent warming up
    weight_decay: float = 0.01
    max_seq_len: int = 50
    all_train_windows: bool = True  # histories longer than max_seq_len train on every window
    window_stride: int = 0  # events between training windows' ends; 0 = max_seq_len - 1 (no overlap)
    # next_positive (seeds' task) | next_item (skips are targets too) | next_k (the next K positives, weighted)
    train_target: str = "next_positive"
    loss: str = "sampled_softmax"
    n_sampled: int = 1000
    label_smoothing: float = 0.0
    exclude_seen: bool = False
    gbce_negatives: int = 256
    gbce_calibration: float = 0.75
    ema_decay: float = 0.0  # > 0: evaluate and keep an exponential moving average of the weights
    # > 0 (and no ema_decay): the same over about the last ema_epochs epochs (ema_decay_per_step)
    ema_epochs: float = 0.0
    contrastive: str = "none"
    cl_weight: float = 0.5
    cl_temperature: float = 0.1
    patience: int = 3
    seed: int = 42
    ensemble_seeds: int = 1  # > 1: train that many models (seeds seed, seed + 1, ...) and score them as one (training.specs)
    device: str = "auto"
    bf16: bool = True
    eval_batch_size: int = 512
    eval_exclude: str = "history"  # history | window | none: the user's items removed from evaluation rankings
    progress: bool = True

    @classmethod
    def from_config(cls, training: TrainingConfig, **overrides) -> "TrainSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in dataclasses.asdict(training).items() if k in names}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(names)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {'|'.join(LR_SCHEDULES)}"),
            (0 <= self.warmup_share < 1, "warmup_share must be in [0, 1)"),
            (self.max_seq_len >= 2, "max_seq_len must be >= 2"),
            (0 <= self.window_stride < self.max_seq_len, "window_stride must be in [0, max_seq_len - 1]"),
            (self.loss in LOSSES, f"loss must be one of {'|'.join(LOSSES)}"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (not self.exclude_seen or (self.loss == "full_softmax" and self.label_smoothing == 0),
             "exclude_seen needs loss full_softmax without label_smoothing"),
            (self.train_target != "next_k" or self.loss == "full_softmax", "train_target next_k needs loss full_softmax"),
            (self.gbce_negatives >= 1, "gbce_negatives must be >= 1"),
            (0 <= self.gbce_calibration <= 1, "gbce_calibration must be in [0, 1]"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)"),
            (self.ema_epochs >= 0, "ema_epochs must be >= 0"),
            (self.train_target in TRAIN_TARGETS, f"train_target must be one of {'|'.join(TRAIN_TARGETS)}"),
            (self.n_sampled >= 1, "n_sampled must be >= 1"),
            (self.contrastive in CONTRASTIVE, f"contrastive must be one of {'|'.join(CONTRASTIVE)}"),
            (self.cl_temperature > 0, "cl_temperature must be > 0"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.ensemble_seeds >= 1, "ensemble_seeds must be >= 1"),
            (self.device in {"auto", "cpu", "cuda"}, "device must be auto|cpu|cuda"),
            (self.eval_exclude in EXCLUDE_MODES, f"eval_exclude must be one of {'|'.join(EXCLUDE_MODES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"training: {message}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("training.device=cuda but no CUDA device is available")

    def loss_settings(self) -> LossSettings:
        return LossSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(LossSettings)})


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointInUseError(RuntimeError):
    """Another training run holds the checkpoint directory."""


@contextlib.contextmanager
def _exclusive(directory: Path | None):
    """Holds ``directory``'s lock for a run (rank 0, which alone writes checkpoints): two runs
    on one directory would resume, overwrite and restore each other's weights."""
    if directory is None or not distributed.is_main():
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "train.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise CheckpointInUseError(
                f"checkpoint directory {directory} is in use by another training run ({handle.read().strip()}); "
                "wait for it, or give this run its own seed or dataset name") from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class TrainingObjective(Protocol):
    """A model-specific loss the Trainer uses instead of NLL + InfoNCE (S-MoE-BST, AttRec).
    ``params``: its settings, logged to MLflow by ``train_model``."""

    params: dict

    def start_epoch(self, epoch: int) -> None: ...

    def __call__(self, model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
        """Loss parts of one batch; ``"loss"`` is the total that is back-propagated."""

    def epoch_metrics(self) -> dict[str, float]:
        """Extra per-epoch metrics (logged with the losses)."""


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        data: SequenceData,
        settings: TrainSettings,
        checkpoint_dir: str | Path | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        objective: "TrainingObjective | None" = None,
    ):
        settings.validate()
        if settings.batch_size % distributed.world_size():
            raise ConfigError(f"training: batch_size {settings.batch_size} (windows per step over all processes) "
                              f"must be divisible by the {distributed.world_size()} processes")
        self.settings = settings
        self.device = distributed.rank_device(resolve_device(settings.device))
        self.model = model.to(self.device)
        distributed.broadcast_parameters(self.model)
        self.data = data
        self.n_items = data.n_items
        self.train_split = data.split("train", settings.max_seq_len, all_windows=settings.all_train_windows,
                                      window_stride=settings.window_stride, train_target=settings.train_target)
        self.valid_split = data.split("valid", settings.max_seq_len)
        if len(self.train_split) == 0:
            raise ValueError("no training sequences (every user lacks a positive target before validation)")
        self.sampler = NegativeSampler(data.n_items, settings.n_sampled, settings.seed)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=settings.lr,
        )
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        if self.checkpoint_dir:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.on_epoch_end = on_epoch_end
        self.objective = objective
        # the moving average of every floating-point state entry (parameters and buffers)
        self.ema = ({k: v.detach().clone() for k, v in self.model.state_dict().items() if v.is_floating_point()}
                    if settings.ema_decay > 0 or settings.ema_epochs > 0 else None)

    # ---- one epoch ----------------------------------------------------------------

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training users (this rank's share of it); returns the mean of each
        loss part (total / nll / contrastive, or the ``objective``'s parts) plus its epoch
        metrics, averaged over the ranks."""
        self.model.train()
        negatives = self.sampler.resample(epoch)
        if self.objective is not None:
            self.objective.start_epoch(epoch)
        shuffle = torch.Generator().manual_seed(self.settings.seed * 7919 + epoch)
        batches = distributed.epoch_batches(len(self.train_split), self.settings.batch_size, shuffle)
        n_batches = len(batches)
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        sums: dict[str, float] = {}
        progress = self.settings.progress and distributed.is_main()
        for step, index in enumerate(tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False)):
            steps_before = (epoch - 1) * n_batches + step
            lr = scheduled_lr(self.settings, steps_before, self.settings.epochs * n_batches)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = self.train_split.take(index).to(self.device)
            with autocast_context(self.device, self.settings.bf16):
                if self.objective is None:
                    parts = sequence_model_loss(self.model, batch, self.settings.loss_settings(), negatives)
                    values = {"loss": parts.total, "nll": parts.nll, "cl_loss": parts.contrastive}
                else:
                    values = self.objective(self.model, batch)
            total = values["loss"]
            if not torch.isfinite(total):
                raise FloatingPointError(f"loss is {total.item()} at epoch {epoch}; lower lr or check data")
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            distributed.average_gradients(parameters)
            self.optimizer.step()
            if self.ema is not None:
                self._update_ema(self.ema_decay_per_step(n_batches, steps_before + 1))
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value.item()
        means = {name: value / n_batches for name, value in sums.items()}
        if self.objective is not None:
            means.update(self.objective.epoch_metrics())
        return distributed.mean_over_ranks(means)

    def ema_decay_per_step(self, steps_per_epoch: int, steps_done: int) -> float:
        """The decay of the moving average at the ``steps_done``-th optimizer step (1-based):
        ``ema_decay`` when set; else 1 - 1 / (``ema_epochs`` x ``steps_per_epoch``), an average
        over about the last ``ema_epochs`` epochs whatever the data and batch size, but no more
        than 1 - 2 / (steps_done + 1) — polynomial-decay averaging (Shamir & Zhang 2013): until
        the span is reached the average weighs every step's weights in proportion to its step
        number, so it never holds the initial weights and tracks a short run as well as a long one.
        """
        if self.settings.ema_decay > 0:
            return self.settings.ema_decay
        return min(1.0 - 1.0 / (self.settings.ema_epochs * steps_per_epoch), 1.0 - 2.0 / (steps_done + 1))

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        state = self.model.state_dict()
        for name, average in self.ema.items():
            average.mul_(decay).add_(state[name].detach(), alpha=1 - decay)

    def averaged_state(self) -> dict[str, torch.Tensor]:
        """The weights that are evaluated and kept: the moving average when there is one, else the model's."""
        state = self.model.state_dict()
        if self.ema is None:
            return state
        return {k: self.ema.get(k, v) for k, v in state.items()}

    def evaluate(self, split: str = "valid") -> dict[str, float]:
        if self.ema is not None:  # score the averaged weights, then put the training weights back
            training_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.averaged_state())
            try:
                return self._evaluate(split)
            finally:
                self.model.load_state_dict(training_weights)
        return self._evaluate(split)

    def _evaluate(self, split: str) -> dict[str, float]:
        data = self.valid_split if split == "valid" else self.data.split(split, self.settings.max_seq_len)
        return evaluate_model(
            self.model,
            data,
            self.n_items,
            exclude=self.settings.eval_exclude,
            batch_size=self.settings.eval_batch_size,
            device=self.device,
            bf16=self.settings.bf16,
        )

    # ---- the loop -----------------------------------------------------------------

    def fit(self, resume: bool = True) -> TrainResult:
        with _exclusive(self.checkpoint_dir):
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        state = {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": [], "stopped_early": False}
        if resume and self._last_path and distributed.broadcast(self._resumable(self._last_path)):
            state = self.load_checkpoint(self._last_path)
        else:
            seed_everything(self.settings.seed + distributed.rank())  # dropout differs between ranks
        epoch = state["epoch"]
        while not state["stopped_early"] and epoch < self.settings.epochs:
            epoch += 1
            started = time.perf_counter()
            losses = self.train_epoch(epoch)
            # every rank's RNG state goes into the checkpoint, so a resumed rank draws what it would have
            rng_by_rank = distributed.gather(_rng_state()) if self.checkpoint_dir and distributed.world_size() > 1 else None
            if distributed.is_main():
                valid = self.evaluate("valid")
                row = {"epoch": epoch, **losses, **{f"valid_{k}": v for k, v in valid.items()}}
                row["epoch_seconds"] = time.perf_counter() - started
                state["history"].append(row)
                if valid[VALID_METRIC] > state["best"]:
                    state.update(best=valid[VALID_METRIC], best_epoch=epoch, bad_epochs=0)
                    if self.checkpoint_dir:
                        _atomic_save({"model": self.averaged_state()}, self.checkpoint_dir / "best.pt")
                    else:
                        self._best_weights = {k: v.detach().clone() for k, v in self.averaged_state().items()}
                else:
                    state["bad_epochs"] += 1
                state["epoch"] = epoch
                state["stopped_early"] = state["bad_epochs"] >= self.settings.patience
                if self.checkpoint_dir:
                    self.save_checkpoint(self._last_path, state, rng_by_rank)
                if self.on_epoch_end:
                    self.on_epoch_end(epoch, row)
            state = distributed.broadcast(state)  # rank 0's history and early-stopping decision
        if distributed.is_main():  # the trained model is rank 0's
            self._restore_best()
        best_row = next((r for r in state["history"] if r["epoch"] == state["best_epoch"]), {})
        best_valid = {k[len("valid_"):]: v for k, v in best_row.items() if k.startswith("valid_")}
        return TrainResult(
            best_epoch=state["best_epoch"],
            best_valid=best_valid,
            history=state["history"],
            stopped_early=state["stopped_early"],
        )

    # ---- checkpoints --------------------------------------------------------------

    @property
    def _last_path(self) -> Path | None:
        return self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None

    # settings a run may change and still continue from a checkpoint (how long, where, how shown)
    RESUMABLE_CHANGES = frozenset({"epochs", "patience", "device", "progress", "eval_batch_size"})

    def fingerprint(self) -> str:
        """What the checkpoint's weights depend on: the training settings (but those in
        ``RESUMABLE_CHANGES``; ``epochs`` counts under a non-constant lr schedule) and the
        model's configuration."""
        resumable = self.RESUMABLE_CHANGES
        if self.settings.lr_schedule != "constant":  # the schedule spans all epochs: changing them changes it
            resumable = resumable - {"epochs"}
        settings = {k: v for k, v in dataclasses.asdict(self.settings).items() if k not in resumable}
        return repr((sorted(settings.items()), type(self.model).__name__, repr(getattr(self.model, "config", None))))

    def _resumable(self, path: Path) -> bool:
        """Whether a checkpoint at ``path`` was written by a run with this run's settings (rank
        0 decides; the caller broadcasts it). One that was not (e.g. the night failed with
        another learning rate) is removed, with ``best.pt``, and the run starts over instead of
        resuming someone else's weights."""
        if not distributed.is_main() or not path.exists():
            return path.exists()
        if torch.load(path, map_location="cpu", weights_only=False).get("fingerprint") == self.fingerprint():
            return True
        log.warning("checkpoint %s was written with other training settings or model; starting over", path)
        path.unlink()
        (path.parent / "best.pt").unlink(missing_ok=True)
        return False

    def save_checkpoint(self, path: Path, state: dict, rng_by_rank: list[dict] | None = None) -> None:
        """Weights, optimizer, RNG state and loop state; ``rng_by_rank``: every rank's RNG state
        (several processes), so each resumes its own."""
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(),
            "ema": self.ema,
            "n_items": self.n_items,
            "fingerprint": self.fingerprint(),
            "state": state,
        }
        if rng_by_rank is not None:  # this rank's (0) as of now, the others' as gathered at the end of the epoch
            checkpoint["rng_by_rank"] = [checkpoint["rng"], *rng_by_rank[1:]]
        _atomic_save(checkpoint, path)

    def load_checkpoint(self, path: Path) -> dict:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if checkpoint["n_items"] != self.n_items:
            raise ValueError(
                f"checkpoint {path} was trained on {checkpoint['n_items']} items, data has {self.n_items}; "
                "delete the checkpoint directory to start over"
            )
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.ema is not None:
            self.ema = {k: v.to(self.device) for k, v in checkpoint["ema"].items()}
        by_rank = checkpoint.get("rng_by_rank", [checkpoint["rng"]])
        if len(by_rank) == distributed.world_size():
            _set_rng_state(by_rank[distributed.rank()])
        else:  # written by another number of processes: the weights carry over, the random streams restart
            seed_everything(self.settings.seed + distributed.rank() + checkpoint["state"]["epoch"])
        return checkpoint["state"]

    def _restore_best(self) -> None:
        if self.checkpoint_dir and (self.checkpoint_dir / "best.pt").exists():
            best = torch.load(self.checkpoint_dir / "best.pt", map_location=self.device, weights_only=True)
            self.model.load_state_dict(best["model"])
        elif getattr(self, "_best_weights", None) is not None:
            self.model.load_state_dict(self._best_weights)
        else:
            return
        if self.ema is not None:  # the kept weights are the best epoch's average: later evaluations score them
            state = self.model.state_dict()
            self.ema = {k: state[k].detach().clone() for k in self.ema}
