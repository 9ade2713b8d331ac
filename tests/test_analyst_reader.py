"""Analysts during a night on the embedded DuckDB warehouse: they read ``analyst.duckdb``.

The night writes ``encore.duckdb``; after its last write ``refresh_analyst_copy`` swaps a fresh
copy in with one rename. Both directions: an analyst holding the copy open across a night
never fails the night and keeps seeing yesterday's complete data; analysts opening the copy
while a night writes never fail and always see complete dates. Analysts are other processes,
as in real life (DuckDB shares one database instance per file inside a process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from test_warehouse import _recs

from encore.core.warehouse import analyst_path, publish_recommendations, refresh_analyst_copy

USERS = tuple(f"u{i:03d}" for i in range(300))
K = 5
COUNTS = "SELECT run_date::VARCHAR, count(*) FROM recommendations GROUP BY 1 ORDER BY 1"

# An analyst: opens the file read-only, answers every line on stdin with the counts per date,
# on the same connection, until stdin closes.
ANALYST = textwrap.dedent(f"""
    import json, sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    for _ in sys.stdin:
        print(json.dumps(dict(con.execute("{COUNTS}").fetchall())), flush=True)
""")


def _night(cfg, day: str, version: str = "1") -> None:
    publish_recommendations(cfg, day, _recs(day, users=USERS, k=K, model_version=version))
    refresh_analyst_copy(cfg)


def _analyst(path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ANALYST, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ask(proc: subprocess.Popen) -> dict:
    proc.stdin.write("?\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return json.loads(line)


def test_analyst_open_across_a_night_never_fails_it(cfg):
    _night(cfg, "2026-10-05")
    held = _analyst(analyst_path(cfg))
    try:
        assert _ask(held) == {"2026-10-05": K * len(USERS)}
        _night(cfg, "2026-10-06")  # the night writes and refreshes the copy while the analyst holds it open
        _night(cfg, "2026-10-05", version="2")  # and re-runs a date
        assert _ask(held) == {"2026-10-05": K * len(USERS)}  # still yesterday's, complete
    finally:
        held.stdin.close()
        assert held.wait(timeout=60) == 0, held.stderr.read()
    fresh = _analyst(analyst_path(cfg))
    try:
        assert _ask(fresh) == {"2026-10-05": K * len(USERS), "2026-10-06": K * len(USERS)}  # tonight's
    finally:
        fresh.stdin.close()
        fresh.wait(timeout=60)


def test_an_analyst_on_the_nights_own_file_would_fail_it(cfg):
    """Why analysts get a copy: DuckDB lets no other process write a file a reader holds."""
    _night(cfg, "2026-10-05")
    held = _analyst(cfg.paths.warehouse)
    try:
        assert _ask(held) == {"2026-10-05": K * len(USERS)}
        with pytest.raises(duckdb.IOException, match="(?i)lock"):
            publish_recommendations(cfg, "2026-10-06", _recs("2026-10-06", users=USERS, k=K))
    finally:
        held.stdin.close()
        held.wait(timeout=60)


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from test_warehouse import _recs
    from encore.core.config import load_config
    from encore.core.warehouse import publish_recommendations, refresh_analyst_copy
    cfg = load_config()
    users = tuple(f"u{i:03d}" for i in range(300))
    for night in range(int(sys.argv[1])):
        day = f"2026-10-{6 + night % 4:02d}"
        publish_recommendations(cfg, day, _recs(day, users=users, k=5, model_version=str(night)))
        refresh_analyst_copy(cfg)
    print("done", flush=True)
""")


def test_analysts_opening_while_nights_write_see_complete_dates(cfg):
    _night(cfg, "2026-10-05")
    tests_dir = str(Path(__file__).parent)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, "12", tests_dir], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    seen, errors = [], []
    while writer.poll() is None:
        try:
            with duckdb.connect(str(analyst_path(cfg)), read_only=True) as con:
                seen.append(dict(con.execute(COUNTS).fetchall()))
        except duckdb.Error as exc:
            errors.append(exc)
        time.sleep(0.01)
    out, err = writer.communicate()
    assert writer.returncode == 0 and "done" in out, err
    assert not errors
    assert len(seen) > 5
    assert all(set(snapshot.values()) == {K * len(USERS)} for snapshot in seen)
    assert {day for snapshot in seen for day in snapshot} > {"2026-10-05"}  # it saw nights land
