"""A PostgreSQL server of our own: ``initdb`` into a folder, start / stop it by its PID, admin SQL.

PostgreSQL refuses to run as root, so when this process is root the server and its admin
``psql`` run as ``os_user`` (``runuser -u postgres``), which then owns the server's folder;
otherwise they run as the current user. The server listens on ``host:port`` only (TCP, SCRAM
passwords) and on a Unix socket in its own folder (peer authentication: only its OS user).
Used by ``encore deploy`` and by the tests' throw-away servers.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BINARIES = ("initdb", "pg_ctl", "postgres", "psql")


class PostgresError(RuntimeError):
    """The server could not be initialised, started, stopped or administered."""


def find_bindir() -> Path | None:
    """The folder with the PostgreSQL server binaries: ``ENCORE_PG_BINDIR``, the folder of the
    ``pg_ctl`` on PATH, or the newest ``/usr/lib/postgresql/<version>/bin`` (Debian)."""
    candidates = []
    if os.environ.get("ENCORE_PG_BINDIR"):
        candidates.append(Path(os.environ["ENCORE_PG_BINDIR"]))
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0)
    candidates += [Path(p) for p in reversed(versions)]
    for folder in candidates:
        if all((folder / name).is_file() for name in BINARIES):
            return folder
    return None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class PostgresServer:
    root: Path  # data/, run/ (the Unix socket) and server.log live here
    port: int
    host: str = "127.0.0.1"
    os_user: str = "postgres"  # used only when this process is root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _bindir(self) -> Path:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresError(
                f"PostgreSQL server binaries ({', '.join(BINARIES)}) not found: install them "
                "(Debian: apt-get install -y postgresql) or set ENCORE_PG_BINDIR to their folder")
        return bindir

    def _as_server_user(self, command: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", self.os_user, "--", *command]
        return command

    def _run(self, command: list[str], what: str, stdin: str | None = None, timeout_s: float = 120) -> str:
        try:
            done = subprocess.run(self._as_server_user(command), input=stdin, capture_output=True, text=True,
                                  timeout=timeout_s, cwd=self.root)
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{what}: no answer within {timeout_s:.0f} s (server log: {self.log_file})") from exc
        if done.returncode != 0:
            raise PostgresError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}"
                                f"\nserver log: {self.log_file}")
        return done.stdout

    def _prepare_root(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        for path in (self.root, self.socket_dir, *([self.data_dir] if self.data_dir.exists() else [])):
            shutil.chown(path, user=self.os_user, group=None)
        self.root.chmod(0o700)
        probe = subprocess.run(["runuser", "-u", self.os_user, "--", "test", "-w", str(self.root)])
        if probe.returncode != 0:
            raise PostgresError(
                f"the server runs as OS user {self.os_user!r}, which cannot write {self.root}: "
                "every folder above it must be searchable by that user (chmod o+x), or set ENCORE_HOME elsewhere")

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def pid(self) -> int | None:
        """The postmaster's PID if this server is running (from its postmaster.pid)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if any(part.endswith(b"postgres") for part in cmdline[:1]) else None

    def start(self, timeout_s: float = 60) -> int:
        """Initialise the data folder if new and start the server; idempotent. Returns its PID."""
        running = self.pid()
        if running:
            return running
        bindir = self._bindir()
        if not port_is_free(self.host, self.port):
            raise PostgresError(f"cannot start PostgreSQL on {self.host}:{self.port}: the port is in use "
                                "by another process (choose another with ENCORE__DEPLOY__PG_PORT)")
        self.root.mkdir(parents=True, exist_ok=True)
        self._prepare_root()
        if not self.initialised():
            log.info("initdb %s", self.data_dir)
            self._run([str(bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8",
                       "--locale=C.UTF-8", "--auth-local=peer", "--auth-host=scram-sha-256"], "initdb")
        options = (f"-c listen_addresses={self.host} -c port={self.port} "
                   f"-c unix_socket_directories={self.socket_dir}")
        self._run([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                   "-t", str(int(timeout_s)), "-o", options, "start"], f"starting PostgreSQL on {self.host}:{self.port}",
                  timeout_s=timeout_s + 10)
        pid = self.pid()
        if pid is None:
            raise PostgresError(f"PostgreSQL did not stay up; server log: {self.log_file}")
        return pid

    def stop(self, timeout_s: float = 60) -> int | None:
        """Stop this server (fast shutdown: open sessions are rolled back); the data stays."""
        pid = self.pid()
        if pid is None:
            return None
        self._run([str(self._bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                   "-t", str(int(timeout_s)), "stop"], "stopping PostgreSQL", timeout_s=timeout_s + 10)
        return pid

    def sql(self, statements: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through the Unix socket. Statements go through stdin (never a
        command line) and a failing statement is not echoed into the server log."""
        script = "SET log_min_error_statement = panic;\n" + statements
        return self._run([str(self._bindir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", database, "-f", "-"],
                         f"psql on database {database}", stdin=script)

    def ensure_role(self, name: str, password: str) -> None:
        """A login role with this password (created, or its password reset)."""
        verb = "ALTER" if self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = {_quote_literal(name)};").strip() else "CREATE"
        self.sql(f"{verb} ROLE {_quote_ident(name)} WITH LOGIN PASSWORD {_quote_literal(password)};")

    def ensure_database(self, name: str, owner: str) -> None:
        if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = {_quote_literal(name)};").strip():
            self.sql(f"CREATE DATABASE {_quote_ident(name)} OWNER {_quote_ident(owner)};")
