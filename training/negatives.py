"""The night's PHNS training negatives and evaluation candidate sets, read from the marts.

Spark samples them (``spark_jobs.phns_pools``), dbt models them; training only aligns
them with its tensors:

* ``fct_user_negatives``: per (user, mix, draw) the sampled negatives ->
  ``MixNegatives``: ``[users, draws, n]`` item ids aligned with ``SequenceData.user_ids``
  (0 = none) and each one's oversampling;
* ``eval_candidates``: the PHNS-hard and easy sets of seed 003 (per user the test target
  and its candidates) -> ``[rows, C]`` ids aligned with the rows of the test split.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from encore.core.config import EncoreConfig
from encore.core.errors import ConfigError
from training.data import PAD_ID, SequenceBatch, SequenceData

UNIFORM_MIX = "UNIFORM"
EVAL_SETS = ("phns_hard", "easy")


def check_mix(cfg: EncoreConfig, mix: str) -> str:
    """A PHNS mix name the night samples (``phns.mixes`` or UNIFORM), upper case."""
    mix = mix.upper()
    if mix != UNIFORM_MIX and mix not in cfg.phns.mixes:
        raise ConfigError(f"unknown PHNS mix {mix!r}; known: {sorted(cfg.phns.mixes) + [UNIFORM_MIX]}")
    return mix


@dataclass(frozen=True)
class MixNegatives:
    """One mix's training negatives, aligned with ``SequenceData.user_ids``."""

    item_ids: torch.Tensor  # [users, draws, n] int64, 0 = none
    oversampling: torch.Tensor  # [users, draws, n] float32: phns_negatives.oversampling, 1 where unknown


def negatives_from_arrow(table: pa.Table, data: SequenceData) -> MixNegatives:
    """``[users, draws, n]`` ids and oversampling from ``fct_user_negatives`` rows of one mix
    (columns user_id, draw, negative_item_ids, negative_oversampling); users without rows and
    unknown items get id 0. Oversampling is 1 where there is none: a null value (a lake partition
    written before Spark wrote the column) or a null list (a mart row built before the column
    existed, which ``on_schema_change: append_new_columns`` leaves null)."""
    draws = int(pc.max(table["draw"]).as_py()) + 1 if table.num_rows else 1
    lists = table.column("negative_item_ids").combine_chunks() if table.num_rows else pa.array([], pa.list_(pa.string()))
    width = int(pc.max(pc.list_value_length(lists)).as_py() or 0) if table.num_rows else 0
    ids_out = np.zeros((data.n_users, draws, width), dtype=np.int64)
    oversampling_out = np.ones((data.n_users, draws, width), dtype=np.float32)
    if not table.num_rows:
        return MixNegatives(torch.from_numpy(ids_out), torch.from_numpy(oversampling_out))
    row_of = {u: i for i, u in enumerate(data.user_ids)}
    user = np.asarray([row_of.get(u, -1) for u in table.column("user_id").to_pylist()], dtype=np.int64)
    draw = table.column("draw").to_numpy().astype(np.int64)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    row = np.repeat(np.arange(table.num_rows), lengths)
    slot = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ids = data.vocab.encode(pc.list_flatten(lists))
    known = (user[row] >= 0) & (ids != PAD_ID)
    at = (user[row][known], draw[row][known], slot[known])
    ids_out[at] = ids[known]
    oversampling_lists = table.column("negative_oversampling").combine_chunks()
    oversampling_lengths = pc.fill_null(pc.list_value_length(oversampling_lists), -1).to_numpy(zero_copy_only=False)
    present = oversampling_lengths >= 0
    if (oversampling_lengths[present] != lengths[present]).any():
        raise ValueError("fct_user_negatives: negative_oversampling is not aligned with negative_item_ids")
    oversampling = np.ones(len(ids), dtype=np.float32)
    oversampling[np.repeat(present, lengths)] = pc.fill_null(pc.list_flatten(oversampling_lists), 1.0).to_numpy(
        zero_copy_only=False)
    oversampling_out[at] = oversampling[known]
    return MixNegatives(torch.from_numpy(ids_out), torch.from_numpy(oversampling_out))


def mix_negatives(cfg: EncoreConfig, run_date: str | dt.date, data: SequenceData, mix: str) -> MixNegatives:
    """The run date's training negatives of ``mix``."""
    from encore.core.warehouse import query

    mix = check_mix(cfg, mix)
    day = dt.date.fromisoformat(str(run_date))
    columns = query(cfg, "SELECT * FROM fct_user_negatives LIMIT 0").column_names
    if "negative_oversampling" not in columns:
        raise FileNotFoundError("fct_user_negatives has no negative_oversampling column (built before Encore "
                                f"wrote it): rebuild the dbt feature marts for {day}")
    table = query(cfg, "SELECT user_id, draw, negative_item_ids, negative_oversampling FROM fct_user_negatives "
                       "WHERE run_date = ? AND mix = ?", [day, mix])
    if table.num_rows == 0:
        raise FileNotFoundError(f"fct_user_negatives has no {mix} rows for {day}: run the Spark jobs and dbt "
                                "feature marts for that date")
    return negatives_from_arrow(table, data)


def candidates_from_arrow(table: pa.Table, data: SequenceData, split: SequenceBatch) -> dict[str, torch.Tensor]:
    """``{eval_set: [rows, C]}`` negative candidate ids from ``eval_candidates`` rows (columns
    user_id, eval_set, item_id, label), aligned with ``split``'s rows (0 = none)."""
    users = data.user_ids[split.user_index.numpy()]
    position = {u: i for i, u in enumerate(users)}
    out = {}
    for name in EVAL_SETS:
        rows = table.filter(pc.and_(pc.equal(table["eval_set"], name), pc.equal(table["label"], 0)))
        row = np.asarray([position.get(u, -1) for u in rows.column("user_id").to_pylist()], dtype=np.int64)
        ids = data.vocab.encode(rows.column("item_id"))
        keep = (row >= 0) & (ids != PAD_ID)
        row, ids = row[keep], ids[keep]
        order = np.argsort(row, kind="stable")
        row, ids = row[order], ids[order]
        counts = np.bincount(row, minlength=len(users))
        slot = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
        matrix = np.zeros((len(users), int(counts.max()) if len(users) and len(row) else 0), dtype=np.int64)
        matrix[row, slot] = ids
        out[name] = torch.from_numpy(matrix)
    return out


def eval_candidate_sets(cfg: EncoreConfig, run_date: str | dt.date, data: SequenceData,
                        split: SequenceBatch) -> dict[str, torch.Tensor]:
    """The run date's PHNS-hard and easy candidate sets, aligned with ``split`` (the test split)."""
    from encore.core.warehouse import query

    day = dt.date.fromisoformat(str(run_date))
    table = query(cfg, "SELECT user_id, eval_set, item_id, label FROM eval_candidates WHERE run_date = ?", [day])
    if table.num_rows == 0:
        raise FileNotFoundError(f"eval_candidates has no rows for {day}: run the dbt feature marts for that date")
    return candidates_from_arrow(table, data, split)
