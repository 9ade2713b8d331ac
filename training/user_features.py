"""S-MoE-BST user inputs from the dbt ``user_features`` mart of a run date.

The model adds a projection of these numbers to its user embedding (input of the
gate and of every expert). Transforms are stateless, so training and inference
agree without stored statistics: counts and day gaps -> ``log1p``, shares and
mean completions stay in [0, 1], nulls (no events in a window) -> 0. A user the
mart does not know gets all zeros.

The mart is as of the run date, so for the validation/test targets of that date
the counts and rates include the held-out events (aggregates only, never which
item); at inference, the nightly's use, they describe exactly the input.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from encore.core.config import EncoreConfig

WINDOWS = ("short", "mid", "long")
LOG_COUNTS = tuple(f"{kind}_{w}" for w in WINDOWS for kind in ("plays", "positives", "sessions", "active_days")) + (
    "distinct_items_long", "plays_total", "days_since_last_event", "hard_pool_size")
SHARES = tuple(f"{kind}_{w}" for w in WINDOWS for kind in ("skip_rate", "mean_completion")) + ("abandon_rate_long",)
USER_FEATURE_COLUMNS = LOG_COUNTS + SHARES
HINT = "run the dbt feature marts for that date first, or train without them: ENCORE__TRAINING__USER_FEATURES=false"


def user_feature_matrix(table: pa.Table, user_ids: np.ndarray) -> np.ndarray:
    """``[len(user_ids), len(USER_FEATURE_COLUMNS)]`` float32 for the mart rows in ``table``."""
    missing = set(USER_FEATURE_COLUMNS) - set(table.column_names)
    if missing:
        raise ValueError(f"user_features lacks columns {sorted(missing)}")
    row_of = {user: row for row, user in enumerate(table.column("user_id").to_pylist())}
    rows = np.array([row_of.get(u, -1) for u in user_ids], dtype=np.int64)
    out = np.zeros((len(user_ids), len(USER_FEATURE_COLUMNS)), dtype=np.float32)
    known = rows >= 0
    for col, name in enumerate(USER_FEATURE_COLUMNS):
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        values = np.nan_to_num(values, nan=0.0)
        if name in LOG_COUNTS:
            if np.any(values < 0):
                raise ValueError(f"user_features.{name} has negative values")
            values = np.log1p(values)
        out[known, col] = values[rows[known]]
    return out


def load_user_features(cfg: EncoreConfig, run_date: str | dt.date, user_ids: np.ndarray) -> np.ndarray:
    """The warehouse ``user_features`` rows of ``run_date`` for ``user_ids`` (see module docstring)."""
    from encore.core.warehouse import WarehouseError, query

    try:
        table = query(cfg, f"SELECT user_id, {', '.join(USER_FEATURE_COLUMNS)} FROM user_features WHERE run_date = ?",
                      [str(run_date)])
    except WarehouseError as exc:  # no warehouse yet, or dbt has not built the mart
        raise FileNotFoundError(f"no user_features mart in the warehouse {cfg.paths.warehouse}: {exc} ({HINT})") from exc
    if table.num_rows == 0:
        raise FileNotFoundError(f"user_features has no rows for run_date {run_date} ({HINT})")
    return user_feature_matrix(table, user_ids)


def attach_users(model, user_ids: np.ndarray, cfg: EncoreConfig | None = None,
                 run_date: str | dt.date | None = None) -> None:
    """Bind ``user_ids`` to a model with a user table; S-MoE-BST trained with user
    features also gets the ``user_features`` mart rows of ``run_date``."""
    if not hasattr(model, "attach_users"):
        return
    if getattr(getattr(model, "config", None), "n_user_features", 0):
        if cfg is None or run_date is None:
            raise ValueError("this model reads user features: pass cfg and run_date")
        model.attach_users(user_ids, load_user_features(cfg, run_date, user_ids))
    else:
        model.attach_users(user_ids)
