"""Losses shared by the sequence models.

Ids index the item embedding table directly (0 = padding, 1..n_items items).
All losses take only positions with a target (target id != 0) into account.

* ``sampled_softmax_loss`` — softmax over the target and N shared uniform
  negatives; ``NegativeSampler`` re-draws the N negatives once **per epoch**
  (seed 000), deterministically from (seed, epoch) so a resumed run draws the
  same set. A negative equal to the row's target is masked out.
* ``full_softmax_loss`` — cross-entropy over all items (SASRec+), optionally with label
  smoothing, or without the items a position has already read (``seen_items``): the
  candidates a whole-history evaluation ranks; or against several weighted targets per
  position (``train_target: next_k``: the next K positives, weighted by their soft labels).
* ``gbce_loss`` — generalised binary cross-entropy over k uniform negatives per position
  (gSASRec, Petrov & Macdonald 2023): the positive's term is raised to the power beta, which
  undoes the overconfidence that sampling k of the catalogue's negatives gives plain BCE.
* ``skip_infonce_loss`` — skip-informed contrastive term (seed 000/002):
  cosine similarity / temperature between an anchor (encoder output, or the
  embedding of the current item) and the first next non-skipped item, against
  the skipped items of the sequence.
* ``dropout_infonce_loss`` — self-supervised contrastive term (DuoRec's unsupervised
  augmentation, Qiu et al. 2022): the same window encoded twice under different dropout
  masks is a positive pair, the batch's other windows the negatives; needs no skips.
* ``sequence_model_loss`` — NLL + λ·InfoNCE for any model with the
  ``training.models`` interface.
* ``pairwise_hinge_loss`` — margin ranking loss on distances (AttRec, seed 001).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.data import PAD_ID, SequenceBatch


class NegativeSampler:
    """N uniform item ids in 1..n_items, shared by every batch of an epoch."""

    def __init__(self, n_items: int, n_samples: int, seed: int):
        self.n_items, self.n_samples, self.seed = n_items, n_samples, seed
        self.negatives = self.resample(0)

    def resample(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self.negatives = torch.randint(1, self.n_items + 1, (self.n_samples,), generator=generator)
        return self.negatives


def sampled_softmax_loss(
    vectors: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """``vectors`` ``[N, D]``, ``targets`` ``[N]`` ids, ``negatives`` ``[S]`` ids -> mean NLL.

    As in seed 000, the candidates are the mini-batch's targets mixed with the
    sampled items (duplicates counted once): every row's target is also a
    negative for the other rows, so no item is only ever pushed up, which made
    training diverge when the epoch's sample was redrawn.
    """
    candidates = torch.unique(torch.cat([targets, negatives]))  # sorted
    logits = vectors @ item_table[candidates].T
    return F.cross_entropy(logits, torch.searchsorted(candidates, targets))


def full_softmax_loss(vectors: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor,
                      label_smoothing: float = 0.0, excluded: torch.Tensor | None = None,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over every item id 1..n_items (padding and mask rows excluded).
    ``targets`` ``[N]`` ids, or ``[N, K]`` ids (0 = none) with ``weights`` ``[N, K]``: then row
    n's target distribution is its K items in proportion to their weights (``next_k``).
    ``excluded`` ``[N, n_items + 2]`` (bool, by item id): items left out of row n's softmax;
    a row's own targets always stay in."""
    n_items = item_table.shape[0] - 2
    logits = vectors @ item_table[1 : n_items + 1].T
    if targets.dim() == 2:
        return _weighted_targets_loss(logits, targets, weights, label_smoothing, excluded)
    if excluded is not None:
        dropped = excluded[:, 1 : n_items + 1].scatter(1, (targets - 1)[:, None], False)
        logits = logits.masked_fill(dropped, float("-inf"))
    return F.cross_entropy(logits, targets - 1, label_smoothing=label_smoothing)


def _weighted_targets_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
                           label_smoothing: float, excluded: torch.Tensor | None) -> torch.Tensor:
    """``full_softmax_loss`` against ``[N, K]`` weighted targets: mean over rows of
    ``-sum_k w_k log p(item_k) / sum_k w_k`` (label smoothing as ``F.cross_entropy`` defines it)."""
    if weights is None or weights.shape != targets.shape or len(targets) != len(logits):
        raise ValueError("[N, K] targets need [N, K] weights and N vectors")
    weights = torch.where(targets != PAD_ID, weights.float(), 0.0)
    if not bool((weights.sum(1) > 0).all()):
        raise ValueError("every row needs a target with a positive weight")
    target_dist = torch.zeros_like(logits).scatter_add_(1, (targets - 1).clamp(min=0), weights)
    target_dist = target_dist / target_dist.sum(1, keepdim=True)
    if excluded is None:
        log_probs = F.log_softmax(logits, dim=1)
    else:
        dropped = excluded[:, 1 : logits.shape[1] + 1] & (target_dist == 0)
        log_probs = F.log_softmax(logits.masked_fill(dropped, float("-inf")), dim=1).masked_fill(dropped, 0.0)
    nll = -(target_dist * log_probs).sum(1)
    if label_smoothing:
        nll = (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(1)
    return nll.mean()


def seen_items(inputs: torch.Tensor, n_ids: int, causal: bool) -> torch.Tensor:
    """``[B, L, n_ids]`` bool: the item ids position t of row b has read — the row's inputs at
    positions <= t (causal) or anywhere in the row (bidirectional)."""
    seen = torch.zeros(*inputs.shape, n_ids, dtype=torch.uint8, device=inputs.device)
    seen.scatter_(2, inputs.unsqueeze(-1), 1)
    seen = seen.cummax(dim=1).values if causal else seen.amax(dim=1, keepdim=True).expand_as(seen)
    return seen.bool()


def gbce_beta(n_negatives: int, n_items: int, calibration: float) -> float:
    """gSASRec's beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = k / (n_items - 1) the
    negative sampling rate and t the calibration: t = 0 is plain BCE (beta = 1), t = 1 makes
    the sampled loss's optimum the full softmax's probability (beta = alpha)."""
    alpha = n_negatives / max(1, n_items - 1)
    return alpha * (calibration * (1 - 1 / alpha) + 1 / alpha)


def gbce_loss(vectors: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor, negatives: torch.Tensor,
              beta: float) -> torch.Tensor:
    """``vectors`` ``[N, D]``, ``targets`` ``[N]`` ids, ``negatives`` ``[N, k]`` ids per row ->
    mean over rows of ``(beta * softplus(-s+) + sum_n softplus(s_n)) / (1 + k)``, i.e. the mean
    binary cross-entropy of the row's 1 + k scores with ``sigmoid(s+)`` raised to ``beta``
    (gSASRec). A negative equal to the row's target is left out."""
    positive = (vectors * item_table[targets]).sum(-1)
    negative = torch.einsum("nd,nkd->nk", vectors, item_table[negatives])
    negative_terms = F.softplus(negative).masked_fill(negatives == targets[:, None], 0.0).sum(-1)
    return ((beta * F.softplus(-positive) + negative_terms) / (1 + negatives.shape[1])).mean()


def skip_infonce_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    item_table: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean InfoNCE over positions that have a positive and at least one negative.

    ``anchors`` ``[B, L, D]``; ``positives`` ``[B, L]`` ids (0 = none);
    ``negatives`` ``[B, M]`` ids per row (0 = none; a negative equal to the
    position's positive is ignored). Per position:
    ``-log(exp(cos(a, p)/t) / (exp(cos(a, p)/t) + sum_n exp(cos(a, n)/t)))``.
    """
    a = F.normalize(anchors.float(), dim=-1)
    p = F.normalize(item_table[positives].float(), dim=-1)
    n = F.normalize(item_table[negatives].float(), dim=-1)
    positive = (a * p).sum(-1) / temperature  # [B, L]
    negative = torch.einsum("bld,bmd->blm", a, n) / temperature  # [B, L, M]
    usable = (negatives[:, None, :] != PAD_ID) & (negatives[:, None, :] != positives[:, :, None])
    negative = negative.masked_fill(~usable, float("-inf"))
    logits = torch.cat([positive[..., None], negative], dim=-1)
    loss = torch.logsumexp(logits, dim=-1) - positive
    active = (positives != PAD_ID) & usable.any(-1)
    if not active.any():
        return anchors.sum() * 0.0  # keeps the graph; no skip in this batch
    return loss[active].mean()


def dropout_infonce_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR) over ``[M, D]`` pairs: row m of ``first`` and of ``second`` are two views
    of one window; each of the 2M views is scored by cosine / temperature against the other
    2M - 1, its own pair being the positive."""
    views = F.normalize(torch.cat([first, second]).float(), dim=-1)
    logits = (views @ views.T / temperature).fill_diagonal_(float("-inf"))
    pairs = torch.arange(len(views), device=views.device).roll(len(first))
    return F.cross_entropy(logits, pairs)


def last_target_positions(has_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions): each row's last position with a target, for rows that have one."""
    positions = torch.arange(has_target.shape[1], device=has_target.device)
    last = torch.where(has_target, positions, -1).amax(dim=1)
    rows = (last >= 0).nonzero().squeeze(1)
    return rows, last[rows]


CONTRASTIVE = ("none", "item", "encoder", "dropout")


@dataclass
class LossSettings:
    loss: str = "sampled_softmax"  # sampled_softmax | full_softmax | gbce
    contrastive: str = "none"  # none | item | encoder | dropout
    cl_weight: float = 0.5
    cl_temperature: float = 0.1
    label_smoothing: float = 0.0  # full_softmax
    train_target: str = "next_positive"  # next_k (full_softmax): the next K positives, weighted by soft label
    exclude_seen: bool = False  # full_softmax: leave the items a position has read out of its softmax
    gbce_negatives: int = 256  # gbce: uniform negatives per position, drawn at every step
    gbce_calibration: float = 0.75  # gbce: t (gSASRec's default)


LOSSES = ("sampled_softmax", "full_softmax", "gbce")


@dataclass
class LossParts:
    total: torch.Tensor
    nll: torch.Tensor
    contrastive: torch.Tensor


def sequence_model_loss(
    model: torch.nn.Module,
    batch: SequenceBatch,
    settings: LossSettings,
    negatives: torch.Tensor | None = None,
) -> LossParts:
    """NLL of the model's own targets + ``cl_weight`` · skip-informed InfoNCE.

    Contrastive anchors: ``encoder`` = hidden state at the position whose
    target is the positive (SASRec: next positive; BERT4Rec: the masked item);
    ``item`` = embedding of the current item, positive = its next positive
    item (model-independent). Negatives: skipped items of the row. ``dropout``: the
    window's last hidden state with a target, encoded a second time under other dropout
    masks, against the batch's other windows.
    """
    inputs, targets = model.training_inputs(batch)
    hidden = model.encode(inputs, batch)
    has_target = targets != PAD_ID
    vectors = model.predict_vectors(hidden[has_target]).float()
    table = model.item_embeddings().float()
    if settings.loss == "sampled_softmax":
        if negatives is None:
            raise ValueError("sampled_softmax needs the epoch's negatives")
        nll = sampled_softmax_loss(vectors, targets[has_target], table, negatives.to(vectors.device))
    elif settings.loss == "full_softmax":
        excluded = seen_items(inputs, table.shape[0], model.causal)[has_target] if settings.exclude_seen else None
        if settings.train_target == "next_k":
            if not model.causal:
                raise ValueError("train_target next_k trains causal models (SASRec): a position's next K items")
            nll = full_softmax_loss(vectors, batch.next_k[has_target], table, settings.label_smoothing, excluded,
                                    weights=batch.next_k_label[has_target])
        else:
            nll = full_softmax_loss(vectors, targets[has_target], table, settings.label_smoothing, excluded)
    elif settings.loss == "gbce":
        n_items = table.shape[0] - 2
        drawn = torch.randint(1, n_items + 1, (vectors.shape[0], settings.gbce_negatives), device=vectors.device)
        beta = gbce_beta(settings.gbce_negatives, n_items, settings.gbce_calibration)
        nll = gbce_loss(vectors, targets[has_target], table, drawn, beta)
    else:
        raise ValueError(f"unknown loss {settings.loss!r}")

    if settings.contrastive == "none" or settings.cl_weight == 0:
        cl = torch.zeros((), device=nll.device)
    elif settings.contrastive == "encoder":
        cl = skip_infonce_loss(hidden, targets, batch.skip_negatives, table, settings.cl_temperature)
    elif settings.contrastive == "item":
        anchors = table[batch.seq]
        cl = skip_infonce_loss(anchors, batch.next_pos, batch.skip_negatives, table, settings.cl_temperature)
    elif settings.contrastive == "dropout":
        rows, positions = last_target_positions(has_target)
        second = model.encode(inputs, batch)[rows, positions]
        cl = dropout_infonce_loss(hidden[rows, positions], second, settings.cl_temperature)
    else:
        raise ValueError(f"unknown contrastive anchor {settings.contrastive!r}")
    return LossParts(total=nll + settings.cl_weight * cl, nll=nll, contrastive=cl)


def pairwise_hinge_loss(positive_distance: torch.Tensor, negative_distance: torch.Tensor, margin: float,
                        negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Metric-learning ranking loss (AttRec, seed 001): mean of
    ``max(0, margin + d(pos) - d(neg))`` over (positive, negative) pairs.

    Distances: lower = better. ``positive_distance`` ``[N]``, ``negative_distance``
    ``[N, M]``; ``negative_mask`` ``[N, M]`` bool marks the pairs that count."""
    hinge = F.relu(margin + positive_distance[:, None] - negative_distance)
    if negative_mask is None:
        return hinge.mean()
    if not negative_mask.any():
        return hinge.sum() * 0.0
    return hinge[negative_mask].mean()


# ---- S-MoE-BST multi-task losses (seed 003) ------------------------------------------


def engagement_weights(completion: torch.Tensor, alpha: float) -> torch.Tensor:
    """Engagement-aware personalised weight of a positive: ``1 + alpha * completion``
    (a fully watched title counts ``1 + alpha`` times an unwatched one)."""
    return 1.0 + alpha * completion


def weighted_ranking_loss(
    positive: torch.Tensor, negative: torch.Tensor, negative_valid: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Softmax ranking (contrastive) loss of each positive score ``[N]`` against its
    negatives ``[N, M]`` (``negative_valid`` marks real ones), weighted mean with ``weights`` ``[N]``:
    ``sum_i w_i * -log(exp(s_i) / (exp(s_i) + sum_m exp(n_im))) / sum_i w_i``."""
    logits = torch.cat([positive[:, None], negative.masked_fill(~negative_valid, float("-inf"))], dim=1)
    loss = torch.logsumexp(logits, dim=1) - positive
    return (weights * loss).sum() / weights.sum().clamp_min(1e-12)


def weighted_ctr_loss(
    positive: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    negative: torch.Tensor,
    negative_valid: torch.Tensor,
) -> torch.Tensor:
    """Binary CTR loss: BCE of positive logits ``[N]`` against soft ``labels`` ``[N]``
    (weighted mean with ``weights``) + mean BCE of the valid negative logits ``[N, M]``
    against 0. Positives and negatives count half each, so sigmoid(logit) stays on
    the soft-label scale however many negatives there are."""
    positive_bce = F.binary_cross_entropy_with_logits(positive, labels, reduction="none")
    positive_term = (weights * positive_bce).sum() / weights.sum().clamp_min(1e-12)
    negative_bce = F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative), reduction="none")
    negative_term = negative_bce[negative_valid].mean() if negative_valid.any() else negative.sum() * 0.0
    return 0.5 * (positive_term + negative_term)


def completion_loss(logits: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
    """MSE between sigmoid(logits) and the observed completion rate in [0, 1]."""
    return F.mse_loss(torch.sigmoid(logits), completion)


def gate_entropy(gate: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of gate distributions ``[..., E]``; the regulariser maximises it."""
    return -(gate * gate.clamp_min(1e-12).log()).sum(-1).mean()


@dataclass
class MultiTaskSettings:
    next_k: int = 0  # how many of the mart's next-K positives to train on: 0 = all, 1 = the next one only
    rank_weight: float = 1.0
    ctr_weight: float = 0.5
    completion_weight: float = 0.5
    entropy_weight: float = 0.01
    engagement_alpha: float = 1.0  # 0 = no engagement-aware weighting
    # CTR head: positions per window it is trained on (random each step, 0 = all). Its MLP runs on
    # every (position, candidate) pair, which dominates a step's cost when trained on every position.
    ctr_positions: int = 8
    # beta: each PHNS negative's logit less beta * log(oversampling) in the ranking softmax, which then
    # estimates the softmax over uniform negatives (0 = off; training.phns_sampling_correction)
    phns_sampling_correction: float = 0.0


def ctr_position_mask(has_target: torch.Tensor, per_row: int) -> torch.Tensor:
    """``[B, L]`` bool: up to ``per_row`` positions of each row drawn uniformly (torch RNG)
    among those with a target; all of them when ``per_row`` is 0 or the row has fewer."""
    if per_row <= 0:
        return has_target
    draw = torch.rand(has_target.shape, device=has_target.device).masked_fill(~has_target, 2.0)
    rank = draw.argsort(dim=1).argsort(dim=1)  # 0 = smallest draw
    return has_target & (rank < per_row)


def smoe_bst_loss(
    model: torch.nn.Module, batch: SequenceBatch, negatives: torch.Tensor, settings: MultiTaskSettings,
    negative_offsets: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """S-MoE-BST total loss and its parts (``loss``, ``rank_loss``, ``ctr_loss``,
    ``completion_loss``, ``gate_entropy``).

    At every position t of the window: positives = the next K positive events with
    their soft labels (``batch.next_k`` / ``next_k_label``, from fct_training_examples)
    and engagement weights from their completion, negatives = the row's PHNS
    negatives ``[B, M]`` (0 = none). Ranking uses the dot-product
    score at every position, less ``negative_offsets`` ``[B, M]`` for the negatives (a
    sampling-bias correction, ``MultiTaskObjective``); CTR uses its head at ``settings.ctr_positions``
    random positions per row (an unbiased estimate of the all-position loss);
    completion regresses the completion of the event right after t (skipped or not).
    ``total = rank_w·L_rank + ctr_w·L_ctr + completion_w·L_completion - entropy_w·H(gate)``.
    """
    k = min(settings.next_k or batch.next_k.shape[-1], batch.next_k.shape[-1])
    hidden = model.encode(batch.seq, batch)
    vectors = model.predict_vectors(hidden)
    table = model.item_embeddings()
    has = batch.next_k[..., 0] != PAD_ID  # positions with at least the next positive
    rows = has.nonzero()[:, 0]
    v = vectors[has]  # [N, D]
    pos_ids, pos_completion = batch.next_k[has][:, :k], batch.next_k_completion[has][:, :k].to(v.dtype)  # [N, K]
    neg_ids = negatives[rows]  # [N, M]
    pos_valid = pos_ids != PAD_ID
    neg_valid = (neg_ids != PAD_ID)[:, None, :] & (neg_ids[:, None, :] != pos_ids[..., None])  # [N, K, M]

    strength = batch.next_k_label[has][:, :k].to(v.dtype)
    engagement = engagement_weights(pos_completion, settings.engagement_alpha)
    pos_scores = (v[:, None, :] * table[pos_ids]).sum(-1)  # [N, K]
    # negatives are per row: score them per row ([B, L, M]) rather than gathering [N, M, D]
    neg_scores = torch.einsum("bld,bmd->blm", vectors, table[negatives])[has]  # [N, M]
    if negative_offsets is not None:
        neg_scores = neg_scores - negative_offsets[rows]
    rank = weighted_ranking_loss(
        pos_scores[pos_valid], neg_scores[:, None, :].expand(-1, k, -1)[pos_valid], neg_valid[pos_valid],
        (strength * engagement)[pos_valid],
    )

    head = ctr_position_mask(has, settings.ctr_positions)[has]  # subset of the N positions
    ctr_logits = model.ctr_logits(v[head], torch.cat([pos_ids[head], neg_ids[head]], dim=1))
    head_valid = pos_valid[head]
    ctr = weighted_ctr_loss(
        ctr_logits[:, :k][head_valid], strength[head][head_valid], engagement[head][head_valid],
        ctr_logits[:, k:], neg_valid[head].any(dim=1),
    )

    following = batch.seq[:, 1:]
    has_next = (batch.seq[:, :-1] != PAD_ID) & (following != PAD_ID)
    if has_next.any():
        next_logits = model.completion_logits(vectors[:, :-1][has_next], following[has_next][:, None])
        completion = completion_loss(next_logits[:, 0], batch.completion[:, 1:][has_next])
    else:
        completion = vectors.sum() * 0.0

    entropy = gate_entropy(model.last_gate[batch.seq != PAD_ID])
    total = (
        settings.rank_weight * rank
        + settings.ctr_weight * ctr
        + settings.completion_weight * completion
        - settings.entropy_weight * entropy
    )
    return {"loss": total, "rank_loss": rank, "ctr_loss": ctr, "completion_loss": completion, "gate_entropy": entropy}
