"""The fault matrix (issue #19): faults injected into real nights, one table, nothing lost.

``make chaos`` (``python -m benchmarks.chaos``) prepares a fresh state directory once: the
embedded dataset at the end-to-end tests' small size (60 users, 120 items, 7 days), the history
ingested and one baseline night ``D1`` that leaves a champion and published rows. It then runs a
clean reference night ``D2`` and, for each fault, restores the state directory (the same path:
MLflow and Airflow keep absolute paths), injects the fault into night ``D2``, observes the
outcome, undoes the fault and runs ``D2`` again. A case is clean when

- the night succeeded with the reference's output, or failed with a message naming the cause
  (file, column, date, lock holder, ...);
- no published row of an earlier date and no quarantined row was lost and ``D2`` was not half
  published; no ``dt=`` folder without its ``_SUCCESS`` marker exists;
- what existed before the night is exactly as it was: ``D1``'s published rows, every complete
  lake partition (byte for byte) and, after a failure, the champion;
- the re-run gives the identical result (order-independent checksum of the published rows
  without ``created_at``), and leaves no leftover of an interrupted write.

``--fast`` runs only the cases that need no Airflow night, on a state directory holding the
ingested days up to ``D1`` and toy recommendations published for ``D1``; there a night is the
``validate_raw`` stage and its result is ``D2``'s clean events. ``tests/test_chaos.py`` runs
them in ``make test``. Faults that must strike at one exact moment use the inert-by-default
points of ``encore.core.faults``; the others watch the night's Airflow task states and files.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from encore.core import faults, lake
from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import LANDING_EVENT, RECOMMENDATION, arrow_schema

REPO_ROOT = Path(__file__).resolve().parents[1]
D1, D2 = "2026-10-06", "2026-10-07"  # the baseline night and the night every fault strikes
BEFORE_START = "2026-09-15"  # before the dataset's first day, hence before the DAG's start date
SOURCE = "synthetic_music"
K = 5
SMALL = {  # the small night (also tests/test_e2e_dag.py's)
    "ENCORE__DATA__N_USERS": "60",
    "ENCORE__DATA__N_ITEMS": "120",
    "ENCORE__DATA__N_DAYS": "7",
    "ENCORE__DATA__SESSIONS_PER_USER_DAY": "0.8",
    "ENCORE__TRAINING__EPOCHS": "2",
    "ENCORE__TRAINING__HIDDEN": "32",
    "ENCORE__TRAINING__HEADS": "2",
    "ENCORE__TRAINING__N_SAMPLED": "50",
    "ENCORE__INFERENCE__K": str(K),
    "ENCORE__PHNS__N_NEGATIVES": "10",
    # tiny 2-epoch models may stay below the sanity floor; the popularity baseline always clears it
    "ENCORE__TRAINING__MODELS": "sasrec,smoe_bst,most_pop",
}
COMPARED = [c.name for c in RECOMMENDATION if c.name != "created_at"]
NIGHT_TIMEOUT_S = 1800
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


class CaseError(RuntimeError):
    """The harness could not inject the fault as intended (not a finding about the pipeline)."""


# ---- what the harness observes ----------------------------------------------------------------


@dataclass
class State:
    published: dict[str, str]  # run_date -> checksum of its rows (without created_at)
    published_rows: dict[str, int]
    partitions: dict[str, dict[str, str]]  # lake table -> {date: digest of the partition's files}
    incomplete: list[str]  # dt= folders without their _SUCCESS marker
    leftovers: list[str]  # hidden staging / swap folders of interrupted writes
    champion: str | None  # the registry's champion version


@dataclass
class Outcome:
    """What one night (or the command standing for it) did."""

    succeeded: bool
    message: str  # the error an operator sees, or a short summary of a success
    log: str = ""


@dataclass
class Trial:
    """A case's fault and what its outcome must show, for :meth:`Harness.conclude`."""

    outcome: Outcome
    cause: tuple[str, ...] = ()  # what a failure message must name
    expect: str = "reference"  # a success's D2 result: "reference" (the clean night's) | "own" (its re-run's)
    problems: list[str] = field(default_factory=list)  # case-specific checks that failed
    repair: Callable[[], None] | None = None  # undoes the fault before the re-run
    untouched: bool = False  # rejected before any work: the state dir must be byte-identical, no re-run
    killed: bool = False  # kill -9: there is no message to judge, only what is left and the re-run


@dataclass
class CaseResult:
    fault: str
    did: str
    rows_lost: int
    partial_publish: bool
    previous_intact: bool
    rerun_identical: bool | None  # None: rejected before any work, the state dir was left byte-identical
    names_cause: bool | None  # None: the night succeeded or was killed
    before: str
    problems: list[str]
    seconds: float

    @property
    def clean(self) -> bool:
        return (self.rows_lost == 0 and not self.partial_publish and self.previous_intact
                and self.rerun_identical is not False and self.names_cause is not False and not self.problems)


# ---- the harness ------------------------------------------------------------------------------


class Harness:
    """A state directory prepared once, restored before every case; nights run as ``encore`` does."""

    def __init__(self, root: Path, nights: bool, say: Callable[[str], None] = print):
        self.root = Path(root).resolve()
        self.home = self.root / "state"
        self.baseline = self.root / "baseline"
        self.nights = nights
        self.say = say
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ENCORE")}
        self.env = {**inherited, **SMALL, "ENCORE_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        self.cleanups = contextlib.ExitStack()  # undone after each case (a mount, a helper process)
        self.before: State | None = None
        self.reference: str | None = None
        self.baseline_digest: str | None = None

    # -- setup --

    def cfg(self, **env: str) -> EncoreConfig:
        return load_config(environ={**self.env, **env})

    def prepare(self, reuse: bool = False) -> None:
        """Fresh state dir, baseline night D1, snapshot, then the reference night D2. ``reuse``:
        keep the baseline and reference an earlier run of the same mode prepared in this root."""
        prepared = self.root / "prepared.json"
        if reuse and prepared.exists():
            saved = json.loads(prepared.read_text())
            if saved["nights"] == self.nights:
                self.before, self.reference = State(**saved["before"]), saved["reference"]
                self.baseline_digest = saved["baseline_digest"]
                self.restore()
                self.say(f"reusing the baseline and reference prepared in {self.root}")
                return
        shutil.rmtree(self.root, ignore_errors=True)
        self.home.mkdir(parents=True)
        started = time.monotonic()
        if self.nights:
            done = self.encore("run", "--dates", D1)
            if not done.succeeded:
                raise CaseError(f"baseline night {D1} failed: {done.message}")
        else:
            self._prepare_without_nights()
        shutil.copytree(self.home, self.baseline, symlinks=True)
        self.before = self.observe()
        self.baseline_digest = tree_digest(self.home)
        self.say(f"baseline {D1} ready in {time.monotonic() - started:.0f} s; champion {self.before.champion}")
        started = time.monotonic()
        reference = self.night(D2)
        if not reference.succeeded:
            raise CaseError(f"reference night {D2} failed: {reference.message}")
        self.reference = self.result(self.observe())
        self.restore()
        prepared.write_text(json.dumps({"nights": self.nights, "before": dataclasses.asdict(self.before),
                                        "reference": self.reference, "baseline_digest": self.baseline_digest}))
        self.say(f"reference {D2} ready in {time.monotonic() - started:.0f} s")

    def _prepare_without_nights(self) -> None:
        """The landing zone, every day up to D1 ingested, toy recommendations published for D1."""
        from encore.core.warehouse import publish_recommendations, refresh_analyst_copy
        from encore.ingest.daily import ingest_day
        from encore.nightly.runner import generate

        cfg = self.cfg()
        generate(cfg)
        for day in lake_days(cfg.data.start_date, D1):
            ingest_day(cfg, day)
        publish_recommendations(cfg, D1, toy_recommendations(cfg, D1))
        refresh_analyst_copy(cfg)

    def restore(self) -> None:
        shutil.rmtree(self.home)
        shutil.copytree(self.baseline, self.home, symlinks=True)

    # -- running things --

    def encore(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        """``python -m encore ...`` as an operator runs it; the message is what it printed last."""
        proc = self.start("-m", "encore", *args, env=env)
        return self.finish(proc)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A Python command in its own session (so the whole night can be killed), output to a log."""
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{time.strftime('%H%M%S')}-{os.getpid()}-{len(list(logs.iterdir()))}.log"
        out = open(log_path, "w")
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env={**self.env, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        proc.log_path = log_path  # type: ignore[attr-defined]
        out.close()
        return proc

    def finish(self, proc: subprocess.Popen, timeout: float = NIGHT_TIMEOUT_S) -> Outcome:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_session(proc)
            raise CaseError(f"command did not end within {timeout} s; log {proc.log_path}") from None
        text = Path(proc.log_path).read_text(errors="replace")
        return Outcome(code == 0, final_message(text) if code else "succeeded", text)

    def night(self, day: str = D2, *args: str, env: dict[str, str] | None = None) -> Outcome:
        """Night ``day``: with nights, ``encore run`` through Airflow; without, its first stage
        (``validate_raw``) in this process."""
        if self.nights:
            return self.encore("run", "--dates", day, *args, env=env)
        from encore.nightly import stages

        try:
            summary = stages.validate_raw(self.cfg(**(env or {})), dt.date.fromisoformat(day))
        except Exception as exc:  # noqa: BLE001 - the outcome is the point
            return Outcome(False, f"{type(exc).__name__}: {exc}")
        return Outcome(True, f"{summary['clean_rows']} clean, {summary['quarantined_rows']} quarantined")

    def wait_for(self, proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise CaseError(f"the night ended (exit {proc.returncode}) before {what}; log {proc.log_path}")
            if time.monotonic() > deadline:
                kill_session(proc)
                raise CaseError(f"timed out waiting for {what}; log {proc.log_path}")
            time.sleep(0.1)

    def task_state(self, task_id: str, day: str = D2) -> list[str]:
        """States of the task's instances in the night's Airflow run (read from Airflow's database)."""
        db = Path(self.cfg().paths.airflow_home) / "airflow.db"
        if not db.exists():
            return []
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
                rows = con.execute(
                    "SELECT ti.state FROM task_instance ti JOIN dag_run dr ON ti.run_id = dr.run_id "
                    "AND ti.dag_id = dr.dag_id WHERE ti.task_id = ? AND dr.logical_date LIKE ?",
                    [task_id, f"{day}%"]).fetchall()
        except sqlite3.Error:
            return []
        return [str(state) for (state,) in rows]

    def running(self, task_id: str) -> Callable[[], bool]:
        return lambda: "running" in self.task_state(task_id)

    # -- observing --

    def observe(self) -> State:
        cfg = self.cfg()
        published, rows = {}, {}
        if Path(cfg.paths.warehouse).exists():
            with duckdb.connect(cfg.paths.warehouse, read_only=True) as con:
                if con.execute("SELECT count(*) FROM information_schema.tables "
                               "WHERE table_name = 'recommendations'").fetchall()[0][0]:
                    table = con.sql(f"SELECT {', '.join(COMPARED)} FROM recommendations").to_arrow_table()
                    for day in sorted({str(d) for d in table.column("run_date").to_pylist()}):
                        part = table.filter(pc.equal(table["run_date"], pa.scalar(dt.date.fromisoformat(day))))
                        published[day], rows[day] = lake.table_checksum(part), part.num_rows
        partitions, incomplete, leftovers = {}, [], []
        lake_root = Path(cfg.paths.lake)
        for table_dir in sorted(p for p in lake_root.iterdir() if p.is_dir()) if lake_root.is_dir() else []:
            partitions[table_dir.name] = {}
            for child in sorted(table_dir.iterdir()):
                if child.name.startswith(lake.STALE_PREFIXES):
                    leftovers.append(str(child))
                elif child.name.startswith("dt=") and not (child / lake.SUCCESS).exists():
                    incomplete.append(str(child))
                elif child.name.startswith("dt="):
                    partitions[table_dir.name][child.name[3:]] = tree_digest(child)
        return State(published, rows, partitions, incomplete, leftovers, champion(cfg))

    def result(self, state: State) -> str | None:
        """What night D2 produced: its published rows (nights, from ``state``) or its clean events
        (no nights: the stage that stands for the night writes them)."""
        if self.nights:
            return state.published.get(D2)
        cfg = self.cfg()
        if D2 not in lake.partition_dates(cfg, "events_clean"):
            return None
        return lake.table_checksum(lake.read_partition(cfg, "events_clean", D2))

    def changed_since_baseline(self, state: State, succeeded: bool) -> list[str]:
        before, problems = self.before, []
        for day, checksum in before.published.items():
            if state.published.get(day) != checksum:
                problems.append(f"published rows of {day} changed")
        for table, days in before.partitions.items():
            for day, digest in days.items():
                if state.partitions.get(table, {}).get(day) != digest:
                    problems.append(f"lake {table}/dt={day} changed")
        if not succeeded and state.champion != before.champion:
            problems.append(f"champion moved {before.champion} -> {state.champion}")
        return problems

    # -- judging --

    def conclude(self, fault: str, before: str, trial: Trial, started: float) -> CaseResult:
        """Check the state a fault left, undo it, re-run D2 and compare."""
        outcome, problems = trial.outcome, list(trial.problems)
        after = self.observe()
        changed = self.changed_since_baseline(after, outcome.succeeded)
        problems += [f"half-written partition {p}" for p in after.incomplete]
        rows_lost = sum(max(0, n - after.published_rows.get(day, 0))
                        for day, n in self.before.published_rows.items() if day != D2)
        rows_lost += unreconciled_rows(self.cfg(), D2)
        produced = self.result(after)
        expected = self.reference
        partial = bool(after.incomplete) or (self.nights and produced is not None and not outcome.succeeded
                                             and produced != expected)
        if outcome.succeeded and trial.expect == "reference" and produced != expected:
            problems.append(f"{D2}'s output differs from the clean night's")
        names_cause = None if outcome.succeeded or trial.killed else all(c in outcome.message for c in trial.cause)
        if trial.untouched:
            rerun = None
            if tree_digest(self.home) != self.baseline_digest:
                problems.append("the state dir changed although the command was rejected")
        else:
            if trial.repair:
                trial.repair()
            again = self.night(D2)
            final = self.observe()
            want = produced if trial.expect == "own" else expected
            rerun = again.succeeded and self.result(final) == want and not final.incomplete and not final.leftovers
            if not again.succeeded:
                problems.append(f"re-run failed: {again.message[:200]}")
            elif final.leftovers:
                problems.append(f"re-run left {len(final.leftovers)} leftover(s): {final.leftovers[:3]}")
            changed += [c for c in self.changed_since_baseline(final, True) if c not in changed]
        return CaseResult(
            fault=fault, did=describe(outcome, self.home), rows_lost=rows_lost, partial_publish=partial,
            previous_intact=not changed, rerun_identical=rerun, names_cause=names_cause, before=before,
            problems=problems + changed, seconds=round(time.monotonic() - started, 1))


# ---- helpers ----------------------------------------------------------------------------------


def lake_days(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def toy_recommendations(cfg: EncoreConfig, day: str) -> pa.Table:
    """K of the day's items for every user of the day's clean events (what the fast baseline publishes)."""
    events = lake.read_partition(cfg, "events_clean", day)
    users = sorted(set(events.column("user_id").to_pylist()))
    items = sorted(set(events.column("item_id").to_pylist()))[:K]
    created = dt.datetime(2026, 10, 7, tzinfo=dt.timezone.utc)
    rows = [{"run_date": dt.date.fromisoformat(day), "user_id": user, "rank": rank, "item_id": item,
             "score": 1.0 / rank, "soft_label": 0.5, "p_skip": 0.1, "predicted_completion": 0.8,
             "model_name": "toy", "model_version": "0", "created_at": created}
            for user in users for rank, item in enumerate(items, 1)]
    return pa.Table.from_pylist(rows, schema=arrow_schema(RECOMMENDATION))


def tree_digest(path: Path) -> str:
    """Digest of every file under ``path`` (relative names and contents), ignoring the night lock."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file() and p.name != "night.lock"):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def champion(cfg: EncoreConfig) -> str | None:
    db = Path(cfg.paths.mlflow_tracking_uri.removeprefix("sqlite:///"))
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        try:
            row = con.execute("SELECT version FROM registered_model_aliases WHERE alias = 'champion' AND name = ?",
                              [cfg.promotion.registered_model]).fetchone()
        except sqlite3.Error:
            return None
    return str(row[0]) if row else None


def unreconciled_rows(cfg: EncoreConfig, day: str) -> int:
    """Raw rows of ``day`` in neither the clean events nor the quarantine (0 when not ingested)."""
    if day not in lake.partition_dates(cfg, "ingest_reports"):
        return 0
    summary = json.loads(lake.read_partition(cfg, "ingest_reports", day).column("summary_json")[0].as_py())
    clean = lake.read_partition(cfg, "events_clean", day).num_rows
    quarantined = lake.read_partition(cfg, "quarantine", day).num_rows
    return summary["raw_rows"] - clean - quarantined


def kill_session(proc: subprocess.Popen) -> None:
    """``kill -9`` of the whole night (the CLI, Airflow, every task, Spark's JVM, dbt) and wait for all of it.

    The night was started in its own session; Airflow's task supervisor moves each task process
    into a process group of its own (``setpgid``) but not out of the session, so killing the
    night's process group alone would leave the running task behind (still training, or
    holding the warehouse's write lock inside a publish). What is killed is every process of
    the session, as ``pkill -9 -s <sid>`` would."""
    deadline = time.monotonic() + 30
    while True:
        for pid in session_members(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()
        if not session_members(proc.pid) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of a session."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def final_message(text: str) -> str:
    """What a failed command printed after its last log line: the error an operator reads."""
    lines = text.rstrip().splitlines()
    last_log = max((i for i, line in enumerate(lines) if LOG_LINE.match(line)), default=-1)
    tail = [line for line in lines[last_log + 1:] if line.strip()]
    return "\n".join(tail) if tail else "\n".join(lines[-5:])


def describe(outcome: Outcome, home: Path) -> str:
    """One line for the table: the success, or the line of the failure that names a cause
    (the state dir shortened to ``$ENCORE_HOME``, staging folder names to ``.staging-…``)."""
    if outcome.succeeded or outcome.message.startswith("killed"):
        return outcome.message
    lines = [line.strip() for line in outcome.message.splitlines() if line.strip()]
    causes = [line for line in lines if re.search(r"(Error|Exception|error):", line)]
    line = (causes or lines or ["failed"])[-1 if causes else 0]
    line = re.sub(r"^.*?(AirflowFailException|SystemExit): ", "", line).replace(str(home), "$ENCORE_HOME")
    line = re.sub(r"\.staging-[0-9a-f]{32}", ".staging-…", line)
    return "failed: " + (line if len(line) <= 240 else line[:237] + "...")


# ---- landing-file faults ----------------------------------------------------------------------


def d2_file(h: Harness) -> Path:
    return Path(h.cfg().landing_path(D2, SOURCE)) / "events.parquet"


def keep_original(h: Harness, path: Path) -> Callable[[], None]:
    """Save ``path`` aside; the returned repair puts it back (and removes what the fault added)."""
    saved = h.root / "saved" / path.name
    saved.parent.mkdir(exist_ok=True)
    shutil.copy2(path, saved)

    def repair() -> None:
        shutil.copy2(saved, path)
    return repair


def add_file(path: Path, table: pa.Table) -> Callable[[], None]:
    pq.write_table(table, path)
    return lambda: path.unlink()


# ---- the cases --------------------------------------------------------------------------------


FAST, NIGHTS = "fast", "nights"


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Harness], Trial]
    modes: tuple[str, ...]  # fast (no Airflow night) and / or nights
    before: str  # what the pipeline did before issue #19's fixes


CASES: list[Case] = []


def case(name: str, before: str, modes: tuple[str, ...] = (FAST, NIGHTS)):
    def register(run: Callable[[Harness], Trial]) -> Callable[[Harness], Trial]:
        CASES.append(Case(name, run, modes, before))
        return run
    return register


@case("truncated Parquet file", "kept: stopped naming the file")
def truncated_parquet(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return Trial(h.night(), cause=(str(path),), repair=repair)


@case("corrupt Parquet file (bytes overwritten)", "kept: stopped naming the file")
def corrupt_parquet(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    data = bytearray(path.read_bytes())
    data[-200:-8] = os.urandom(192)  # the footer's metadata, keeping the magic bytes
    path.write_bytes(bytes(data))
    return Trial(h.night(), cause=(str(path),), repair=repair)


@case("empty landing file (0 rows, valid schema)", "crashed: ArrowNotImplementedError 'invert' … (null)")
def empty_file(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    pq.write_table(pq.read_table(path).schema.empty_table(), path)
    return Trial(h.night(), cause=(f"no events for {D2}",), repair=repair)


@case("empty extra file beside the day's file", "—")
def empty_extra_file(h: Harness) -> Trial:
    repair = add_file(d2_file(h).with_name("late.parquet"), arrow_schema(LANDING_EVENT).empty_table())
    return Trial(h.night(), repair=repair)


@case("missing day (no landing files)", "kept: 'no landing files for D'")
def missing_day(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    path.unlink()
    return Trial(h.night(), cause=(f"no landing files for {D2}",), repair=repair)


@case("required column renamed (item_id -> track)", "kept: stopped naming file and column")
def renamed_column(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    table = pq.read_table(path)
    pq.write_table(table.rename_columns(["track" if n == "item_id" else n for n in table.column_names]), path)
    return Trial(h.night(), cause=(str(path), "'item_id'"), repair=repair)


@case("extra column", "—")
def extra_column(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    table = pq.read_table(path)
    pq.write_table(table.append_column("device", pa.array(["phone"] * table.num_rows)), path)
    return Trial(h.night(), repair=repair)


@case("wrong-typed column (ts as epoch seconds, double)", "—")
def wrong_typed_column(h: Harness) -> Trial:
    path = d2_file(h)
    repair = keep_original(h, path)
    table = pq.read_table(path)
    seconds = pa.array([t.timestamp() for t in table.column("ts").to_pylist()], pa.float64())
    pq.write_table(table.set_column(table.column_names.index("ts"), "ts", seconds), path)
    return Trial(h.night(), cause=(str(path), "'ts'"), repair=repair)


# One row per check of validations/raw_events.py (its _expectations and the re-delivery check),
# as {part of the quarantine reason: changed values}: each copies a valid event of D2 (D1 for the
# re-delivery) and breaks one value, so D2's clean events stay the reference's. The file holds
# every column as text (None = null), so a value that does not parse is a row-level error.
BAD_ROWS = {
    "ts: unparseable 'not-a-time'": {"ts": "not-a-time"},
    "null user_id": {"user_id": None},
    "empty user_id": {"user_id": ""},
    "null item_id": {"item_id": None},
    "empty item_id": {"item_id": ""},
    "null ts": {"ts": None},
    "ts out of range": {"ts": "1970-01-01T00:00:00+00:00"},  # epoch 0, before labels.min_ts
    "completion not in [0,1]": {"completion": "1.5"},
    "skip_level not in 0..3": {"skip_level": "7"},
    "negative duration_ms": {"duration_ms": "-5"},
    "non-positive item_length_ms": {"item_length_ms": "0"},
    "rating not in [0,10]": {"rating": "11"},
    "null source": {"source": None},
    "duplicate event (same user_id, item_id, ts as": {},  # an exact copy of the day's first event
    f"duplicate event (already ingested on {D1}": {},  # D1's first event delivered again
}


@case("bad rows of every kind the raw suite checks", "—")
def bad_rows(h: Harness) -> Trial:
    cfg = h.cfg()
    columns = [c.name for c in LANDING_EVENT if c.name != "parse_error"]
    today = pq.read_table(d2_file(h)).to_pylist()[0]
    yesterday = lake.read_partition(cfg, "events_clean", D1).to_pylist()[0]
    rows = []
    for reason, change in BAD_ROWS.items():
        event = yesterday if "already ingested" in reason else today
        rows.append({c: as_text(event[c]) for c in columns} | change)
    path = d2_file(h).with_name("bad_rows.parquet")
    repair = add_file(path, pa.Table.from_pylist(rows, schema=pa.schema([(c, pa.string()) for c in columns])))
    outcome = h.night()
    problems = []
    if D2 in lake.partition_dates(cfg, "quarantine"):
        quarantined = lake.read_partition(cfg, "quarantine", D2)
        from_file = [r for f, r in zip(quarantined.column("source_file").to_pylist(),
                                       quarantined.column("reason").to_pylist()) if f == str(path)]
        missing = [reason for reason in BAD_ROWS if not any(reason in r for r in from_file)]
        if len(from_file) != len(rows) or missing:
            problems.append(f"{len(from_file)} of {len(rows)} bad rows quarantined; reasons missing: {missing}")
    else:
        problems.append("no quarantine partition")
    if outcome.succeeded:
        outcome.message += f"; the {len(rows)} bad rows quarantined, each with its reason"
    return Trial(outcome, problems=problems, repair=repair)


def as_text(value) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


@case("duplicate re-delivery (D1's events again in D2's landing)",
      "failed the night in dbt: unique_stg_events_clean_event_id")
def duplicate_redelivery(h: Harness) -> Trial:
    cfg = h.cfg()
    landed = pq.read_table(Path(cfg.landing_path(D1, SOURCE)) / "events.parquet")
    repair = add_file(d2_file(h).with_name("redelivered.parquet"), landed.slice(0, 50))
    outcome = h.night()
    problems = []
    quarantined = lake.read_partition(cfg, "quarantine", D2) if D2 in lake.partition_dates(cfg, "quarantine") else None
    reasons = quarantined.column("reason").to_pylist() if quarantined is not None else []
    if sum(f"already ingested on {D1}" in r for r in reasons) != 50:
        problems.append(f"{len(reasons)} quarantined, expected the 50 re-delivered events naming {D1}")
    if outcome.succeeded:
        outcome.message += "; the 50 re-delivered events quarantined naming their first copy"
    return Trial(outcome, problems=problems, repair=repair)


@case("params with SQL / ../ (--models, --k, --phns-mix, ingest --name, source config)",
      "kept: rejected before any work")
def bad_params(h: Harness) -> Trial:
    attempts = [
        (["run", "--dates", D2, "--models", "sasrec'; DROP TABLE recommendations; --"], {}, "models"),
        (["run", "--dates", D2, "--models", "../../etc"], {}, "models"),
        (["run", "--dates", D2, "--k", "0"], {}, "k"),
        (["run", "--dates", D2, "--k", "5; DROP TABLE recommendations"], {}, "--k"),
        (["run", "--dates", D2, "--phns-mix", "../../x"], {}, "phns_mix"),
        (["run", "--dates", D2, "--phns-mix", "MEDIUM' OR 1=1 --"], {}, "phns_mix"),
        (["run", "--dates", "2026-10-07/../../x"], {}, "2026-10-07/../../x"),
        (["ingest", "--source", "generic", "--input", str(d2_file(h)), "--name", "../../escaped"], {}, "--name"),
        (["run", "--dates", D2], {"ENCORE__DATA__SOURCE": "../../escaped"}, "source name"),
        (["run", "--dates", D2], {"ENCORE__INGEST__SOURCES": "x'; DROP TABLE recommendations; --"}, "source name"),
    ]
    problems, messages = [], []
    for args, env, named in attempts:
        done = h.encore(*args, env=env)
        messages.append(done.message)
        if done.succeeded or named not in done.message:
            problems.append(f"{' '.join(args)} {env}: {'accepted' if done.succeeded else 'message lacks ' + named}")
    escaped = [str(p) for p in (h.root / "escaped", h.root.parent / "escaped", h.home / "escaped") if p.exists()]
    if escaped:
        problems.append(f"written outside the landing zone: {escaped}")
    outcome = Outcome(False, f"all {len(attempts)} rejected before any work, e.g. " + messages[0].splitlines()[-1])
    return Trial(outcome, problems=problems, untouched=True)


@case("a night for a date before the DAG's start date (no data)", "ran no task and printed 'succeeded'")
def date_before_start(h: Harness) -> Trial:
    return Trial(h.encore("run", "--dates", BEFORE_START), cause=(BEFORE_START, "start date"), untouched=True)


@case("another night holds the state dir's lock", "— (no lock: two nights raced)")
def lock_held(h: Harness) -> Trial:
    holder = h.start("-c", textwrap.dedent(f"""
        import time
        from encore.core.config import load_config
        from encore.nightly.runner import night_lock
        with night_lock(load_config(), "dates {D2}..{D2}"):
            print("holding", flush=True)
            time.sleep(600)
    """))
    try:
        h.wait_for(holder, lambda: "holding" in Path(holder.log_path).read_text(), "the lock holder")
        outcome = h.encore("run", "--dates", D2)
    finally:
        kill_session(holder)
    return Trial(outcome, cause=("another nightly run holds", f"pid {holder.pid}", f"dates {D2}"), untouched=True)


ANALYST = textwrap.dedent("""
    import json, sys, time, duckdb
    path, mode, stop = sys.argv[1:4]
    con = duckdb.connect(path, read_only=True) if mode == "hold" else None
    while True:
        try:
            c = con or duckdb.connect(path, read_only=True)
            counts = dict(c.execute("SELECT run_date::VARCHAR, count(*) FROM recommendations GROUP BY 1").fetchall())
            if con is None:
                c.close()
            print(json.dumps(counts), flush=True)
        except Exception as exc:
            print(json.dumps({"error": str(exc)}), flush=True)
        if __import__("os").path.exists(stop):
            break
        time.sleep(0.2)
""")


def analysts(h: Harness) -> tuple[list[subprocess.Popen], Path]:
    """Two analysts on the reader copy: one holds a connection open, one reconnects for every query."""
    from encore.core.warehouse import analyst_path

    stop = h.root / "analysts.stop"
    stop.unlink(missing_ok=True)
    path = analyst_path(h.cfg())
    procs = [h.start("-c", ANALYST, str(path), mode, str(stop)) for mode in ("hold", "reconnect")]
    for proc in procs:
        h.wait_for(proc, lambda p=proc: Path(p.log_path).read_text().strip() != "", "the analyst's first read")
    return procs, stop


def analysts_saw(h: Harness, procs: list[subprocess.Popen], stop: Path, expected: dict[str, int]) -> list[str]:
    """Stop the analysts; what went wrong for them (errors, dates seen incomplete)."""
    stop.touch()
    problems = []
    for proc, mode in zip(procs, ("hold", "reconnect")):
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_session(proc)
        reads = [json.loads(line) for line in Path(proc.log_path).read_text().splitlines() if line.startswith("{")]
        errors = [r["error"] for r in reads if "error" in r]
        incomplete = {day: n for r in reads if "error" not in r for day, n in r.items() if expected.get(day) != n}
        if errors:
            problems.append(f"{mode} analyst: {len(errors)} failed reads, e.g. {errors[0][:120]}")
        if incomplete:
            problems.append(f"{mode} analyst saw incomplete dates {incomplete}")
        if not reads:
            problems.append(f"{mode} analyst made no read")
    return problems


@case("analysts on the reader copy during a publish", "night failed in dbt: Conflicting lock is held",
      modes=(FAST,))
def analysts_during_publish(h: Harness) -> Trial:
    from encore.core.warehouse import publish_recommendations, refresh_analyst_copy

    cfg = h.cfg()
    procs, stop = analysts(h)
    try:
        outcome = h.night()
        recs = toy_recommendations(cfg, D2)
        publish_recommendations(cfg, D2, recs)
        refresh_analyst_copy(cfg)
        time.sleep(1)
    finally:
        problems = analysts_saw(h, procs, stop, {**h.before.published_rows, D2: recs.num_rows})
    if outcome.succeeded:
        outcome.message = f"published {D2} while 2 analysts read: no error, only complete dates"
    return Trial(outcome, problems=problems)


@case("kill -9 inside the publish transaction (re-publishing D1, after its DELETE)", "kept: previous rows intact")
def kill_inside_publish(h: Harness) -> Trial:
    staged = h.root / "republish.parquet"
    with duckdb.connect(h.cfg().paths.warehouse, read_only=True) as con:
        pq.write_table(con.sql("SELECT * FROM recommendations WHERE run_date = ?", params=[D1]).to_arrow_table(), staged)
    script = textwrap.dedent(f"""
        import pyarrow.parquet as pq
        from encore.core.config import load_config
        from encore.core.warehouse import publish_recommendations
        publish_recommendations(load_config(), "{D1}", pq.read_table("{staged}"))
    """)
    signal_file = h.root / "fault.signal"
    signal_file.unlink(missing_ok=True)
    publisher = h.start("-c", script, env={faults.PAUSE_ENV: "publish_after_delete", faults.SIGNAL_ENV: str(signal_file)})
    h.wait_for(publisher, signal_file.exists, "the publish's DELETE", timeout=120)
    kill_session(publisher)

    def publish_again() -> None:
        if not h.finish(h.start("-c", script)).succeeded:
            raise CaseError(f"publishing {D1} again failed")
    return Trial(Outcome(False, f"killed between the DELETE and the INSERT of {D1}'s rows"), killed=True,
                 repair=publish_again)


@case("full disk during a lake write (tmpfs lake)", "—")
def full_disk(h: Harness) -> Trial:
    fill = h.cleanups.enter_context(tmpfs_lake(h, Path(h.cfg().paths.lake)))
    repair = fill()
    return Trial(h.night(), cause=("No space left on device", "events_clean", D2), repair=repair)


@contextlib.contextmanager
def tmpfs_lake(h: Harness, lake_dir: Path):
    """Mount a small tmpfs over the lake, holding a copy of it; ``fill()`` leaves 8 KiB free and
    returns the repair (free the space)."""
    aside = h.root / "lake-aside"
    shutil.move(lake_dir, aside)
    lake_dir.mkdir()
    size = sum(p.stat().st_size for p in aside.rglob("*") if p.is_file()) + (8 << 20)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(lake_dir)],
                             capture_output=True, text=True)
    if mounted.returncode:
        shutil.rmtree(lake_dir)
        shutil.move(aside, lake_dir)
        raise CaseError(f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}")
    try:
        shutil.copytree(aside, lake_dir, dirs_exist_ok=True)
        filler = lake_dir / ".filler"

        def fill() -> Callable[[], None]:
            free = os.statvfs(lake_dir).f_bavail * os.statvfs(lake_dir).f_frsize
            with open(filler, "wb") as out:
                out.write(b"\0" * max(free - (8 << 10), 0))
            return lambda: filler.unlink()
        yield fill
    finally:
        subprocess.run(["umount", "-l", str(lake_dir)], check=False)
        shutil.rmtree(aside, ignore_errors=True)


def kill_when(h: Harness, ready: Callable[[], bool], what: str, env: dict[str, str] | None = None) -> Trial:
    """Start night D2, ``kill -9`` its whole session once ``ready()``; nothing may be lost."""
    night = h.start("-m", "encore", "run", "--dates", D2, env=env)
    h.wait_for(night, ready, what)
    kill_session(night)
    return Trial(Outcome(False, f"killed during {what}"), killed=True)


@case("kill -9 during validate_raw", "—", modes=(NIGHTS,))
def kill_validate_raw(h: Harness) -> Trial:
    return kill_when(h, h.running("validate_raw"), "validate_raw")


@case("kill -9 during the Spark write", "kept: published rows intact, re-run identical", modes=(NIGHTS,))
def kill_spark_write(h: Harness) -> Trial:
    spark_tables = [Path(h.cfg().lake_path(t)) for t in ("sessionized_events", "sequences", "phns_pools", "phns_negatives")]

    def writing() -> bool:
        return any(child.name.startswith(lake.STAGING_PREFIX) for table in spark_tables if table.is_dir()
                   for child in table.iterdir())
    return kill_when(h, writing, "the Spark write (a staging folder being written)")


@case("kill -9 during dbt", "—", modes=(NIGHTS,))
def kill_dbt(h: Harness) -> Trial:
    dbt_log = h.home / "dbt" / "logs" / "dbt.log"
    start_size = dbt_log.stat().st_size if dbt_log.exists() else 0

    def building() -> bool:
        return (dbt_log.exists() and "running" in h.task_state("dbt_feature_marts")
                and " START " in dbt_log.read_text(errors="replace")[start_size:])
    return kill_when(h, building, "dbt build (models running)")


@case("kill -9 during training (mid-epoch, after epoch 1's checkpoint)", "kept: published rows intact",
      modes=(NIGHTS,))
def kill_training(h: Harness) -> Trial:
    checkpoints = h.home / "checkpoints" / SOURCE / D2

    def mid_epoch() -> bool:
        return "running" in h.task_state("train") and any(checkpoints.glob("*/*/last.pt"))
    return kill_when(h, mid_epoch, "training, after epoch 1's checkpoint")


@case("kill -9 during batch inference", "—", modes=(NIGHTS,))
def kill_batch_inference(h: Harness) -> Trial:
    return kill_when(h, h.running("batch_inference"), "batch_inference")


@case("kill -9 of the night during publish (between DELETE and INSERT)", "kept: published rows intact",
      modes=(NIGHTS,))
def kill_publish(h: Harness) -> Trial:
    signal_file = h.root / "fault.signal"
    signal_file.unlink(missing_ok=True)
    return kill_when(h, signal_file.exists, "publish, inside its transaction after the DELETE",
                     env={faults.PAUSE_ENV: "publish_after_delete", faults.SIGNAL_ENV: str(signal_file)})


@case("the same night triggered twice at once", "one died: sqlite3.IntegrityError FOREIGN KEY constraint failed",
      modes=(NIGHTS,))
def twice_at_once(h: Harness) -> Trial:
    first = h.start("-m", "encore", "run", "--dates", D2)
    h.wait_for(first, h.running("validate_raw"), "the first night's validate_raw")
    second = h.encore("run", "--dates", D2)
    done = h.finish(first)
    problems = [] if not second.succeeded else ["the second night ran too"]
    if not done.succeeded:
        problems.append(f"the first night failed: {done.message[:200]}")
    named = all(c in second.message for c in ("another nightly run holds", f"pid {first.pid}"))
    if not named:
        problems.append(f"the second night's message does not name the holder: {second.message[:200]}")
    return Trial(Outcome(done.succeeded, f"first succeeded; second refused: {describe(second, h.home)[8:]}"),
                 problems=problems)


@case("`encore run` and a raw `airflow dags test` of the same night at once",
      "the CLI's night died: sqlite3.IntegrityError FOREIGN KEY constraint failed", modes=(NIGHTS,))
def cli_and_dags_test_at_once(h: Harness) -> Trial:
    from encore.nightly.runner import airflow_env

    first = h.start("-m", "encore", "run", "--dates", D2)
    h.wait_for(first, h.running("validate_raw"), "the first night's validate_raw")
    second = h.finish(h.start("-m", "airflow", "dags", "test", "encore_nightly", D2, env=airflow_env(h.cfg())))
    done = h.finish(first)
    problems = []
    if done.succeeded or "another `airflow dags test" not in done.message:
        problems.append(f"the replaced night {'succeeded' if done.succeeded else 'does not say why it stopped'}: "
                        f"{done.message[:300]}")
    outcome = Outcome(second.succeeded, "`dags test` completed the night; the CLI's night stopped, saying another "
                      "`airflow dags test` replaced its run" if second.succeeded else second.message)
    return Trial(outcome, problems=problems)


@case("an analyst holding the warehouse open through a night", "night failed in dbt: Conflicting lock is held",
      modes=(NIGHTS,))
def analyst_through_night(h: Harness) -> Trial:
    procs, stop = analysts(h)
    try:
        outcome = h.night()
    finally:
        problems = analysts_saw(h, procs, stop, {**h.before.published_rows, D2: h.observe().published_rows.get(D2)})
    if outcome.succeeded:
        outcome.message = "succeeded; 2 analysts read throughout, never failed, saw only complete dates"
    return Trial(outcome, problems=problems)


@case("training loss becomes NaN (lr = 1e6)", "—", modes=(NIGHTS,))
def nan_loss(h: Harness) -> Trial:
    return Trial(h.night(env={"ENCORE__TRAINING__LR": "1e6"}), cause=("loss is nan",))


@case("challenger much worse than the champion (1 epoch at lr 1e-9)", "kept: champion stays",
      modes=(NIGHTS,))
def worse_challenger(h: Harness) -> Trial:
    outcome = h.night(D2, "--models", "sasrec", env={"ENCORE__TRAINING__LR": "1e-9", "ENCORE__TRAINING__EPOCHS": "1"})
    after = h.observe()
    problems = []
    if after.champion != h.before.champion:
        problems.append(f"champion moved {h.before.champion} -> {after.champion}")
    with duckdb.connect(h.cfg().paths.warehouse, read_only=True) as con:
        versions = {v for (v,) in con.execute("SELECT DISTINCT model_version FROM recommendations WHERE run_date = ?",
                                              [D2]).fetchall()}
    if versions != {h.before.champion}:
        problems.append(f"{D2} was published by versions {versions}, not the champion {h.before.champion}")
    if outcome.succeeded:
        outcome.message = f"succeeded: challenger rejected, champion v{h.before.champion} published {D2}"
    return Trial(outcome, problems=problems, expect="own")


@case("invalid params through Airflow (dags test -c with SQL / ../)", "—", modes=(NIGHTS,))
def bad_airflow_conf(h: Harness) -> Trial:
    from encore.nightly.runner import airflow_env

    cfg = h.cfg()
    airflow = Path(sys.executable).with_name("airflow")
    problems, messages = [], []
    for conf in ({"k": "5; DROP TABLE recommendations"}, {"models": ["../../etc"]}, {"phns_mix": "x' OR 1=1 --"}):
        done = subprocess.run([str(airflow), "dags", "test", "encore_nightly", D2, "-c", json.dumps(conf)],
                              env=airflow_env(cfg), capture_output=True, text=True, timeout=NIGHT_TIMEOUT_S)
        ran = [s for s in h.task_state("validate_raw") if s not in ("None", "")]
        (name,) = conf
        message = (done.stdout + done.stderr).strip().splitlines()
        messages.append(next((line for line in reversed(message) if name in line), message[-1] if message else ""))
        if done.returncode == 0 or ran:
            problems.append(f"{conf}: exit {done.returncode}, validate_raw states {ran}")
        if name not in messages[-1]:
            problems.append(f"{conf}: the message does not name {name!r}")
    return Trial(Outcome(False, "all 3 rejected before any task, e.g. " + messages[0]), problems=problems)


# ---- running the matrix -----------------------------------------------------------------------


def run_case(h: Harness, item: Case) -> CaseResult:
    started = time.monotonic()
    h.restore()
    h.say(f"case: {item.name}")
    try:
        with h.cleanups:
            return h.conclude(item.name, item.before, item.run(h), started)
    except CaseError as exc:
        return CaseResult(item.name, f"harness error: {exc}", 0, False, False, False, False, item.before,
                          [str(exc)], round(time.monotonic() - started, 1))


def run_matrix(h: Harness, names: list[str] | None = None, reuse: bool = False) -> list[CaseResult]:
    mode = NIGHTS if h.nights else FAST
    chosen = [c for c in CASES if mode in c.modes and (not names or c.run.__name__ in names)]
    h.prepare(reuse)
    results = []
    for item in chosen:
        result = run_case(h, item)
        h.say(f"  -> {'clean' if result.clean else 'NOT CLEAN'} in {result.seconds:.0f} s: {result.did}"
              + (f"; problems: {result.problems}" if result.problems else ""))
        results.append(result)
    return results


def mark(value: bool | None, none: str = "n/a") -> str:
    return none if value is None else ("yes" if value else "**NO**")


def table(results: list[CaseResult]) -> str:
    head = ("| fault | what the pipeline did | rows lost | partial publish | previous night intact "
            "| re-run identical | message names the cause | clean | before #19 |\n|---|---|---:|---|---|---|---|---|---|")
    rows = [
        f"| {r.fault} | {r.did.replace('|', '/')} | {r.rows_lost} | {'**YES**' if r.partial_publish else 'no'} "
        f"| {mark(r.previous_intact)} | {mark(r.rerun_identical, 'n/a (state untouched)')} | {mark(r.names_cause)} "
        f"| {'yes' if r.clean else '**NO**'} | {r.before} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="fresh working directory, wiped first (default: $ENCORE_HOME/chaos or .encore/chaos)")
    parser.add_argument("--fast", action="store_true", help="only the cases that need no Airflow night")
    parser.add_argument("--cases", nargs="+", help="run only these cases (function names, e.g. kill_dbt)")
    parser.add_argument("--reuse", action="store_true", help="keep the baseline and reference of an earlier run in --root")
    parser.add_argument("--out", default="bench_results/chaos.json")
    args = parser.parse_args(argv)
    root = Path(args.root or Path(os.environ.get("ENCORE_HOME", ".encore")) / "chaos")
    started = time.monotonic()
    harness = Harness(root, nights=not args.fast, say=lambda line: print(line, flush=True))
    results = run_matrix(harness, args.cases, args.reuse)
    print("\n" + table(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "nights": harness.nights, "root": str(harness.root), "seconds": round(time.monotonic() - started),
        "cases": [{**dataclasses.asdict(r), "clean": r.clean} for r in results]}, indent=2))
    dirty = [r.fault for r in results if not r.clean]
    print(f"\n{len(results) - len(dirty)}/{len(results)} cases clean in {time.monotonic() - started:.0f} s"
          + (f"; NOT clean: {dirty}" if dirty else ""))
    return 1 if dirty else 0


if __name__ == "__main__":
    raise SystemExit(main())
