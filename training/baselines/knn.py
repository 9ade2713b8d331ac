"""Neighbourhood baselines: item-kNN over user histories, session-kNN over past sessions.

* ``ItemKNN``: cosine similarity of item columns of the user x item matrix of the
  training events (binary; with negative feedback only positively consumed
  items count). score(window) = sum over the window's items j of sim(j, ·); with
  negative feedback an item the user only skipped subtracts ``skip_weight``·sim.
* ``SessionKNN``: the sequences carry no session ids, so a training "session" is
  a run of ``session_len`` consecutive training events of one user, and the
  current session is the last ``session_len`` events of the window. Sessions are
  vectors over items (+1 present; with negative feedback a skipped-only item is
  ``-skip_weight``), compared by cosine; score = sum over the ``neighbors`` most
  similar (positive-similarity) sessions of similarity x session vector, so with
  negative feedback what neighbours skipped is pushed down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.baselines.base import context_skips, split_events, window_vectors
from training.data import SequenceBatch


@dataclass
class ItemKNNConfig:
    n_items: int
    max_seq_len: int = 50
    negative_feedback: bool = False
    skip_weight: float = 1.0


class ItemKNN:
    def __init__(self, config: ItemKNNConfig):
        self.config = config
        self.similarity = torch.zeros(config.n_items, config.n_items)

    def fit(self, train: SequenceBatch, user_ids: np.ndarray | None = None) -> "ItemKNN":
        events = split_events(train)
        keep = ~events.is_skip if self.config.negative_feedback else np.ones(len(events.row), bool)
        users_items = torch.zeros(len(train), self.config.n_items)
        users_items[events.row[keep], events.column[keep]] = 1.0
        co_occurrence = users_items.T @ users_items
        norms = co_occurrence.diagonal().sqrt().clamp(min=1e-12)
        self.similarity = (co_occurrence / norms[:, None] / norms[None, :]).fill_diagonal_(0.0)
        return self

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        c = self.config
        window = window_vectors(seqs, context_skips(context), c.n_items, c.negative_feedback, c.skip_weight)
        return window @ self.similarity.to(seqs.device)


@dataclass
class SessionKNNConfig:
    n_items: int
    max_seq_len: int = 50
    session_len: int = 10
    neighbors: int = 100
    negative_feedback: bool = False
    skip_weight: float = 1.0


class SessionKNN:
    def __init__(self, config: SessionKNNConfig):
        self.config = config
        self.sessions = torch.zeros(0, config.n_items).to_sparse()
        self.session_norms = torch.zeros(0)

    def fit(self, train: SequenceBatch, user_ids: np.ndarray | None = None) -> "SessionKNN":
        c = self.config
        events = split_events(train)
        chunk = events.age // c.session_len
        session = np.unique(np.stack([events.row, chunk], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
        n_sessions = int(session.max()) + 1 if len(session) else 0
        vectors = torch.zeros(n_sessions, c.n_items)
        is_skip = torch.from_numpy(events.is_skip)
        index = (torch.from_numpy(session), torch.from_numpy(events.column))
        if c.negative_feedback:
            vectors.index_put_(tuple(i[is_skip] for i in index), torch.tensor(-c.skip_weight))
            vectors.index_put_(tuple(i[~is_skip] for i in index), torch.tensor(1.0))  # consumed positively wins
        else:
            vectors.index_put_(index, torch.tensor(1.0))
        self.session_norms = vectors.norm(dim=1).clamp(min=1e-12)
        self.sessions = vectors.to_sparse()
        return self

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        c = self.config
        skips = context_skips(context)
        current = window_vectors(
            seqs[:, -c.session_len :], None if skips is None else skips[:, -c.session_len :],
            c.n_items, c.negative_feedback, c.skip_weight,
        )
        current = current / current.norm(dim=1, keepdim=True).clamp(min=1e-12)
        sessions = self.sessions.to(seqs.device)
        similarity = torch.sparse.mm(sessions, current.T).T / self.session_norms.to(seqs.device)  # [B, n_sessions] cosine
        top = similarity.topk(min(c.neighbors, similarity.shape[1]), dim=1)
        weights = torch.zeros_like(similarity).scatter_(1, top.indices, top.values.clamp(min=0))
        return torch.sparse.mm(sessions.t(), weights.T).T
