"""The nightly gates: a failing recommendations check keeps yesterday's table; a night whose
models all fail the sanity floor promotes nothing and publishes nothing."""

import datetime as dt

import pyarrow as pa
import pytest

from encore.core import lake
from encore.nightly import stages as nightly
from encore.core.contracts import RECOMMENDATION, SEQUENCE, arrow_schema
from encore.core.warehouse import PublishError, connect, publish_recommendations
from toy_data import write_toy_marts
from validations.gx import ValidationFailed


def _recs(run_date: str, item_for_u2: str) -> pa.Table:
    rows = [
        {"run_date": dt.date.fromisoformat(run_date), "user_id": u, "rank": r, "item_id": item,
         "score": 1.0 / r, "soft_label": 0.5, "p_skip": 0.1, "predicted_completion": 0.8,
         "model_name": "m", "model_version": "1", "created_at": dt.datetime(2026, 10, 6, tzinfo=dt.timezone.utc)}
        for u, items in (("u1", ["a", "b"]), ("u2", ["b", item_for_u2]))
        for r, item in enumerate(items, 1)
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema(RECOMMENDATION))


D6 = dt.date(2026, 10, 6)


@pytest.fixture
def night(cfg):
    cfg.inference.k = 2
    now = dt.datetime(2026, 10, 6, tzinfo=dt.timezone.utc)
    sequences = pa.Table.from_pylist(
        [{"user_id": u, "item_ids": ["a", "b", "c"], "is_skip": [False, False, False], "completion": [1.0, 1.0, 1.0],
          "ts": [now] * 3, "valid_idx": 1, "test_idx": 2, "earlier_item_ids": [], "n_events": 3}
         for u in ("u1", "u2")],
        schema=arrow_schema(SEQUENCE),
    )
    for day in ("2026-10-05", "2026-10-06"):
        write_toy_marts(cfg, day, sequences)  # fct_user_sequences, fct_training_examples, dim_items (a, b, c)
    publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05", "c"))
    return cfg


def test_failed_recommendation_check_blocks_publish(night):
    lake.write_partition(night, "recommendations_staged", "2026-10-06", _recs("2026-10-06", "ghost-item"))
    with pytest.raises(ValidationFailed, match="item not in dim_items"):
        nightly.validate_recommendations(night, D6)
    with pytest.raises(PublishError, match="have not passed validate_recommendations"):
        nightly.publish(night, D6)  # cleared and run alone: still refuses
    with connect(night, read_only=True) as con:
        assert con.execute("SELECT DISTINCT run_date::VARCHAR FROM recommendations_latest").fetchall() == [("2026-10-05",)]


def test_passing_check_then_publish(night):
    lake.write_partition(night, "recommendations_staged", "2026-10-06", _recs("2026-10-06", "c"))
    assert nightly.validate_recommendations(night, D6)["users"] == 2
    assert nightly.publish(night, D6)["published_rows"] == 4


def test_publish_refuses_rows_changed_after_the_check(night):
    lake.write_partition(night, "recommendations_staged", "2026-10-06", _recs("2026-10-06", "c"))
    nightly.validate_recommendations(night, D6)
    lake.write_partition(night, "recommendations_staged", "2026-10-06", _recs("2026-10-06", "a"))
    with pytest.raises(PublishError, match="or changed since"):
        nightly.publish(night, D6)


def test_night_whose_models_all_fail_the_floor_promotes_nothing(night):
    from training.promotion import champion_for_date

    nan = float("nan")
    trained = [{"model_name": "sasrec+cl_item", "model_version": "1", "valid": {"ndcg@10": nan, "skip_mrr": nan}},
               {"model_name": "smoe_bst+phns_medium", "model_version": "2",
                "valid": {"ndcg@10": 0.4, "score_std_median": 0.0}}]
    decision = nightly.promote(night, D6, trained)
    assert decision["promoted"] is False and decision["challenger"] is None
    assert "sasrec+cl_item: ndcg@10 is nan" in decision["reason"]
    assert "smoe_bst+phns_medium: its scores are constant per user" in decision["reason"]
    with pytest.raises(LookupError, match="no champion yet"):
        champion_for_date(night, "2026-10-06")
