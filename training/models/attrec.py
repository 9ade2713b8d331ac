"""AttRec (Zhang et al., AAAI 2018) as in seed 001: self-attentive metric learning.

Short-term intent: self-attention over the last ``short_len`` items. Query and
key are ``ReLU(X W + T)`` with ``T`` a sinusoidal time (position) embedding, the
value is ``X`` itself (identity); the diagonal is masked so an item does not
just attend to itself; the attended vectors are mean-pooled into ``m``.
Long-term preference: a user embedding ``U_u`` in the same metric space as a
second item table ``V``.

    distance(u, i) = ω·||U_u − V_i||² + (1 − ω)·||m − X_i||²      (lower = better)

``score_all`` returns −distance, so the shared evaluation ranks it like any
model. Training: pairwise hinge loss (``losses.pairwise_hinge_loss``) of the next
positive item against uniform negatives and, with ``skip_negatives``, against
the user's skipped items (``attrec_neg``). The model brings its own loss
(``training_loss``, run by the Trainer through ``HingeObjective``), so it has no
``encode`` / ``predict_vectors``.

Users: ``attach_users(SequenceData.user_ids)`` binds ``context.user_index`` to
rows of the user table; the first call (the training data) fixes which users
the table holds (their keys are saved with the weights). A user the table does
not know, or a call without context (pyfunc, plain inference), is folded in:
``U`` = mean of ``V`` over the window's items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.data import PAD_ID, SequenceBatch, user_keys, user_rows
from training.losses import pairwise_hinge_loss


@dataclass
class AttRecConfig:
    n_items: int
    n_users: int = 0
    max_seq_len: int = 50
    short_len: int = 5  # L: items the self-attention looks at
    hidden: int = 64
    omega: float = 0.3  # weight of the long-term (user) distance
    margin: float = 0.5
    n_negatives: int = 8  # uniform negatives per user row (shared by its steps)
    skip_negatives: bool = False  # the row's skipped items are negatives too


@dataclass
class AttRecNegConfig(AttRecConfig):
    skip_negatives: bool = True


def sinusoid_time_embedding(length: int, dim: int) -> torch.Tensor:
    """``[length, dim]`` timing signal (sin on even, cos on odd dimensions)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


def squared_distances(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """``||q − x||²`` for queries ``[B, T, D]`` and items ``[B or 1, S, D]`` -> ``[B, T, S]``."""
    cross = queries @ items.transpose(1, 2)
    return (queries.pow(2).sum(-1)[..., None] + items.pow(2).sum(-1)[:, None, :] - 2 * cross).clamp(min=0)


class AttRec(nn.Module):
    def __init__(self, config: AttRecConfig):
        super().__init__()
        self.config = config
        d = config.hidden
        self.item_short = nn.Embedding(config.n_items + 2, d, padding_idx=PAD_ID)  # X
        self.item_long = nn.Embedding(config.n_items + 2, d, padding_idx=PAD_ID)  # V
        self.user_emb = nn.Embedding(max(config.n_users, 1), d)  # U
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        for table in (self.item_short, self.item_long, self.user_emb):
            nn.init.normal_(table.weight, std=1 / math.sqrt(d))
        with torch.no_grad():
            self.item_short.weight[PAD_ID].zero_()
            self.item_long.weight[PAD_ID].zero_()
        self.register_buffer("time_emb", sinusoid_time_embedding(config.short_len, d), persistent=False)
        self.register_buffer("user_keys", torch.zeros(config.n_users, dtype=torch.long))  # sorted, 0 = not fixed yet
        self.register_buffer("row_of_user", torch.zeros(0, dtype=torch.long), persistent=False)

    def attach_users(self, user_ids: np.ndarray) -> "AttRec":
        """Bind ``SequenceData.user_ids``; the first call fixes the user table's users."""
        if len(self.user_keys) and not self.user_keys.any():
            keys = np.sort(user_keys(user_ids))
            if len(keys) != self.config.n_users:
                raise ValueError(f"model has {self.config.n_users} user rows, got {len(keys)} users")
            self.user_keys.copy_(torch.from_numpy(keys))
        rows = user_rows(self.user_keys.cpu().numpy(), user_ids)
        self.row_of_user = torch.from_numpy(rows).to(self.user_keys.device)
        return self

    # ---- representations ----------------------------------------------------------

    def short_term(self, windows: torch.Tensor) -> torch.Tensor:
        """Windows ``[N, short_len]`` of ids (left-padded) -> intent ``m`` ``[N, D]``."""
        x = self.item_short(windows)
        valid = windows != PAD_ID
        q = F.relu(self.query(x) + self.time_emb)
        k = F.relu(self.key(x) + self.time_emb)
        scores = q @ k.transpose(1, 2) / math.sqrt(self.config.hidden)
        eye = torch.eye(windows.shape[1], dtype=torch.bool, device=windows.device)
        allowed = valid[:, None, :] & ~eye
        # a finite fill keeps rows without any allowed key NaN-free; multiplying by ``allowed`` zeroes them
        attention = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).softmax(-1) * allowed
        attended = attention @ x
        return (attended * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)

    def user_vectors(self, seqs: torch.Tensor, context: SequenceBatch | None) -> torch.Tensor:
        """``[B, D]``: the user's embedding, or the fold-in (mean ``V`` of the window) if unknown."""
        valid = (seqs != PAD_ID)[..., None]
        folded = (self.item_long(seqs) * valid).sum(1) / valid.sum(1).clamp(min=1)
        if context is None or len(self.row_of_user) == 0:
            return folded
        rows = self.row_of_user[context.user_index]
        return torch.where((rows >= 0)[:, None], self.user_emb(rows.clamp(min=0)), folded)

    def last_window(self, seqs: torch.Tensor) -> torch.Tensor:
        length = self.config.short_len
        return F.pad(seqs, (max(length - seqs.shape[1], 0), 0))[:, -length:]

    # ---- the model interface ------------------------------------------------------

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """−distance of every item for the next step: ``[B, n_items]`` (column c = item id c + 1)."""
        n, omega = self.config.n_items, self.config.omega
        user = self.user_vectors(seqs, context)[:, None, :]
        intent = self.short_term(self.last_window(seqs))[:, None, :]
        long_term = squared_distances(user, self.item_long.weight[None, 1 : n + 1])[:, 0]
        short_term = squared_distances(intent, self.item_short.weight[None, 1 : n + 1])[:, 0]
        return -(omega * long_term + (1 - omega) * short_term)

    def distances(self, user: torch.Tensor, intent: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """User ``[B, D]``, per-step intents ``[B, T, D]``, candidate ids ``[B, S]`` -> ``[B, T, S]``."""
        omega = self.config.omega
        long_term = squared_distances(user[:, None, :], self.item_long(items))  # [B, 1, S]
        short_term = squared_distances(intent, self.item_short(items))
        return omega * long_term + (1 - omega) * short_term

    def training_loss(self, batch: SequenceBatch) -> torch.Tensor:
        """Hinge loss at every step t with a target (next positive item after t),
        intent from the ``short_len`` items ending at t; each row draws
        ``n_negatives`` uniform negatives (plus its skipped items with ``skip_negatives``)."""
        seqs, targets = batch.seq, batch.next_pos
        b, t = seqs.shape
        windows = F.pad(seqs, (self.config.short_len - 1, 0)).unfold(1, self.config.short_len, 1)  # [B, T, L]
        intent = self.short_term(windows.reshape(b * t, -1)).view(b, t, -1)
        user = self.user_vectors(seqs, batch)

        omega = self.config.omega
        positive = omega * (user[:, None, :] - self.item_long(targets)).pow(2).sum(-1) + (1 - omega) * (
            intent - self.item_short(targets)
        ).pow(2).sum(-1)  # [B, T]
        candidates = torch.randint(1, self.config.n_items + 1, (b, self.config.n_negatives), device=seqs.device)
        if self.config.skip_negatives:
            candidates = torch.cat([candidates, batch.skip_negatives], dim=1)
        negative = self.distances(user, intent, candidates)  # [B, T, S]
        usable = (candidates[:, None, :] != PAD_ID) & (candidates[:, None, :] != targets[..., None])
        has_target = targets != PAD_ID
        return pairwise_hinge_loss(positive[has_target], negative[has_target], self.config.margin, usable[has_target])


class HingeObjective:
    """``Trainer`` objective (``trainer.TrainingObjective``) for AttRec: its own hinge loss."""

    params = {"objective": "pairwise_hinge"}

    def start_epoch(self, epoch: int) -> None:
        pass

    def __call__(self, model: AttRec, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        return {"loss": model.training_loss(batch)}

    def epoch_metrics(self) -> dict[str, float]:
        return {}
