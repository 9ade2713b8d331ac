"""SASRec (Kang & McAuley 2018) as in seed 000: unidirectional self-attention.

item + learned positional embeddings -> causal Transformer encoder ->
prediction layer (FC + GELU; ``prediction_layer=False`` drops it, as RecBole's
SASRec does) -> dot product with the item embedding table.
``tied_embeddings=False`` scores items against an output embedding table of their own instead
of the input one (gSASRec's ``reuse_item_embeddings=False``).
``feedback_embedding=True`` adds a learned embedding of each input event's skip flag, so
the model knows which of the items it reads the user rejected (scoring then needs the batch
the windows come from as ``context``).
Training target of position t = the next non-skipped item after t (``next_positive``), or
the next event (``next_item``; ``training.data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from training.data import PAD_ID, SequenceBatch
from training.models.transformer import TransformerEncoder, init_weights


@dataclass
class SASRecConfig:
    n_items: int
    max_seq_len: int = 50
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    dropout: float = 0.2
    prediction_layer: bool = True  # the seed's FC + GELU before the dot product; False = dot product only
    feedback_embedding: bool = False  # add an embedding of each input event's skip flag
    tied_embeddings: bool = True  # score against the input item embeddings (SASRec); False = an output table


class SASRec(nn.Module):
    causal = True

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        # rows: 0 = padding, 1..n_items = items, n_items + 1 = mask (unused here; keeps tables alike)
        self.item_emb = nn.Embedding(config.n_items + 2, config.hidden, padding_idx=PAD_ID)
        self.output_emb = (
            None if config.tied_embeddings else nn.Embedding(config.n_items + 2, config.hidden, padding_idx=PAD_ID)
        )
        self.pos_emb = nn.Embedding(config.max_seq_len, config.hidden)
        self.feedback_emb = nn.Embedding(2, config.hidden) if config.feedback_embedding else None
        self.emb_dropout = nn.Dropout(config.dropout)
        self.encoder = TransformerEncoder(config.hidden, config.layers, config.heads, config.dropout)
        self.prediction = (
            nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU()) if config.prediction_layer else nn.Identity()
        )
        self.apply(init_weights)

    def encode(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """``seqs`` ``[B, L]`` left-padded ids -> hidden states ``[B, L, D]``; ``context``: the
        batch the windows come from (its ``is_skip``), needed with ``feedback_embedding``."""
        length = seqs.shape[1]
        if length > self.config.max_seq_len:
            raise ValueError(f"sequence length {length} > max_seq_len {self.config.max_seq_len}")
        positions = torch.arange(self.config.max_seq_len - length, self.config.max_seq_len, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        if self.feedback_emb is not None:
            if context is None or context.is_skip.shape != seqs.shape:
                raise ValueError("this SASRec reads each event's skip flag: pass the windows' batch as context")
            x = x + self.feedback_emb(context.is_skip.long())
        return self.encoder(self.emb_dropout(x), key_valid=seqs != PAD_ID, causal=self.causal)

    def predict_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.prediction(hidden)

    def item_embeddings(self) -> torch.Tensor:
        """The table items are scored against (the input table unless untied)."""
        return (self.item_emb if self.output_emb is None else self.output_emb).weight

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """Scores of every item for the next step: ``[B, n_items]`` (column c = item id c + 1)."""
        vectors = self.predict_vectors(self.encode(seqs, context)[:, -1])
        return vectors @ self.item_embeddings()[1 : self.config.n_items + 1].T

    def training_inputs(self, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, per-position target) for the NLL: next positive item."""
        return batch.seq, batch.next_pos
