"""WRMF (implicit ALS, Hu et al. 2008) and BPR through the ``implicit`` library.

Training matrix (users x items) from the training events:

* ``WRMF``: confidence ``alpha`` x (number of plays); with negative feedback
  ``alpha`` x (plays - ``skip_weight`` x skips). ``implicit`` reads a negative
  entry as preference 0 with confidence |value|, so a mostly-skipped item becomes
  a confident negative instead of an unobserved one.
* ``BPR``: every interacted item is a positive; with negative feedback skipped-only
  items are left out of the positives, so they can be drawn as negatives
  (``implicit`` samples negatives uniformly; it cannot prefer skipped ones).

Scoring uses the trained user factor when ``attach_users`` finds the user,
otherwise folds the window in with one ALS least-squares step on the item
factors (exact for WRMF's objective, an approximation for BPR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from training.baselines.base import event_weights, split_events
from training.data import PAD_ID, SequenceBatch, user_keys, user_rows


@dataclass
class WRMFConfig:
    n_items: int
    max_seq_len: int = 50
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    negative_feedback: bool = False
    skip_weight: float = 1.0
    seed: int = 0


@dataclass
class BPRConfig:
    n_items: int
    max_seq_len: int = 50
    factors: int = 64
    learning_rate: float = 0.05
    regularization: float = 0.01
    iterations: int = 100
    negative_feedback: bool = False
    seed: int = 0


class MatrixFactorization:
    """Factors from ``implicit``; subclasses build the matrix and the ``implicit`` model."""

    def __init__(self, config):
        self.config = config
        self.user_factors = torch.zeros(0, 0)
        self.item_factors = torch.zeros(0, 0)
        self.user_keys = np.zeros(0, dtype=np.int64)  # sorted; row r of user_factors = user_keys[r]
        self.row_of_user = torch.zeros(0, dtype=torch.long)

    def training_matrix(self, n_users: int, rows: np.ndarray, events) -> sp.csr_matrix:
        raise NotImplementedError

    def implicit_model(self):
        raise NotImplementedError

    def fit(self, train: SequenceBatch, user_ids: np.ndarray) -> "MatrixFactorization":
        """``user_ids``: ``SequenceData.user_ids`` (``train.user_index`` points into it)."""
        events = split_events(train)
        keys = user_keys(np.asarray(user_ids)[train.user_index.numpy()])
        order = np.argsort(keys)
        self.user_keys = keys[order]
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        matrix = self.training_matrix(len(keys), rank[events.row], events)
        with threadpool_limits(1, "blas"):  # implicit runs its own threads; nested BLAS threads slow it down
            model = self.implicit_model()
            model.fit(matrix, show_progress=False)
        self.user_factors = torch.from_numpy(np.asarray(model.user_factors, dtype=np.float32))
        self.item_factors = torch.from_numpy(np.asarray(model.item_factors, dtype=np.float32))
        return self

    def attach_users(self, user_ids: np.ndarray) -> "MatrixFactorization":
        self.row_of_user = torch.from_numpy(user_rows(self.user_keys, user_ids))
        return self

    def fold_in(self, seqs: torch.Tensor) -> torch.Tensor:
        """ALS user step for each window (items of the window = preference 1, confidence 1 + alpha)."""
        items = self.item_factors.to(seqs.device)
        present = (seqs != PAD_ID).float()
        y = items[(seqs - 1).clamp(min=0)] * present[..., None]  # [B, L, D]
        alpha = getattr(self.config, "alpha", 1.0)
        reg = self.config.regularization
        eye = torch.eye(items.shape[1], device=seqs.device)
        gram = items.T @ items + alpha * torch.einsum("bld,ble->bde", y, y) + reg * eye
        return torch.linalg.solve(gram, (1 + alpha) * y.sum(1))

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        users = self.fold_in(seqs)
        if context is not None and len(self.row_of_user):
            rows = self.row_of_user.to(seqs.device)[context.user_index]
            known = self.user_factors.to(seqs.device)[rows.clamp(min=0)]
            users = torch.where((rows >= 0)[:, None], known, users)
        return users @ self.item_factors.to(seqs.device).T


def _user_item_sums(n_users: int, n_items: int, rows: np.ndarray, columns: np.ndarray, values: np.ndarray) -> sp.csr_matrix:
    matrix = sp.csr_matrix((values.astype(np.float32), (rows, columns)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


class WRMF(MatrixFactorization):
    def training_matrix(self, n_users, rows, events) -> sp.csr_matrix:
        c = self.config
        weights = c.alpha * event_weights(events.is_skip, c.negative_feedback, c.skip_weight)
        return _user_item_sums(n_users, c.n_items, rows, events.column, weights)

    def implicit_model(self):
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        return AlternatingLeastSquares(
            factors=c.factors, regularization=c.regularization, iterations=c.iterations, random_state=c.seed, num_threads=1
        )


class BPR(MatrixFactorization):
    def training_matrix(self, n_users, rows, events) -> sp.csr_matrix:
        keep = ~events.is_skip if self.config.negative_feedback else np.ones(len(rows), bool)
        matrix = _user_item_sums(n_users, self.config.n_items, rows[keep], events.column[keep], np.ones(keep.sum()))
        matrix.data[:] = 1.0
        return matrix

    def implicit_model(self):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        return BayesianPersonalizedRanking(
            factors=c.factors, learning_rate=c.learning_rate, regularization=c.regularization,
            iterations=c.iterations, random_state=c.seed, num_threads=1,
        )
