"""Ranking metrics over a full item ranking (vectorised torch).

Conventions: ``scores`` is ``[B, n_items]`` with column c = item id c + 1 (what
``model.score_all`` returns); targets / candidates are passed as **columns**
(``id - 1``). The rank of a target is 1 + the number of *other non-excluded* items
scoring **at least as high**: ties count against the target, so a model that scores
everything alike ranks every target last, never first. A non-finite score (NaN)
counts as the lowest possible score. Excluded items (history) are removed from the
ranking, except the target itself.

Metrics from ranks r (one target per user, so HR@k = Recall@k):
HR@k = [r <= k], NDCG@k = [r <= k] / log2(r + 1), MRR@k = [r <= k] / r.

Skip down-ranking (seed 002): for every user, the items they skipped and never
consumed positively in the input window; ``skip_mrr`` = mean over those users
of the mean reciprocal rank of those items, ranked among all items minus the
positively consumed ones. Lower is better, so here ties resolve in the skipped
item's favour (1 + the number of strictly higher scores): again the pessimistic
reading for the model.
"""

from __future__ import annotations

import torch

DEFAULT_KS = (1, 5, 10, 20)


def finite_scores(scores: torch.Tensor) -> torch.Tensor:
    """float32 scores with NaN as the lowest score (-inf), so a broken score never ranks high."""
    return torch.nan_to_num(scores.float(), nan=float("-inf"))


def ranks_of_all(scores: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, n_items]`` optimistic rank of every column among the non-excluded columns:
    1 + strictly higher scores (excluded columns themselves still get the rank they
    would have if they were included). Used for skipped items, where a high rank is bad."""
    scores = finite_scores(scores)
    ranked = scores if excluded is None else scores.masked_fill(excluded, float("-inf"))
    ordered, _ = ranked.sort(dim=1)
    # number of non-excluded scores > s  =  n - (number of scores <= s)
    n = scores.shape[1]
    return n - torch.searchsorted(ordered, scores.contiguous(), right=True) + 1


def target_ranks(scores: torch.Tensor, targets: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` rank of each target column (ties count against it); ``excluded``
    ``[B, n_items]`` bool (the target itself is never excluded)."""
    scores = finite_scores(scores)
    target_scores = scores.gather(1, targets[:, None])
    ahead = scores >= target_scores
    ahead.scatter_(1, targets[:, None], False)  # not ahead of itself
    if excluded is not None:
        ahead &= ~excluded
    return ahead.sum(dim=1) + 1


def candidate_ranks(
    scores: torch.Tensor, targets: torch.Tensor, candidates: torch.Tensor, candidate_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B]`` rank of the target among itself + its candidate columns ``[B, C]``
    (PHNS-hard / easy sets; ties count against the target). ``candidate_mask`` marks
    real candidates; a candidate equal to the target is ignored."""
    scores = finite_scores(scores)
    target_scores = scores.gather(1, targets[:, None])
    candidate_scores = scores.gather(1, candidates)
    ahead = (candidate_scores >= target_scores) & (candidates != targets[:, None])
    if candidate_mask is not None:
        ahead &= candidate_mask
    return ahead.sum(dim=1) + 1


def metrics_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """Mean HR/NDCG/MRR @k over users, plus full MRR and recall@5."""
    ranks = ranks.float()
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = hit.float().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 1), 0.0).mean().item()
        out[f"mrr@{k}"] = torch.where(hit, 1.0 / ranks, 0.0).mean().item()
    out["recall@5"] = (ranks <= 5).float().mean().item()
    out["mrr"] = (1.0 / ranks).mean().item()
    return out


def skip_reciprocal_ranks(
    scores: torch.Tensor, skipped_only: torch.Tensor, consumed_positively: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per user: (sum of 1/rank over skipped-only items, how many there are).

    ``skipped_only`` / ``consumed_positively``: ``[B, n_items]`` bool."""
    ranks = ranks_of_all(scores, excluded=consumed_positively)
    reciprocal = torch.where(skipped_only, 1.0 / ranks.float(), 0.0)
    return reciprocal.sum(dim=1), skipped_only.sum(dim=1)


def score_health(scores: torch.Tensor) -> tuple[int, torch.Tensor]:
    """(number of non-finite scores, ``[B]`` standard deviation of each row's finite scores).

    A diverged model scores every item alike (std ~ 0) or produces NaN / inf: the
    promotion gate rejects both (``training.promotion.sanity_problems``)."""
    scores = scores.float()
    finite = torch.isfinite(scores)
    values = torch.where(finite, scores, 0.0)
    count = finite.sum(dim=1).clamp(min=1)
    mean = values.sum(dim=1) / count
    variance = (torch.where(finite, values - mean[:, None], 0.0) ** 2).sum(dim=1) / count
    return int((~finite).sum()), variance.sqrt()


class RankingAccumulator:
    """Collects per-user ranks, skip reciprocal ranks and score health over evaluation batches."""

    def __init__(self, ks: tuple[int, ...] = DEFAULT_KS):
        self.ks = ks
        self.ranks: list[torch.Tensor] = []
        self.skip_rr: list[torch.Tensor] = []
        self.nonfinite = 0
        self.scored = 0
        self.score_std: list[torch.Tensor] = []

    def add_scores(self, scores: torch.Tensor) -> None:
        nonfinite, std = score_health(scores)
        self.nonfinite += nonfinite
        self.scored += scores.numel()
        self.score_std.append(std.cpu())

    def add(self, ranks: torch.Tensor, skip_rr_sum: torch.Tensor | None = None, skip_count: torch.Tensor | None = None):
        self.ranks.append(ranks.cpu())
        if skip_rr_sum is not None:
            has = skip_count > 0
            self.skip_rr.append((skip_rr_sum[has] / skip_count[has]).cpu())

    def result(self) -> dict[str, float]:
        if not self.ranks:
            raise ValueError("no users were evaluated")
        out = metrics_from_ranks(torch.cat(self.ranks), self.ks)
        out["n_users"] = float(sum(len(r) for r in self.ranks))
        if self.score_std:
            out["score_nonfinite_share"] = self.nonfinite / max(self.scored, 1)
            out["score_std_median"] = torch.cat(self.score_std).median().item()
        if self.skip_rr:
            per_user = torch.cat(self.skip_rr)
            out["skip_mrr"] = per_user.mean().item() if len(per_user) else float("nan")
            out["skip_users"] = float(len(per_user))
        return out
