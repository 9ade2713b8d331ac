"""Evaluate any scorer with ``score_all(seqs) -> [B, n_items]`` on a split.

Works for the neural models and for non-neural baselines alike (anything with
``score_all``); ``torch.nn.Module`` scorers are put in eval mode.
"""

from __future__ import annotations

import contextlib

import torch

from training.data import PAD_ID, SequenceBatch, history_mask, iterate_batches
from training.metrics import DEFAULT_KS, RankingAccumulator, candidate_ranks, skip_reciprocal_ranks, target_ranks


EXCLUDE_MODES = ("history", "window", "none")


def autocast_context(device: torch.device, bf16: bool):
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def score_batch(model, batch: SequenceBatch) -> torch.Tensor:
    """``model.score_all`` of the batch's windows, with the batch as ``context`` (per-event skips,
    completion, user) for the models that read it."""
    return model.score_all(batch.seq, context=batch)


@torch.no_grad()
def evaluate_model(
    model,
    split: SequenceBatch,
    n_items: int,
    *,
    exclude: str = "history",
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """Full-ranking metrics for ``split`` (valid or test): HR/NDCG/MRR@k, recall@5,
    mrr, skip_mrr, n_users, and the score health the promotion gate checks
    (``score_nonfinite_share``, ``score_std_median``).

    ``exclude``: which of the user's items are removed from the ranking (never the target):
    ``history`` = every item the user had before the target (the whole history, as RecBole
    and most papers), ``window`` = only the items of the model's input window, ``none``."""
    if exclude not in EXCLUDE_MODES:
        raise ValueError(f"exclude must be one of {EXCLUDE_MODES}, got {exclude!r}")
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model.eval()
    accumulator = RankingAccumulator(ks)
    for batch in iterate_batches(split, batch_size):
        batch = batch.to(device)
        with autocast_context(device, bf16):
            scores = score_batch(model, batch).float()
        accumulator.add_scores(scores)
        targets = batch.target - 1
        positive = history_mask(batch.seq, n_items, positive_only=~batch.is_skip)
        excluded = None
        if exclude != "none":
            excluded = history_mask(batch.history if exclude == "history" else batch.seq, n_items)
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
