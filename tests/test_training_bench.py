"""The RecBole peer of the training benchmark sees exactly our split's events."""

from __future__ import annotations

import pyarrow as pa

from training.bench import write_recbole_inter
from training.data import SequenceData


def test_recbole_inter_stops_at_our_test_target(tmp_path):
    rows = [
        # a: test target = z (last positive); the skip after it is not part of any split
        {"user_id": "a", "item_ids": ["x", "y", "z", "w"], "is_skip": [False, False, False, True],
         "valid_idx": 1, "test_idx": 2},
        {"user_id": "b", "item_ids": ["y"], "is_skip": [False], "valid_idx": None, "test_idx": None},
        {"user_id": "c", "item_ids": ["w", "x", "y"], "is_skip": [True, False, False], "valid_idx": 1, "test_idx": 2},
    ]
    data = SequenceData.from_arrow(pa.Table.from_pylist(rows))
    path = tmp_path / "d" / "d.inter"
    assert write_recbole_inter(data, path) == 6
    assert path.read_text().splitlines() == [
        "user_id:token\titem_id:token\ttimestamp:float",
        "a\tx\t0", "a\ty\t1", "a\tz\t2",
        "c\tw\t0", "c\tx\t1", "c\ty\t2",
    ]
