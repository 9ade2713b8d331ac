"""Where deployed mode keeps its state (``<ENCORE_HOME>/deploy/``) and its secrets.

Secrets never live in the repository, the config or a log. Each comes from its environment
variable when set (``ENCORE_PG_PASSWORD``, ``ENCORE_PG_ANALYST_PASSWORD``,
``ENCORE_AIRFLOW_PASSWORD``); otherwise it is generated on the first ``deploy up``. Either way it
is kept in ``deploy/secrets/`` (mode 600, git-ignored with the state dir) so later commands and
the services find the same value. Postgres clients read the passwords through a libpq password
file (``deploy/secrets/pgpass``, named by ``PGPASSFILE``), so no URI or command line carries one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from encore.core.config import EncoreConfig

SECRET_ENV = {
    "pg_password": "ENCORE_PG_PASSWORD",
    "pg_analyst_password": "ENCORE_PG_ANALYST_PASSWORD",
    "airflow_admin_password": "ENCORE_AIRFLOW_PASSWORD",
    "airflow_jwt_secret": "",  # shared by the Airflow components only
}


@dataclass(frozen=True)
class DeployState:
    root: Path  # <ENCORE_HOME>/deploy

    @classmethod
    def of(cls, cfg: EncoreConfig) -> DeployState:
        return cls(Path(cfg.paths.home) / "deploy")

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def pgpass(self) -> Path:
        return self.secrets / "pgpass"

    @property
    def services_config(self) -> Path:
        """The (secret-free) ENCORE_* settings the running services were started with."""
        return self.root / "services-config.json"

    def secret(self, name: str) -> str:
        """The secret ``name``: its environment variable, else the stored value, else a new one."""
        path = self.secrets / name
        from_env = os.environ.get(SECRET_ENV[name]) if SECRET_ENV[name] else None
        if from_env:
            value = from_env
        elif path.is_file():
            return path.read_text().strip()
        else:
            value = secrets.token_urlsafe(24)
        _write_private(path, value + "\n")
        return value

    def stored_secret(self, name: str) -> str | None:
        path = self.secrets / name
        return path.read_text().strip() if path.is_file() else None

    def write_pgpass(self, port: int, entries: dict[str, str]) -> Path:
        """A libpq password file with one line per role: ``*:port:*:role:password``."""
        def escape(text: str) -> str:
            return text.replace("\\", "\\\\").replace(":", "\\:")

        _write_private(self.pgpass, "".join(f"*:{port}:*:{escape(user)}:{escape(pw)}\n" for user, pw in entries.items()))
        return self.pgpass


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
