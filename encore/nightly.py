"""The nightly stages for one logical date, as plain functions the DAG's tasks call.

Each stage loads the config itself, reads its inputs from the lake /
warehouse, writes its outputs there and returns a small JSON summary (for
XCom and logs), so any stage can be re-run alone for a date.
"""

from __future__ import annotations

import json
import logging

from encore import lake
from encore.config import EncoreConfig, load_config
from encore.ingest import ingest_day
from encore.warehouse import connect, publish_recommendations

log = logging.getLogger(__name__)


def _cfg() -> EncoreConfig:
    return load_config()


def validate_raw(run_date: str, cfg: EncoreConfig | None = None) -> dict:
    return ingest_day(cfg or _cfg(), run_date)


def spark_jobs(run_date: str, cfg: EncoreConfig | None = None) -> dict:
    from spark_jobs.pipeline import run_all

    return run_all(cfg or _cfg(), run_date)


def dbt_features(run_date: str, cfg: EncoreConfig | None = None) -> dict:
    from encore.dbt_runner import dbt_build

    return dbt_build(cfg or _cfg(), run_date)


def recommend(run_date: str, cfg: EncoreConfig | None = None) -> dict:
    from training.popularity import recommend_popular

    cfg = cfg or _cfg()
    recs = recommend_popular(cfg, run_date)
    lake.write_partition(cfg, "recommendations_staged", run_date, recs)
    return {"rows": recs.num_rows, "users": len(set(recs.column("user_id").to_pylist()))}


def publish(run_date: str, cfg: EncoreConfig | None = None) -> dict:
    cfg = cfg or _cfg()
    recs = lake.read_partition(cfg, "recommendations_staged", run_date)
    return {"published_rows": publish_recommendations(cfg, run_date, recs), "warehouse": cfg.paths.warehouse}


def report(run_date: str, cfg: EncoreConfig | None = None) -> dict:
    cfg = cfg or _cfg()
    ingest = json.loads(lake.read_partition(cfg, "ingest_reports", run_date).column("summary_json")[0].as_py())
    with connect(cfg, read_only=True) as con:
        (rows, users) = con.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM recommendations WHERE run_date = ?", [run_date]
        ).fetchone()
    summary = {
        "run_date": run_date,
        "raw_rows": ingest["raw_rows"],
        "clean_rows": ingest["clean_rows"],
        "quarantined_rows": ingest["quarantined_rows"],
        "recommendation_rows": rows,
        "users": users,
        "warehouse": cfg.paths.warehouse,
    }
    log.info("nightly summary: %s", summary)
    return summary
