"""Small synthetic SEQUENCE tables for tests, smoke runs and model debugging.

Each user walks a cycle of items: the positives are ``start, start+1, ...``
(mod ``n_items``) and random skipped items are inserted between them with
probability ``skip_rate``. The next positive item is therefore fully determined
by the last positive one, so a working model reaches HR@1 close to 1, and the
skipped items are pure noise a skip-aware model should learn to rank low.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from encore.core.contracts import SEQUENCE, arrow_schema


def toy_sequence_table(
    n_users: int = 64, n_items: int = 30, min_len: int = 6, max_len: int = 14, skip_rate: float = 0.25, seed: int = 0
) -> pa.Table:
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    rows = []
    for user in range(n_users):
        n_positive = int(rng.integers(max(min_len, 3), max_len + 1))
        current = int(rng.integers(n_items))
        items, skips = [], []
        for _ in range(n_positive):
            while rng.random() < skip_rate:
                items.append(f"i{int(rng.integers(n_items)):03d}")
                skips.append(True)
            items.append(f"i{current:03d}")
            skips.append(False)
            current = (current + 1) % n_items
        positives = [i for i, s in enumerate(skips) if not s]
        rows.append(
            {
                "user_id": f"u{user:04d}",
                "item_ids": items,
                "is_skip": skips,
                "completion": [0.1 if s else 1.0 for s in skips],
                "ts": [t0 + dt.timedelta(minutes=3 * i) for i in range(len(items))],
                "valid_idx": positives[-2],
                "test_idx": positives[-1],
                "earlier_item_ids": [],
                "n_events": len(items),
            }
        )
    return pa.Table.from_pylist(rows, schema=arrow_schema(SEQUENCE))


def toy_training_examples(sequences: pa.Table, soft_labels: tuple[float, ...] = (1.0, 0.6, 0.3)) -> pa.Table:
    """``fct_training_examples`` rows for a sequences table, as the dbt mart defines them
    (tests/test_dbt.py checks the mart itself on hand-computed data): per position the next
    K positives after it, never crossing the leave-last-out split boundary."""
    rows = []
    for seq in sequences.to_pylist():
        positives = [i for i, skip in enumerate(seq["is_skip"]) if not skip]

        def split_of(position: int) -> str:
            return "test" if position == seq["test_idx"] else "valid" if position == seq["valid_idx"] else "train"

        for position in range(len(seq["item_ids"])):
            after = [p for p in positives if p > position][: len(soft_labels)]
            if not after:
                continue
            same = [p for p in after if split_of(p) == split_of(after[0])]
            rows.append({
                "user_id": seq["user_id"], "position": position, "split": split_of(after[0]),
                "next_k_item_ids": [seq["item_ids"][p] for p in same],
                "next_k_soft_labels": list(soft_labels[: len(same)]),
                "next_k_completions": [seq["completion"][p] for p in same],
                "next_k_positions": same,
            })
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("user_id", pa.string()), ("position", pa.int32()), ("split", pa.string()),
        ("next_k_item_ids", pa.list_(pa.string())),
        ("next_k_soft_labels", pa.list_(pa.float64())), ("next_k_completions", pa.list_(pa.float64())),
        ("next_k_positions", pa.list_(pa.int32()))]))


def toy_data(vocab=None, **kwargs):
    """``SequenceData`` of ``toy_sequence_table(**kwargs)`` with its training examples."""
    from training.data import SequenceData

    table = toy_sequence_table(**kwargs)
    return SequenceData.from_arrow(table, toy_training_examples(table), vocab)


def write_toy_marts(cfg, run_date: str, sequences: pa.Table, negatives: pa.Table | None = None) -> None:
    """The marts training and inference read (``fct_user_sequences``, ``fct_training_examples``,
    ``dim_items``, and with ``negatives`` ``fct_user_negatives``) in the state dir's DuckDB
    warehouse, for ``run_date``: what the dbt feature marts hold after a night's build."""
    from encore.core.warehouse import connect

    examples = toy_training_examples(sequences)
    with connect(cfg) as con:
        con.register("sequences_in", sequences)
        con.register("examples_in", examples)
        day = f"DATE '{run_date}'"
        con.execute(f"CREATE TABLE IF NOT EXISTS fct_user_sequences AS SELECT {day} AS run_date, user_id, item_ids, "
                    "is_skip, completion, ts AS event_ts, valid_idx, test_idx, earlier_item_ids, n_events "
                    "FROM sequences_in WHERE false")
        con.execute(f"INSERT INTO fct_user_sequences SELECT {day}, user_id, item_ids, is_skip, completion, ts, "
                    "valid_idx, test_idx, earlier_item_ids, n_events FROM sequences_in")
        con.execute(f"CREATE TABLE IF NOT EXISTS fct_training_examples AS SELECT {day} AS run_date, * "
                    "FROM examples_in WHERE false")
        con.execute(f"INSERT INTO fct_training_examples SELECT {day}, * FROM examples_in")
        con.execute("CREATE TABLE IF NOT EXISTS dim_items (run_date DATE, item_id VARCHAR, skip_rate_long DOUBLE, "
                    "mean_completion_long DOUBLE)")
        con.execute(f"INSERT INTO dim_items SELECT DISTINCT {day}, unnest(item_ids), 0.1, 0.9 FROM sequences_in")
        if negatives is not None:
            con.register("negatives_in", negatives)
            con.execute(f"CREATE TABLE IF NOT EXISTS fct_user_negatives AS SELECT {day} AS run_date, * "
                        "FROM negatives_in WHERE false")
            con.execute(f"INSERT INTO fct_user_negatives SELECT {day}, * FROM negatives_in")
