"""S-MoE-BST training objective and PHNS test sets, wired into the shared Trainer.

``MultiTaskObjective`` re-draws the PHNS negatives of every user once per epoch
(``PhnsSampler``; mix = ``training.phns_mix`` or ``phns.default_mix``), computes
``losses.smoe_bst_loss`` per batch and collects the epoch's gate usage:
``gate_mean_expert_<name>`` = mean gate probability of each expert over the real
positions of the epoch (with the training noise). ``gate_usage`` measures the same
in eval mode on a split; ``evaluate_phns_sets`` ranks each test target among
PHNS-hard and easy candidates (seed 003).
"""

from __future__ import annotations

import datetime as dt
import logging

import torch

from encore.core.config import EncoreConfig
from training.data import PAD_ID, SequenceBatch, SequenceData, iterate_batches
from training.evaluation import evaluate_candidates
from training.losses import MultiTaskSettings, gate_entropy, smoe_bst_loss
from training.phns import PhnsPools, PhnsSampler, hard_share_of, phns_test_candidates
from training.user_features import attach_users

log = logging.getLogger(__name__)

PHNS_EVAL_KS = (1, 5)
PHNS_EVAL_METRICS = ("ndcg@1", "ndcg@5", "recall@5", "mrr@5", "n_users")
PHNS_EVAL_MIX = "HARD"  # hard share of the PHNS-hard test candidates


class MultiTaskObjective:
    def __init__(self, sampler: PhnsSampler, settings: MultiTaskSettings, expert_names: tuple[str, ...], mix: str):
        self.sampler, self.settings, self.expert_names, self.mix = sampler, settings, expert_names, mix
        self.negatives = sampler.sample(0)
        self._gate_sum = torch.zeros(len(expert_names))
        self._positions = 0

    @property
    def params(self) -> dict:
        return {"phns_mix": self.mix, "phns_hard_share": self.sampler.hard_share,
                "phns_n_negatives": self.sampler.n_negatives,
                "phns_uniform_share": self.sampler.uniform_share, **vars(self.settings)}

    def start_epoch(self, epoch: int) -> None:
        self.negatives = self.sampler.sample(epoch)
        self._gate_sum = torch.zeros(len(self.expert_names))
        self._positions = 0

    def __call__(self, model: torch.nn.Module, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        negatives = self.negatives[batch.user_index.cpu()].to(batch.seq.device)
        parts = smoe_bst_loss(model, batch, negatives, self.settings)
        gate = model.last_gate[batch.seq != PAD_ID].detach().float()
        self._gate_sum += gate.sum(dim=0).cpu()
        self._positions += len(gate)
        return parts

    def epoch_metrics(self) -> dict[str, float]:
        means = self._gate_sum / max(self._positions, 1)
        return {f"gate_mean_expert_{name}": float(m) for name, m in zip(self.expert_names, means)}


def load_pools(cfg: EncoreConfig, run_date: str | dt.date, data: SequenceData) -> PhnsPools:
    """The lake ``phns_pools`` of ``run_date``, else pools derived from the sequences (logged)."""
    try:
        return PhnsPools.load(cfg, run_date, data)
    except FileNotFoundError as exc:
        log.warning("%s; deriving PHNS pools from the sequences", exc)
        return PhnsPools.from_sequences(data, cfg.phns.pool_size, cfg.phns.tailing_min_support)


def multitask_setup(
    cfg: EncoreConfig, run_date: str | dt.date, data: SequenceData, model, seed: int, *,
    pools: PhnsPools | None = None, **overrides,
) -> tuple[MultiTaskObjective, PhnsPools, str]:
    """(objective, pools, mix name) for training ``model`` (an SMoEBST) on ``data``.
    ``overrides``: ``phns_mix``, ``phns_uniform_share`` or any ``MultiTaskSettings`` field (None = config)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    mix = (overrides.pop("phns_mix", None) or cfg.training.phns_mix or cfg.phns.default_mix).upper()
    uniform_share = overrides.pop("phns_uniform_share", cfg.phns.uniform_share)
    values = {name: getattr(cfg.training, name) for name in vars(MultiTaskSettings())}
    settings = MultiTaskSettings(**{**values, **overrides})
    pools = pools or load_pools(cfg, run_date, data)
    attach_users(model, data.user_ids, cfg, run_date)
    sampler = PhnsSampler(pools, hard_share_of(cfg, mix), cfg.phns.n_negatives, seed, uniform_share)
    return MultiTaskObjective(sampler, settings, tuple(model.config.experts), mix), pools, mix


@torch.no_grad()
def gate_usage(model, split: SequenceBatch, device: torch.device | str = "cpu", batch_size: int = 512) -> dict[str, float]:
    """Eval-mode gate at each row's last position: ``gate_mean_expert_<name>`` and ``gate_entropy``."""
    model.eval()
    gates = []
    for batch in iterate_batches(split, batch_size):
        batch = batch.to(device)
        model.encode(batch.seq, batch)
        gates.append(model.last_gate[:, -1].float().cpu())
    gate = torch.cat(gates)
    out = {f"gate_mean_expert_{name}": float(m) for name, m in zip(model.config.experts, gate.mean(dim=0))}
    out["gate_entropy"] = float(gate_entropy(gate))
    return out


def evaluate_phns_sets(
    cfg: EncoreConfig, model, data: SequenceData, pools: PhnsPools, max_seq_len: int,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float]]:
    """``{"phns_hard": metrics, "easy": metrics}`` on the test split (NDCG@1/5, Recall@5,
    MRR@5): target vs ``phns.n_negatives`` candidates drawn once with ``phns.seed``, so
    every model of a run date sees the same sets."""
    split = data.split("test", max_seq_len)
    hard, easy = phns_test_candidates(pools, split, cfg.phns.n_negatives, hard_share_of(cfg, PHNS_EVAL_MIX), cfg.phns.seed)
    out = {}
    for name, candidates in (("phns_hard", hard), ("easy", easy)):
        metrics = evaluate_candidates(model, split, candidates, device=device, ks=PHNS_EVAL_KS)
        out[name] = {k: v for k, v in metrics.items() if k in PHNS_EVAL_METRICS}
    return out
