"""Raw validation: bad rows land in quarantine with reasons, bad files fail naming file and column."""

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import great_expectations as gx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encore.core import lake
from encore.ingest.daily import ingest_day
from encore.core.config import ConfigError
from encore.core.errors import RawFileError
from encore.ingest.landing import read_landing_file
from validations.gx import run_suite

FIXTURE = Path(__file__).parent / "fixtures" / "raw" / "bad_rows.csv"
DAY = "2026-10-05"


def _land(cfg, path: Path, name: str = "events.csv") -> Path:
    target = Path(cfg.landing_path(DAY, "fixture"))
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target / name)
    return target / name


def test_bad_rows_are_quarantined_with_reasons_and_counts_reconcile(cfg):
    landed = _land(cfg, FIXTURE)
    summary = ingest_day(cfg, DAY)
    assert summary["raw_rows"] == 8
    assert summary["clean_rows"] == 3 and summary["quarantined_rows"] == 5
    assert summary["reconciles"]

    quarantine = lake.read_partition(cfg, "quarantine", DAY).to_pandas().set_index("source_row")
    reasons = quarantine["reason"].to_dict()
    assert reasons[1] == "null user_id"
    assert reasons[2] == "completion not in [0,1]"
    assert reasons[3].startswith("ts: unparseable 'not-a-time'")
    assert reasons[5] == f"duplicate event (same user_id, item_id, ts as {landed} row 0)"
    assert reasons[7] == "skip_level not in 0..3"
    assert set(quarantine["source_file"]) == {str(landed)}

    clean = lake.read_partition(cfg, "events_clean", DAY).to_pandas()
    assert sorted(clean["source_row"]) == [0, 4, 6]
    assert clean.loc[clean.source_row == 6, "rating"].item() == 4.0
    assert clean["event_id"].is_unique


def test_reingest_replaces_the_partition(cfg):
    _land(cfg, FIXTURE)
    ingest_day(cfg, DAY)
    ingest_day(cfg, DAY)
    assert lake.read_partition(cfg, "events_clean", DAY).num_rows == 3
    assert lake.read_partition(cfg, "quarantine", DAY).num_rows == 5


def test_missing_column_names_file_and_column(cfg, tmp_path):
    bad = tmp_path / "no_item.csv"
    bad.write_text("user_id,ts,source\nu1,2026-10-05T10:00:00Z,x\n")
    with pytest.raises(RawFileError, match=r"no_item.csv: missing required column 'item_id'"):
        read_landing_file(bad)


def test_wrong_type_names_column(cfg, tmp_path):
    bad = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"user_id": ["u"], "item_id": ["i"], "ts": ["2026-10-05"], "completion": [[1.0]]}), bad)
    with pytest.raises(RawFileError, match=r"typed.parquet: column 'completion'"):
        read_landing_file(bad)


def test_unreadable_file_names_file(cfg, tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(RawFileError, match=r"broken.parquet: unreadable"):
        read_landing_file(bad)


def test_no_landing_files_is_an_error(cfg):
    with pytest.raises(RawFileError, match="no landing files for 2026-10-05"):
        ingest_day(cfg, DAY)


def test_future_timestamp_is_quarantined(cfg, tmp_path):
    future = tmp_path / "future.csv"
    future.write_text(
        "user_id,item_id,ts,source\n"
        "u1,t1,2026-10-05T23:59:59Z,x\n"
        "u1,t2,2026-10-07T00:00:00Z,x\n"  # beyond run date + max_future_days (1)
        "u1,t3,1989-12-31T00:00:00Z,x\n"  # before labels.min_ts (1990-01-01)
    )
    _land(cfg, future)
    summary = ingest_day(cfg, DAY)
    assert (summary["clean_rows"], summary["quarantined_rows"]) == (1, 2)
    reasons = lake.read_partition(cfg, "quarantine", DAY).column("reason").to_pylist()
    assert reasons == ["ts out of range [1990-01-01, 2026-10-07)"] * 2


def test_a_1997_log_is_valid_and_a_night_before_min_ts_is_a_config_error(cfg, tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("user_id,item_id,ts,source\nu1,t1,1997-09-20T05:00:00Z,x\n")
    target = Path(cfg.landing_path("1997-09-20", "fixture"))
    target.mkdir(parents=True)
    shutil.copy(old, target / "events.csv")
    assert ingest_day(cfg, "1997-09-20")["clean_rows"] == 1  # MovieLens-100k's first day

    strict = dataclasses.replace(cfg, labels=dataclasses.replace(cfg.labels, min_ts="1998-01-01"))
    with pytest.raises(ConfigError, match=r"labels.min_ts \(1998-01-01\) is after the night 1997-09-20"):
        ingest_day(strict, "1997-09-20")


def test_each_outcome_carries_its_own_check_whatever_order_gx_reports_them():
    """GX 1.x reported a range check whose bounds are inverted (a night before ``labels.min_ts``)
    ahead of the checks listed before it; outcomes must pair with their own checks."""
    utc = dt.timezone.utc
    stamps = pd.Series(pd.to_datetime(["1997-09-20", "1997-09-20", "1997-09-20"], utc=True))
    frame = pd.DataFrame({"b": pd.array([None, "x", None], dtype="string[pyarrow]"),
                          "ts": stamps.astype("timestamp[us, tz=UTC][pyarrow]")})
    E = gx.expectations
    checks = [("b null", E.ExpectColumnValuesToBeNull(column="b")),
              ("ts not null", E.ExpectColumnValuesToNotBeNull(column="ts")),
              ("ts in an inverted range", E.ExpectColumnValuesToBeBetween(
                  column="ts", min_value=dt.datetime(2000, 1, 1, tzinfo=utc), max_value=dt.datetime(1997, 9, 22, tzinfo=utc)))]
    outcomes = {o.name: (o.success, o.failing_rows) for o in run_suite(frame, "order", checks)}
    assert outcomes["b null"] == (False, [1]) and outcomes["ts not null"] == (True, [])
    assert outcomes["ts in an inverted range"][0] is False
