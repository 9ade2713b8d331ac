"""SASRec (Kang & McAuley 2018) as in seed 000: unidirectional self-attention.

item + learned positional embeddings -> causal Transformer encoder ->
prediction layer (FC + GELU; ``prediction_layer=False`` drops it, as RecBole's
SASRec does) -> dot product with the item embedding table.
``tied_embeddings=False`` scores items against an output embedding table of their own instead
of the input one (gSASRec's ``reuse_item_embeddings=False``).
``feedback_embedding=True`` adds a learned embedding of each input event's skip flag, so
the model knows which of the items it reads the user rejected (scoring then needs the batch
the windows come from as ``context``).
``time_embedding=True`` adds learned embeddings of each input event's time buckets (log2
seconds): the gap since the user's previous event and its age relative to the window's newest
event. ``time_attention=True`` adds TiSASRec's (Li et al. 2020) relative intervals as a learned
per-head bias of the attention logit between two events, one per time bucket of the span between them.
Training target of position t = the next non-skipped item after t (``next_positive``), or
the next event (``next_item``; ``training.data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from training.data import N_TIME_BUCKETS, PAD_ID, SequenceBatch, time_buckets
from training.models.transformer import TransformerEncoder, init_weights


@dataclass
class SASRecConfig:
    n_items: int
    max_seq_len: int = 50
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    dropout: float = 0.2
    attention_dropout: float = 0.2  # on the attention probabilities (dropout: embeddings and block outputs)
    prediction_layer: bool = True  # the seed's FC + GELU before the dot product; False = dot product only
    feedback_embedding: bool = False  # add an embedding of each input event's skip flag
    tied_embeddings: bool = True  # score against the input item embeddings (SASRec); False = an output table
    time_embedding: bool = False  # add embeddings of each input event's gap and age time buckets
    time_attention: bool = False  # a per-head attention bias for the time bucket between two events


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
        self.gap_emb = nn.Embedding(N_TIME_BUCKETS, config.hidden, padding_idx=0) if config.time_embedding else None
        self.age_emb = nn.Embedding(N_TIME_BUCKETS, config.hidden, padding_idx=0) if config.time_embedding else None
        self.interval_bias = nn.Embedding(N_TIME_BUCKETS, config.heads) if config.time_attention else None
        self.emb_dropout = nn.Dropout(config.dropout)
        self.encoder = TransformerEncoder(config.hidden, config.layers, config.heads, config.dropout,
                                          config.attention_dropout)
        self.prediction = (
            nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU()) if config.prediction_layer else nn.Identity()
        )
        self.apply(init_weights)

    def encode(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        """``seqs`` ``[B, L]`` left-padded ids -> hidden states ``[B, L, D]``; ``context``: the
        batch the windows come from (its ``is_skip`` and time spans), needed with
        ``feedback_embedding``, ``time_embedding`` or ``time_attention``."""
        length = seqs.shape[1]
        if length > self.config.max_seq_len:
            raise ValueError(f"sequence length {length} > max_seq_len {self.config.max_seq_len}")
        positions = torch.arange(self.config.max_seq_len - length, self.config.max_seq_len, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.config.hidden) + self.pos_emb(positions)
        if self.feedback_emb is not None:
            if context is None or context.is_skip.shape != seqs.shape:
                raise ValueError("this SASRec reads each event's skip flag: pass the windows' batch as context")
            x = x + self.feedback_emb(context.is_skip.long())
        present = seqs != PAD_ID
        if (self.gap_emb is not None or self.interval_bias is not None) and (
                context is None or context.age_seconds.shape != seqs.shape):
            raise ValueError("this SASRec reads each event's time: pass the windows' batch as context")
        if self.gap_emb is not None:
            x = x + self.gap_emb(time_buckets(context.gap_seconds, present))
            x = x + self.age_emb(time_buckets(context.age_seconds, present))
        bias = None
        if self.interval_bias is not None:
            # bias[b, h, i, j] for the span between query event i and key event j: |age_j - age_i|
            # (unknown when either age is)
            age = context.age_seconds
            known = (age[:, :, None] >= 0) & (age[:, None, :] >= 0)
            span = torch.where(known, (age[:, None, :] - age[:, :, None]).abs(), -1)
            pair = present[:, :, None] & present[:, None, :]
            bias = self.interval_bias(time_buckets(span, pair)).permute(0, 3, 1, 2)
        return self.encoder(self.emb_dropout(x), key_valid=present, causal=self.causal, attn_bias=bias)

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
