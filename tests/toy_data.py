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
                "n_events": len(items),
            }
        )
    return pa.Table.from_pylist(rows, schema=arrow_schema(SEQUENCE))
