"""Losses shared by the sequence models.

Ids index the item embedding table directly (0 = padding, 1..n_items items).
All losses take only positions with a target (target id != 0) into account.

* ``sampled_softmax_loss`` — softmax over the target and N shared uniform
  negatives; ``NegativeSampler`` re-draws the N negatives once **per epoch**
  (seed 000), deterministically from (seed, epoch) so a resumed run draws the
  same set. A negative equal to the row's target is masked out.
* ``full_softmax_loss`` — cross-entropy over all items.
* ``skip_infonce_loss`` — skip-informed contrastive term (seed 000/002):
  cosine similarity / temperature between an anchor (encoder output, or the
  embedding of the current item) and the first next non-skipped item, against
  the skipped items of the sequence.
* ``sequence_model_loss`` — NLL + λ·InfoNCE for any model with the
  ``training.models`` interface.
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
    """``vectors`` ``[N, D]``, ``targets`` ``[N]`` ids, ``negatives`` ``[S]`` ids -> mean NLL."""
    positive = (vectors * item_table[targets]).sum(-1, keepdim=True)
    negative = vectors @ item_table[negatives].T
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=targets.device))


def full_softmax_loss(vectors: torch.Tensor, targets: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every item id 1..n_items (padding and mask rows excluded)."""
    n_items = item_table.shape[0] - 2
    logits = vectors @ item_table[1 : n_items + 1].T
    return F.cross_entropy(logits, targets - 1)


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


@dataclass
class LossSettings:
    loss: str = "sampled_softmax"  # sampled_softmax | full_softmax
    contrastive: str = "none"  # none | item | encoder
    cl_weight: float = 0.5
    cl_temperature: float = 0.1


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
    item (model-independent). Negatives: skipped items of the row.
    """
    inputs, targets = model.training_inputs(batch)
    hidden = model.encode(inputs)
    has_target = targets != PAD_ID
    vectors = model.predict_vectors(hidden[has_target]).float()
    table = model.item_embeddings().float()
    if settings.loss == "sampled_softmax":
        if negatives is None:
            raise ValueError("sampled_softmax needs the epoch's negatives")
        nll = sampled_softmax_loss(vectors, targets[has_target], table, negatives.to(vectors.device))
    elif settings.loss == "full_softmax":
        nll = full_softmax_loss(vectors, targets[has_target], table)
    else:
        raise ValueError(f"unknown loss {settings.loss!r}")

    if settings.contrastive == "none" or settings.cl_weight == 0:
        cl = torch.zeros((), device=nll.device)
    elif settings.contrastive == "encoder":
        cl = skip_infonce_loss(hidden, targets, batch.skip_negatives, table, settings.cl_temperature)
    elif settings.contrastive == "item":
        anchors = table[batch.seq]
        cl = skip_infonce_loss(anchors, batch.next_pos, batch.skip_negatives, table, settings.cl_temperature)
    else:
        raise ValueError(f"unknown contrastive anchor {settings.contrastive!r}")
    return LossParts(total=nll + settings.cl_weight * cl, nll=nll, contrastive=cl)
