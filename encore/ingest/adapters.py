"""Source adapters: map public dataset formats to the landing contract (``LANDING_EVENT``).

Every adapter reads one file in its exact public format and returns a pyarrow
table with ``arrow_schema(LANDING_EVENT)``. Parsing is tolerant per row: a value
that cannot be parsed becomes null and the row's ``parse_error`` names the column
and the raw value (``ts: unparseable '2020-13-45x'``); a line with the wrong number
of fields is kept too (``line 7: expected 6 fields, got 4``). Validation then
quarantines those rows with that reason: rows are never dropped here. A wrong
file (unreadable, a required column missing) raises ``AdapterError`` naming the
file and the column. Timestamps are UTC; naive times are read as UTC.

Mappings
--------
* **Spotify MSSD** training logs (CSV with header): ``user_id = session_id``
  (session-based data), ``item_id = track_id_clean``, ``skip_level`` = 1 if
  ``skip_1`` else 2 if ``skip_2`` else 3 if ``skip_3`` else 0. MSSD has no time
  finer than ``date`` + ``hour_of_day``, so ``ts = date + hour_of_day hours +
  session_position seconds``: the hour is right and the order inside a session is
  kept. ``session_id`` is kept; durations are not in the logs (null).
* **Last.fm 1K** (``userid \\t timestamp \\t artid \\t artname \\t traid \\t
  traname``, no header, ISO timestamps): ``item_id = traid``; when ``traid`` is
  empty (about 11 % of plays) ``item_id = "<artname> - <traname>"`` so unmatched
  tracks still count as one item per artist and title.
* **MovieLens**: ``u.data`` (ml-100k, tab, ``user item rating unix_ts``),
  ``ratings.dat`` (ml-1m/10m, ``::``), ``ratings.csv`` (ml-20m/25m/latest,
  header ``userId,movieId,rating,timestamp``) and RecBole ``.inter`` (tab, header
  ``user_id:token item_id:token rating:float timestamp:float``), detected from
  the first line. ``rating`` is kept as is; the rating <= 2 rule lives in
  ``contracts.label_sql``.
* **Generic** CSV / Parquet with a ``{contract column: source column}`` mapping
  (``user_id``, ``item_id``, ``ts`` required) and an optional ``ts_format``
  (strptime) or ``ts_unit`` (s | ms | us | ns epoch numbers); without either,
  ISO-8601 text or native timestamp columns are expected.

``land_events`` writes an adapted table to daily landing partitions
(``landing/<source>/dt=D/events.parquet``) by the UTC date of ``ts``.

CLI: ``python -m encore.ingest.adapters --source mssd|lastfm1k|movielens|generic --input
PATH [--mapping JSON] [--name SOURCE_NAME]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from encore.core.config import EncoreConfig, check_source_name, load_config
from encore.core.errors import ConfigError, EncoreInputError
from encore.core.contracts import LANDING_EVENT, RAW_EVENT_COLUMNS, REQUIRED_RAW_COLUMNS, arrow_schema

log = logging.getLogger(__name__)

MSSD_REQUIRED = ("session_id", "session_position", "track_id_clean", "skip_1", "skip_2", "skip_3", "hour_of_day", "date")
# the public training logs' full layout (the adapter needs only MSSD_REQUIRED)
MSSD_COLUMNS = ("session_id", "session_position", "session_length", "track_id_clean", "skip_1", "skip_2", "skip_3",
                "not_skipped", "context_switch", "no_pause_before_play", "short_pause_before_play",
                "long_pause_before_play", "hist_user_behavior_n_seekfwd", "hist_user_behavior_n_seekback",
                "hist_user_behavior_is_shuffle", "hour_of_day", "date", "premium", "context_type",
                "hist_user_behavior_reason_start", "hist_user_behavior_reason_end")
LASTFM_COLUMNS = ("userid", "timestamp", "artid", "artname", "traid", "traname")
MOVIELENS_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
RECBOLE_COLUMNS = {"user_id:token": "user_id", "item_id:token": "item_id", "rating:float": "rating", "timestamp:float": "timestamp"}
MOVIELENS_CSV_COLUMNS = {"userId": "user_id", "movieId": "item_id", "rating": "rating", "timestamp": "timestamp"}
TS_UNITS = ("s", "ms", "us", "ns")

_STRING = pd.StringDtype("pyarrow")
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


class AdapterError(EncoreInputError):
    """The file cannot be adapted at all (unreadable, wrong format, a required column missing)."""


class _Parsed:
    """Raw string columns of one file plus the parse errors collected per row."""

    def __init__(self, path: str | Path, frame: pd.DataFrame, errors: pd.Series):
        self.path = str(path)
        self.frame = frame
        self.errors = errors

    def __len__(self) -> int:
        return len(self.frame)

    def note(self, failed: pd.Series, messages: pd.Series | str) -> None:
        """Append ``messages`` to the parse error of the rows where ``failed``."""
        if not failed.any():
            return
        rows = failed.index[failed.to_numpy(bool)]
        new = messages.loc[rows] if isinstance(messages, pd.Series) else pd.Series(messages, index=rows)
        old = self.errors.loc[rows]
        self.errors.loc[rows] = np.where(old.isna(), new, old.astype(object) + "; " + new)

    def text(self, column: str, required: bool = False, label: str | None = None) -> pd.Series:
        """Column as stripped strings, empty -> null (noted as an error when required)."""
        raw = self.frame[column]
        if not isinstance(raw.dtype, pd.StringDtype):
            raw = raw.astype(object).where(raw.notna(), None).map(str, na_action="ignore").astype(_STRING)
        value = raw.str.strip()
        value = value.where(value.ne("").fillna(False))
        if required:
            self.note(value.isna(), f"{label or column}: empty")
        return value

    def _unparseable(self, label: str, raw: pd.Series, parsed: pd.Series, hint: str = "") -> None:
        failed = raw.notna() & parsed.isna()
        self.note(failed, label + ": unparseable " + raw[failed].astype(object).map(repr) + hint)

    def number(self, column: str, label: str, integer: bool = False, required: bool = False,
               low: float | None = None, high: float | None = None) -> pd.Series:
        """Numeric column; with ``low``/``high`` a value outside the range is noted and nulled."""
        series = self.frame[column]
        raw = series if pd.api.types.is_numeric_dtype(series) else self.text(column, required, label)
        parsed = pd.to_numeric(raw, errors="coerce")
        if integer:
            parsed = parsed.where(parsed.isna() | (parsed == np.floor(parsed)))
        self._unparseable(label, raw, parsed)
        if low is not None or high is not None:
            outside = parsed.notna() & ~parsed.between(-np.inf if low is None else low, np.inf if high is None else high)
            self.note(outside, label + ": out of range " + raw[outside].astype(object).map(repr))
            parsed = parsed.where(~outside)
        return parsed.round().astype("Int64") if integer else parsed.astype("float64")

    def boolean(self, column: str, required: bool = False) -> pd.Series:
        raw = self.text(column, required)
        lowered = raw.str.lower()
        parsed = pd.Series(pd.NA, index=raw.index, dtype="boolean")
        parsed[lowered.isin(_TRUE)] = True
        parsed[lowered.isin(_FALSE)] = False
        self._unparseable(column, raw, parsed)
        return parsed

    def timestamp(self, column: str, label: str = "ts", fmt: str | None = None, unit: str | None = None,
                  required: bool = True) -> pd.Series:
        series = self.frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            parsed = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
            if required:
                self.note(parsed.isna(), f"{label}: empty")
            return parsed
        if pd.api.types.is_numeric_dtype(series):
            if not unit:
                raise AdapterError(f"{self.path}: column {column!r} holds numbers; give ts_unit (one of {TS_UNITS})")
            parsed = pd.to_datetime(series, unit=unit, utc=True, errors="coerce")
            self._unparseable(label, series, parsed)
            if required:
                self.note(series.isna(), f"{label}: empty")
            return parsed
        raw = self.text(column, required, label)
        if unit:
            parsed = pd.to_datetime(pd.to_numeric(raw, errors="coerce"), unit=unit, utc=True, errors="coerce")
            hint = f" (expected epoch {unit})"
        else:
            # exactly this format, never a guess: 01/02/2018 could be either day first or month first
            parsed = pd.to_datetime(raw, format=fmt or "ISO8601", utc=True, errors="coerce")
            hint = f" (expected {fmt or 'ISO-8601'}; a different format needs --date-format)"
        self._unparseable(label, raw, parsed, hint)
        return parsed


def _read_delimited(path: str | Path, delimiter: str, names: tuple[str, ...] | None = None,
                    quoted: bool = True, data: bytes | None = None) -> _Parsed:
    """Read a delimited text file as strings; lines with the wrong field count are kept with an error.

    ``names`` given: the file has no header and these are its columns; otherwise
    the first line is the header.
    """
    source = io.BytesIO(data) if data is not None else str(path)
    if names is None:
        header = _first_line(path) if data is None else data.split(b"\n", 1)[0].decode("utf-8", "replace")
        columns = [c.strip().lstrip("\ufeff") for c in header.rstrip("\r\n").split(delimiter)]
        skip = 1
    else:
        columns = list(names)
        skip = 0
    bad_lines: list[tuple[int | None, str]] = []

    def keep_bad_line(row: pacsv.InvalidRow) -> str:
        bad_lines.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=skip, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoted else False,
                                             invalid_row_handler=keep_bad_line),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 strings_can_be_null=False),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise AdapterError(f"{path}: cannot read as {delimiter!r}-delimited text: {exc}") from exc
    frame = table.to_pandas(types_mapper={pa.string(): _STRING}.get)
    errors = pd.Series(None, index=frame.index, dtype=object)
    if bad_lines:
        log.warning("%s: %d lines with the wrong number of fields kept with a parse error", path, len(bad_lines))
        rows = [(text.split(delimiter) + [None] * len(columns))[: len(columns)] for _, text in bad_lines]
        extra = pd.DataFrame(rows, columns=columns, dtype=object)
        messages = [f"line {number if number is not None else '?'}: expected {len(columns)} fields, "
                    f"got {len(text.split(delimiter))}" for number, text in bad_lines]
        frame = pd.concat([frame, extra.astype(_STRING)], ignore_index=True)
        errors = pd.concat([errors, pd.Series(messages, dtype=object)], ignore_index=True)
    return _Parsed(path, frame, errors)


def _first_line(path: str | Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            line = fh.readline()
    except OSError as exc:
        raise AdapterError(f"{path}: cannot open: {exc}") from exc
    if not line.strip():
        raise AdapterError(f"{path}: empty file (no header / first row)")
    return line


def _require(path: str | Path, present: list[str] | tuple[str, ...], required: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise AdapterError(f"{path}: missing required column {missing[0]!r} ({what}); found {list(present)}")


def _landing_table(parsed: _Parsed, source: str, columns: dict[str, pd.Series]) -> pa.Table:
    schema = arrow_schema(LANDING_EVENT)
    n = len(parsed)
    arrays = []
    for field in schema:
        if field.name == "source":
            arrays.append(pa.array([source] * n, pa.string()))
        elif field.name == "parse_error":
            arrays.append(pa.array(parsed.errors, pa.string(), from_pandas=True))
        elif field.name == "ts":
            arrays.append(pa.array(columns["ts"], from_pandas=True).cast(field.type, safe=False))
        elif field.name in columns:
            arrays.append(pa.array(columns[field.name], field.type, from_pandas=True))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


MSSD_DATE_FORMAT = "%Y-%m-%d"


def read_mssd(path: str | Path, source: str = "mssd", date_format: str | None = None) -> pa.Table:
    """Spotify Music Streaming Sessions Dataset training log (``log_*.csv``). ``date_format``
    (strptime) reads a ``date`` column re-saved by a spreadsheet or pandas (e.g. ``%d/%m/%Y``);
    default the public ``%Y-%m-%d``."""
    parsed = _read_delimited(path, ",")
    _require(path, list(parsed.frame.columns), MSSD_REQUIRED, "Spotify MSSD training log")
    session = parsed.text("session_id", required=True)
    position = parsed.number("session_position", "session_position", integer=True, required=True, low=0)
    hour = parsed.number("hour_of_day", "hour_of_day", integer=True, required=True, low=0, high=23)
    day = parsed.timestamp("date", label="date", fmt=date_format or MSSD_DATE_FORMAT)
    ts = day + pd.to_timedelta(hour.astype("float64"), unit="h") + pd.to_timedelta(position.astype("float64"), unit="s")
    is_true, is_false = [], []
    for column in ("skip_1", "skip_2", "skip_3"):
        flag = parsed.boolean(column, required=True)
        is_true.append(flag.fillna(False).to_numpy(bool))
        is_false.append((~flag).fillna(False).to_numpy(bool))
    # the first true flag decides; an unreadable flag before it leaves the level unknown
    level = np.select(
        [is_true[0], is_false[0] & is_true[1], is_false[0] & is_false[1] & is_true[2],
         is_false[0] & is_false[1] & is_false[2]],
        [1, 2, 3, 0], -1)
    return _landing_table(parsed, source, {
        "user_id": session,
        "item_id": parsed.text("track_id_clean", required=True, label="item_id"),
        "ts": ts,
        "session_id": session,
        "skip_level": pd.Series(level, index=parsed.frame.index).astype("Int64").replace(-1, pd.NA),
    })


def read_lastfm1k(path: str | Path, source: str = "lastfm1k") -> pa.Table:
    """Last.fm 1K ``userid-timestamp-artid-artname-traid-traname.tsv`` (no header, tab, no quoting)."""
    fields = _first_line(path).rstrip("\r\n").split("\t")
    if len(fields) < len(LASTFM_COLUMNS):
        raise AdapterError(f"{path}: missing required column {LASTFM_COLUMNS[len(fields)]!r}: Last.fm 1K lines have "
                           f"{len(LASTFM_COLUMNS)} tab-separated fields {LASTFM_COLUMNS}, the first line has {len(fields)}")
    parsed = _read_delimited(path, "\t", names=LASTFM_COLUMNS, quoted=False)
    track_id = parsed.text("traid")
    names = (parsed.text("artname").fillna("") + " - " + parsed.text("traname").fillna("")).str.strip(" -")
    item = track_id.fillna(names.where(names != "", None))
    parsed.note(item.isna(), "item_id: empty traid and track name")
    return _landing_table(parsed, source, {
        "user_id": parsed.text("userid", required=True, label="user_id"),
        "item_id": item,
        "ts": parsed.timestamp("timestamp"),
    })


def _movielens_layout(path: str | Path) -> tuple[str, tuple[str, ...] | None, dict[str, str]]:
    """(delimiter, column names for headerless files, {file column: standard name}) from the first line."""
    line = _first_line(path).rstrip("\r\n")
    if "::" in line:  # ratings.dat (ml-1m, ml-10m): user::movie::rating::timestamp
        n = len(line.split("::"))
        if n < 4:
            raise AdapterError(f"{path}: missing required column {MOVIELENS_COLUMNS[n]!r} (ratings.dat has "
                               f"UserID::MovieID::Rating::Timestamp), the first line has {n} fields")
        return "::", MOVIELENS_COLUMNS, {c: c for c in MOVIELENS_COLUMNS}
    if ":token" in line or ":float" in line:  # RecBole atomic file
        header = [c.strip() for c in line.split("\t")]
        _require(path, header, tuple(k for k in RECBOLE_COLUMNS if k != "rating:float"), "RecBole .inter")
        return "\t", None, {k: v for k, v in RECBOLE_COLUMNS.items() if k in header}
    if "userId" in line:  # ratings.csv (ml-20m, ml-25m, ml-latest)
        header = [c.strip().lstrip("\ufeff") for c in line.split(",")]
        _require(path, header, ("userId", "movieId", "timestamp"), "MovieLens ratings.csv")
        return ",", None, {k: v for k, v in MOVIELENS_CSV_COLUMNS.items() if k in header}
    fields = line.split("\t")
    if len(fields) >= 2 and fields[0].strip().isdigit():  # u.data (ml-100k): user item rating timestamp
        if len(fields) < 4:
            raise AdapterError(f"{path}: missing required column {MOVIELENS_COLUMNS[len(fields)]!r} (u.data has "
                               f"user item rating timestamp, tab-separated), the first line has {len(fields)} fields")
        return "\t", MOVIELENS_COLUMNS, {c: c for c in MOVIELENS_COLUMNS}
    raise AdapterError(f"{path}: not a MovieLens ratings file (u.data, ratings.dat, ratings.csv or RecBole .inter); "
                       f"first line {line[:80]!r}")


def read_movielens(path: str | Path, source: str = "movielens") -> pa.Table:
    """MovieLens ratings in any of its public layouts (detected from the first line)."""
    delimiter, names, renames = _movielens_layout(path)
    if delimiter == "::":
        try:
            data = Path(path).read_bytes().replace(b"::", b"\t")
        except OSError as exc:
            raise AdapterError(f"{path}: cannot open: {exc}") from exc
        parsed = _read_delimited(path, "\t", names=names, quoted=False, data=data)
    else:
        parsed = _read_delimited(path, delimiter, names=names, quoted=delimiter == ",")
    parsed.frame = parsed.frame.rename(columns=renames)
    columns = {
        "user_id": parsed.text("user_id", required=True),
        "item_id": parsed.text("item_id", required=True),
        "ts": parsed.timestamp("timestamp", unit="s"),
    }
    if "rating" in parsed.frame.columns:
        columns["rating"] = parsed.number("rating", "rating")
    return _landing_table(parsed, source, columns)


_GENERIC_NUMBERS = {"duration_ms": True, "item_length_ms": True, "skip_level": True, "completion": False, "rating": False}


def read_generic(path: str | Path, mapping: dict[str, str], source: str = "generic",
                 ts_format: str | None = None, ts_unit: str | None = None) -> pa.Table:
    """Any CSV (with header) or Parquet file, columns mapped by ``{contract column: source column}``."""
    unknown = sorted(set(mapping) - set(RAW_EVENT_COLUMNS) | ({"source"} & set(mapping)))
    if unknown:
        raise AdapterError(f"{path}: mapping names {unknown[0]!r}, not a mappable raw event column; "
                           f"known: {[c for c in RAW_EVENT_COLUMNS if c != 'source']}")
    missing = [c for c in REQUIRED_RAW_COLUMNS if c not in mapping]
    if missing:
        raise AdapterError(f"{path}: mapping lacks required column {missing[0]!r} (needs {list(REQUIRED_RAW_COLUMNS)})")
    if ts_unit is not None and ts_unit not in TS_UNITS:
        raise AdapterError(f"{path}: ts_unit must be one of {TS_UNITS}, got {ts_unit!r}")
    if str(path).endswith(".parquet") or Path(path).is_dir():
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise AdapterError(f"{path}: cannot read as Parquet: {exc}") from exc
        _require(path, table.column_names, tuple(mapping.values()), "named in the mapping")
        frame = table.select(list(dict.fromkeys(mapping.values()))).to_pandas(integer_object_nulls=True)
        parsed = _Parsed(path, frame, pd.Series(None, index=frame.index, dtype=object))
    else:
        parsed = _read_delimited(path, ",")
        _require(path, list(parsed.frame.columns), tuple(mapping.values()), "named in the mapping")
    frame = parsed.frame
    parsed.frame = pd.DataFrame({target: frame[column] for target, column in mapping.items()}, index=frame.index)
    columns = {
        "user_id": parsed.text("user_id", required=True),
        "item_id": parsed.text("item_id", required=True),
        "ts": parsed.timestamp("ts", fmt=ts_format, unit=ts_unit),
    }
    if "session_id" in mapping:
        columns["session_id"] = parsed.text("session_id")
    for name, integer in _GENERIC_NUMBERS.items():
        if name in mapping:
            columns[name] = parsed.number(name, name, integer=integer)
    return _landing_table(parsed, source, columns)


ADAPTERS: dict[str, Callable[..., pa.Table]] = {
    "mssd": read_mssd,
    "lastfm1k": read_lastfm1k,
    "movielens": read_movielens,
    "generic": read_generic,
}


def land_events(cfg: EncoreConfig, table: pa.Table, source: str,
                delivery_date: dt.date | str | None = None) -> dict[str, int]:
    """Write ``table`` to ``cfg.landing_path(day, source)/events.parquet`` per UTC date of ``ts``.

    Rows whose ``ts`` is null (failed to parse) go to ``delivery_date``'s partition
    (default: the latest date seen) so validation can quarantine them. Each
    partition file is replaced atomically. Returns rows written per ISO date.
    """
    if table.schema != arrow_schema(LANDING_EVENT):
        raise AdapterError(f"land_events({source}): table does not have the landing schema: {table.schema}")
    days = pc.cast(table["ts"], pa.date32())
    if delivery_date is None:
        latest = pc.max(days).as_py()
        delivery_date = latest or dt.datetime.now(dt.timezone.utc).date()
        if latest is None:
            log.warning("land_events(%s): no parseable ts, landing all rows on today's date %s", source, delivery_date)
    elif isinstance(delivery_date, str):
        delivery_date = dt.date.fromisoformat(delivery_date)
    days = pc.fill_null(days, pa.scalar(delivery_date, pa.date32()))
    order = pc.sort_indices(days)  # stable: rows keep their file order inside a day
    table = table.take(order)
    sorted_days = days.take(order).to_numpy()
    ends = np.append(np.flatnonzero(sorted_days[1:] != sorted_days[:-1]) + 1, len(sorted_days))
    written: dict[str, int] = {}
    start = 0
    for end in ends.tolist() if table.num_rows else []:
        day = sorted_days[start].astype(dt.date)
        path = Path(cfg.landing_path(day, source)) / "events.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table.slice(start, end - start), tmp)
        os.replace(tmp, path)
        written[day.isoformat()] = end - start
        start = end
    log.info("landed %d rows of %s into %d daily partitions under %s/%s", table.num_rows, source, len(written),
             cfg.paths.landing, source)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encore ingest", description="Map a public dataset file to Encore's landing zone.")
    parser.add_argument("--source", required=True, choices=sorted(ADAPTERS))
    parser.add_argument("--input", required=True, help="file to read")
    parser.add_argument("--mapping", help="generic: JSON {contract column: source column}, inline or a file path")
    parser.add_argument("--date-format", "--ts-format", dest="date_format",
                        help="mssd: strptime format of the date column (default %%Y-%%m-%%d); generic: of the ts "
                             "column (default ISO-8601). Values that do not match are quarantined, never guessed")
    parser.add_argument("--ts-unit", choices=TS_UNITS, help="generic: ts column holds epoch numbers in this unit")
    parser.add_argument("--name", help="source name in the landing zone (default: the --source value)")
    parser.add_argument("--delivery-date", help="partition for rows whose ts failed to parse (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    name = args.name or args.source
    try:
        check_source_name(name)
    except ConfigError as exc:
        parser.error(f"--name: {exc}")
    if args.date_format and args.source not in ("mssd", "generic"):
        parser.error(f"--date-format applies to --source mssd or generic, not {args.source}")
    if args.source == "generic":
        if not args.mapping:
            parser.error("--source generic needs --mapping")
        text = Path(args.mapping).read_text() if Path(args.mapping).is_file() else args.mapping
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            parser.error(f"--mapping is not valid JSON: {exc}")
        table = read_generic(args.input, mapping, source=name, ts_format=args.date_format, ts_unit=args.ts_unit)
    elif args.source == "mssd":
        table = read_mssd(args.input, source=name, date_format=args.date_format)
    else:
        table = ADAPTERS[args.source](args.input, source=name)
    bad = table.num_rows - table["parse_error"].null_count
    log.info("%s: %d rows read, %d with parse errors", args.input, table.num_rows, bad)
    written = land_events(load_config(), table, name, args.delivery_date)
    print(json.dumps({"source": name, "rows": table.num_rows, "parse_errors": bad, "days": len(written)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
