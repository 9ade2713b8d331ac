"""S-MoE-BST training objective and PHNS test sets, wired into the shared Trainer.

``MultiTaskObjective`` gives every batch its users' PHNS negatives of the epoch (the
night's ``fct_user_negatives`` of the mix ``phns.default_mix``: epoch e uses draw
(e - 1) mod the draws Spark sampled; with ``phns_sampling_correction`` beta, each negative's
logit less beta * log(its oversampling)), computes ``losses.smoe_bst_loss`` per batch and
collects the epoch's gate usage: ``gate_mean_expert_<name>`` = mean gate probability of
each expert over the real positions of the epoch (with the training noise).
``gate_usage`` measures the same in eval mode on a split; ``evaluate_phns_sets`` ranks
each test target among the ``eval_candidates`` mart's PHNS-hard and easy sets (seed 003).
"""

from __future__ import annotations

import torch

from training.data import PAD_ID, SequenceBatch, iterate_batches
from training.evaluation import evaluate_candidates
from training.losses import MultiTaskSettings, gate_entropy, smoe_bst_loss
from training.negatives import MixNegatives

PHNS_EVAL_KS = (1, 5)
PHNS_EVAL_METRICS = ("ndcg@1", "ndcg@5", "recall@5", "mrr@5", "n_users")


class MultiTaskObjective:
    def __init__(self, negatives: MixNegatives, settings: MultiTaskSettings, expert_names: tuple[str, ...], mix: str):
        """``negatives``: the mix's ``[users, draws, n]`` item ids and oversampling
        (``training.negatives.mix_negatives``)."""
        if negatives.item_ids.dim() != 3 or negatives.oversampling.shape != negatives.item_ids.shape:
            raise ValueError(f"negatives must be [users, draws, n] ids and oversampling, got shapes "
                             f"{tuple(negatives.item_ids.shape)} and {tuple(negatives.oversampling.shape)}")
        self.all_negatives, self.settings, self.expert_names, self.mix = negatives, settings, expert_names, mix
        self.start_epoch(1)

    @property
    def params(self) -> dict:
        return {"phns_mix": self.mix, "phns_draws": self.all_negatives.item_ids.shape[1],
                "phns_n_negatives": self.all_negatives.item_ids.shape[2], **vars(self.settings)}

    def start_epoch(self, epoch: int) -> None:
        draw = (epoch - 1) % self.all_negatives.item_ids.shape[1]
        self.negatives = self.all_negatives.item_ids[:, draw]
        # the ranking softmax's sampling-bias correction: beta * log(oversampling) off each negative's logit
        self.offsets = self.settings.phns_sampling_correction * self.all_negatives.oversampling[:, draw].log()
        self._gate_sum = torch.zeros(len(self.expert_names))
        self._positions = 0

    def __call__(self, model: torch.nn.Module, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        users = batch.user_index.cpu()
        negatives = self.negatives[users].to(batch.seq.device)
        offsets = self.offsets[users].to(batch.seq.device) if self.settings.phns_sampling_correction else None
        parts = smoe_bst_loss(model, batch, negatives, self.settings, offsets)
        gate = model.last_gate[batch.seq != PAD_ID].detach().float()
        self._gate_sum += gate.sum(dim=0).cpu()
        self._positions += len(gate)
        return parts

    def epoch_metrics(self) -> dict[str, float]:
        means = self._gate_sum / max(self._positions, 1)
        return {f"gate_mean_expert_{name}": float(m) for name, m in zip(self.expert_names, means)}


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


def evaluate_phns_sets(model, split: SequenceBatch, candidates: dict[str, torch.Tensor],
                       device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """``{"phns_hard": metrics, "easy": metrics}`` on the test split (NDCG@1/5, Recall@5,
    MRR@5): each target ranked among its set's candidates (``training.negatives.eval_candidate_sets``,
    the same for every model of a run date)."""
    out = {}
    for name, sets in candidates.items():
        metrics = evaluate_candidates(model, split, sets, device=device, ks=PHNS_EVAL_KS)
        out[name] = {k: v for k, v in metrics.items() if k in PHNS_EVAL_METRICS}
    return out
