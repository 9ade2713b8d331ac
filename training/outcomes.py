"""``p_skip`` and ``predicted_completion`` of the published lists: per-(user, item) predictions.

Whatever model is champion, these read what any champion gives for a (user, item) pair
at the user's history, plus what the night's events say about the item and the user:

* ``score_z``: the champion's score of the item, standardised over all items for that user;
* ``score_pct``: the item's rank percentile among all items for that user (1 = top);
* ``item_skip_rate``, ``item_log_plays``: the item's skip rate and log1p play count among
  the events of the users the models are fitted on (so no evaluated label leaks in);
* ``user_skip_rate``: the user's skip rate over the events before the scored one.

Examples: each user's last ``inference.outcome_events`` events, each scored by the champion
from the window before it, labelled with its skip flag and completion. Users are split by a
hash of their id into fit (60 %), calibration (20 %) and evaluation (20 %) groups: a
logistic regression fitted on the first is calibrated by an isotonic regression on the
second; the third reports log-loss, AUC and expected calibration error (ECE) against the
baseline that predicts each item's skip rate. Completion: a least-squares linear model on
the same features, clipped to [0, 1], reported as MAE against the item-mean baseline.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from training.data import SequenceData
from training.evaluation import score_batch

log = logging.getLogger(__name__)

FEATURES = ("score_z", "score_pct", "item_skip_rate", "item_log_plays", "user_skip_rate")
GROUPS = ("fit", "calibrate", "evaluate")
ECE_BINS = 10


def user_group(user_ids: np.ndarray) -> np.ndarray:
    """0 fit / 1 calibrate / 2 evaluate, from a stable hash of each user id (60 / 20 / 20)."""
    buckets = np.asarray([int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=4).digest(), "little") % 5
                          for u in user_ids])
    return np.select([buckets < 3, buckets == 3], [0, 1], 2)


def score_features(scores: torch.Tensor, items: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(score_z, score_pct) ``[B, M]`` of the item ids ``items`` ``[B, M]`` among each row's
    scores ``[B, n_items]`` (column = id - 1)."""
    scores = torch.nan_to_num(scores.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)
    picked = scores.gather(1, (items - 1).clamp(min=0))
    mean, std = scores.mean(dim=1, keepdim=True), scores.std(dim=1, keepdim=True).clamp(min=1e-6)
    below = torch.searchsorted(scores.sort(dim=1).values, picked.contiguous(), right=False).float() / scores.shape[1]
    return ((picked - mean) / std).numpy(), below.numpy()


@dataclass
class ItemRates:
    """Item skip rate and play count over the fit users' events (unseen items: the global rate)."""

    skip_rate: np.ndarray  # [n_items + 1] by id
    log_plays: np.ndarray  # [n_items + 1]

    @classmethod
    def of(cls, data: SequenceData, users: np.ndarray) -> "ItemRates":
        counts = np.diff(data.offsets)[users]
        flat = np.repeat(data.offsets[users], counts) + np.arange(int(counts.sum())) - np.repeat(
            np.cumsum(counts) - counts, counts)
        items, skipped = data.items[flat], data.is_skip[flat].astype(np.float64)
        plays = np.bincount(items, minlength=data.n_items + 1).astype(np.float64)
        skips = np.bincount(items, weights=skipped, minlength=data.n_items + 1)
        overall = skipped.mean() if len(skipped) else 0.0
        rate = np.where(plays > 0, skips / np.maximum(plays, 1), overall)
        return cls(rate, np.log1p(plays))


@torch.no_grad()
def outcome_examples(model, data: SequenceData, max_seq_len: int, n_events: int, device: torch.device | str = "cpu",
                     chunk: int = 1024) -> dict[str, np.ndarray]:
    """Each user's last ``n_events`` events (with at least one event before): the window before
    the event scored by ``model``; returns the score features, the event's item, its labels,
    the user's prefix skip rate and the user row."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    lengths = np.diff(data.offsets)
    take = np.minimum(np.maximum(lengths - 1, 0), n_events)
    users = np.repeat(np.arange(data.n_users), take)
    ends = np.repeat(lengths, take) - (np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)) - 1
    batch = data.windows(users, ends, max_seq_len)
    z, pct = [], []
    for start in range(0, len(batch), chunk):
        part = batch.take(slice(start, start + chunk))
        scores = score_batch(model, part.to(device)).float().cpu()
        features = score_features(scores, part.target[:, None])
        z.append(features[0][:, 0])
        pct.append(features[1][:, 0])
    flat = data.offsets[users] + ends
    prefix_skips = np.concatenate([[0.0], np.cumsum(data.is_skip.astype(np.float64))])
    before = ends.astype(np.float64)
    user_rate = (prefix_skips[flat] - prefix_skips[data.offsets[users]]) / np.maximum(before, 1)
    return {"score_z": np.concatenate(z) if z else np.zeros(0), "score_pct": np.concatenate(pct) if pct else np.zeros(0),
            "item": data.items[flat], "is_skip": data.is_skip[flat].astype(np.float64),
            "completion": data.completion[flat].astype(np.float64), "user_skip_rate": user_rate, "user": users}


def _matrix(score_z, score_pct, items, user_rate, rates: ItemRates) -> np.ndarray:
    return np.column_stack([score_z, score_pct, rates.skip_rate[items], rates.log_plays[items], user_rate])


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict]]:
    """ECE over equal-width probability bins, and the reliability table (mean predicted vs observed)."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            predicted, observed = float(p[inside].mean()), float(y[inside].mean())
            ece += inside.mean() * abs(predicted - observed)
            table.append({"bin": b, "predicted": predicted, "observed": observed, "n": int(inside.sum())})
    return float(ece), table


@dataclass
class OutcomeModels:
    """Calibrated skip classifier and completion regressor of one night's champion."""

    skip: LogisticRegression | None
    calibration: IsotonicRegression | None
    completion: LinearRegression | None
    rates: ItemRates
    base_skip_rate: float
    metrics: dict = field(default_factory=dict)

    def predict(self, score_z, score_pct, items, user_rate) -> tuple[np.ndarray, np.ndarray]:
        """(p_skip, predicted_completion) for item ids ``items`` with their features (any shape)."""
        shape = np.shape(items)
        x = _matrix(*(np.ravel(a) for a in (score_z, score_pct, items, np.broadcast_to(user_rate, shape))), self.rates)
        if self.skip is None:
            p_skip = np.full(len(x), self.base_skip_rate)
        else:
            p_skip = self.calibration.predict(self.skip.predict_proba(x)[:, 1])
        completion = np.clip(self.completion.predict(x), 0, 1) if self.completion is not None else np.ones(len(x))
        return p_skip.reshape(shape), completion.reshape(shape)


def fit_outcome_models(model, data: SequenceData, max_seq_len: int, n_events: int,
                       device: torch.device | str = "cpu") -> OutcomeModels:
    """Fit, calibrate and evaluate the skip and completion models on the night's events."""
    examples = outcome_examples(model, data, max_seq_len, n_events, device)
    group = user_group(data.user_ids)[examples["user"]]
    rates = ItemRates.of(data, np.flatnonzero(user_group(data.user_ids) == 0))
    x = _matrix(examples["score_z"], examples["score_pct"], examples["item"], examples["user_skip_rate"], rates)
    y, completion = examples["is_skip"], examples["completion"]
    fit, calibrate, evaluate = (group == g for g in range(3))
    base = float(y[fit].mean()) if fit.any() else 0.0
    metrics = {"examples": int(len(y)), "fit_examples": int(fit.sum()), "evaluate_examples": int(evaluate.sum()),
               "skip_rate": base}
    skip = calibration = None
    if len(np.unique(y[fit])) == 2 and calibrate.any():
        skip = LogisticRegression(max_iter=1000).fit(x[fit], y[fit])
        calibration = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
            skip.predict_proba(x[calibrate])[:, 1], y[calibrate])
    completion_model = LinearRegression().fit(x[fit], completion[fit]) if fit.any() else None
    models = OutcomeModels(skip, calibration, completion_model, rates, base)
    if evaluate.any():
        p, predicted_completion = models.predict(x[evaluate, 0], x[evaluate, 1], examples["item"][evaluate],
                                                 x[evaluate, 4])
        item_rate = np.clip(rates.skip_rate[examples["item"][evaluate]], 1e-6, 1 - 1e-6)
        truth = y[evaluate]
        ece, reliability = expected_calibration_error(p, truth)
        metrics.update({
            "skip_log_loss": float(log_loss(truth, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
            "skip_log_loss_item_rate": float(log_loss(truth, item_rate, labels=[0, 1])),
            "skip_auc": float(roc_auc_score(truth, p)) if len(np.unique(truth)) == 2 else float("nan"),
            "skip_auc_item_rate": float(roc_auc_score(truth, item_rate)) if len(np.unique(truth)) == 2 else float("nan"),
            "skip_ece": ece,
            "completion_mae": float(np.abs(predicted_completion - completion[evaluate]).mean()),
            "completion_mae_item_mean": float(np.abs(_item_means(examples, fit, data.n_items)[examples["item"][evaluate]]
                                                     - completion[evaluate]).mean()),
            "reliability": reliability,
        })
    models.metrics = metrics
    log.info("outcome models: %s", {k: v for k, v in metrics.items() if k != "reliability"})
    return models


def _item_means(examples: dict, fit: np.ndarray, n_items: int) -> np.ndarray:
    items, completion = examples["item"][fit], examples["completion"][fit]
    plays = np.bincount(items, minlength=n_items + 1)
    sums = np.bincount(items, weights=completion, minlength=n_items + 1)
    overall = completion.mean() if len(completion) else 1.0
    return np.where(plays > 0, sums / np.maximum(plays, 1), overall)


def user_skip_rates(data: SequenceData, users: np.ndarray) -> np.ndarray:
    """Each user's skip rate over all their events (the feature at inference time)."""
    prefix = np.concatenate([[0.0], np.cumsum(data.is_skip.astype(np.float64))])
    counts = np.diff(data.offsets)
    return ((prefix[data.offsets[1:]] - prefix[data.offsets[:-1]]) / np.maximum(counts, 1))[users]
