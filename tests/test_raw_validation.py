"""Raw validation: bad rows land in quarantine with reasons, bad files fail naming file and column."""

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encore.core import lake
from encore.ingest.daily import ingest_day
from encore.core.errors import RawFileError
from encore.ingest.landing import read_landing_file

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
        "u1,t3,1999-12-31T00:00:00Z,x\n"
    )
    _land(cfg, future)
    summary = ingest_day(cfg, DAY)
    assert (summary["clean_rows"], summary["quarantined_rows"]) == (1, 2)
    reasons = lake.read_partition(cfg, "quarantine", DAY).column("reason").to_pylist()
    assert reasons == ["ts out of range [2000-01-01, 2026-10-07)"] * 2
