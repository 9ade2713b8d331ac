"""Raw validation: bad rows land in quarantine with reasons, bad files fail naming file and column."""

import datetime as dt
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


# ---- duplicates across dates and sources, empty days (issue #22) ----------------------


def _land_csv(cfg, day: str, source: str, text: str, name: str = "events.csv") -> Path:
    target = Path(cfg.landing_path(day, source))
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_text(text)
    return target / name


HEADER = "user_id,item_id,ts,completion,source\n"


def test_event_redelivered_on_a_later_date_is_quarantined_naming_the_first_copy(cfg):
    first = _land_csv(cfg, "2026-10-04", "feed", HEADER + "u1,a,2026-10-04T10:00:00Z,1.0,feed\n"
                                                          "u1,b,2026-10-04T10:05:00Z,1.0,feed\n")
    _land_csv(cfg, "2026-10-05", "feed", HEADER + "u1,b,2026-10-04T10:05:00Z,1.0,feed\n"
                                                  "u1,c,2026-10-05T09:00:00Z,1.0,feed\n")
    ingest_day(cfg, "2026-10-04")
    summary = ingest_day(cfg, "2026-10-05")
    assert (summary["raw_rows"], summary["clean_rows"], summary["quarantined_rows"]) == (2, 1, 1)
    assert summary["quarantine_reasons"] == {"duplicate event (earlier date)": 1}
    (reason,) = lake.read_partition(cfg, "quarantine", "2026-10-05").column("reason").to_pylist()
    assert reason == f"duplicate event (already ingested on 2026-10-04 from {first} row 1)"
    assert lake.read_partition(cfg, "events_clean", "2026-10-05").column("item_id").to_pylist() == ["c"]
    # re-running the later date gives the same split (its own earlier run is not "earlier")
    assert ingest_day(cfg, "2026-10-05")["clean_rows"] == 1


@pytest.mark.parametrize("complete_source, partial_source", [("aaa", "zzz"), ("zzz", "aaa")])
def test_duplicate_across_sources_keeps_the_most_complete_copy_whatever_the_names(cfg, complete_source, partial_source):
    _land_csv(cfg, DAY, complete_source, HEADER + f"u1,a,2026-10-05T10:00:00Z,0.5,{complete_source}\n")
    _land_csv(cfg, DAY, partial_source, HEADER + f"u1,a,2026-10-05T10:00:00Z,,{partial_source}\n")
    ingest_day(cfg, DAY)
    clean = lake.read_partition(cfg, "events_clean", DAY)
    assert clean.column("source").to_pylist() == [complete_source]
    (reason,) = lake.read_partition(cfg, "quarantine", DAY).column("reason").to_pylist()
    assert reason.startswith("duplicate event (same user_id, item_id, ts as ") and complete_source in reason


def test_equally_complete_copies_keep_the_earliest_delivered(cfg):
    import os

    late = _land_csv(cfg, DAY, "aaa", HEADER + "u1,a,2026-10-05T10:00:00Z,0.5,aaa\n")
    early = _land_csv(cfg, DAY, "zzz", HEADER + "u1,a,2026-10-05T10:00:00Z,0.5,zzz\n")
    os.utime(early, (1_700_000_000, 1_700_000_000))
    os.utime(late, (1_800_000_000, 1_800_000_000))
    ingest_day(cfg, DAY)
    assert lake.read_partition(cfg, "events_clean", DAY).column("source").to_pylist() == ["zzz"]


def test_empty_landing_file_is_a_clear_no_events_outcome(cfg):
    from encore.core.contracts import LANDING_EVENT, arrow_schema
    from encore.core.errors import NoEventsError
    from encore.nightly import stages

    folder = Path(cfg.landing_path(DAY, "feed"))
    folder.mkdir(parents=True)
    pq.write_table(arrow_schema(LANDING_EVENT).empty_table(), folder / "events.parquet")
    summary = ingest_day(cfg, DAY)
    assert (summary["raw_rows"], summary["clean_rows"], summary["quarantined_rows"]) == (0, 0, 0)
    with pytest.raises(NoEventsError, match=f"no events for {DAY}: the landing files hold 0 rows"):
        stages.validate_raw(cfg, dt.date.fromisoformat(DAY))


def test_day_whose_rows_are_all_quarantined_fails_naming_the_reasons_and_keeps_them(cfg):
    from encore.core.errors import NoEventsError
    from encore.nightly import stages

    _land_csv(cfg, DAY, "feed", HEADER + ",a,2026-10-05T10:00:00Z,0.5,feed\n,b,2026-10-05T10:01:00Z,2.0,feed\n")
    with pytest.raises(NoEventsError, match=r"no new events for 2026-10-05: all 2 rows were quarantined .*null user_id"):
        stages.validate_raw(cfg, dt.date.fromisoformat(DAY))
    assert lake.read_partition(cfg, "quarantine", DAY).num_rows == 2  # nothing lost


def test_night_reads_only_the_configured_sources(cfg):
    _land_csv(cfg, DAY, "real", HEADER + "u1,a,2026-10-05T10:00:00Z,1.0,real\n")
    _land_csv(cfg, DAY, "synthetic_music", HEADER + "u9,z,2026-10-05T10:00:00Z,1.0,synthetic_music\n")
    cfg.ingest.sources = ("real",)
    summary = ingest_day(cfg, DAY)
    assert summary["raw_rows"] == 1 and all("/real/" in f for f in summary["files"])


def test_interrupted_lake_write_is_ignored_by_readers_and_cleaned(cfg):
    """What a kill during write_partition leaves: a hidden staging folder with data and a dt=
    folder without its _SUCCESS marker. Readers ignore both; the next ingest removes them."""
    _land(cfg, FIXTURE)
    ingest_day(cfg, DAY)
    root = Path(cfg.lake_path("events_clean"))
    stale = root / ".staging-deadbeef"
    stale.mkdir()
    shutil.copy(next((root / f"dt={DAY}").glob("*.parquet")), stale / "part-0.parquet")
    half = root / "dt=2026-10-06"
    half.mkdir()
    shutil.copy(stale / "part-0.parquet", half / "part-0.parquet")
    assert lake.partition_dates(cfg, "events_clean") == [DAY]
    ingest_day(cfg, DAY)
    assert not stale.exists() and not half.exists()
