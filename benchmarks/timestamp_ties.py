"""How often a user's events share a timestamp, and what that does to leave-one-out targets.

CLI::

    python -m benchmarks.timestamp_ties [--dataset ml-100k] [--out bench_results/timestamp_ties_<dataset>.json]

Leave-one-out by time needs an order inside a second. Encore breaks ties by ``event_id`` (a
hash of user, item, time and source: ``spark_jobs/sessionize.py``); RecBole sorts by time
stably, so its ties keep the file's row order. Counts, over every event of every user (the
RecBole protocol: every rating an interaction): events that share their second with another
event of the same user; adjacent tied events in file order and how many of them have increasing
item ids (about half: the file's order inside a second is no signal); the users whose last (test)
and second-to-last (validation) events lie in such a group, and the users whose test /
validation item differs between the two orders.
Prints a markdown table and writes the JSON report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.datasets import DATASETS, dataset_events, experiment_config


def tie_report(events: pd.DataFrame) -> dict:
    """``events``: user_id, item_id, ts, event_id, in file order."""
    events = events.assign(file_row=np.arange(len(events)))
    group_size = events.groupby(["user_id", "ts"])["item_id"].transform("size")
    encore = events.sort_values(["user_id", "ts", "event_id"])
    recbole = events.sort_values(["user_id", "ts", "file_row"])

    def nth_from_end(ordered: pd.DataFrame, n: int) -> pd.DataFrame:
        return ordered.groupby("user_id").nth(-n).set_index("user_id")

    report = {
        "events": len(events),
        "users": int(events["user_id"].nunique()),
        "events_sharing_their_second": int((group_size > 1).sum()),
        "mean_group_size_per_event": round(float(group_size.mean()), 3),
    }
    # does the file's order inside a second carry a signal? (item ids compared as numbers if they all are)
    items = pd.to_numeric(recbole["item_id"], errors="coerce")
    items = items if items.notna().all() else recbole["item_id"]
    same_group = (recbole["user_id"].to_numpy()[1:] == recbole["user_id"].to_numpy()[:-1]) & (
        recbole["ts"].to_numpy()[1:] == recbole["ts"].to_numpy()[:-1])
    increasing = items.to_numpy()[1:] > items.to_numpy()[:-1]
    report["tied_pairs_in_file_order"] = int(same_group.sum())
    report["tied_pairs_with_increasing_item_id"] = int((same_group & increasing).sum())
    for n, split in ((1, "test"), (2, "valid")):
        ours, theirs = nth_from_end(encore, n), nth_from_end(recbole, n)
        tied = group_size.to_numpy()[ours["file_row"].to_numpy()] > 1
        report[f"users_with_tied_{split}_event"] = int(tied.sum())
        report[f"users_whose_{split}_item_differs"] = int((ours["item_id"] != theirs.loc[ours.index, "item_id"]).sum())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=DATASETS)
    parser.add_argument("--home", default="/tmp/encore_timestamp_ties", help="scratch state dir (generated datasets)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from validations.raw_events import event_ids

    table = dataset_events(experiment_config(args.home), args.dataset)
    events = table.select(["user_id", "item_id", "ts", "source"]).to_pandas()
    events["event_id"] = event_ids(events)
    report = {"dataset": args.dataset, **tie_report(events)}
    print("| measure | value |\n|---|---:|")
    for key, value in report.items():
        print(f"| {key} | {value} |")
    out = args.out or Path("bench_results") / f"timestamp_ties_{args.dataset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
