"""Evaluate any scorer with ``score_all(seqs) -> [B, n_items]`` on a split.

Works for the neural models and for non-neural baselines alike (anything with
``score_all``); ``torch.nn.Module`` scorers are put in eval mode.
"""

from __future__ import annotations

import contextlib

import torch

from training.data import PAD_ID, SequenceBatch, history_mask, iterate_batches
from training.metrics import DEFAULT_KS, RankingAccumulator, candidate_ranks, skip_reciprocal_ranks, target_ranks


def autocast_context(device: torch.device, bf16: bool):
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def score_batch(model, batch: SequenceBatch) -> torch.Tensor:
    """``model.score_all`` of the batch's windows; models that read per-event context
    (``reads_context``: skips, completion, user) get the whole batch as ``context``."""
    if getattr(model, "reads_context", False):
        return model.score_all(batch.seq, context=batch)
    return model.score_all(batch.seq)


@torch.no_grad()
def evaluate_model(
    model,
    split: SequenceBatch,
    n_items: int,
    *,
    exclude_history: bool = True,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """Full-ranking metrics for ``split`` (valid or test): HR/NDCG/MRR@k, recall@5,
    mrr, skip_mrr, n_users. ``exclude_history`` removes every item of the input
    window (positive or skipped) from the ranking, except the target."""
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model.eval()
    accumulator = RankingAccumulator(ks)
    for batch in iterate_batches(split, batch_size):
        batch = batch.to(device)
        with autocast_context(device, bf16):
            scores = score_batch(model, batch).float()
        targets = batch.target - 1
        seen = history_mask(batch.seq, n_items)
        positive = history_mask(batch.seq, n_items, positive_only=~batch.is_skip)
        excluded = seen if exclude_history else None
        if excluded is not None:
            excluded = excluded.clone()
            excluded[torch.arange(len(targets), device=device), targets] = False
        ranks = target_ranks(scores, targets, excluded)
        skipped_only = history_mask(batch.seq, n_items, positive_only=batch.is_skip) & ~positive
        skip_sum, skip_count = skip_reciprocal_ranks(scores, skipped_only, positive)
        accumulator.add(ranks, skip_sum, skip_count)
    return accumulator.result()


@torch.no_grad()
def evaluate_candidates(
    model,
    split: SequenceBatch,
    candidates: torch.Tensor,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """Rank each target among its candidate ids ``[U, C]`` (0 = no candidate),
    aligned row by row with ``split`` (PHNS-hard / easy test sets)."""
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model.eval()
    accumulator = RankingAccumulator(ks)
    for start in range(0, len(split), batch_size):
        batch = split.take(slice(start, start + batch_size)).to(device)
        cands = candidates[start : start + batch_size].to(device)
        scores = score_batch(model, batch).float()
        ranks = candidate_ranks(scores, batch.target - 1, (cands - 1).clamp(min=0), cands != PAD_ID)
        accumulator.add(ranks)
    return accumulator.result()
