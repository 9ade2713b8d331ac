"""BERT4Rec (Sun et al. 2019) as in seed 000: bidirectional self-attention, cloze task.

Training: a share ``mask_prob`` of the **non-skipped** events is replaced by the
mask token and predicted from both sides (skips stay visible as context but are
never targets, matching the next-positive task). A row that drew no mask gets
its newest positive masked, which is also the shape of the prediction input.
Prediction: the mask token is appended after the newest event (the oldest event
drops out of a full window) and its output scores the next item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from training.data import PAD_ID, SequenceBatch
from training.models.transformer import TransformerEncoder, init_weights


@dataclass
class BERT4RecConfig:
    n_items: int
    max_seq_len: int = 50
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    dropout: float = 0.2
    prediction_layer: bool = True  # the seed's FC + GELU before the dot product; False = dot product only
    mask_prob: float = 0.2


class BERT4Rec(nn.Module):
    causal = False

    def __init__(self, config: BERT4RecConfig):
        super().__init__()
        self.config = config
        self.mask_id = config.n_items + 1
        self.item_emb = nn.Embedding(config.n_items + 2, config.hidden, padding_idx=PAD_ID)
        self.pos_emb = nn.Embedding(config.max_seq_len, config.hidden)
        self.emb_dropout = nn.Dropout(config.dropout)
        self.encoder = TransformerEncoder(config.hidden, config.layers, config.heads, config.dropout,
                                          attention_dropout=config.dropout)
        self.prediction = (
            nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU()) if config.prediction_layer else nn.Identity()
        )
        self.apply(init_weights)

    def encode(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        length = seqs.shape[1]
        if length > self.config.max_seq_len:
            raise ValueError(f"sequence length {length} > max_seq_len {self.config.max_seq_len}")
        positions = torch.arange(self.config.max_seq_len - length, self.config.max_seq_len, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        return self.encoder(self.emb_dropout(x), key_valid=seqs != PAD_ID, causal=self.causal)

    def predict_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.prediction(hidden)

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb.weight

    def append_mask(self, seqs: torch.Tensor) -> torch.Tensor:
        """Shift the window left by one and put the mask token in the last slot."""
        mask_column = torch.full_like(seqs[:, :1], self.mask_id)
        return torch.cat([seqs[:, 1:], mask_column], dim=1)

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """Scores of every item for the next step: ``[B, n_items]`` (column c = item id c + 1);
        BERT4Rec reads no per-event context."""
        vectors = self.predict_vectors(self.encode(self.append_mask(seqs))[:, -1])
        return vectors @ self.item_emb.weight[1 : self.config.n_items + 1].T

    def cloze_mask(self, batch: SequenceBatch) -> torch.Tensor:
        """``[B, L]`` bool: positions replaced by the mask token (uses the global torch RNG)."""
        positive = (batch.seq != PAD_ID) & ~batch.is_skip
        draw = torch.rand(batch.seq.shape, device=batch.seq.device) < self.config.mask_prob
        masked = positive & draw
        # rows without a mask: mask the newest positive (right-most True of `positive`)
        columns = torch.arange(batch.seq.shape[1], device=batch.seq.device)
        newest = torch.where(positive, columns, -1).max(dim=1).values
        fallback = (columns[None, :] == newest[:, None]) & positive
        return torch.where(masked.any(dim=1, keepdim=True), masked, fallback)

    def training_inputs(self, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked input, targets): the original item where masked, 0 elsewhere."""
        masked = self.cloze_mask(batch)
        inputs = torch.where(masked, torch.full_like(batch.seq, self.mask_id), batch.seq)
        return inputs, torch.where(masked, batch.seq, torch.zeros_like(batch.seq))
