"""The outcome models (p_skip, predicted_completion) on a Spotify-MSSD-format file.

    python -m benchmarks.mssd_format [--home /tmp/encore_mssd] [--out bench_results/mssd_format.json]

No real MSSD log can be downloaded here, so this writes one: the generator's music sessions
(the default config's world and days, skip levels and all) in MSSD's public column layout
(``session_id, session_position, session_length, track_id_clean, skip_1, skip_2, skip_3,
not_skipped, ..., hour_of_day, date``; the skip flags cumulative, as in the public logs). Then
it takes the user's path: ``encore ingest --source mssd`` and ``encore run --dates <last day>``
in a state dir of its own, and prints the night's outcome-model quality from
``lake/outcome_models`` (held-out sessions: log-loss, AUC and ECE of p_skip against the
item-rate baseline). In MSSD a session is the user, so every sequence is one session of 10-20
tracks and the file carries no play completion: predicted_completion has nothing to learn from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from encore.ingest.adapters import MSSD_COLUMNS


def mssd_frame(events: pd.DataFrame) -> pd.DataFrame:
    """Generated music events (session_id, item_id, ts, skip_level) as MSSD log rows; the columns
    the generator has no counterpart for get constant, valid values."""
    events = events.sort_values(["session_id", "ts"], kind="stable")
    level = events["skip_level"].astype(int)
    out = pd.DataFrame({
        "session_id": events["session_id"].to_numpy(),
        "session_position": events.groupby("session_id").cumcount().to_numpy() + 1,
        "session_length": events.groupby("session_id")["item_id"].transform("size").to_numpy(),
        "track_id_clean": events["item_id"].to_numpy(),
        # cumulative: a track skipped very briefly was also skipped briefly and before most of it played
        "skip_1": (level == 1).to_numpy(),
        "skip_2": level.isin([1, 2]).to_numpy(),
        "skip_3": level.isin([1, 2, 3]).to_numpy(),
        "not_skipped": (level == 0).to_numpy(),
        "hour_of_day": events["ts"].dt.hour.to_numpy(),
        "date": events["ts"].dt.strftime("%Y-%m-%d").to_numpy(),
    })
    constants = {"context_switch": 0, "no_pause_before_play": 1, "short_pause_before_play": 0,
                 "long_pause_before_play": 0, "hist_user_behavior_n_seekfwd": 0, "hist_user_behavior_n_seekback": 0,
                 "hist_user_behavior_is_shuffle": False, "premium": True, "context_type": "user_collection",
                 "hist_user_behavior_reason_start": "trackdone", "hist_user_behavior_reason_end": "trackdone"}
    for column, value in constants.items():
        out[column] = value
    return out[list(MSSD_COLUMNS)]


def write_mssd_log(home: Path) -> tuple[Path, int, dt.date]:
    """The default generated music data as one MSSD log file under ``home``; (path, rows, last day)."""
    from encore.core.config import load_config
    from encore.ingest.public_datasets import synthetic_events

    cfg = load_config({"ENCORE_HOME": str(home)})
    if cfg.data.domain != "music":
        raise SystemExit("the MSSD format is music sessions: run with data.domain = music (the default)")
    events = synthetic_events(cfg).select(["session_id", "item_id", "ts", "skip_level"]).to_pandas()
    frame = mssd_frame(events)
    first, last = frame["date"].min(), frame["date"].max()
    path = home / f"log_0_{first.replace('-', '')}_{last.replace('-', '')}.csv"
    home.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path, len(frame), dt.date.fromisoformat(last)


def _encore(home: Path, *args: str) -> float:
    """``python -m encore <args>`` with ``ENCORE_HOME=home``; returns its wall seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCORE")} | {"ENCORE_HOME": str(home)}
    started = time.perf_counter()
    print(f"$ ENCORE_HOME={home} python -m encore {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "encore", *args], env=env, check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mssd_format", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/encore_mssd"), help="scratch state dir (emptied)")
    parser.add_argument("--out", type=Path, default=Path("bench_results/mssd_format.json"))
    args = parser.parse_args(argv)
    if args.home.exists():
        import shutil

        shutil.rmtree(args.home)
    path, rows, last_day = write_mssd_log(args.home)
    print(f"wrote {path} ({rows:,} rows)", flush=True)
    seconds = {"ingest": _encore(args.home, "ingest", "--source", "mssd", "--input", str(path)),
               "night": _encore(args.home, "run", "--dates", last_day.isoformat())}

    from encore.core import lake
    from encore.core.config import load_config

    cfg = load_config({"ENCORE_HOME": str(args.home)})
    metrics = json.loads(lake.read_partition(cfg, "outcome_models", last_day).column("metrics_json")[0].as_py())
    metrics.pop("reliability", None)
    report = {"file": str(path), "rows": rows, "run_date": last_day.isoformat(), "seconds": seconds,
              "outcome_models": metrics}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print("| metric | value |\n|---|---:|")
    for key, value in metrics.items():
        print(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
