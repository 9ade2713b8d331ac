"""A throw-away PostgreSQL server for the tests (the deployment's own ``PostgresServer``).

``pg_server`` (session): ``initdb`` into a fresh folder under /tmp (readable by the
``postgres`` OS user the server runs as when the tests run as root), start on a free port of
127.0.0.1, stop by its PID and delete the folder at the end. Tests that use it are skipped,
saying why, only where the server binaries are missing (CI installs them: ``.ci/run``).

``pg_cfg`` (function): a config whose warehouse is a new, empty database on that server.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from encore.core.config import load_config
from encore.deploy.pg_server import PostgresServer, find_bindir, free_port

ROLE = "encore"


@pytest.fixture(scope="session")
def pg_server():
    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found: "
                    "apt-get install -y postgresql, or set ENCORE_PG_BINDIR")
    root = Path(tempfile.mkdtemp(prefix="encore-test-pg-"))
    server = PostgresServer(root, port=free_port())
    password = secrets.token_urlsafe(16)
    try:
        server.start(timeout_s=60)
        server.ensure_role(ROLE, password)
        yield server, password
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_cfg(pg_server, tmp_path, monkeypatch):
    """A config with ``deploy.warehouse = postgres`` on a database of its own."""
    server, password = pg_server
    database = f"t_{secrets.token_hex(6)}"
    server.ensure_database(database, owner=ROLE)
    monkeypatch.setenv("ENCORE_PG_PASSWORD", password)
    monkeypatch.setenv("ENCORE_HOME", str(tmp_path / "encore"))
    return load_config(deploy={"warehouse": "postgres", "pg_port": server.port, "pg_user": ROLE,
                               "pg_database": database})
