import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from encore.ingest import adapters
from encore.ingest.adapters import AdapterError, land_events, read_generic, read_lastfm1k, read_movielens, read_mssd
from encore.core.config import load_config
from encore.core.contracts import LANDING_EVENT, arrow_schema

FIXTURES = Path(__file__).parent / "fixtures" / "adapters"
UTC = dt.timezone.utc


def utc(*parts):
    return dt.datetime(*parts, tzinfo=UTC)


def rows(table, *columns):
    return list(zip(*(table[c].to_pylist() for c in columns)))


def test_mssd_maps_sessions_skips_and_hourly_time():
    table = read_mssd(FIXTURES / "mssd_log.csv")
    assert table.schema == arrow_schema(LANDING_EVENT)
    first = "0_00006f66-33e5-4de7-a324-2d18e439fc1e"
    second = "1_00079a23-1600-486a-91bd-5208be0c745a"
    assert table["user_id"].to_pylist() == [first] * 3 + [second] * 3
    assert table["session_id"].to_pylist() == table["user_id"].to_pylist()
    assert table["item_id"].to_pylist()[:2] == ["t_0479f24c-27d2-41d6-a6f5-b13b0e2c1a3e", "t_9099cd7b-c238-47b7-9381-f23f2c1d1043"]
    assert table["ts"].to_pylist() == [
        utc(2018, 7, 15, 16, 0, 1), utc(2018, 7, 15, 16, 0, 2), utc(2018, 7, 15, 16, 0, 3),
        utc(2018, 7, 16, 0, 0, 1), None, None,
    ]
    # false/false/false -> 0, true/true/true -> 1, false/true/true -> 2, false/false/true -> 3
    assert table["skip_level"].to_pylist() == [0, 1, 2, 3, 0, None]
    assert table["parse_error"].to_pylist() == [
        None, None, None, None,
        "date: unparseable '2018-13-45x' (expected %Y-%m-%d; a different format needs --date-format)",
        "hour_of_day: out of range '25'; skip_1: unparseable 'maybe'",
    ]
    assert set(table["source"].to_pylist()) == {"mssd"}
    assert table["duration_ms"].null_count == table["rating"].null_count == 6


def test_lastfm1k_falls_back_to_names_and_keeps_bad_lines():
    table = read_lastfm1k(FIXTURES / "lastfm1k.tsv", source="lastfm")
    assert table.schema == arrow_schema(LANDING_EVENT)
    assert rows(table, "user_id", "item_id", "ts", "parse_error") == [
        ("user_000001", "Deep Dish - Fuck Me Im Famous (Pacha Ibiza)-09-28-2007", utc(2009, 5, 4, 23, 8, 57), None),
        ("user_000001", "f7c1f8f8-b935-45ed-8fc8-7def69d92a10", utc(2009, 5, 4, 13, 52, 4), None),
        ("user_000002", "f7c1f8f8-b935-45ed-8fc8-7def69d92a10", None, "ts: unparseable '2009-13-45x' (expected ISO-8601; a different format needs --date-format)"),
        # a quote inside a field is data, not CSV quoting
        ("user_000003", "5d9a9b2b-66a0-4d5d-9ff8-5b8d7f1b1cc1", utc(2009, 5, 5, 2, 0, 0), None),
        # line 4 has 3 fields: kept (appended) with what could be read
        ("user_000003", None, utc(2009, 5, 5, 1, 0, 0), "line 4: expected 6 fields, got 3; item_id: empty traid and track name"),
    ]
    assert set(table["source"].to_pylist()) == {"lastfm"}


EXPECTED_ML100K_HEAD = [
    ("196", "242", 3.0, utc(1997, 12, 4, 15, 55, 49)),
    ("186", "302", 3.0, utc(1998, 4, 4, 19, 22, 22)),
]


def test_movielens_u_data():
    table = read_movielens(FIXTURES / "u.data")
    assert table.schema == arrow_schema(LANDING_EVENT)
    assert rows(table, "user_id", "item_id", "rating", "ts") == EXPECTED_ML100K_HEAD + [
        ("22", "377", 1.0, utc(1997, 11, 7, 7, 18, 36)),
        ("244", "51", 2.0, None),
    ]
    assert table["parse_error"].to_pylist() == [None, None, None, "ts: unparseable 'not-a-time' (expected epoch s)"]


def test_movielens_ratings_dat():
    table = read_movielens(FIXTURES / "ratings.dat")
    assert rows(table, "user_id", "item_id", "rating", "ts", "parse_error") == [
        ("1", "1193", 5.0, utc(2000, 12, 31, 22, 12, 40), None),
        ("1", "661", 3.0, utc(2000, 12, 31, 22, 35, 9), None),
        ("2", "3068", None, utc(2000, 12, 31, 21, 43, 20), "rating: unparseable 'x'"),
    ]


def test_movielens_ratings_csv():
    table = read_movielens(FIXTURES / "ratings.csv")
    assert rows(table, "user_id", "item_id", "rating", "ts", "parse_error") == [
        ("1", "307", 3.5, utc(2009, 10, 27, 21, 0, 21), None),
        ("1", "481", 3.5, utc(2009, 10, 27, 21, 4, 16), None),
        ("2", None, 4.0, utc(2007, 10, 20, 20, 53, 1), "item_id: empty"),
    ]


def test_movielens_recbole_inter():
    table = read_movielens(FIXTURES / "ml-100k.inter", source="ml-100k")
    assert rows(table, "user_id", "item_id", "rating", "ts") == EXPECTED_ML100K_HEAD + [("22", "377", 1.0, None)]
    assert table["parse_error"].to_pylist() == [None, None, "ts: unparseable '12.5.2020' (expected epoch s)"]
    assert set(table["source"].to_pylist()) == {"ml-100k"}


def test_real_ml100k_inter():
    """The real file (RecBole 1.2.1's dataset_example, fetched once into the dataset cache)."""
    from encore.ingest.public_datasets import ml100k_path

    table = read_movielens(ml100k_path())
    assert table.num_rows == 100_000
    assert pc.count_distinct(table["user_id"]).as_py() == 943
    assert pc.count_distinct(table["item_id"]).as_py() == 1682
    assert table["parse_error"].null_count == 100_000
    assert rows(table.slice(0, 2), "user_id", "item_id", "rating", "ts") == EXPECTED_ML100K_HEAD


def test_generic_csv_with_mapping_and_format():
    mapping = {"user_id": "uid", "item_id": "track", "ts": "played_at", "duration_ms": "secs_played",
               "item_length_ms": "track_secs", "rating": "stars"}
    table = read_generic(FIXTURES / "generic_plays.csv", mapping, source="plays", ts_format="%d/%m/%Y %H:%M:%S")
    assert table.schema == arrow_schema(LANDING_EVENT)
    assert rows(table, "user_id", "item_id", "ts", "duration_ms", "rating", "parse_error") == [
        ("alice", "song-1", utc(2021, 5, 4, 10, 15, 30), 120, 4.5, None),
        ("bob", "song-2", utc(2021, 5, 5, 23, 59, 59), 30000, None, None),
        ("carol", "song-3", None, None, 3.0,
         "ts: unparseable '31/02/2021 08:00:00' (expected %d/%m/%Y %H:%M:%S; a different format needs --date-format); duration_ms: unparseable 'abc'"),
    ]
    assert table["item_length_ms"].to_pylist() == [240, 240, 200]


def test_generic_parquet_with_epoch_millis_and_typed_columns(tmp_path):
    path = tmp_path / "feed.parquet"
    pq.write_table(pa.table({
        "member": pa.array([17, 18, None], pa.int64()),
        "title": ["a", "b", "c"],
        "when_ms": pa.array([1_600_000_000_123, 1_600_086_400_000, 5], pa.int64()),
        "watched": pa.array([0.5, None, 1.0]),
    }), path)
    table = read_generic(path, {"user_id": "member", "item_id": "title", "ts": "when_ms", "completion": "watched"},
                         ts_unit="ms")
    assert rows(table, "user_id", "item_id", "ts", "completion", "parse_error") == [
        ("17", "a", utc(2020, 9, 13, 12, 26, 40, 123000), 0.5, None),
        ("18", "b", utc(2020, 9, 14, 12, 26, 40), None, None),
        (None, "c", utc(1970, 1, 1, 0, 0, 0, 5000), 1.0, "user_id: empty"),
    ]


def test_generic_parquet_native_timestamps_are_utc(tmp_path):
    path = tmp_path / "feed.parquet"
    naive = dt.datetime(2024, 3, 1, 12, 0, 0)
    paris = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    pq.write_table(pa.table({"u": ["x"], "i": ["y"], "t": pa.array([naive], pa.timestamp("ms"))}), path)
    pq.write_table(pa.table({"u": ["x"], "i": ["y"], "t": pa.array([paris], pa.timestamp("us", tz="+01:00"))}),
                   tmp_path / "aware.parquet")
    mapping = {"user_id": "u", "item_id": "i", "ts": "t"}
    assert read_generic(path, mapping)["ts"].to_pylist() == [utc(2024, 3, 1, 12, 0, 0)]
    assert read_generic(tmp_path / "aware.parquet", mapping)["ts"].to_pylist() == [utc(2024, 3, 1, 11, 0, 0)]


@pytest.mark.parametrize(
    ("reader", "fixture", "column"),
    [
        (read_mssd, "mssd_missing_date.csv", "'date'"),
        (read_lastfm1k, "lastfm1k_missing_traname.tsv", "'traname'"),
        (read_movielens, "u_missing_timestamp.data", "'timestamp'"),
        (read_movielens, "ratings_missing_timestamp.csv", "'timestamp'"),
        (read_movielens, "ml_missing_timestamp.inter", "'timestamp:float'"),
    ],
)
def test_missing_required_column_names_file_and_column(reader, fixture, column):
    with pytest.raises(AdapterError) as excinfo:
        reader(FIXTURES / fixture)
    assert fixture in str(excinfo.value) and f"missing required column {column}" in str(excinfo.value)


def test_generic_mapping_errors_name_the_column():
    csv = FIXTURES / "generic_plays.csv"
    with pytest.raises(AdapterError, match="lacks required column 'ts'"):
        read_generic(csv, {"user_id": "uid", "item_id": "track"})
    with pytest.raises(AdapterError, match="missing required column 'played'"):
        read_generic(csv, {"user_id": "uid", "item_id": "track", "ts": "played"})
    with pytest.raises(AdapterError, match="'listen_count', not a mappable"):
        read_generic(csv, {"user_id": "uid", "item_id": "track", "ts": "played_at", "listen_count": "stars"})


def test_unreadable_or_foreign_files_raise(tmp_path):
    with pytest.raises(AdapterError, match="nope.csv: cannot open"):
        read_mssd(tmp_path / "nope.csv")
    with pytest.raises(AdapterError, match="not a MovieLens ratings file"):
        read_movielens(FIXTURES / "mssd_log.csv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(AdapterError, match="empty.tsv: empty file"):
        read_lastfm1k(tmp_path / "empty.tsv")


def test_land_events_splits_by_utc_date(tmp_path):
    cfg = load_config(environ={}, paths={"home": str(tmp_path)})
    table = read_movielens(FIXTURES / "u.data")  # 1997-12-04, 1998-04-04, 1997-11-07, unparseable ts
    written = land_events(cfg, table, "ml")
    assert written == {"1997-11-07": 1, "1997-12-04": 1, "1998-04-04": 2}
    latest = pq.read_table(Path(cfg.landing_path("1998-04-04", "ml")) / "events.parquet")
    assert latest.schema == arrow_schema(LANDING_EVENT)
    assert rows(latest, "user_id", "parse_error") == [("186", None), ("244", "ts: unparseable 'not-a-time' (expected epoch s)")]

    assert land_events(cfg, table, "ml", delivery_date="1999-01-01") == {
        "1997-11-07": 1, "1997-12-04": 1, "1998-04-04": 1, "1999-01-01": 1}
    relanded = pq.read_table(Path(cfg.landing_path("1998-04-04", "ml")) / "events.parquet")
    assert relanded["user_id"].to_pylist() == ["186"]  # the partition was replaced, not appended to


def test_cli_lands_a_generic_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ENCORE_HOME", str(tmp_path))
    mapping = json.dumps({"user_id": "uid", "item_id": "track", "ts": "played_at"})
    assert adapters.main(["--source", "generic", "--input", str(FIXTURES / "generic_plays.csv"), "--mapping", mapping,
                          "--ts-format", "%d/%m/%Y %H:%M:%S", "--name", "plays"]) == 0
    assert json.loads(capsys.readouterr().out) == {"source": "plays", "rows": 3, "parse_errors": 1, "days": 2}
    landing = tmp_path / "landing" / "plays"
    assert sorted(p.name for p in landing.iterdir()) == ["dt=2021-05-04", "dt=2021-05-05"]
    assert pq.read_table(landing / "dt=2021-05-05" / "events.parquet")["user_id"].to_pylist() == ["bob", "carol"]


def _resaved_mssd(tmp_path: Path) -> Path:
    """The MSSD fixture as a spreadsheet re-saves it: dates as 15/07/2018."""
    text = re.sub(r",(\d{4})-(\d{2})-(\d{2}),", r",\3/\2/\1,", (FIXTURES / "mssd_log.csv").read_text())
    path = tmp_path / "log_resaved.csv"
    path.write_text(text)
    return path


def test_resaved_mssd_dates_are_quarantined_naming_the_option_not_guessed(tmp_path):
    table = adapters.read_mssd(_resaved_mssd(tmp_path))
    errors = table["parse_error"].to_pylist()
    for row, day in enumerate(["15/07/2018"] * 3 + ["16/07/2018"]):
        assert errors[row] == f"date: unparseable '{day}' (expected %Y-%m-%d; a different format needs --date-format)"
    assert table["ts"].null_count == table.num_rows  # nothing guessed


def test_resaved_mssd_dates_with_date_format(tmp_path):
    table = adapters.read_mssd(_resaved_mssd(tmp_path), date_format="%d/%m/%Y")
    original = adapters.read_mssd(FIXTURES / "mssd_log.csv")
    assert table["ts"].to_pylist() == original["ts"].to_pylist()
    errors = table["parse_error"].to_pylist()
    assert errors[:4] == [None] * 4 and errors[5] == original["parse_error"][5].as_py()


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "x;drop table"])
def test_source_names_that_could_leave_the_landing_zone_are_rejected(cfg, tmp_path, name, capsys):
    with pytest.raises(SystemExit) as exit_:
        adapters.main(["--source", "movielens", "--input", str(FIXTURES / "u.data"), "--name", name])
    assert exit_.value.code == 2 and "is not allowed" in capsys.readouterr().err
    assert not Path(cfg.paths.landing).exists()
    assert not (Path(cfg.paths.home).parent / "x").exists()


def test_benchmark_mssd_writer_round_trips_through_the_adapter(tmp_path):
    """benchmarks.mssd_format writes generated sessions as MSSD rows; the adapter must read back
    each track's session, order and skip level (cumulative flags: the first true one decides)."""
    import pandas as pd

    from benchmarks.mssd_format import mssd_frame
    from encore.ingest.adapters import MSSD_COLUMNS

    ts = pd.to_datetime(["2026-10-01 10:00:05", "2026-10-01 10:00:01", "2026-10-01 10:03:00",
                         "2026-10-01 23:59:59"], utc=True)
    events = pd.DataFrame({"session_id": ["b", "a", "a", "b"], "item_id": ["t3", "t1", "t2", "t4"], "ts": ts,
                           "skip_level": [2, 0, 1, 3]})
    frame = mssd_frame(events)
    assert list(frame.columns) == list(MSSD_COLUMNS)
    assert frame[["session_id", "session_position", "session_length", "track_id_clean"]].values.tolist() == [
        ["a", 1, 2, "t1"], ["a", 2, 2, "t2"], ["b", 1, 2, "t3"], ["b", 2, 2, "t4"]]
    assert frame[["skip_1", "skip_2", "skip_3", "not_skipped"]].values.tolist() == [
        [False, False, False, True], [True, True, True, False], [False, True, True, False], [False, False, True, False]]
    assert frame[["hour_of_day", "date"]].values.tolist()[-1] == [23, "2026-10-01"]
    frame.to_csv(tmp_path / "log.csv", index=False)
    table = read_mssd(tmp_path / "log.csv").to_pandas()
    assert table[["user_id", "item_id", "skip_level"]].values.tolist() == [
        ["a", "t1", 0], ["a", "t2", 1], ["b", "t3", 2], ["b", "t4", 3]]
    assert table["parse_error"].isna().all()
