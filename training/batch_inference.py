"""Nightly batch inference with the date's champion: next-K items per active user, in bounded memory.

The model is the champion version recorded by that night's promotion decision
(``training.promotion.champion_for_date``), so re-running a date reproduces it.

For each chunk of ``cfg.inference.chunk_users`` users: score every item with
the champion (GPU when present), mask what the user already consumed
(``exclude_history``) and what they skipped in the last
``exclude_skipped_days`` days, take the top K. Published columns:

- ``score``: the model's score;
- ``soft_label``: predicted soft relevance on the next-K soft-target scale
  (1.0 / 0.6 / 0.3). Models with a soft-label head (S-MoE-BST) predict it per
  item; for the others it is calibrated per rank on tonight's validation split:
  the mean soft target that the item at rank r earned there;
- ``p_skip`` / ``predicted_completion``: per (user, item), from the night's outcome
  models (``training.outcomes``: fitted on the users' recent events as the champion
  scores them, calibrated, evaluated on held-out users).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from encore.core.config import EncoreConfig
from encore.core.contracts import RECOMMENDATION, arrow_schema
from encore.core.warehouse import query
from training.data import SEQUENCE_COLUMNS, SequenceData
from training.evaluation import score_batch
from training.inference import InferenceBundle, load_model_for_inference, recommend_top_k
from training.outcomes import fit_outcome_models, score_features, user_skip_rates
from training.promotion import champion_for_date
from training.specs import model_device
from training.user_features import attach_users

log = logging.getLogger(__name__)

SOFT_TARGETS = (1.0, 0.6)  # strengths of the valid and test targets, the next two positives after the valid input


def exclusion_mask(
    data: SequenceData, ts_us: np.ndarray, users: np.ndarray, cutoff_us: int, exclude_history: bool
) -> torch.Tensor:
    """``[len(users), n_items]`` True where an item must not be recommended to the user: items
    skipped at or after ``cutoff_us``, and with ``exclude_history`` every item consumed
    positively and every item of the user's older history (``earlier_item_ids``)."""
    mask = torch.zeros(len(users), data.n_items, dtype=torch.bool)
    starts, ends = data.offsets[users], data.offsets[users + 1]
    counts = ends - starts
    rows = np.repeat(np.arange(len(users)), counts)
    flat = np.repeat(starts, counts) + np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    skipped = data.is_skip[flat]
    drop = (skipped & (ts_us[flat] >= cutoff_us)) | (~skipped & exclude_history)
    items = data.items[flat]
    if exclude_history:
        older = data.earlier_offsets[users + 1] - data.earlier_offsets[users]
        first = np.repeat(data.earlier_offsets[users], older) + np.arange(int(older.sum())) \
            - np.repeat(np.cumsum(older) - older, older)
        rows = np.concatenate([rows, np.repeat(np.arange(len(users)), older)])
        items = np.concatenate([items, data.earlier[first]])
        drop = np.concatenate([drop, np.ones(len(first), dtype=bool)])
    drop &= items > 0  # 0 = item unknown to the model's vocabulary
    mask[torch.from_numpy(rows[drop]), torch.from_numpy(items[drop] - 1)] = True
    return mask


@torch.no_grad()
def soft_label_by_rank(bundle: InferenceBundle, data: SequenceData, k: int) -> np.ndarray:
    """Mean soft target of the item at each rank 1..k on the validation split."""
    valid = data.split("valid", bundle.max_seq_len)
    if len(valid) == 0:
        return np.zeros(k)
    ids, _ = recommend_top_k(bundle.model, valid.seq, k, True, context=valid)
    test_items = data.items[data.offsets[valid.user_index.numpy()] + data.test_idx[valid.user_index.numpy()]]
    earned = SOFT_TARGETS[0] * (ids == valid.target[:, None]).numpy()
    earned += SOFT_TARGETS[1] * (ids.numpy() == test_items[:, None])
    return np.clip(earned.mean(axis=0), 0.0, 1.0)


class Recommendations(NamedTuple):
    table: pa.Table  # RECOMMENDATION rows
    outcome_metrics: dict  # how well p_skip / predicted_completion predict held-out users' events


def recommend_with_champion(cfg: EncoreConfig, run_date: dt.date, bundle: InferenceBundle | None = None
                            ) -> Recommendations:
    """Top-K recommendations (RECOMMENDATION contract) for every user in the date's sequences."""
    if bundle is None:
        version = champion_for_date(cfg, run_date)
        bundle = load_model_for_inference(
            cfg, f"models:/{cfg.promotion.registered_model}/{version}", device=cfg.training.device
        )
    day = dt.date.fromisoformat(str(run_date))
    table = query(cfg, f"SELECT {', '.join(SEQUENCE_COLUMNS)} FROM fct_user_sequences WHERE run_date = ?",
                  [day]).sort_by("user_id")
    data = SequenceData.from_arrow(table, vocab=bundle.vocab)
    ts_us = pc.list_flatten(table.combine_chunks().column("event_ts")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    cutoff = dt.datetime.combine(day - dt.timedelta(days=cfg.inference.exclude_skipped_days - 1), dt.time(),
                                 dt.timezone.utc)
    cutoff_us = int(cutoff.timestamp() * 1_000_000)
    k = cfg.inference.k
    inputs = data.split("inference", bundle.max_seq_len)
    users = inputs.user_index.numpy()
    attach_users(bundle.model, data.user_ids, cfg, run_date)  # models with a user table look users up by id
    calibration = soft_label_by_rank(bundle, data, k)
    heads = getattr(bundle.model, "predict_soft_label_and_completion", None)

    device = model_device(bundle.model)
    outcomes = fit_outcome_models(bundle.model, data, bundle.max_seq_len, cfg.inference.outcome_events, device)
    out_users, out_items, out_scores, out_soft, out_skip, out_completion = [], [], [], [], [], []
    chunk = cfg.inference.chunk_users
    for start in range(0, len(users), chunk):
        rows = slice(start, start + chunk)
        batch = inputs.take(rows)
        with torch.no_grad():
            scores_all = score_batch(bundle.model, batch.to(device)).float().cpu()
        mask = exclusion_mask(data, ts_us, users[rows], cutoff_us, cfg.inference.exclude_history)
        scores, columns = scores_all.masked_fill(mask, float("-inf")).topk(min(k, data.n_items), dim=1)
        ids = columns + 1
        finite = torch.isfinite(scores)
        if not bool(finite.all()) or scores.shape[1] < k:
            short = data.user_ids[users[rows]][~finite.all(dim=1).numpy()]
            raise ValueError(f"fewer than {k} recommendable items for {len(short)} user(s), e.g. {short[:3].tolist()}")
        z, pct = score_features(scores_all, ids)
        p_skip, completion = outcomes.predict(z, pct, ids.numpy(), user_skip_rates(data, users[rows])[:, None])
        if heads is not None:
            with torch.no_grad():
                soft, _ = heads(batch.to(device), ids.to(device))
            out_soft.append(soft.float().cpu().numpy())
        else:
            out_soft.append(np.broadcast_to(calibration, ids.shape))
        out_users.append(np.repeat(data.user_ids[users[rows]], k))
        out_items.append(ids.numpy().reshape(-1))
        out_scores.append(scores.numpy().reshape(-1))
        out_skip.append(p_skip.reshape(-1))
        out_completion.append(completion.reshape(-1))
        log.info("inference: %d/%d users", min(start + chunk, len(users)), len(users))

    item_ids = bundle.vocab.decode(np.concatenate(out_items)) if out_items else []
    n = len(item_ids)
    now = dt.datetime.now(dt.timezone.utc)
    table = pa.Table.from_pydict(
        {
            "run_date": pa.array([day] * n, pa.date32()),
            "user_id": pa.array(np.concatenate(out_users) if n else [], pa.string()),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n // k if k else 0), pa.int32()),
            "item_id": pa.array(item_ids, pa.string()),
            "score": pa.array(np.concatenate(out_scores).astype(np.float64) if n else [], pa.float64()),
            "soft_label": pa.array(np.concatenate([s.reshape(-1) for s in out_soft]).astype(np.float64) if n else [],
                                   pa.float64()),
            "p_skip": pa.array(np.concatenate(out_skip).astype(np.float64) if n else [], pa.float64()),
            "predicted_completion": pa.array(np.concatenate(out_completion).astype(np.float64) if n else [],
                                             pa.float64()),
            "model_name": pa.array([bundle.model_name] * n, pa.string()),
            "model_version": pa.array([str(bundle.meta.get("model_version", ""))] * n, pa.string()),
            "created_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        },
        schema=arrow_schema(RECOMMENDATION),
    )
    return Recommendations(table, outcomes.metrics)
