from pathlib import Path

import pyarrow as pa
import pytest

from encore.core import lake


def test_write_partition_replaces_only_that_date(cfg):
    lake.write_partition(cfg, "t", "2026-10-05", pa.table({"x": [1, 2]}))
    lake.write_partition(cfg, "t", "2026-10-06", pa.table({"x": [3]}))
    lake.write_partition(cfg, "t", "2026-10-05", pa.table({"x": [9]}))
    assert lake.partition_dates(cfg, "t") == ["2026-10-05", "2026-10-06"]
    assert lake.read_partition(cfg, "t", "2026-10-05").column("x").to_pylist() == [9]
    assert lake.read_partition(cfg, "t", "2026-10-06").column("x").to_pylist() == [3]
    both = lake.read_table(cfg, "t", since="2026-10-05", until="2026-10-06")
    assert sorted(zip(both.column("dt").to_pylist(), both.column("x").to_pylist())) == [
        ("2026-10-05", 9), ("2026-10-06", 3)]


def test_missing_partition_names_table_and_date(cfg):
    with pytest.raises(FileNotFoundError, match=r"'t' has no partition dt=2026-10-05"):
        lake.read_partition(cfg, "t", "2026-10-05")


def test_partition_bytes_sums_files_of_dates_in_range(cfg):
    for day, rows in (("2026-10-04", 10), ("2026-10-05", 1000), ("2026-10-06", 100)):
        lake.write_partition(cfg, "t", day, pa.table({"x": list(range(rows))}))
    sizes = {}
    for day in ("2026-10-04", "2026-10-05", "2026-10-06"):
        part = cfg.lake_path("t", day)
        sizes[day] = sum(f.stat().st_size for f in Path(part).rglob("*") if f.is_file())
    assert lake.partition_bytes(cfg, "t", "2026-10-05", "2026-10-06") == sizes["2026-10-05"] + sizes["2026-10-06"]
    assert lake.partition_bytes(cfg, "t", "2026-10-07", "2026-10-09") == 0
    assert lake.partition_bytes(cfg, "missing", "2026-10-01", "2026-10-09") == 0


def test_path_exists_for_files_and_directories(cfg, tmp_path):
    assert not lake.path_exists(cfg.lake_path("events_clean"))
    lake.write_partition(cfg, "events_clean", "2026-10-01", pa.table({"x": [1]}))
    assert lake.path_exists(cfg.lake_path("events_clean"))
    assert lake.path_exists(cfg.lake_path("events_clean", "2026-10-01") + "/part-0.parquet")
    assert not lake.path_exists(str(tmp_path / "nowhere"))


def test_failed_write_names_table_and_date_and_leaves_the_old_partition(cfg, monkeypatch):
    """A full disk mid-write: the error says which partition and why; no staging folder is left."""
    lake.write_partition(cfg, "t", "2026-10-05", pa.table({"x": [1]}))

    def no_space(table, where, filesystem=None):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(lake.pq, "write_table", no_space)
    with pytest.raises(lake.LakeWriteError, match=r"lake table 't' dt=2026-10-05: writing .* failed, the partition "
                                                  r"is unchanged: .*No space left on device"):
        lake.write_partition(cfg, "t", "2026-10-05", pa.table({"x": [2]}))
    assert [p.name for p in Path(cfg.lake_path("t")).iterdir()] == ["dt=2026-10-05"]
    monkeypatch.undo()
    assert lake.read_partition(cfg, "t", "2026-10-05").column("x").to_pylist() == [1]
