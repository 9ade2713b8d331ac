"""PHNS negative pools and per-user negative samples (seed 003), as of the run date over the lookback window.

Pools:
- ``hard``: items the user skipped or abandoned and never consumed positively, hardest
  first (lowest engagement, then most recent);
- ``trending``: the ``phns.pool_size`` items with the most users over the last
  ``phns.trending_window_days`` days that the user never interacted with;
- ``tailing``: the ``phns.pool_size`` least popular items with support (distinct users)
  of at least ``phns.tailing_min_support``, not trending, that the user never interacted with.

Samples (the training negatives): ``phns.draws`` independent draws per user and mix of
``phns.n_negatives`` negatives each. A named mix's share (``phns.mixes``: HARD 0.5, MEDIUM 0.3,
EASY 0.2) is the share of *PHNS* negatives, as in seed 003, which counts the user's hard items
and the trending and tailing items the user never touched alike: the share is taken round-robin
over the three pools (hard, trending, tailing, each in the draw's hash order; a short pool hands
its turns to the others), so the user's own hard items come first and the global pools fill in.
The rest are drawn uniformly from the catalogue items the user never interacted with (minus the
PHNS items already taken), so the model still sees the whole catalogue. PHNS pools too short
for the share are filled from the uniform draw. ``UNIFORM`` is all uniform (no PHNS).
Each negative carries its ``oversampling``: the probability that the draw holds it, divided by
the probability a uniform draw of ``n_negatives`` unseen items would (1 for ``UNIFORM``). A pool
item's probability is (items its pool gave the draw) / (pool size), as the pool is taken in hash
order; a uniform item's is n_uniform / (unseen items - global-pool items taken). Training can
subtract its log from the negative's logit (``training.phns_sampling_correction``). The
trending and tailing pools also serve the PHNS-hard evaluation set (dbt ``eval_candidates``).
Selection is ordered by ``xxhash64(seed, run date, user, draw, item)``, so a run is
reproducible, draws differ, and within a draw a larger share extends a smaller one.

Everything per user is computed on one row per user with array functions: the global
lists are small and collected, so "not interacted" is ``array_except`` against the
user's items (no users x items cross join), and samples are slices of hash-sorted arrays.
"""

from __future__ import annotations

import bisect
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
    """One row per user: ranked ``hard`` / ``trending`` / ``tailing`` item arrays, ``uniform``:
    for each draw, up to ``n_negatives`` catalogue indexes (``catalogue``: item_idx, item_id) of
    items the user never interacted with, in sampling order, and ``n_unseen`` (how many there are).

    ``2 * (draws * n + items seen)`` hash draws with replacement over the catalogue give enough
    distinct unseen items with overwhelming probability: the first ``draws * n`` of them, in draw
    order, are cut into the draws (disjoint). When that many hash draws are not fewer than the
    catalogue, every unseen item is a candidate (``uniform_enumerated``) and each draw orders
    them by its own hash (exact for small data).
    """
    n, draws, n_items, size = cfg.phns.n_negatives, cfg.phns.draws, len(pools.catalogue), cfg.phns.pool_size
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
    n_hash = f"CAST(least({n_items}, 2 * ({draws * n} + size(seen_idx))) AS BIGINT)"
    hashed = f"transform(sequence(0L, {n_hash} - 1), j -> pmod({_sample_hash(cfg, run_date, 'j')}, {n_items}))"
    by_draw_hash = (
        f"transform(sequence(0, {draws - 1}), d -> slice(transform(array_sort(transform("
        f"array_except(sequence(0L, {n_items - 1}L), seen_idx), i -> named_struct('h', "
        f"{_sample_hash(cfg, run_date, 'd, i')}, 'i', i))), s -> s.i), 1, {n}))"
    )
    enumerated = F.expr(f"{n_hash} >= {n_items}")
    with_candidates = per_user.select(
        "*",
        enumerated.alias("uniform_enumerated"),
        F.when(enumerated, F.lit(None)).otherwise(F.expr(f"slice(array_except({hashed}, seen_idx), 1, {draws * n})"))
        .alias("drawn"),
    )
    return with_candidates.select(
        "user_id",
        F.expr(f"slice(sort_array(hard_feedback), 1, {size}).item_id").alias("hard"),
        F.array_except(_string_array(pools.trending), "seen").alias("trending"),
        F.array_except(_string_array(pools.tailing), "seen").alias("tailing"),
        F.when(F.col("uniform_enumerated"), F.expr(by_draw_hash))
        .otherwise(F.expr(f"transform(sequence(0, {draws - 1}), d -> slice(drawn, d * {n} + 1, {n}))"))
        .alias("uniform"),
        "uniform_enumerated",
        (F.lit(n_items) - F.size("seen_idx")).alias("n_unseen"),
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


def mix_quotas(user_pools: DataFrame, pools: GlobalPools, cfg: EncoreConfig, run_date: dt.date) -> DataFrame:
    """One row per (user, draw, mix): the draw's PHNS candidates (``phns_d``: structs of pool and
    item_id, round-robin over the hard, trending and tailing pools, each in hash order), how many
    of them the mix takes (``n_phns = min(round(n * share), candidates)``; ``taken_<pool>`` per
    pool), the user's pool sizes (``size_<pool>``) and unseen items (``n_unseen``), and the draw's
    uniform candidates (catalogue indexes) without the global-pool items taken
    (``uniform_d``), of which it takes ``n_uniform = min(n - n_phns, uniform)``.
    Flags: ``phns_short`` (the mix wanted more PHNS items than the pools have: filled uniformly)
    and ``short`` (fewer than ``n_negatives`` in all)."""
    n, draws = cfg.phns.n_negatives, cfg.phns.draws
    if not cfg.phns.mixes:
        raise ValueError("phns.mixes is empty: at least one named mix is needed")
    mixes = F.array(
        *(F.struct(F.lit(name).alias("mix"), F.lit(int(round(n * share))).alias("want_phns"))
          for name, share in {**cfg.phns.mixes, UNIFORM_MIX: 0.0}.items())
    )

    def in_hash_order(pool: str, order: int) -> str:  # (turn, pool order, pool, item) per item of draw d
        return (f"transform(array_sort(transform({pool}, item -> named_struct('h', "
                f"{_sample_hash(cfg, run_date, 'd, item')}, 'item_id', item))), (s, turn) -> named_struct("
                f"'turn', turn, 'order', {order}, 'pool', '{pool}', 'item_id', s.item_id))")

    round_robin = f"array_sort(concat({', '.join(in_hash_order(pool, i) for i, pool in enumerate(POOLS))}))"
    phns_by_draw = (f"transform(sequence(0, {draws - 1}), d -> transform({round_robin}, "
                    f"s -> named_struct('pool', s.pool, 'item_id', s.item_id)))")
    per_draw = user_pools.select(
        "user_id", "n_unseen", *(F.size(pool).alias(f"size_{pool}") for pool in POOLS),
        F.posexplode(F.arrays_zip(F.expr(phns_by_draw).alias("phns_d"), F.col("uniform").alias("uniform_d")))
        .alias("draw", "d"),
    ).select("*", "d.phns_d", F.col("d.uniform_d").alias("uniform_all")).drop("d")
    quotas = per_draw.select("*", F.explode(mixes).alias("m")).select("*", "m.mix", "m.want_phns").drop("m")
    quotas = quotas.withColumn("n_phns", F.expr("least(want_phns, size(phns_d))"))
    quotas = quotas.select("*", *(F.expr(f"size(filter(slice(phns_d, 1, n_phns), s -> s.pool = '{pool}'))")
                                  .alias(f"taken_{pool}") for pool in POOLS))
    # a trending or tailing item taken as a PHNS negative is not drawn again uniformly
    # (the user's hard items were seen, so the uniform draw never holds them)
    global_items = [*pools.trending, *pools.tailing]
    if global_items:
        index_of = F.create_map(*(F.lit(v) for item in global_items
                                  for v in (item, bisect.bisect_left(pools.catalogue, item))))
        taken = F.transform(F.filter(F.expr("slice(phns_d, 1, n_phns)"), lambda s: s["pool"] != "hard"),
                            lambda s: F.element_at(index_of, s["item_id"]))
    else:
        taken = F.array()
    quotas = quotas.withColumn("uniform_d", F.array_except("uniform_all", taken.cast("array<bigint>"))).drop("uniform_all")
    quotas = quotas.withColumn("n_uniform", F.expr(f"least({n} - n_phns, size(uniform_d))"))
    return quotas.select(
        "*",
        F.expr("want_phns > size(phns_d)").alias("phns_short"),
        F.expr(f"n_phns + n_uniform < {n}").alias("short"),
    )


def sample_negatives(quotas: DataFrame, catalogue: DataFrame, n_negatives: int) -> DataFrame:
    """PHNS_NEGATIVE rows: each (user, draw, mix)'s first ``n_phns`` PHNS items (pool hard,
    trending or tailing), then its first ``n_uniform`` uniform items (``sample_idx`` continues
    after the PHNS ones), each with its ``oversampling`` against a uniform draw of ``n_negatives``."""
    uniform_probability = F.expr(f"least(1D, {n_negatives} / greatest(n_unseen, 1))")
    pool_probability = F.coalesce(*(F.when(F.col("s.pool") == pool, F.col(f"taken_{pool}") / F.col(f"size_{pool}"))
                                    for pool in POOLS))
    phns = quotas.select(
        "*", F.posexplode(F.expr("slice(phns_d, 1, n_phns)")).alias("sample_idx", "s"),
    ).select("user_id", "mix", "draw", "s.item_id", "s.pool", "sample_idx",
             (pool_probability / uniform_probability).alias("oversampling"))
    # the uniform items come from the unseen ones less the global-pool items the draw took
    remaining = F.expr("greatest(n_unseen - taken_trending - taken_tailing, n_uniform, 1)")
    uniform = quotas.select(
        "user_id", "mix", "draw", "n_phns",
        (F.col("n_uniform") / remaining / uniform_probability).alias("oversampling"),
        F.posexplode(F.expr("slice(uniform_d, 1, n_uniform)")).alias("position", "item_idx"),
    ).join(F.broadcast(catalogue), "item_idx").select(
        "user_id", "mix", "draw", "item_id", F.lit("uniform").alias("pool"),
        (F.col("n_phns") + F.col("position")).alias("sample_idx"), "oversampling",
    )
    return phns.unionByName(uniform).select(
        "user_id", "mix", F.col("draw").cast("int"), "item_id", "pool", F.col("sample_idx").cast("int"),
        F.col("oversampling").cast("double"))


def pool_and_negative_stats(quotas: DataFrame, cfg: EncoreConfig) -> dict:
    """Rows per pool and per mix in one aggregation over the (user, draw, mix) quotas (no sample
    is built). Pool sizes are per user, so they are summed over one draw of one mix."""
    first = F.col("draw") == 0
    totals = (
        quotas.groupBy("mix")
        .agg(
            F.sum(F.col("n_phns") + F.col("n_uniform")).alias("rows"),
            F.count(F.when(first & (F.col("n_phns") + F.col("n_uniform") > 0), 1)).alias("users"),
            F.sum("n_phns").alias("phns"),
            F.count(F.when(first & F.col("phns_short"), 1)).alias("phns_short"),
            F.count(F.when(first & F.col("short"), 1)).alias("short"),
            *(F.sum(F.when(first, F.col(f"size_{pool}"))).alias(f"{pool}_pool_rows") for pool in POOLS),
        )
        .collect()
    )
    per_mix = {
        r["mix"]: {"rows": r["rows"], "users": r["users"], "phns": r["phns"],
                   "users_phns_filled_uniformly": r["phns_short"], "users_short": r["short"]}
        for r in totals if r["rows"]
    }
    any_mix = totals[0] if totals else None  # no users: no rows anywhere
    pool_rows = {pool: any_mix[f"{pool}_pool_rows"] for pool in POOLS if any_mix and any_mix[f"{pool}_pool_rows"]}
    return {
        "phns_pools": sum(pool_rows.values()),
        "pool_rows": pool_rows,
        "phns_negatives": sum(m["rows"] for m in per_mix.values()),
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
    quotas = mix_quotas(user_pools, pools, cfg, day)
    counts = pool_and_negative_stats(quotas, cfg)
    stats: dict = {"run_date": day.isoformat(), "phns_pools": counts["phns_pools"], "pool_rows": counts["pool_rows"]}
    write_partition(pool_rows(user_pools).select([c.name for c in PHNS_POOL]), cfg, "phns_pools", day,
                    counts["phns_pools"])
    stats["pools_seconds"] = round(time.monotonic() - start_time, 2)
    log.info("phns pools %s in %.1fs", stats["pool_rows"], stats["pools_seconds"])
    negatives = sample_negatives(quotas, catalogue, cfg.phns.n_negatives).select([c.name for c in PHNS_NEGATIVE])
    stats["phns_negatives"] = write_partition(negatives, cfg, "phns_negatives", day, counts["phns_negatives"])
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
