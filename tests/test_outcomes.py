"""p_skip / predicted_completion models (training.outcomes) on data where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.outcomes import expected_calibration_error, fit_outcome_models, score_features, user_group
from toy_data import toy_data


class CycleScorer:
    """Scores the successor of the window's newest positive item highest: on toy data (positives
    walk a cycle, skips are random items) a good ranker, so a skipped event scores low."""

    def __init__(self, n_items: int, data):
        self.n_items, self.data = n_items, data

    def score_all(self, seqs: torch.Tensor, context=None) -> torch.Tensor:
        scores = torch.zeros(len(seqs), self.n_items)
        for row, seq in enumerate(seqs.tolist()):
            last = [i for i in seq if i][-1] if any(seq) else 0
            names = self.data.vocab.decode(np.array([last])) if last else ["i000"]
            successor = (int(names[0][1:]) + 1) % self.n_items
            scores[row, int(self.data.vocab.encode([f"i{successor:03d}"])[0]) - 1] = 5.0
            scores[row] += torch.linspace(0, 0.01, self.n_items)
        return scores


def test_score_features_by_hand():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    z, pct = score_features(scores, torch.tensor([[4, 1]]))
    std = float(torch.tensor([1.0, 2.0, 3.0, 4.0]).std())
    assert z[0].tolist() == pytest.approx([(4 - 2.5) / std, (1 - 2.5) / std], rel=1e-5)
    assert pct[0].tolist() == pytest.approx([0.75, 0.0])  # share of items scoring below


def test_ece_by_hand():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0.0, 1.0, 1.0, 1.0])
    ece, table = expected_calibration_error(p, y, bins=10)
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert [(r["bin"], r["n"]) for r in table] == [(1, 2), (9, 2)]


def test_users_split_60_20_20_stably():
    groups = user_group(np.array([f"u{i}" for i in range(5000)]))
    shares = np.bincount(groups, minlength=3) / 5000
    assert shares == pytest.approx([0.6, 0.2, 0.2], abs=0.03)
    assert (user_group(np.array(["u1", "u2"])) == groups[1:3]).all()


def test_skip_model_learns_from_the_champions_scores_and_is_calibrated():
    data = toy_data(n_users=400, n_items=30, skip_rate=0.3, seed=5, min_len=8, max_len=12)
    models = fit_outcome_models(CycleScorer(data.n_items, data), data, max_seq_len=8, n_events=6)
    m = models.metrics
    assert m["evaluate_examples"] > 300
    assert m["skip_auc"] > 0.85 > m["skip_auc_item_rate"]  # the score separates skips; item rates cannot
    assert m["skip_log_loss"] < m["skip_log_loss_item_rate"]
    assert m["skip_ece"] < 0.08
    assert m["completion_mae"] < m["completion_mae_item_mean"]  # toy completion: 0.1 skipped, 1.0 played
