"""Great Expectations gate on the features training reads, after dbt and before training.

dbt's schema tests guard each model's own invariants; this suite checks what
the trainers assume across the marts they read: non-empty inputs, aligned sequence
arrays with the validation target before the test target, training examples for the
sequences, rates in [0, 1] and one row per user / item for the run date.
"""

from __future__ import annotations

import great_expectations as gx
import pyarrow.compute as pc

from encore.core.config import EncoreConfig
from encore.core.warehouse import query
from validations.gx import require, run_suite


def validate_features(cfg: EncoreConfig, run_date: str) -> dict:
    E = gx.expectations
    sequences = query(cfg, "SELECT user_id, item_ids, is_skip, completion, valid_idx, test_idx "
                           "FROM fct_user_sequences WHERE run_date = ?", [run_date])
    lengths = pc.list_value_length(sequences["item_ids"])
    seq_frame = sequences.select(["user_id", "valid_idx", "test_idx"]).to_pandas()
    seq_frame["length"] = lengths.to_numpy()
    seq_frame["aligned"] = (
        (pc.list_value_length(sequences["is_skip"]).to_numpy() == seq_frame["length"])
        & (pc.list_value_length(sequences["completion"]).to_numpy() == seq_frame["length"])
    )
    seq_frame["valid_before_test"] = seq_frame["valid_idx"] < seq_frame["test_idx"]
    seq_frame["test_in_range"] = seq_frame["test_idx"] < seq_frame["length"]
    seq_checks = [
        ("sequences empty", E.ExpectTableRowCountToBeBetween(min_value=1)),
        ("sequences: duplicate user", E.ExpectColumnValuesToBeUnique(column="user_id")),
        ("sequences: arrays not aligned", E.ExpectColumnValuesToBeInSet(column="aligned", value_set=[True])),
        ("sequences: valid_idx not before test_idx",
         E.ExpectColumnValuesToBeInSet(column="valid_before_test", value_set=[True])),
        ("sequences: test_idx out of range", E.ExpectColumnValuesToBeInSet(column="test_in_range", value_set=[True])),
    ]
    examples = query(cfg, "SELECT count(*) AS n FROM fct_training_examples WHERE run_date = ? AND split = 'train'",
                     [run_date]).to_pandas()
    seq_checks.append(("fct_training_examples: no training targets",
                       E.ExpectColumnValuesToBeBetween(column="n", min_value=1)))
    items = query(cfg, "SELECT * FROM dim_items WHERE run_date = ?", [run_date]).to_pandas()
    users = query(cfg, "SELECT * FROM user_features WHERE run_date = ?", [run_date]).to_pandas()
    rate = lambda column: E.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1)  # noqa: E731
    item_checks = [
        ("dim_items empty", E.ExpectTableRowCountToBeBetween(min_value=1)),
        ("dim_items: duplicate item", E.ExpectColumnValuesToBeUnique(column="item_id")),
        ("dim_items: skip_rate_long not in [0,1]", rate("skip_rate_long")),
        ("dim_items: mean_completion_long not in [0,1]", rate("mean_completion_long")),
    ]
    user_checks = [
        ("user_features empty", E.ExpectTableRowCountToBeBetween(min_value=1)),
        ("user_features: duplicate user", E.ExpectColumnValuesToBeUnique(column="user_id")),
        ("user_features: skip_rate_long not in [0,1]", rate("skip_rate_long")),
        ("user_features: mean_completion_long not in [0,1]", rate("mean_completion_long")),
    ]
    outcomes = (
        run_suite(seq_frame, "features_sequences", seq_checks[:-1])
        + run_suite(examples, "features_examples", seq_checks[-1:])
        + run_suite(items, "features_dim_items", item_checks)
        + run_suite(users, "features_user_features", user_checks)
    )
    require(f"features for {run_date}", outcomes)
    return {"sequences": len(seq_frame), "items": len(items), "users": len(users), "expectations": len(outcomes)}
