"""Great Expectations gate on tonight's recommendations before they are published.

Checked: exactly K rows for every active user (and no other user), ranks 1..K
unique per user, every item known to ``dim_items``, finite scores, soft labels
and p_skip / predicted completion in [0,1]. A failure raises
``ValidationFailed`` so the publish task never runs and yesterday's rows stay.
"""

from __future__ import annotations

import great_expectations as gx
import numpy as np
import pandas as pd
import pyarrow as pa

from validations.gx import require, run_suite


def validate_recommendations(recs: pa.Table, active_users: list[str], known_items: list[str], k: int) -> dict:
    frame = recs.to_pandas()
    frame["score"] = frame["score"].replace([np.inf, -np.inf], np.nan)
    E = gx.expectations
    row_checks = [
        ("item not in dim_items", E.ExpectColumnValuesToBeInSet(column="item_id", value_set=list(known_items))),
        ("score not finite", E.ExpectColumnValuesToNotBeNull(column="score")),
        ("soft_label not in [0,1]", E.ExpectColumnValuesToBeBetween(column="soft_label", min_value=0, max_value=1)),
        ("soft_label null", E.ExpectColumnValuesToNotBeNull(column="soft_label")),
        ("p_skip not in [0,1]", E.ExpectColumnValuesToBeBetween(column="p_skip", min_value=0, max_value=1)),
        (
            "predicted_completion not in [0,1]",
            E.ExpectColumnValuesToBeBetween(column="predicted_completion", min_value=0, max_value=1),
        ),
        ("rank not in 1..K", E.ExpectColumnValuesToBeBetween(column="rank", min_value=1, max_value=k)),
        ("duplicate (user_id, rank)", E.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "rank"])),
        ("duplicate (user_id, item_id)", E.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "item_id"])),
    ]
    per_user = (
        pd.DataFrame({"user_id": list(active_users)})
        .merge(frame.groupby("user_id").size().rename("n_rows").reset_index(), on="user_id", how="outer")
        .assign(active=lambda d: d["user_id"].isin(set(active_users)))
        .fillna({"n_rows": 0})
    )
    user_checks = [
        (f"not exactly {k} rows per active user", E.ExpectColumnValuesToBeBetween(column="n_rows", min_value=k, max_value=k)),
        ("recommendations for an inactive user", E.ExpectColumnValuesToBeInSet(column="active", value_set=[True])),
    ]
    outcomes = run_suite(frame, "recommendations_rows", row_checks) + run_suite(per_user, "recommendations_users", user_checks)
    require("recommendations", outcomes)
    return {"rows": len(frame), "users": int(frame["user_id"].nunique()), "expectations": len(outcomes)}
