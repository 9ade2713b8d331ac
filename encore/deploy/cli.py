"""``encore deploy up|test|down|status``: deployed mode on one machine (see ``encore.deploy.services``)."""

from __future__ import annotations

import argparse
import logging
import sys

from encore.core.config import load_config
from encore.core.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encore deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Postgres, MLflow and Airflow's production components (idempotent)")
    test = sub.add_parser("test", help="run two nights through the real scheduler and check the results")
    test.add_argument("--timeout", type=float, default=1200, help="seconds to wait for each DAG run")
    sub.add_parser("down", help="stop every service this deployment started; the data stays")
    sub.add_parser("status", help="PID, address, health and log of each service")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from encore.deploy import services
    from encore.deploy.pg_server import PostgresError

    try:
        cfg = load_config()
        if args.command == "up":
            services.up(cfg)
        elif args.command == "down":
            services.down(cfg)
        elif args.command == "status":
            return 0 if services.print_status(cfg) else 1
        elif args.command == "test":
            from encore.deploy.night_test import run_deploy_test

            return 0 if run_deploy_test(cfg, run_timeout_s=args.timeout) else 1
    except (services.DeployError, PostgresError, ConfigError) as exc:
        print(f"encore deploy {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0
