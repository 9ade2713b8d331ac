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

Everything per user is computed on one row per user with array functions: the global
lists are small and collected, so "not interacted" is ``array_except`` against the
user's items (no users x items cross join), and samples are slices of hash-sorted pools.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from dataclasses import dataclass

import pyarrow as pa

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import PHNS_NEGATIVE, PHNS_POOL
from spark_jobs.lake import lookback_window, write_partition
from spark_jobs.session import configure_session, get_spark
from spark_jobs.sessionize import build_sessionized, parse_run_date

log = logging.getLogger(__name__)

POOLS = ("hard", "trending", "tailing")  # also the order of a mix's samples
UNIFORM_MIX = "UNIFORM"


@dataclass(frozen=True)
class GlobalPools:
    trending: list[str]  # most recent users first
    tailing: list[str]  # least users first
    catalogue: list[str]  # every item of the window, sorted; uniform draws index into it


def summarize_user_items(sessionized: DataFrame) -> DataFrame:
    """One row per (user, item): positive consumption, negative feedback, engagement, recency."""
    return sessionized.groupBy("user_id", "item_id").agg(
        F.max(~F.col("is_skip") & ~F.col("is_abandoned")).alias("consumed_positive"),
        F.max(F.col("is_skip") | F.col("is_abandoned")).alias("negative_feedback"),
        F.min("engagement").alias("min_engagement"),
        F.max("ts").alias("last_ts"),
    )


def global_pools(user_items: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> GlobalPools:
    """Trending / tailing lists and the catalogue from one collected item-level aggregation.

    Python's str order is Spark's string order (UTF-8 byte order = code point order).
    """
    trending_start = run_date - dt.timedelta(days=cfg.phns.trending_window_days - 1)
    support = user_items.groupBy("item_id").agg(
        F.count("*").alias("users"),
        F.count(F.when(F.to_date("last_ts") >= F.lit(trending_start), 1)).alias("recent_users"),
    ).collect()
    size = cfg.phns.pool_size
    by_recent_users = sorted((r for r in support if r.recent_users > 0), key=lambda r: (-r.recent_users, r.item_id))
    trending = [r.item_id for r in by_recent_users[:size]]
    trending_set = set(trending)
    by_users = sorted(
        (r for r in support if r.users >= cfg.phns.tailing_min_support and r.item_id not in trending_set),
        key=lambda r: (r.users, r.item_id),
    )
    tailing = [r.item_id for r in by_users[:size]]
    return GlobalPools(trending, tailing, sorted(r.item_id for r in support))


def _sample_hash(cfg: EncoreConfig, run_date: dt.date, key: str) -> str:
    return f"xxhash64({int(cfg.phns.seed)}, '{run_date.isoformat()}', user_id, {key})"


def _string_array(items: list[str]) -> Column:
    return F.array(*(F.lit(item) for item in items)).cast("array<string>")


def build_user_pools(
    user_items: DataFrame, pools: GlobalPools, catalogue: DataFrame, cfg: EncoreConfig, run_date: dt.date
) -> DataFrame:
    """One row per user: ranked ``hard`` / ``trending`` / ``tailing`` item arrays and ``uniform`` candidates.

    ``uniform`` holds catalogue indexes (``catalogue``: item_idx, item_id) of items the user
    never interacted with. Per user, ``2 * (n + items seen)`` hash draws with replacement
    over the catalogue are enough with overwhelming probability: the first distinct unseen
    draws, in draw order. When that is not fewer than the catalogue, every unseen item is a
    candidate (``uniform_enumerated``) and the sample is ordered by hash (exact for small data).
    """
    n, n_items, size = cfg.phns.n_negatives, len(pools.catalogue), cfg.phns.pool_size
    hardest_first = F.struct("min_engagement", (-F.unix_micros("last_ts")).alias("recency"), "item_id")
    per_user = (
        user_items.join(F.broadcast(catalogue), "item_id")
        .groupBy("user_id")
        .agg(
            F.collect_list(F.when(F.col("negative_feedback") & ~F.col("consumed_positive"), hardest_first)).alias(
                "hard_feedback"
            ),
            F.collect_list("item_id").alias("seen"),
            F.collect_list("item_idx").alias("seen_idx"),
        )
    )
    n_draws = f"CAST(least({n_items}, 2 * ({n} + size(seen_idx))) AS BIGINT)"
    draws = f"transform(sequence(0L, {n_draws} - 1), d -> pmod({_sample_hash(cfg, run_date, 'd')}, {n_items}))"
    enumerated = F.expr(f"{n_draws} >= {n_items}")
    return per_user.select(
        "user_id",
        F.expr(f"slice(sort_array(hard_feedback), 1, {size}).item_id").alias("hard"),
        F.array_except(_string_array(pools.trending), "seen").alias("trending"),
        F.array_except(_string_array(pools.tailing), "seen").alias("tailing"),
        F.when(enumerated, F.expr(f"array_except(sequence(0L, {n_items - 1}L), seen_idx)"))
        .otherwise(F.expr(f"slice(array_except({draws}, seen_idx), 1, {n})"))
        .alias("uniform"),
        enumerated.alias("uniform_enumerated"),
    )


def pool_rows(user_pools: DataFrame) -> DataFrame:
    """PHNS_POOL rows: pool_rank is the 1-based position in the user's pool array.

    One compiled posexplode per pool (a transform lambda building a struct per item is interpreted).
    """
    per_pool = [
        user_pools.select("user_id", F.lit(pool).alias("pool"), F.posexplode(pool).alias("rank0", "item_id"))
        .select("user_id", "pool", "item_id", (F.col("rank0") + 1).alias("pool_rank"))
        for pool in POOLS
    ]
    return functools.reduce(DataFrame.unionByName, per_pool)


def mix_quotas(user_pools: DataFrame, cfg: EncoreConfig) -> DataFrame:
    """Per (user, mix): how many negatives each pool gives (n_hard, n_trending, n_tailing).

    Adds pool sizes, ``in_pools`` (the user has any pool item; only those count in
    hard_short / short; the others get zero quotas), hard_short (fewer hard items than the mix wants)
    and short (fewer than n_negatives in all pools together) to the user_pools columns.
    """
    n = cfg.phns.n_negatives
    if not cfg.phns.mixes:
        raise ValueError("phns.mixes is empty: at least one named mix is needed")
    mixes = F.array(
        *(F.struct(F.lit(name).alias("mix"), F.lit(int(round(n * share))).alias("want_hard"))
          for name, share in cfg.phns.mixes.items())
    )
    sizes = [F.size(pool).alias(f"size_{pool}") for pool in POOLS]
    quotas = user_pools.select("*", *sizes, F.explode(mixes).alias("m")).select("*", "m.mix", "m.want_hard").drop("m")
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
    in_pools = F.expr("size_hard + size_trending + size_tailing > 0")
    return quotas.select(
        *user_pools.columns,
        *(f"size_{pool}" for pool in POOLS),
        "mix",
        "n_hard",
        "n_trending",
        "n_tailing",
        in_pools.alias("in_pools"),
        (in_pools & F.expr("want_hard > size_hard")).alias("hard_short"),
        (in_pools & F.expr(f"n_hard + n_trending + n_tailing < {n}")).alias("short"),
    )


def order_pools_by_hash(user_pools: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    """Adds ``<pool>_by_hash``: the pool's (item_id, pool) in sampling order, hash then item_id."""
    return user_pools.select(
        "*",
        *(
            F.expr(
                f"transform(sort_array(transform({pool}, item -> named_struct('h', {_sample_hash(cfg, run_date, 'item')}, "
                f"'item_id', item))), s -> named_struct('item_id', s.item_id, 'pool', '{pool}'))"
            ).alias(f"{pool}_by_hash")
            for pool in POOLS
        ),
    )


def sample_mix_negatives(quotas: DataFrame) -> DataFrame:
    """The first n_<pool> items of each hash-ordered pool, hard then trending then tailing."""
    taken = F.concat(*(F.expr(f"slice({pool}_by_hash, 1, n_{pool})") for pool in POOLS))
    return quotas.select("user_id", "mix", F.posexplode(taken).alias("sample_idx", "s")).select(
        "user_id", "mix", "s.item_id", "s.pool", "sample_idx"
    )


def sample_uniform_negatives(user_pools: DataFrame, catalogue: DataFrame, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    """``n_negatives`` unseen items per user: draw order, or hash order when enumerated."""
    candidates = user_pools.select("user_id", "uniform_enumerated", F.posexplode("uniform").alias("draw", "item_idx"))
    ordered = candidates.join(F.broadcast(catalogue), "item_idx").select(
        "user_id",
        "item_id",
        F.when(F.col("uniform_enumerated"), F.expr(_sample_hash(cfg, run_date, "item_id")))
        .otherwise(F.col("draw").cast("bigint"))
        .alias("order_key"),
    )
    return ordered.select(
        "user_id",
        F.lit(UNIFORM_MIX).alias("mix"),
        "item_id",
        F.lit("uniform").alias("pool"),
        F.expr("CAST(row_number() OVER (PARTITION BY user_id ORDER BY order_key, item_id) - 1 AS INT)").alias(
            "sample_idx"
        ),
    ).where(F.col("sample_idx") < cfg.phns.n_negatives)


def pool_and_negative_stats(quotas: DataFrame, cfg: EncoreConfig) -> dict:
    """Rows per pool and per-mix counts in one aggregation over the (user, mix) quotas (no sample is built).

    Pool sizes and uniform counts are per user, so every mix group carries the same sums.
    """
    n = cfg.phns.n_negatives
    uniform_rows = F.expr(f"CASE WHEN uniform_enumerated THEN least({n}, size(uniform)) ELSE size(uniform) END")
    mix_rows = F.expr("n_hard + n_trending + n_tailing")  # 0 for a user without pool items
    totals = (
        quotas.select("*", mix_rows.alias("mix_rows"), uniform_rows.alias("uniform_rows"))
        .groupBy("mix")
        .agg(
            F.sum("mix_rows").alias("rows"),
            F.count(F.when(F.col("mix_rows") > 0, 1)).alias("users"),
            F.sum("n_hard").alias("hard"),
            F.count(F.when(F.col("hard_short"), 1)).alias("hard_short"),
            F.count(F.when(F.col("short"), 1)).alias("short"),
            F.count(F.when(F.col("in_pools"), 1)).alias("quota_users"),
            *(F.sum(f"size_{pool}").alias(f"{pool}_pool_rows") for pool in POOLS),
            F.sum("uniform_rows").alias("uniform_rows"),
            F.count(F.when(F.col("uniform_rows") > 0, 1)).alias("uniform_users"),
            F.count(F.when((F.col("uniform_rows") > 0) & (F.col("uniform_rows") < n), 1)).alias("uniform_short"),
        )
        .collect()
    )
    per_mix: dict = {}
    for r in totals:
        if r["rows"] > 0:
            per_mix[r["mix"]] = {"rows": r["rows"], "users": r["users"], "hard": r["hard"]}
        if r["quota_users"] > 0:
            per_mix.setdefault(r["mix"], {}).update(
                users_hard_filled_from_other_pools=r["hard_short"], users_short=r["short"]
            )
    any_mix = totals[0] if totals else None  # no users: no rows anywhere
    if any_mix and any_mix["uniform_rows"] > 0:
        per_mix[UNIFORM_MIX] = {
            "rows": any_mix["uniform_rows"],
            "users": any_mix["uniform_users"],
            "hard": 0,
            "users_short": any_mix["uniform_short"],
        }
    pool_rows = {pool: any_mix[f"{pool}_pool_rows"] for pool in POOLS if any_mix and any_mix[f"{pool}_pool_rows"] > 0}
    return {
        "phns_pools": sum(pool_rows.values()),
        "pool_rows": pool_rows,
        "phns_negatives": sum(m.get("rows", 0) for m in per_mix.values()),
        "mixes": per_mix,
    }


def run_phns_pools(
    cfg: EncoreConfig, run_date: str | dt.date, spark: SparkSession | None = None, sessionized: DataFrame | None = None
) -> dict:
    """Write phns_pools/dt=run_date and phns_negatives/dt=run_date; returns counts per pool and mix."""
    spark = configure_session(spark) if spark else get_spark(cfg, "encore-phns-pools", run_date)
    start_time = time.monotonic()
    _, day = lookback_window(cfg, run_date)
    standalone = sessionized is None
    user_items = summarize_user_items(build_sessionized(spark, cfg, day) if standalone else sessionized)
    if standalone:  # read twice below: sessionize once
        user_items = user_items.persist()
    pools = global_pools(user_items, cfg, day)
    # from Arrow, a local relation: broadcast without a Spark job or Python workers
    catalogue = spark.createDataFrame(
        pa.table({"item_idx": pa.array(range(len(pools.catalogue)), pa.int64()), "item_id": pa.array(pools.catalogue, pa.string())})
    )
    # one row per user, read by the stats and by both writes
    user_pools = build_user_pools(user_items, pools, catalogue, cfg, day).persist()
    quotas = mix_quotas(order_pools_by_hash(user_pools, cfg, day), cfg)
    counts = pool_and_negative_stats(quotas, cfg)
    stats: dict = {"run_date": day.isoformat(), "phns_pools": counts["phns_pools"], "pool_rows": counts["pool_rows"]}
    write_partition(pool_rows(user_pools).select([c.name for c in PHNS_POOL]), cfg.lake_path("phns_pools", day),
                    counts["phns_pools"])
    stats["pools_seconds"] = round(time.monotonic() - start_time, 2)
    log.info("phns pools %s in %.1fs", stats["pool_rows"], stats["pools_seconds"])
    negatives = (
        sample_mix_negatives(quotas)
        .unionByName(sample_uniform_negatives(user_pools, catalogue, cfg, day))
        .select([c.name for c in PHNS_NEGATIVE])
    )
    stats["phns_negatives"] = write_partition(negatives, cfg.lake_path("phns_negatives", day), counts["phns_negatives"])
    stats["mixes"] = counts["mixes"]
    user_pools.unpersist()
    if standalone:
        user_items.unpersist()
    stats["seconds"] = round(time.monotonic() - start_time, 2)
    log.info("phns %s", stats)
    return stats


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(run_phns_pools(load_config(), parse_run_date("Build PHNS pools and negative samples for one run date.")))
