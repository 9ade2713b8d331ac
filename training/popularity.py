"""Most-popular recommender: the cold-start champion and the floor every model must beat.

Popularity = non-skipped plays over a recent window; each active user gets the
top-K items they have not consumed. ``soft_label`` is the item's share of
engaged plays among its plays (its empirical chance of being a positive), and
``p_skip`` its observed skip rate, so the published columns mean the same for
every model.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from encore.config import EncoreConfig

MODEL_NAME = "popularity"


def recommend_popular(
    cfg: EncoreConfig, run_date: str | dt.date, window_days: int = 7, model_version: str = "0"
) -> pa.Table:
    """Top-K recent popular items per user active in the lookback, history excluded."""
    run_date = dt.date.fromisoformat(str(run_date))
    k = cfg.inference.k
    events = f"{cfg.lake_path('sessionized_events')}/*/*.parquet"
    query = f"""
        WITH events AS (
            SELECT user_id, item_id, ts, is_skip
            FROM read_parquet('{events}', hive_partitioning = true)
            WHERE dt <= $run_date AND dt > $run_date - INTERVAL {cfg.sessions.lookback_days} DAY
        ),
        item_stats AS (
            SELECT item_id,
                   count(*) FILTER (WHERE NOT is_skip) AS engaged_plays,
                   count(*) AS plays,
                   avg(is_skip::DOUBLE) AS skip_rate
            FROM events
            WHERE ts >= $run_date - INTERVAL {window_days - 1} DAY
            GROUP BY item_id
        ),
        candidates AS (
            SELECT * FROM item_stats
            ORDER BY engaged_plays DESC, item_id
            LIMIT $k + (SELECT max(n) FROM (SELECT count(DISTINCT item_id) AS n FROM events GROUP BY user_id))
        ),
        users AS (SELECT DISTINCT user_id FROM events),
        history AS (SELECT DISTINCT user_id, item_id FROM events),
        ranked AS (
            SELECT u.user_id, c.item_id, c.engaged_plays, c.plays, c.skip_rate,
                   row_number() OVER (PARTITION BY u.user_id ORDER BY c.engaged_plays DESC, c.item_id) AS rank
            FROM users u CROSS JOIN candidates c
            ANTI JOIN history h ON h.user_id = u.user_id AND h.item_id = c.item_id
        )
        SELECT $run_date::DATE AS run_date, user_id, rank::INTEGER AS rank, item_id,
               engaged_plays::DOUBLE / (SELECT max(engaged_plays) FROM item_stats) AS score,
               engaged_plays::DOUBLE / plays AS soft_label,
               skip_rate AS p_skip,
               NULL::DOUBLE AS predicted_completion,
               '{MODEL_NAME}' AS model_name,
               $model_version AS model_version,
               now() AS created_at
        FROM ranked WHERE rank <= $k
        ORDER BY user_id, rank
    """
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(query, {"run_date": run_date, "k": k, "model_version": model_version}).to_arrow_table()
