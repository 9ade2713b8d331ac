"""A dataset through the nightly's own data path, for benchmarks and experiments.

``prepare_night(cfg, events)`` writes raw events (public datasets are clean already) to the
lake as the nightly ingest does (``events_clean``, one ``dt=`` partition per event day), runs
the Spark jobs of the run date (sessions, labels, sequences, PHNS pools and negatives, with
the history sessionized in one pass) and the dbt feature marts. Training then reads the marts
exactly as the nightly does (``SequenceData.load``, ``training.negatives``), so a research
result and a nightly result are the same computation.

``experiment_config`` gives the scratch state dir's config: a lookback that keeps every
event of the dataset, and the events kept per user.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from encore.core import lake
from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import CLEAN_EVENT, arrow_schema

log = logging.getLogger(__name__)

DATASETS = ("synthetic_music", "synthetic_video", "ml-100k")


def experiment_config(home: str | Path, **overrides: dict) -> EncoreConfig:
    """A config rooted at the scratch state dir ``home``, independent of the caller's ENCORE_*
    environment; ``overrides``: config sections as for ``load_config`` (e.g.
    ``training={"max_seq_len": 50}``). The lookback keeps every event of a public dataset."""
    sessions = {"lookback_days": 100_000, **overrides.pop("sessions", {})}
    return load_config({"ENCORE_HOME": str(home)}, sessions=sessions, **overrides)


def dataset_events(cfg: EncoreConfig, dataset: str) -> pa.Table:
    """Raw events of a named dataset (generator datasets follow ``cfg.data``)."""
    from encore.ingest.public_datasets import ml100k_events, synthetic_events

    if dataset == "ml-100k":
        return ml100k_events()
    if dataset in ("synthetic_music", "synthetic_video"):
        return synthetic_events(cfg)
    raise ValueError(f"unknown dataset {dataset!r}; known: {DATASETS}")


def _clean_events(events: pa.Table) -> pa.Table:
    """The raw events with the clean-event provenance columns (event_id as the ingest computes it)."""
    from validations.raw_events import event_ids

    schema = arrow_schema(CLEAN_EVENT)
    columns = {}
    for field in schema:
        if field.name in events.column_names:
            columns[field.name] = events[field.name].cast(field.type)
        elif field.name == "event_id":
            columns[field.name] = pa.array(event_ids(events.select(["user_id", "item_id", "ts", "source"]).to_pandas()))
        elif field.name == "source_file":
            columns[field.name] = pa.array(["benchmarks.datasets"] * events.num_rows, pa.string())
        elif field.name == "source_row":
            columns[field.name] = pa.array(np.arange(events.num_rows), pa.int64())
        else:
            columns[field.name] = pa.nulls(events.num_rows, field.type)
    return pa.table(columns, schema=schema)


def prepare_night(cfg: EncoreConfig, events: pa.Table, run_date: dt.date | None = None) -> dt.date:
    """Lake, Spark and dbt for ``events`` as of ``run_date`` (default: the day of the last event);
    returns the run date. The marts are then in ``cfg``'s warehouse."""
    from encore.features.dbt_runner import FEATURES, dbt_build
    from spark_jobs.pipeline import run_night

    days = pc.cast(events["ts"], pa.date32())
    run_date = run_date or pc.max(days).as_py()
    first = pc.min(days).as_py()
    if (run_date - first).days > cfg.sessions.lookback_days:
        raise ValueError(f"events start {first}, {(run_date - first).days} days before {run_date}: "
                         f"sessions.lookback_days ({cfg.sessions.lookback_days}) would drop some")
    clean = _clean_events(events.filter(pc.less_equal(days, pa.scalar(run_date, pa.date32()))))
    clean_days = pc.cast(clean["ts"], pa.date32())
    for day in sorted(set(clean_days.to_pylist())):
        lake.write_partition(cfg, "events_clean", day, clean.filter(pc.equal(clean_days, pa.scalar(day, pa.date32()))))
    log.info("%d events in %d days written to %s", clean.num_rows, len(set(clean_days.to_pylist())), cfg.paths.lake)
    stats = run_night(cfg, run_date)
    log.info("spark: %d users with sequences, %d negatives", stats["sequences"]["users_kept"],
             stats["phns_pools"]["phns_negatives"])
    dbt_build(cfg, run_date.isoformat(), selector=FEATURES)
    return run_date


def prepared(cfg: EncoreConfig, dataset: str) -> dt.date:
    """``prepare_night`` for a named dataset, once per state dir (later calls reuse the marts).
    Benchmarks started side by side on one state dir take turns: the first prepares, the
    others wait for it and reuse its marts (two writers would delete each other's lake files)."""
    home = Path(cfg.paths.home)
    home.mkdir(parents=True, exist_ok=True)
    marker = home / f"prepared-{dataset}"
    with open(home / f"prepare-{dataset}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process preparing %s in %s", dataset, home)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return dt.date.fromisoformat(marker.read_text().strip())
        run_date = prepare_night(cfg, dataset_events(cfg, dataset))
        marker.write_text(run_date.isoformat())
        return run_date

