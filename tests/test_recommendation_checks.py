"""The recommendations gate: what must block a publish."""

import datetime as dt

import pyarrow as pa
import pytest

from encore.core.contracts import RECOMMENDATION, arrow_schema
from validations.gx import ValidationFailed
from validations.recommendations import validate_recommendations

ITEMS = ["a", "b", "c", "d"]


def _recs(rows):
    base = {"run_date": dt.date(2026, 10, 5), "p_skip": 0.2, "predicted_completion": None, "model_name": "m",
            "model_version": "1", "created_at": dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc)}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=arrow_schema(RECOMMENDATION))


def _good():
    return [
        {"user_id": u, "rank": r, "item_id": item, "score": 2.0 - r, "soft_label": 0.5}
        for u in ("u1", "u2") for r, item in ((1, "a"), (2, "b"))
    ]


def test_good_recommendations_pass():
    summary = validate_recommendations(_recs(_good()), ["u1", "u2"], ITEMS, k=2)
    assert summary["rows"] == 4 and summary["users"] == 2


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda rows: rows[:-1], "not exactly 2 rows per active user"),
        (lambda rows: [dict(r, item_id="zzz") if i == 0 else r for i, r in enumerate(rows)], "item not in dim_items"),
        (lambda rows: [dict(r, score=float("inf")) if i == 1 else r for i, r in enumerate(rows)], "score not finite"),
        (lambda rows: [dict(r, score=float("nan")) if i == 1 else r for i, r in enumerate(rows)], "score not finite"),
        (lambda rows: [dict(r, soft_label=1.3) if i == 2 else r for i, r in enumerate(rows)], "soft_label not in [0,1]"),
        (lambda rows: [dict(r, rank=1) for r in rows], "duplicate (user_id, rank)"),
        (lambda rows: rows + [dict(rows[0], user_id="ghost")], "recommendations for an inactive user"),
    ],
)
def test_bad_recommendations_fail_with_reason(mutate, reason):
    with pytest.raises(ValidationFailed) as err:
        validate_recommendations(_recs(mutate(_good())), ["u1", "u2"], ITEMS, k=2)
    assert reason in str(err.value)
