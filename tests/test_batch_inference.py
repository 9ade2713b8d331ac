"""The production inference path: what the nightly publishes (recommend_with_champion) and the
two rules under it, exclusion (exclusion_mask) and the soft-label calibration (soft_label_by_rank)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
import torch

from encore.core.contracts import RECOMMENDATION, arrow_schema
from training.batch_inference import exclusion_mask, recommend_with_champion, soft_label_by_rank
from training.data import ItemVocab, SequenceData
from training.inference import InferenceBundle
from toy_data import toy_sequence_table, write_toy_marts

DAY = dt.datetime(2026, 10, 30, tzinfo=dt.timezone.utc)


def _us(day_offset: int) -> int:
    return int((DAY + dt.timedelta(days=day_offset)).timestamp() * 1_000_000)


def test_exclusion_mask_drops_consumed_recently_skipped_and_older_items():
    # x: a (consumed), b (skipped 40 days ago), c (skipped yesterday), d (consumed); older history: e
    table = pa.Table.from_pylist([{
        "user_id": "x", "item_ids": ["a", "b", "c", "d"], "is_skip": [False, True, True, False],
        "completion": [1.0, 0.1, 0.1, 1.0], "valid_idx": 0, "test_idx": 3, "earlier_item_ids": ["e"]}])
    data = SequenceData.from_arrow(table, vocab=ItemVocab(list("abcdefg")))
    ts = np.array([_us(-50), _us(-40), _us(-1), _us(0)])
    mask = exclusion_mask(data, ts, np.array([0]), cutoff_us=_us(-29), exclude_history=True)
    assert [item for item, m in zip("abcdefg", mask[0].tolist()) if m] == ["a", "c", "d", "e"]  # b may come back
    mask = exclusion_mask(data, ts, np.array([0]), cutoff_us=_us(-29), exclude_history=False)
    assert [item for item, m in zip("abcdefg", mask[0].tolist()) if m] == ["c"]


class Fixed(torch.nn.Module):
    """Scores: item i gets -i (item 1 best), the same for every user."""

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = type("Config", (), {"max_seq_len": 4})()

    def score_all(self, seqs: torch.Tensor, context=None) -> torch.Tensor:
        return -torch.arange(1, self.n_items + 1, dtype=torch.float32).repeat(len(seqs), 1) + 0 * self.weight


def test_soft_label_by_rank_is_the_mean_soft_target_earned_at_each_rank():
    # the top-2 list (validation, history excluded) of both users; their valid target earns 1.0,
    # their test target (the next positive after it) 0.6 at the rank where it appears
    table = pa.Table.from_pylist([
        {"user_id": "u1", "item_ids": ["e", "a", "b"], "is_skip": [False] * 3, "completion": [1.0] * 3,
         "valid_idx": 1, "test_idx": 2},  # valid input e -> list a b: a (valid) at 1, b (test) at 2
        {"user_id": "u2", "item_ids": ["a", "c", "d"], "is_skip": [False] * 3, "completion": [1.0] * 3,
         "valid_idx": 1, "test_idx": 2},  # valid input a -> list b c: c (valid) at 2, d nowhere
    ])
    data = SequenceData.from_arrow(table, vocab=ItemVocab(list("abcde")))
    bundle = InferenceBundle(Fixed(5), data.vocab, "fixed")
    assert soft_label_by_rank(bundle, data, k=2).tolist() == pytest.approx([(1.0 + 0.0) / 2, (0.6 + 1.0) / 2])


def test_recommend_with_champion_publishes_k_valid_rows_per_user(cfg):
    table = toy_sequence_table(n_users=12, n_items=40, min_len=4, max_len=6, seed=4)
    write_toy_marts(cfg, "2026-10-30", table)
    vocab = ItemVocab(sorted({i for row in table.column("item_ids").to_pylist() for i in row}))
    bundle = InferenceBundle(Fixed(vocab.n_items), vocab, "fixed", {"model_version": "7"})
    cfg.inference.k = 3
    recs, outcome_metrics = recommend_with_champion(cfg, dt.date(2026, 10, 30), bundle)
    assert recs.schema == arrow_schema(RECOMMENDATION)
    assert outcome_metrics["examples"] > 0 and "skip_auc" in outcome_metrics
    rows = recs.to_pylist()
    assert len(rows) == 3 * 12 and {r["model_version"] for r in rows} == {"7"}
    by_user: dict[str, list] = {}
    for r in rows:
        by_user.setdefault(r["user_id"], []).append(r)
    for seq in table.to_pylist():
        got = sorted(by_user[seq["user_id"]], key=lambda r: r["rank"])
        assert [r["rank"] for r in got] == [1, 2, 3]
        consumed = {i for i, skip in zip(seq["item_ids"], seq["is_skip"]) if not skip}
        assert not consumed & {r["item_id"] for r in got}  # never an item the user already played
        # the fixed scorer's best items that are allowed, in order
        allowed = [i for i in vocab.item_ids if i not in consumed and i not in
                   {i for i, skip in zip(seq["item_ids"], seq["is_skip"]) if skip}]
        assert [r["item_id"] for r in got] == allowed[:3]
        assert all(0.0 <= r["soft_label"] <= 1.0 and 0.0 <= r["p_skip"] <= 1.0 for r in got)
        assert all(0.0 <= r["predicted_completion"] <= 1.0 for r in got)


def test_a_champion_that_reads_event_times_is_given_the_marts_times(cfg):
    from training.models import SASRec, SASRecConfig

    class TimeReadingSASRec(SASRec):
        gaps_seen: list[torch.Tensor] = []

        def encode(self, seqs, context=None):
            self.gaps_seen.append(context.gap_seconds[seqs != 0])
            return super().encode(seqs, context)

    table = toy_sequence_table(n_users=12, n_items=40, min_len=4, max_len=6, seed=4)  # events 3 minutes apart
    write_toy_marts(cfg, "2026-10-30", table)
    vocab = ItemVocab(sorted({i for row in table.column("item_ids").to_pylist() for i in row}))
    model = TimeReadingSASRec(SASRecConfig(n_items=vocab.n_items, max_seq_len=8, hidden=16, layers=1, heads=2,
                                           time_embedding=True)).eval()
    cfg.inference.k = 3
    recs, _ = recommend_with_champion(cfg, dt.date(2026, 10, 30), InferenceBundle(model, vocab, "sasrec", {}))
    assert recs.num_rows == 3 * 12
    gaps = torch.cat(TimeReadingSASRec.gaps_seen)
    # every event but a user's first is read 180 s after the previous one (-1: the first, unknown)
    assert set(gaps.tolist()) == {-1, 180}
