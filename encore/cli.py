"""``encore`` command line (``python -m encore``): land data, run or backfill nights, deployed mode, Spark cluster.

    encore generate [--overwrite]                      the embedded synthetic dataset into the landing zone
    encore ingest --source S --input FILE [...]        a public or custom file into the landing zone
    encore run [--dates D ...] [--models M ...] [--k K] [--phns-mix MIX]
    encore backfill --start D --end D [...]
    encore summary                                     where the results are
    encore deploy up|test|down|status                  deployed mode on one machine (encore.deploy)
    encore cluster up|down|status                      Spark standalone cluster on 127.0.0.1 (spark_jobs.cluster)
"""

from __future__ import annotations

import argparse
import logging

from encore.core.config import load_config
from encore.core.errors import EncoreInputError
from encore.nightly import runner

PASS_THROUGH = ("ingest", "deploy", "cluster")  # their own argument parsers


def _night_params(args: argparse.Namespace) -> dict | None:
    from encore.nightly.stages import check_params

    cfg = load_config()
    params = {"k": cfg.inference.k, "models": list(cfg.training.models), "phns_mix": cfg.phns.default_mix}
    given = {"k": args.k, "models": args.models, "phns_mix": args.phns_mix}
    if all(v is None for v in given.values()):
        return None
    params.update({k: v for k, v in given.items() if v is not None})
    check_params(cfg, params)
    return params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="encore", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the embedded synthetic dataset into the landing zone")
    gen.add_argument("--overwrite", action="store_true")
    sub.add_parser("ingest", add_help=False,
                   help="land a file (MovieLens, Spotify MSSD, Last.fm 1K, generic CSV/Parquet): encore ingest --help")
    run = sub.add_parser("run", help="ingest history, run the nightly DAG for dates (default: the last 3 landed days)")
    run.add_argument("--dates", nargs="*", help="logical dates YYYY-MM-DD (default: the data's last 3 landed days)")
    back = sub.add_parser("backfill", help="run the nightly DAG for every date in [start, end], in order")
    back.add_argument("--start", required=True)
    back.add_argument("--end", required=True)
    for night in (run, back):
        night.add_argument("--models", nargs="+", help="challengers trained tonight (default: training.models)")
        night.add_argument("--k", type=int, help="recommendations per user (default: inference.k)")
        night.add_argument("--phns-mix", help="PHNS negative mix (default: phns.default_mix)")
    sub.add_parser("summary", help="print where the results are")
    sub.add_parser("deploy", add_help=False, help="deployed mode on one machine: encore deploy --help")
    sub.add_parser("cluster", add_help=False, help="Spark standalone cluster on 127.0.0.1: encore cluster --help")
    args, rest = parser.parse_known_args(argv)
    if args.command not in PASS_THROUGH and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command == "deploy":
        from encore.deploy.cli import main as deploy_main

        raise SystemExit(deploy_main(rest))
    if args.command == "cluster":
        from spark_jobs.cluster import main as cluster_main

        raise SystemExit(cluster_main(rest))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "ingest":
            from encore.ingest.adapters import main as ingest_main

            raise SystemExit(ingest_main(rest))
        cfg = load_config()
        if args.command == "generate":
            runner.generate(cfg, overwrite=args.overwrite)
        elif args.command == "run":
            runner.run_nights(cfg, args.dates, _night_params(args))
        elif args.command == "backfill":
            runner.run_nights(cfg, runner.dates_between(args.start, args.end), _night_params(args))
        elif args.command == "summary":
            runner.print_summary(cfg)
    except EncoreInputError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
