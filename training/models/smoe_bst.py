"""S-MoE-BST (seed 003): Behavioural Sequence Transformer + mixture of temporal experts.

shared embeddings (item, position, per-event context = skip flag + completion,
user = hashed user id + optional numeric user features)
-> causal Transformer encoder (the BST) -> per expert: attention pooling over its
window of the last ``window`` events (0 = the whole input) + an MLP
-> gating MLP over [user, expert outputs] with Gaussian noise (training only) and a
temperature softmax -> user representation = gate-weighted sum of the experts.

Every position t gets its own representation (pooling only looks at events
<= t), so like SASRec the model trains on every position of a window and
``score_all`` reads the last one. Heads on (user representation u, item e):
ranking = u·e (what ``score_all`` ranks by), CTR logit and completion logit from
an MLP over [u, e, u*e]. ``last_gate`` keeps the latest gate probabilities for
the entropy regulariser and the gate metrics.

Event context and user features are optional: ``score_all(seqs)`` works from ids
alone (context rows then use the "unknown" skip embedding and completion 0).
The shared evaluation / inference pass the ``SequenceBatch`` as ``context``;
``attach_users`` binds the user ids (and
features) that ``context.user_index`` refers to.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.data import PAD_ID, SequenceBatch
from training.models.transformer import TransformerEncoder, init_weights

UNKNOWN_SKIP = 2  # row of the skip-context table used when no context is given


@dataclass
class SMoEBSTConfig:
    n_items: int
    max_seq_len: int = 50
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    dropout: float = 0.2
    experts: tuple[str, ...] = ("short", "mid", "long")
    expert_windows: tuple[int, ...] = (5, 20, 0)  # last-N events per expert, 0 = whole window
    gate_noise: float = 1.0  # std of the Gaussian noise on the gate logits (training only)
    gate_temperature: float = 1.0
    user_buckets: int = 1024  # hashed user-id embedding rows (row 0 = unknown user); 0 = none
    n_user_features: int = 0  # numeric user features (dbt mart user_features); 0 = none


def user_bucket(user_ids: np.ndarray | list[str], buckets: int) -> np.ndarray:
    """Stable hashed bucket 1..buckets-1 of each user id (0 = unknown user)."""
    return np.asarray([1 + zlib.crc32(str(u).encode()) % (buckets - 1) for u in user_ids], dtype=np.int64)


class AttentionPooling(nn.Module):
    """Per query position t: softmax-weighted sum of h_j over keys j in (t - window, t]."""

    def __init__(self, hidden: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))

    def forward(self, hidden: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``[B, L, D]``, ``allowed`` ``[B, L(query), L(key)]`` bool -> ``[B, L, D]``."""
        scores = self.score(hidden).squeeze(-1)  # [B, L] one score per key
        weights = scores[:, None, :].masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        return weights @ hidden


class Expert(nn.Module):
    def __init__(self, hidden: int, window: int, dropout: float):
        super().__init__()
        self.window = window
        self.pool = AttentionPooling(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))

    def forward(self, hidden: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        length = hidden.shape[1]
        query = torch.arange(length, device=hidden.device)[:, None]
        key = torch.arange(length, device=hidden.device)[None, :]
        in_window = key <= query
        if self.window > 0:
            in_window &= key > query - self.window
        # a query always sees itself, so rows of pure padding stay finite
        allowed = (in_window[None] & key_valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=hidden.device)
        pooled = self.pool(hidden, allowed)
        return pooled + self.mlp(pooled)


class PairHead(nn.Module):
    """Scalar logit of an MLP over ``[u, e, u*e]`` for a user representation u and item embedding e.

    The first layer is applied in its three blocks, ``W_u u + W_e e + W_x (u*e)``
    (the same function as on the concatenation): ``W_u u`` once per user vector
    and ``W_e e`` once per item-table row, so only ``W_x (u*e)`` is paid per pair.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, users: torch.Tensor, item_table: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """``users`` ``[..., D]``, ``item_ids`` ``[..., M]`` rows of ``item_table`` -> logits ``[..., M]``."""
        first, activation, last = self.mlp
        w_user, w_item, w_cross = first.weight.split(users.shape[-1], dim=1)
        items = item_table[item_ids]
        hidden = (
            (users @ w_user.T + first.bias)[..., None, :]
            + (item_table @ w_item.T)[item_ids]
            + (users[..., None, :] * items) @ w_cross.T
        )
        return last(activation(hidden)).squeeze(-1)


class SMoEBST(nn.Module):
    causal = True

    def __init__(self, config: SMoEBSTConfig):
        super().__init__()
        if len(config.experts) != len(config.expert_windows):
            raise ValueError("experts and expert_windows must have the same length")
        self.config = config
        d = config.hidden
        self.item_emb = nn.Embedding(config.n_items + 2, d, padding_idx=PAD_ID)
        self.pos_emb = nn.Embedding(config.max_seq_len, d)
        self.skip_emb = nn.Embedding(3, d)  # 0 = played, 1 = skipped, 2 = unknown
        self.completion_proj = nn.Linear(1, d)
        self.user_emb = nn.Embedding(config.user_buckets, d) if config.user_buckets else None
        self.user_feature_proj = nn.Linear(config.n_user_features, d) if config.n_user_features else None
        self.emb_dropout = nn.Dropout(config.dropout)
        self.encoder = TransformerEncoder(d, config.layers, config.heads, config.dropout, attention_dropout=config.dropout)
        self.experts = nn.ModuleList(Expert(d, w, config.dropout) for w in config.expert_windows)
        self.gate = nn.Sequential(nn.Linear(d * (1 + len(config.experts)), d), nn.GELU(), nn.Linear(d, len(config.experts)))
        self.prediction = nn.Sequential(nn.Linear(d, d), nn.GELU())
        self.ctr_head = PairHead(d)
        self.completion_head = PairHead(d)
        self.apply(init_weights)
        # users that context.user_index points at (see attach_users); not saved with the weights
        self.register_buffer("user_buckets_of", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("user_features_of", torch.zeros(0, config.n_user_features), persistent=False)
        self.last_gate: torch.Tensor | None = None

    def attach_users(self, user_ids: np.ndarray, features: np.ndarray | None = None) -> "SMoEBST":
        """Bind ``SequenceData.user_ids`` (and their ``[U, n_user_features]`` features)
        so a batch's ``user_index`` resolves to a user embedding."""
        device = self.item_emb.weight.device
        if self.config.user_buckets:
            self.user_buckets_of = torch.from_numpy(user_bucket(user_ids, self.config.user_buckets)).to(device)
        if self.config.n_user_features:
            if features is None:
                features = np.zeros((len(user_ids), self.config.n_user_features), dtype=np.float32)
            self.user_features_of = torch.as_tensor(features, dtype=torch.float32, device=device)
        return self

    # ---- embeddings ---------------------------------------------------------------

    def user_vector(self, batch_size: int, context: SequenceBatch | None) -> torch.Tensor:
        """``[B, D]`` user embedding (zeros when the model has no user inputs)."""
        device = self.item_emb.weight.device
        user = torch.zeros(batch_size, self.config.hidden, device=device)
        index = context.user_index if context is not None else None
        if self.user_emb is not None:
            buckets = torch.zeros(batch_size, dtype=torch.long, device=device)
            if index is not None and len(self.user_buckets_of):
                buckets = self.user_buckets_of[index]
            user = user + self.user_emb(buckets)
        if self.user_feature_proj is not None and index is not None and len(self.user_features_of):
            user = user + self.user_feature_proj(self.user_features_of[index])
        return user

    def event_embeddings(self, seqs: torch.Tensor, context: SequenceBatch | None) -> torch.Tensor:
        length = seqs.shape[1]
        positions = torch.arange(self.config.max_seq_len - length, self.config.max_seq_len, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        if context is None:
            skip = torch.full_like(seqs, UNKNOWN_SKIP)
            completion = torch.zeros(seqs.shape, device=seqs.device)
        else:
            skip, completion = context.is_skip.long(), context.completion.float()
        return x + self.skip_emb(skip) + self.completion_proj(completion[..., None])

    # ---- the model interface ------------------------------------------------------

    def encode(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """``seqs`` ``[B, L]`` left-padded ids -> user representation after each event ``[B, L, D]``."""
        if seqs.shape[1] > self.config.max_seq_len:
            raise ValueError(f"sequence length {seqs.shape[1]} > max_seq_len {self.config.max_seq_len}")
        key_valid = seqs != PAD_ID
        hidden = self.encoder(self.emb_dropout(self.event_embeddings(seqs, context)), key_valid=key_valid, causal=True)
        experts = torch.stack([expert(hidden, key_valid) for expert in self.experts], dim=2)  # [B, L, E, D]
        user = self.user_vector(seqs.shape[0], context)[:, None, :].expand(-1, seqs.shape[1], -1)
        logits = self.gate(torch.cat([user, experts.flatten(2)], dim=-1))  # [B, L, E]
        if self.training and self.config.gate_noise > 0:
            logits = logits + self.config.gate_noise * torch.randn_like(logits)
        gate = (logits / self.config.gate_temperature).softmax(dim=-1)
        self.last_gate = gate
        return (gate[..., None] * experts).sum(dim=2)

    def predict_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.prediction(hidden)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """Ranking scores of every item for the next step: ``[B, n_items]`` (column c = item id c + 1)."""
        vectors = self.predict_vectors(self.encode(seqs, context)[:, -1])
        return vectors @ self.item_emb.weight[1 : self.config.n_items + 1].T

    def training_inputs(self, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return batch.seq, batch.next_pos

    # ---- multi-task heads ---------------------------------------------------------

    def ctr_logits(self, vectors: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """CTR logits ``[..., M]`` for user vectors ``[..., D]`` (from ``predict_vectors``) and item ids ``[..., M]``."""
        return self.ctr_head(vectors, self.item_emb.weight, item_ids)

    def completion_logits(self, vectors: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """Completion-rate logits ``[..., M]``, same inputs as ``ctr_logits``."""
        return self.completion_head(vectors, self.item_emb.weight, item_ids)

    @torch.no_grad()
    def predict_soft_label_and_completion(
        self, inputs: SequenceBatch | torch.Tensor, item_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted soft label and completion, both ``[B, K]`` in [0, 1], of the items
        ``item_ids`` ``[B, K]`` (ids) for the windows ``inputs`` (a batch = with its
        context, or bare ``[B, L]`` ids). The CTR head is trained with BCE against the
        next-K soft targets (1.0 / 0.6 / 0.3, 0 for negatives), so its sigmoid is on
        that scale."""
        self.eval()
        device = self.item_emb.weight.device
        context = inputs.to(device) if isinstance(inputs, SequenceBatch) else None
        seqs = context.seq if context is not None else inputs.to(device)
        vectors = self.predict_vectors(self.encode(seqs, context)[:, -1])
        item_ids = item_ids.to(device)
        return torch.sigmoid(self.ctr_logits(vectors, item_ids)), torch.sigmoid(self.completion_logits(vectors, item_ids))


__all__ = ["SMoEBST", "SMoEBSTConfig", "user_bucket"]
