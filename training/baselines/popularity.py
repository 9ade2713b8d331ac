"""Most-popular baselines: global and recent-window popularity.

score(i) = sum of event weights of item i in the training events (each event +1;
with negative feedback a skip counts ``-skip_weight``). ``recent_events`` > 0
counts only each user's last ``recent_events`` training events (what is popular
*now*; the sequences carry no global clock, so recency is per user).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.baselines.base import event_weights, split_events
from training.data import SequenceBatch


@dataclass
class PopularityConfig:
    n_items: int
    max_seq_len: int = 50
    recent_events: int = 0  # 0 = all training events
    negative_feedback: bool = False
    skip_weight: float = 1.0


class MostPopular:
    def __init__(self, config: PopularityConfig):
        self.config = config
        self.item_scores = torch.zeros(config.n_items)

    def fit(self, train: SequenceBatch, user_ids: np.ndarray | None = None) -> "MostPopular":
        events = split_events(train)
        keep = events.age < self.config.recent_events if self.config.recent_events else np.ones(len(events.age), bool)
        weights = event_weights(events.is_skip[keep], self.config.negative_feedback, self.config.skip_weight)
        counts = np.bincount(events.column[keep], weights=weights, minlength=self.config.n_items)
        self.item_scores = torch.from_numpy(counts.astype(np.float32))
        return self

    def score_all(self, seqs: torch.Tensor, context: SequenceBatch | None = None) -> torch.Tensor:
        return self.item_scores.to(seqs.device).expand(seqs.shape[0], -1)
