"""PHNS negative pools and per-user negative samples (issue #4, step 3; seed 003).

Pools, as of the run date over the lookback window:
- ``hard``: items the user skipped or abandoned and never consumed positively, hardest
  first (lowest engagement, then most recent);
- ``trending``: the ``phns.pool_size`` items with the most users over the last
  ``phns.trending_window_days`` days that the user never interacted with;
- ``tailing``: the ``phns.pool_size`` least popular items with support (distinct users)
  of at least ``phns.tailing_min_support``, not trending, that the user never interacted with.

Samples: for each named mix (share of hard negatives) ``phns.n_negatives`` per user, the
rest split evenly between trending and tailing; a pool that is too small is filled from
the others (counted). ``UNIFORM`` draws from all items the user never interacted with.
Selection inside a pool is ordered by ``xxhash64(seed, run date, user, item)``, so a run is
reproducible and a larger hard share extends a smaller one.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from encore.config import EncoreConfig, load_config
from encore.contracts import PHNS_NEGATIVE, PHNS_POOL
from spark_jobs.lake import lookback_window, write_partition
from spark_jobs.session import configure_session, get_spark
from spark_jobs.sessionize import build_sessionized, parse_run_date

log = logging.getLogger(__name__)

POOL_PRIORITY = "CASE pool WHEN 'hard' THEN 0 WHEN 'trending' THEN 1 ELSE 2 END"
UNIFORM_MIX = "UNIFORM"


def summarize_user_items(sessionized: DataFrame) -> DataFrame:
    """One row per (user, item): positive consumption, negative feedback, engagement, recency."""
    return sessionized.groupBy("user_id", "item_id").agg(
        F.max(~F.col("is_skip") & ~F.col("is_abandoned")).alias("consumed_positive"),
        F.max(F.col("is_skip") | F.col("is_abandoned")).alias("negative_feedback"),
        F.min("engagement").alias("min_engagement"),
        F.max("ts").alias("last_ts"),
    )


def global_pools(spark: SparkSession, user_items: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    """Item-level trending and tailing lists (pool, item_id, global_rank); small, collected."""
    trending_start = run_date - dt.timedelta(days=cfg.phns.trending_window_days - 1)
    support = user_items.groupBy("item_id").agg(
        F.count("*").alias("users"),
        F.sum(F.when(F.to_date("last_ts") >= F.lit(trending_start), 1).otherwise(0)).alias("recent_users"),
    ).persist()
    size = cfg.phns.pool_size
    trending = [
        r.item_id
        for r in support.where("recent_users > 0").orderBy(F.desc("recent_users"), "item_id").limit(size).collect()
    ]
    tailing = [
        r.item_id
        for r in support.where((F.col("users") >= cfg.phns.tailing_min_support) & ~F.col("item_id").isin(trending))
        .orderBy("users", "item_id")
        .limit(size)
        .collect()
    ]
    support.unpersist()
    rows = [("trending", item, rank) for rank, item in enumerate(trending, 1)]
    rows += [("tailing", item, rank) for rank, item in enumerate(tailing, 1)]
    return spark.createDataFrame(rows, "pool string, item_id string, global_rank int")


def build_phns_pools(spark: SparkSession, user_items: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    """PHNS_POOL rows: per-user hard pool plus the global pools minus the user's items."""
    hard = user_items.where("negative_feedback AND NOT consumed_positive").select(
        "user_id",
        F.lit("hard").alias("pool"),
        "item_id",
        F.expr(
            "CAST(row_number() OVER (PARTITION BY user_id ORDER BY min_engagement, last_ts DESC, item_id) AS INT)"
        ).alias("pool_rank"),
    ).where(F.col("pool_rank") <= cfg.phns.pool_size)
    users = user_items.select("user_id").distinct()
    not_seen = (
        users.crossJoin(F.broadcast(global_pools(spark, user_items, cfg, run_date)))
        .join(user_items.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti")
        .select(
            "user_id",
            "pool",
            "item_id",
            F.expr("CAST(row_number() OVER (PARTITION BY user_id, pool ORDER BY global_rank) AS INT)").alias(
                "pool_rank"
            ),
        )
    )
    return hard.unionByName(not_seen)


def _sample_hash(cfg: EncoreConfig, run_date: dt.date, key: str) -> str:
    return f"xxhash64({int(cfg.phns.seed)}, '{run_date.isoformat()}', user_id, {key})"


def mix_quotas(spark: SparkSession, pools: DataFrame, cfg: EncoreConfig) -> DataFrame:
    """Per (user, mix): how many negatives to take from each pool (n_hard, n_trending, n_tailing)."""
    n = cfg.phns.n_negatives
    mixes = spark.createDataFrame(
        [(name, int(round(n * share))) for name, share in cfg.phns.mixes.items()], "mix string, want_hard int"
    )
    sizes = pools.groupBy("user_id").agg(
        *(F.sum(F.when(F.col("pool") == p, 1).otherwise(0)).alias(f"size_{p}") for p in ("hard", "trending", "tailing"))
    )
    quotas = sizes.crossJoin(F.broadcast(mixes))
    steps = [
        ("q_hard", "least(want_hard, size_hard)"),
        ("rest", f"{n} - q_hard"),
        ("q_trending", "least(rest - rest DIV 2, size_trending)"),
        ("q_tailing", "least(rest DIV 2, size_tailing)"),
        # fill what a short pool could not give: trending, then tailing, then hard
        ("left", "rest - q_trending - q_tailing"),
        ("n_trending", "q_trending + least(left, size_trending - q_trending)"),
        ("left", "left - (n_trending - q_trending)"),
        ("n_tailing", "q_tailing + least(left, size_tailing - q_tailing)"),
        ("left", "left - (n_tailing - q_tailing)"),
        ("n_hard", "q_hard + least(left, size_hard - q_hard)"),
    ]
    for name, expr in steps:
        quotas = quotas.withColumn(name, F.expr(expr))
    return quotas.select(
        "user_id",
        "mix",
        "n_hard",
        "n_trending",
        "n_tailing",
        F.expr("want_hard > size_hard").alias("hard_short"),
        F.expr(f"n_hard + n_trending + n_tailing < {n}").alias("short"),
    )


def sample_mix_negatives(pools: DataFrame, quotas: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    ranked = pools.select(
        "user_id",
        "pool",
        "item_id",
        F.expr(
            f"row_number() OVER (PARTITION BY user_id, pool ORDER BY {_sample_hash(cfg, run_date, 'item_id')}, item_id)"
        ).alias("draw"),
    )
    taken = ranked.join(quotas, "user_id").where(
        "draw <= CASE pool WHEN 'hard' THEN n_hard WHEN 'trending' THEN n_trending ELSE n_tailing END"
    )
    return taken.select(
        "user_id",
        "mix",
        "item_id",
        "pool",
        F.expr(
            f"CAST(row_number() OVER (PARTITION BY user_id, mix ORDER BY {POOL_PRIORITY}, draw) - 1 AS INT)"
        ).alias("sample_idx"),
    )


def sample_uniform_negatives(user_items: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    """``n_negatives`` items per user, uniformly among items the user never interacted with.

    Per user, ``2 * (n + items seen)`` hash draws with replacement over the catalogue (the
    items of the lookback window) are enough with overwhelming probability; when that is
    not fewer than the catalogue, every item is enumerated instead (exact for small data).
    """
    n = cfg.phns.n_negatives
    catalogue = user_items.select("item_id").distinct().select(
        "item_id", F.expr("CAST(row_number() OVER (ORDER BY item_id) - 1 AS BIGINT)").alias("item_idx")
    ).persist()
    n_items = catalogue.count()
    per_user = user_items.groupBy("user_id").agg(F.count("*").alias("seen"))
    draws = per_user.select(
        "user_id",
        F.expr(f"least({n_items}, 2 * ({n} + seen))").alias("n_draws"),
    ).select("user_id", "n_draws", F.explode(F.expr("sequence(0L, n_draws - 1)")).alias("draw"))
    enumerate_all = F.col("n_draws") >= n_items
    candidates = draws.select(
        "user_id",
        F.when(enumerate_all, F.col("draw"))
        .otherwise(F.expr(f"pmod({_sample_hash(cfg, run_date, 'draw')}, {n_items})"))
        .alias("item_idx"),
        enumerate_all.alias("enumerated"),
        "draw",
    ).join(F.broadcast(catalogue), "item_idx")
    ordered = candidates.select(
        "user_id",
        "item_id",
        F.when(F.col("enumerated"), F.expr(_sample_hash(cfg, run_date, "item_id"))).otherwise(F.col("draw")).alias("order_key"),
    ).join(user_items.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti")
    first_draw = ordered.groupBy("user_id", "item_id").agg(F.min("order_key").alias("order_key"))
    return first_draw.select(
        "user_id",
        F.lit(UNIFORM_MIX).alias("mix"),
        "item_id",
        F.lit("uniform").alias("pool"),
        F.expr("CAST(row_number() OVER (PARTITION BY user_id ORDER BY order_key, item_id) - 1 AS INT)").alias(
            "sample_idx"
        ),
    ).where(F.col("sample_idx") < n)


def negative_stats(negatives: DataFrame, quotas: DataFrame, cfg: EncoreConfig) -> dict:
    per_mix = {
        r["mix"]: {"rows": r["rows"], "users": r["users"], "hard": r["hard"]}
        for r in negatives.groupBy("mix")
        .agg(
            F.count("*").alias("rows"),
            F.countDistinct("user_id").alias("users"),
            F.sum(F.when(F.col("pool") == "hard", 1).otherwise(0)).alias("hard"),
        )
        .collect()
    }
    for r in quotas.groupBy("mix").agg(
        F.sum(F.col("hard_short").cast("int")).alias("hard_short"), F.sum(F.col("short").cast("int")).alias("short")
    ).collect():
        per_mix.setdefault(r["mix"], {}).update(users_hard_filled_from_other_pools=r["hard_short"], users_short=r["short"])
    if UNIFORM_MIX in per_mix:
        full = negatives.where(F.col("mix") == UNIFORM_MIX).groupBy("user_id").count().where(
            F.col("count") >= cfg.phns.n_negatives
        ).count()
        per_mix[UNIFORM_MIX]["users_short"] = per_mix[UNIFORM_MIX]["users"] - full
    return per_mix


def run_phns_pools(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, sessionized: DataFrame | None = None
) -> dict:
    """Write phns_pools/dt=run_date and phns_negatives/dt=run_date; returns counts per pool and mix."""
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-phns-pools")
    start_time = time.monotonic()
    _, day = lookback_window(cfg, run_date)
    if sessionized is None:
        sessionized = build_sessionized(spark, cfg, run_date)
    user_items = summarize_user_items(sessionized).persist()
    pools = build_phns_pools(spark, user_items, cfg, day).select([c.name for c in PHNS_POOL]).persist()
    stats: dict = {"run_date": day.isoformat()}
    stats["phns_pools"] = write_partition(pools, cfg.lake_path("phns_pools", day))
    stats["pool_rows"] = {r["pool"]: r["count"] for r in pools.groupBy("pool").count().collect()}
    stats["pools_seconds"] = round(time.monotonic() - start_time, 2)
    log.info("phns pools %s in %.1fs", stats["pool_rows"], stats["pools_seconds"])
    quotas = mix_quotas(spark, pools, cfg).persist()
    negatives = (
        sample_mix_negatives(pools, quotas, cfg, day)
        .unionByName(sample_uniform_negatives(user_items, cfg, day))
        .select([c.name for c in PHNS_NEGATIVE])
        .persist()
    )
    stats["phns_negatives"] = write_partition(negatives, cfg.lake_path("phns_negatives", day))
    stats["mixes"] = negative_stats(negatives, quotas, cfg)
    for frame in (negatives, quotas, pools, user_items):
        frame.unpersist()
    stats["seconds"] = round(time.monotonic() - start_time, 2)
    log.info("phns %s", stats)
    return stats


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(run_phns_pools(load_config(), parse_run_date("Build PHNS pools and negative samples for one run date.")))
