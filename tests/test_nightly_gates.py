"""The nightly gate between inference and publish: a failing recommendations check keeps yesterday's table."""

import datetime as dt

import pyarrow as pa
import pytest

from encore.core import lake
from encore.nightly import stages as nightly
from encore.core.contracts import RECOMMENDATION, SEQUENCE, arrow_schema
from encore.core.warehouse import connect, publish_recommendations
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


@pytest.fixture
def night(cfg):
    cfg.inference.k = 2
    now = dt.datetime(2026, 10, 6, tzinfo=dt.timezone.utc)
    sequences = pa.Table.from_pylist(
        [{"user_id": u, "item_ids": ["a", "b", "c"], "is_skip": [False, False, False],
          "completion": [1.0, 1.0, 1.0], "ts": [now] * 3, "valid_idx": 1, "test_idx": 2, "n_events": 3}
         for u in ("u1", "u2")],
        schema=arrow_schema(SEQUENCE),
    )
    for day in ("2026-10-05", "2026-10-06"):
        lake.write_partition(cfg, "sequences", day, sequences)
    with connect(cfg) as con:
        con.execute("CREATE TABLE dim_items AS SELECT DATE '2026-10-06' AS run_date, unnest(['a', 'b', 'c']) AS item_id")
    publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05", "c"))
    return cfg


def test_failed_recommendation_check_blocks_publish(night):
    lake.write_partition(night, "recommendations_staged", "2026-10-06", _recs("2026-10-06", "ghost-item"))
    with pytest.raises(ValidationFailed, match="item not in dim_items"):
        nightly.validate_recommendations(night, "2026-10-06")
    with connect(night, read_only=True) as con:
        assert con.execute("SELECT DISTINCT run_date::VARCHAR FROM recommendations_latest").fetchall() == [("2026-10-05",)]


def test_passing_check_then_publish(night):
    lake.write_partition(night, "recommendations_staged", "2026-10-06", _recs("2026-10-06", "c"))
    assert nightly.validate_recommendations(night, "2026-10-06")["users"] == 2
    assert nightly.publish(night, "2026-10-06")["published_rows"] == 4
