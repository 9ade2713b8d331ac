"""Reading and atomically replacing ``dt=`` partitions of lake tables (local dir or object store)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import uuid

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from encore.core.config import EncoreConfig

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"  # written last into a partition: the partition is complete
STAGING_PREFIX = ".staging-"
OLD_PREFIX = ".old-"
# hidden writers' leftovers: ours, Spark's dynamic-overwrite staging and task attempts
STALE_PREFIXES = (STAGING_PREFIX, OLD_PREFIX, ".spark-staging-", "_temporary")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri.replace("s3a://", "s3://"))
    return pafs.LocalFileSystem(), uri


def write_partition(cfg: EncoreConfig, table_name: str, run_date: str | dt.date, table: pa.Table) -> str:
    """Replace partition ``dt=run_date`` of a lake table with ``table``; other dates untouched.

    The data and then the ``_SUCCESS`` marker are written to a hidden sibling
    directory, which is swapped in with renames (``publish_staged_partition``), so
    readers see either the old or the new partition, never a half written one, and
    a re-run of the same date is idempotent.
    """
    fs, root = filesystem(cfg.lake_path(table_name))
    staging = new_staging_dir(cfg, table_name)
    try:
        fs.create_dir(staging, recursive=True)
        pq.write_table(table, f"{staging}/part-0.parquet", filesystem=fs)
    except OSError as exc:  # e.g. a full disk: say where, and leave nothing half written behind
        with contextlib.suppress(OSError):
            fs.delete_dir(staging)
        raise LakeWriteError(f"lake table {table_name!r} dt={run_date}: writing {staging} failed, the partition "
                             f"is unchanged: {exc}") from exc
    return publish_staged_partition(cfg, table_name, run_date, staging)


class LakeWriteError(OSError):
    """A partition could not be written (e.g. no space left); the previous partition is intact.
    An ``OSError``, so the orchestrator retries it: the cause may go away."""


def new_staging_dir(cfg: EncoreConfig, table_name: str) -> str:
    """A fresh hidden directory beside the table's partitions for a writer to fill (a path
    in the table's filesystem; Spark writes there too). Readers and globs never see it."""
    _, root = filesystem(cfg.lake_path(table_name))
    return f"{root}/{STAGING_PREFIX}{uuid.uuid4().hex}"


def publish_staged_partition(cfg: EncoreConfig, table_name: str, run_date: str | dt.date, staging: str) -> str:
    """Move a filled staging directory into place as partition ``dt=run_date`` (replacing it),
    writing the ``_SUCCESS`` marker first if the writer did not. Returns the partition URI."""
    target_uri = cfg.lake_path(table_name, run_date)
    fs, target = filesystem(target_uri)
    root = target.rsplit("/", 1)[0]
    marker = f"{staging}/{SUCCESS}"
    if fs.get_file_info(marker).type == pafs.FileType.NotFound:
        with fs.open_output_stream(marker):
            pass
    old = None
    if fs.get_file_info(target).type != pafs.FileType.NotFound:
        old = f"{root}/{OLD_PREFIX}{uuid.uuid4().hex}"
        fs.move(target, old)
    fs.move(staging, target)
    if old:
        fs.delete_dir(old)
    return target_uri


def clean_stale_writes(cfg: EncoreConfig, *table_names: str) -> list[str]:
    """Remove what interrupted writers left in these tables: hidden staging / swap
    directories, Spark's ``_temporary`` and ``dt=`` folders without a ``_SUCCESS`` marker.

    Called at the start of the task that owns the tables (one night runs at a time per
    state directory, so nothing removed here is still being written). Returns what it removed.
    """
    removed = []
    for table_name in table_names:
        fs, root = filesystem(cfg.lake_path(table_name))
        if fs.get_file_info(root).type == pafs.FileType.NotFound:
            continue
        for info in fs.get_file_info(pafs.FileSelector(root)):
            stale = info.base_name.startswith(STALE_PREFIXES) or (
                info.base_name.startswith("dt=") and info.type == pafs.FileType.Directory
                and fs.get_file_info(f"{info.path}/{SUCCESS}").type == pafs.FileType.NotFound)
            if stale:
                if info.type == pafs.FileType.Directory:
                    fs.delete_dir(info.path)
                else:
                    fs.delete_file(info.path)
                removed.append(info.path)
    if removed:
        log.warning("removed %d leftover(s) of interrupted writes: %s", len(removed), removed)
    return removed


def read_partition(cfg: EncoreConfig, table_name: str, run_date: str | dt.date) -> pa.Table:
    uri = cfg.lake_path(table_name, run_date)
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"lake table {table_name!r} has no partition dt={run_date} at {uri}")
    return ds.dataset(path, filesystem=fs, format="parquet").to_table()


def path_exists(uri: str) -> bool:
    """Whether a file or directory exists at ``uri`` (local path or object store URI)."""
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def partition_dates(cfg: EncoreConfig, table_name: str) -> list[str]:
    """Dates with a complete ``dt=`` partition (one holding the ``_SUCCESS`` marker), sorted.

    A ``dt=`` folder without the marker is what an interrupted writer left: it does not
    count as present, so the task that owns the table writes it again."""
    fs, path = filesystem(cfg.lake_path(table_name))
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    folders = [info for info in fs.get_file_info(pafs.FileSelector(path))
               if info.type == pafs.FileType.Directory and info.base_name.startswith("dt=")]
    markers = fs.get_file_info([f"{info.path}/{SUCCESS}" for info in folders])
    return sorted(info.base_name[3:] for info, marker in zip(folders, markers)
                  if marker.type != pafs.FileType.NotFound)


def partition_bytes(cfg: EncoreConfig, table_name: str, since: str, until: str) -> int:
    """Total size of the files in the ``dt=`` partitions with ``since <= dt <= until``."""
    fs, root = filesystem(cfg.lake_path(table_name))
    total = 0
    for day in partition_dates(cfg, table_name):
        if since <= day <= until:
            infos = fs.get_file_info(pafs.FileSelector(f"{root}/dt={day}", recursive=True))
            total += sum(info.size for info in infos if info.type == pafs.FileType.File)
    return total


def read_table(cfg: EncoreConfig, table_name: str, since: str | None = None, until: str | None = None) -> pa.Table:
    """All partitions of a lake table with ``since <= dt <= until``, with a ``dt`` column."""
    dates = [d for d in partition_dates(cfg, table_name) if (not since or d >= since) and (not until or d <= until)]
    parts = []
    for day in dates:
        part = read_partition(cfg, table_name, day)
        parts.append(part.append_column("dt", pa.array([day] * part.num_rows, pa.string())))
    if not parts:
        raise FileNotFoundError(f"lake table {table_name!r} has no partitions in [{since}, {until}]")
    return pa.concat_tables(parts, promote_options="default")


def table_checksum(table: pa.Table, columns: list[str] | None = None) -> str:
    """Order-independent checksum of a table's rows (``columns``: only these, e.g. without
    ``created_at`` to compare re-runs): sha256 over the sorted per-row digests."""
    names = columns or table.column_names
    rows = zip(*(table.column(name).to_pylist() for name in names)) if table.num_rows else []
    digests = sorted(hashlib.blake2b(repr(row).encode(), digest_size=16).digest() for row in rows)
    return hashlib.sha256(b"".join(digests)).hexdigest()
