"""Publishing: one transaction per date, re-runs replace, failures leave the previous rows."""

import datetime as dt

import pyarrow as pa
import pytest

from encore.core import warehouse
from encore.core.contracts import RECOMMENDATION, arrow_schema
from encore.core.warehouse import PublishError, connect, publish_recommendations


def _recs(run_date: str, users=("u1", "u2"), k=3, model_version="1") -> pa.Table:
    rows = [
        {
            "run_date": dt.date.fromisoformat(run_date), "user_id": u, "rank": r, "item_id": f"i{r}",
            "score": 1.0 / r, "soft_label": 0.5, "p_skip": 0.1, "predicted_completion": None,
            "model_name": "m", "model_version": model_version,
            "created_at": dt.datetime(2026, 10, 6, tzinfo=dt.timezone.utc),
        }
        for u in users for r in range(1, k + 1)
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema(RECOMMENDATION))


def _rows(cfg, sql):
    with connect(cfg, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_rerun_of_a_date_replaces_its_rows(cfg):
    publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05", model_version="1"))
    publish_recommendations(cfg, "2026-10-06", _recs("2026-10-06"))
    publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05", users=("u1",), model_version="2"))
    assert _rows(cfg, "SELECT run_date::VARCHAR, count(*), max(model_version) FROM recommendations GROUP BY 1 ORDER BY 1") == [
        ("2026-10-05", 3, "2"),
        ("2026-10-06", 6, "1"),
    ]
    assert _rows(cfg, "SELECT DISTINCT run_date::VARCHAR FROM recommendations_latest") == [("2026-10-06",)]


def test_failure_inside_the_transaction_keeps_previous_rows(cfg, monkeypatch):
    publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05", model_version="1"))

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(warehouse, "_verify_in_transaction", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05", users=("u9",), model_version="2"))
    assert _rows(cfg, "SELECT user_id, count(*), max(model_version) FROM recommendations GROUP BY 1 ORDER BY 1") == [
        ("u1", 3, "1"),
        ("u2", 3, "1"),
    ]


def test_rows_of_another_date_are_rejected(cfg):
    with pytest.raises(PublishError, match="other run dates"):
        publish_recommendations(cfg, "2026-10-05", _recs("2026-10-06"))


def test_duplicate_key_rolls_back(cfg):
    publish_recommendations(cfg, "2026-10-05", _recs("2026-10-05"))
    dup = pa.concat_tables([_recs("2026-10-05", users=("u7",)), _recs("2026-10-05", users=("u7",))])
    with pytest.raises(Exception, match="(?i)constraint|duplicate"):
        publish_recommendations(cfg, "2026-10-05", dup)
    assert _rows(cfg, "SELECT count(*) FROM recommendations") == [(6,)]
