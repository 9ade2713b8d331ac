"""The night's sequences and targets from the warehouse marts -> padded id tensors.

Inputs (dbt marts of the run date, built from Spark's ``sequences``):

* ``fct_user_sequences``: per user the chronological items, skip flags, engagement and
  times of the most recent events, the leave-last-out indices (``valid_idx`` /
  ``test_idx`` = second-last / last positive event) and the distinct items of the
  user's older events;
* ``fct_training_examples``: per (user, position) the next K positives after that
  position with their soft labels, completion and positions: the targets of the
  sequence models (the next positive is the first of them). They are defined there
  and nowhere else.

Everything here is bulk NumPy over flattened arrays (values + offsets); there is no
per-user Python loop, so a few million events load in seconds.

Ids: padding = 0, items = 1..n_items (sorted item_id strings), mask = n_items + 1
(BERT4Rec's cloze token). ``ItemVocab`` saves/loads that mapping so inference can
map scores back to item_id strings.

Splits (temporal leave-last-out, DESIGN "Evaluation protocol"), per user:

* train: events ``[0, valid_idx)``; position t's targets are its next positives that
  lie inside the window (``next_positive``; ``next_k`` trains on all K of them, weighted by
  their soft labels), or simply the next event (``next_item``);
* valid: input = events ``[0, valid_idx)``, target = item at ``valid_idx``;
* test:  input = events ``[0, test_idx)``, target = item at ``test_idx``;
* inference: input = all events (what the nightly job recommends from).

Inputs longer than ``max_seq_len`` keep their most recent events; shorter ones are
left-padded, so the last column is always the newest event. Each valid / test /
inference row also carries the user's whole history before its target (``history``:
every earlier event, inside the window or not, and the older items), which evaluation
excludes from the ranking by default.

Contrastive negatives (seed 000): the skipped items of the whole input window, the
same set for every position of a row (``SequenceBatch.skip_negatives``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from encore.core.config import EncoreConfig

PAD_ID = 0
SPLITS = ("train", "valid", "test", "inference")
TRAIN_TARGETS = ("next_positive", "next_item", "next_k")
SEQUENCE_COLUMNS = ("user_id", "item_ids", "is_skip", "completion", "event_ts", "valid_idx", "test_idx",
                    "earlier_item_ids")
# time buckets of a span (``time_buckets``): 0 = padding, 1 = unknown (no earlier event or no
# times), 2 = the same second, 3 + floor(log2(seconds)) up to N_TIME_BUCKETS - 1 (2^28 s ~ 8.5 years)
N_TIME_BUCKETS = 32
UNKNOWN_SECONDS = -1
EXAMPLE_COLUMNS = ("user_id", "position", "next_k_item_ids", "next_k_soft_labels", "next_k_completions",
                   "next_k_positions")


@dataclass
class ItemVocab:
    """item_id string <-> integer id; ``item_ids[i]`` has id ``i + 1``."""

    item_ids: list[str]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def mask_id(self) -> int:
        return self.n_items + 1

    @property
    def size(self) -> int:
        """Rows of an embedding table: padding + items + mask."""
        return self.n_items + 2

    @classmethod
    def build(cls, values: pa.Array | pa.ChunkedArray) -> "ItemVocab":
        unique = pc.unique(values).drop_null()
        return cls(unique.take(pc.sort_indices(unique)).to_pylist())

    def encode(self, values: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
        """Ids for item_id strings (unknown items -> 0, i.e. treated as padding)."""
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pa.array(values, type=pa.string())
        index = pc.index_in(values, value_set=pa.array(self.item_ids, type=pa.string()))
        return pc.fill_null(pc.add(index, 1), 0).to_numpy(zero_copy_only=False).astype(np.int64)

    def decode(self, ids: np.ndarray | torch.Tensor) -> np.ndarray:
        """item_id strings for ids 1..n_items (same shape as ``ids``)."""
        ids = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        if ids.size and (ids.min() < 1 or ids.max() > self.n_items):
            raise ValueError("decode() got padding/mask/out-of-range ids")
        table = np.asarray(self.item_ids, dtype=object)
        return table[ids - 1]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"item_ids": self.item_ids}))

    @classmethod
    def load(cls, path: str | Path) -> "ItemVocab":
        return cls(json.loads(Path(path).read_text())["item_ids"])


@dataclass
class SequenceBatch:
    """Left-padded windows, ``[B, L]`` each; ``target`` ``[B]`` for valid/test."""

    seq: torch.Tensor  # item ids, 0 = padding
    is_skip: torch.Tensor  # bool
    completion: torch.Tensor  # float32
    next_pos: torch.Tensor  # training target of each position inside the window, 0 = none
    next_k: torch.Tensor  # [B, L, K] the next K positives inside the window (fct_training_examples), 0 = none
    next_k_label: torch.Tensor  # [B, L, K] their soft labels
    next_k_completion: torch.Tensor  # [B, L, K] their completion (engagement weights)
    target: torch.Tensor  # held-out target id (valid/test), 0 for train/inference
    history: torch.Tensor  # [B, H] every item of the user before the target (valid/test/inference), 0 = pad
    user_index: torch.Tensor  # row in SequenceData.user_ids
    gap_seconds: torch.Tensor  # [B, L] int64 seconds since the user's previous event, -1 = unknown / padding
    age_seconds: torch.Tensor  # [B, L] int64 seconds from each event to the window's newest one, -1 = unknown

    def to(self, device: torch.device | str) -> "SequenceBatch":
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    def __len__(self) -> int:
        return self.seq.shape[0]

    def take(self, index: torch.Tensor | slice) -> "SequenceBatch":
        return SequenceBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def of_inputs(cls, seq: torch.Tensor, is_skip: torch.Tensor,
                  event_seconds: torch.Tensor | None = None) -> "SequenceBatch":
        """Windows to score and nothing else (no targets, history or user rows): what a caller
        outside the nightly, e.g. the served pyfunc model, gives a model that reads each event's
        skip flag (SASRec with ``feedback_embedding``) or times (``time_embedding``:
        ``event_seconds``, epoch seconds aligned with ``seq``; absent = unknown)."""
        rows, length = seq.shape
        empty = torch.zeros((rows, length, 0))
        present = (seq != PAD_ID).numpy()
        seconds = None if event_seconds is None else event_seconds.numpy()
        gap, age = window_time_spans(seconds, present)
        return cls(seq=seq, is_skip=is_skip, completion=torch.zeros(rows, length), next_pos=torch.zeros_like(seq),
                   next_k=empty.long(), next_k_label=empty, next_k_completion=empty,
                   target=torch.zeros(rows, dtype=torch.long), history=torch.zeros((rows, 0), dtype=torch.long),
                   user_index=torch.full((rows,), -1, dtype=torch.long),
                   gap_seconds=torch.from_numpy(gap), age_seconds=torch.from_numpy(age))

    @property
    def skip_negatives(self) -> torch.Tensor:
        """Skipped items of each row (``[B, L]``, 0 where not a skip): InfoNCE negatives."""
        return torch.where(self.is_skip, self.seq, torch.zeros_like(self.seq))


@dataclass
class SequenceData:
    """All users' events, flattened: user u owns ``items[offsets[u]:offsets[u+1]]``."""

    user_ids: np.ndarray  # [U] object (str)
    items: np.ndarray  # [E] int64 ids
    is_skip: np.ndarray  # [E] bool
    completion: np.ndarray  # [E] float32
    offsets: np.ndarray  # [U+1] int64
    valid_idx: np.ndarray  # [U] int64, -1 = none
    test_idx: np.ndarray  # [U] int64, -1 = none
    earlier: np.ndarray  # flat ids of the users' older items, user u owns earlier[earlier_offsets[u]:...]
    earlier_offsets: np.ndarray  # [U+1] int64
    next_k: np.ndarray  # [E, K] ids of the next K positives after each event, 0 = none
    next_k_label: np.ndarray  # [E, K] float32 soft labels
    next_k_completion: np.ndarray  # [E, K] float32
    next_k_flat: np.ndarray  # [E, K] flat event index of each of those targets, -1 = none
    vocab: ItemVocab
    event_seconds: np.ndarray | None = None  # [E] int64 epoch seconds of each event; None = no times

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return self.vocab.n_items

    @property
    def has_targets(self) -> bool:
        return bool(self.next_k.shape[1])

    @classmethod
    def from_arrow(cls, sequences: pa.Table, examples: pa.Table | None = None,
                   vocab: ItemVocab | None = None) -> "SequenceData":
        """Build from the sequences (``fct_user_sequences`` columns, or the lake SEQUENCE
        contract) and, for training, the examples (``fct_training_examples`` columns).

        ``vocab``: reuse an existing mapping (inference with a trained model); items it
        does not know become padding. Default: build one from the sequences. Without
        ``examples`` the data can be evaluated and recommended from, and trained only with
        ``next_item`` targets.
        """
        missing = {"user_id", "item_ids", "is_skip", "valid_idx", "test_idx"} - set(sequences.column_names)
        if missing:
            raise ValueError(f"sequence table lacks columns {sorted(missing)}")
        sequences = sequences.combine_chunks()
        item_lists = _list_chunk(sequences, "item_ids", pa.string())
        offsets = item_lists.offsets.to_numpy().astype(np.int64)
        offsets = offsets - offsets[0]
        flat_items = item_lists.flatten()
        vocab = vocab or ItemVocab.build(flat_items)

        def flat(name: str, fill: float | bool, kind: pa.DataType) -> np.ndarray:
            if name not in sequences.column_names:
                return np.full(len(flat_items), fill)
            values = pc.fill_null(_list_chunk(sequences, name, kind).flatten(), fill).to_numpy(zero_copy_only=False)
            if len(values) != len(flat_items):
                raise ValueError(f"list column {name} is not aligned with item_ids")
            return values

        def index_column(name: str) -> np.ndarray:
            return pc.fill_null(sequences.column(name), -1).to_numpy().astype(np.int64)

        lengths = np.diff(offsets)
        valid_idx, test_idx = index_column("valid_idx"), index_column("test_idx")
        for name, idx in (("valid_idx", valid_idx), ("test_idx", test_idx)):
            if np.any(idx >= lengths):
                raise ValueError(f"{name} points past the end of item_ids")
        if "earlier_item_ids" in sequences.column_names:
            earlier_lists = _list_chunk(sequences, "earlier_item_ids", pa.string())
            earlier_offsets = earlier_lists.offsets.to_numpy().astype(np.int64)
            earlier_offsets -= earlier_offsets[0]
            earlier = vocab.encode(earlier_lists.flatten())
        else:
            earlier_offsets, earlier = np.zeros(len(sequences) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        user_ids = np.asarray(sequences.column("user_id").to_pylist(), dtype=object)
        items = vocab.encode(flat_items)
        targets = _next_k_arrays(examples, user_ids, offsets, vocab) if examples is not None else _no_targets(len(items))
        seconds = None
        time_column = next((name for name in ("event_ts", "ts") if name in sequences.column_names), None)
        if time_column:  # the mart's event_ts, or the lake contract's ts
            times = pc.cast(_list_chunk(sequences, time_column, pa.timestamp("us", "UTC")).flatten(),
                            pa.timestamp("us", "UTC"))
            if len(times) != len(flat_items):
                raise ValueError(f"list column {time_column} is not aligned with item_ids")
            if times.null_count == 0:
                seconds = pc.cast(times, pa.int64()).to_numpy(zero_copy_only=False) // 1_000_000
        return cls(user_ids, items, flat("is_skip", False, pa.bool_()).astype(bool),
                   flat("completion", 1.0, pa.float64()).astype(np.float32), offsets, valid_idx, test_idx,
                   earlier, earlier_offsets, *targets, vocab, seconds)

    @classmethod
    def load(cls, cfg: EncoreConfig, run_date: str | dt.date, vocab: ItemVocab | None = None,
             with_targets: bool = True) -> "SequenceData":
        """The run date's ``fct_user_sequences`` and (``with_targets``) ``fct_training_examples``
        marts from the warehouse."""
        from encore.core.warehouse import WarehouseError, query

        day = dt.date.fromisoformat(str(run_date))
        hint = f"run the Spark jobs and dbt feature marts for {day}"
        try:
            sequences = query(cfg, f"SELECT {', '.join(SEQUENCE_COLUMNS)} FROM fct_user_sequences WHERE run_date = ?",
                              [day])
            examples = query(cfg, f"SELECT {', '.join(EXAMPLE_COLUMNS)} FROM fct_training_examples WHERE run_date = ?",
                             [day]) if with_targets else None
        except WarehouseError as exc:
            raise FileNotFoundError(f"cannot read fct_user_sequences / fct_training_examples: {exc} ({hint})") from exc
        if sequences.num_rows == 0:
            raise FileNotFoundError(f"fct_user_sequences has no rows for {day} ({hint})")
        return cls.from_arrow(sequences.sort_by("user_id"), examples, vocab)

    # ---- splits -----------------------------------------------------------------

    def split(self, name: str, max_seq_len: int, all_windows: bool = False, window_stride: int = 0,
              train_target: str = "next_positive") -> SequenceBatch:
        """Padded tensors of one split (see module docstring); users without the
        needed targets are left out (``user_index`` says who is in).

        ``all_windows`` (train only): a history longer than ``max_seq_len`` becomes
        several rows, windows ending ``window_stride`` events apart (0 = the
        default ``max_seq_len - 1``: consecutive windows share one event), so every
        training target is used exactly once per epoch instead of only the most
        recent window's (rows of one user are adjacent, newest window first).
        A window keeps only the targets among its last ``window_stride`` events
        (the oldest window keeps all), so with a smaller stride each target is
        still trained once per epoch but sees about ``max_seq_len - window_stride``
        or more events of context, for ``(max_seq_len - 1) / window_stride`` times the work.

        ``train_target``: ``next_positive`` (the seeds' task: the next non-skipped item,
        from fct_training_examples) or ``next_item`` (every next event, skips included, as
        RecBole's SASRec trains; for data whose negatives are low ratings of consumed items);
        ``next_k`` marks the same positions as ``next_positive`` (the loss then reads all of
        ``next_k``)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        if all_windows and name != "train":
            raise ValueError("all_windows only applies to the train split")
        if train_target not in TRAIN_TARGETS:
            raise ValueError(f"train_target must be one of {TRAIN_TARGETS}, got {train_target!r}")
        if name == "train" and train_target != "next_item" and not self.has_targets:
            raise ValueError("training on next positives needs the fct_training_examples rows (targets)")
        stride = window_stride or max_seq_len - 1
        if all_windows and not 1 <= stride <= max_seq_len - 1:
            raise ValueError(f"window_stride must be in [1, max_seq_len - 1 = {max_seq_len - 1}], got {window_stride}")
        starts, lengths = self.offsets[:-1], np.diff(self.offsets)
        if name == "train":
            end = np.where(self.valid_idx >= 0, self.valid_idx, lengths)
        elif name == "valid":
            end = self.valid_idx
        elif name == "test":
            end = self.test_idx
        else:
            end = lengths
        users = np.arange(len(end))
        oldest = np.ones(len(end), dtype=bool)
        if all_windows:
            users, end, oldest = _training_windows(end, max_seq_len, stride)
        keep = end >= 1  # needs at least one input event
        abs_end = starts[users] + end
        idx, present = _window_index(abs_end, np.minimum(end, max_seq_len), max_seq_len)
        seq = np.where(present, self.items[idx], PAD_ID)

        # targets inside this window; with overlapping windows a target belongs to the
        # window whose last `stride` events hold it
        owner = oldest[:, None, None] | (self.next_k_flat[idx] >= (abs_end - stride)[:, None, None])
        inside = present[..., None] & (self.next_k_flat[idx] >= 0) & (self.next_k_flat[idx] < abs_end[:, None, None])
        inside &= owner if name == "train" else True
        next_k = np.where(inside, self.next_k[idx], PAD_ID)
        if train_target == "next_item":
            following = np.minimum(idx + 1, max(len(self.items) - 1, 0))
            has_next = present & (idx + 1 < abs_end[:, None])
            has_next &= oldest[:, None] | (idx + 1 >= (abs_end - stride)[:, None])
            next_pos = np.where(has_next, self.items[following] if len(self.items) else 0, PAD_ID)
        else:
            next_pos = next_k[..., 0] if next_k.shape[-1] else np.zeros_like(seq)

        target = np.zeros(len(end), dtype=np.int64)
        if name in ("valid", "test"):
            target = np.where(keep, self.items[np.clip(abs_end, 0, max(len(self.items) - 1, 0))], PAD_ID)
            keep &= target != PAD_ID  # a target unknown to the vocabulary cannot be scored
        if name == "train":
            keep &= (next_pos != PAD_ID).any(axis=1)
        rows = np.flatnonzero(keep)
        history = self._history(users[rows], end[rows]) if name != "train" else np.zeros((len(rows), 0), np.int64)
        gap, age = self._time_spans(idx[rows], present[rows], starts[users[rows]])
        return SequenceBatch(
            seq=torch.from_numpy(seq[rows]),
            is_skip=torch.from_numpy(np.where(present, self.is_skip[idx], False)[rows]),
            completion=torch.from_numpy(np.where(present, self.completion[idx], 0.0).astype(np.float32)[rows]),
            next_pos=torch.from_numpy(next_pos[rows]),
            next_k=torch.from_numpy(next_k[rows]),
            next_k_label=torch.from_numpy(np.where(inside, self.next_k_label[idx], 0.0).astype(np.float32)[rows]),
            next_k_completion=torch.from_numpy(
                np.where(inside, self.next_k_completion[idx], 0.0).astype(np.float32)[rows]),
            target=torch.from_numpy(target[rows]),
            history=torch.from_numpy(history),
            user_index=torch.from_numpy(users[rows].astype(np.int64)),
            gap_seconds=torch.from_numpy(gap),
            age_seconds=torch.from_numpy(age),
        )

    def windows(self, users: np.ndarray, ends: np.ndarray, max_seq_len: int) -> SequenceBatch:
        """One row per (user, position): the window of events before ``ends`` (positions in the
        user's sequence) with ``target`` = the event at that position; no training targets."""
        abs_end = self.offsets[users] + ends
        idx, present = _window_index(abs_end, np.minimum(ends, max_seq_len), max_seq_len)
        empty = np.zeros((len(users), max_seq_len, 0), dtype=np.int64)
        gap, age = self._time_spans(idx, present, self.offsets[users])
        return SequenceBatch(
            seq=torch.from_numpy(np.where(present, self.items[idx], PAD_ID)),
            is_skip=torch.from_numpy(np.where(present, self.is_skip[idx], False)),
            completion=torch.from_numpy(np.where(present, self.completion[idx], 0.0).astype(np.float32)),
            next_pos=torch.zeros((len(users), max_seq_len), dtype=torch.long),
            next_k=torch.from_numpy(empty),
            next_k_label=torch.from_numpy(empty.astype(np.float32)),
            next_k_completion=torch.from_numpy(empty.astype(np.float32)),
            target=torch.from_numpy(self.items[abs_end] if len(users) else np.zeros(0, np.int64)),
            history=torch.zeros((len(users), 0), dtype=torch.long),
            user_index=torch.from_numpy(users.astype(np.int64)),
            gap_seconds=torch.from_numpy(gap),
            age_seconds=torch.from_numpy(age),
        )

    def _time_spans(self, idx: np.ndarray, present: np.ndarray, user_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(gap, age) seconds of windows of flat events ``idx`` (``[B, L]``, ``present`` where an
        event): since the user's previous event, inside the window or not (the user's first event:
        unknown), and from each event to the window's newest one."""
        if self.event_seconds is None:
            return window_time_spans(None, present)
        seconds = np.where(present, self.event_seconds[idx], 0)
        has_previous = present & (idx > user_start[:, None])
        previous = np.where(has_previous, self.event_seconds[np.maximum(idx - 1, 0)], 0)
        return _gap_age_seconds(seconds, previous, has_previous, present)

    def _history(self, users: np.ndarray, end: np.ndarray) -> np.ndarray:
        """``[len(users), H]`` every item of each user before position ``end`` (all of the
        sequence's events before it, not only the window's, plus the older items), 0-padded."""
        starts = self.offsets[users]
        older = self.earlier_offsets[users + 1] - self.earlier_offsets[users]
        sizes = end + older
        out = np.zeros((len(users), int(sizes.max()) if len(users) else 0), dtype=np.int64)
        if not len(users):
            return out
        row = np.repeat(np.arange(len(users)), end)
        first = np.repeat(np.cumsum(end) - end, end)
        column = np.arange(int(end.sum())) - first
        out[row, column] = self.items[np.repeat(starts, end) + column]
        row = np.repeat(np.arange(len(users)), older)
        first = np.repeat(np.cumsum(older) - older, older)
        column = np.arange(int(older.sum())) - first
        out[row, np.repeat(end, older) + column] = self.earlier[np.repeat(self.earlier_offsets[users], older) + column]
        return out


def _list_chunk(table: pa.Table, name: str, value_type: pa.DataType) -> pa.ListArray:
    column = table.column(name)
    return column.chunk(0) if table.num_rows else pa.array([], pa.list_(value_type))


def _no_targets(n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros((n_events, 0), np.int64), np.zeros((n_events, 0), np.float32),
            np.zeros((n_events, 0), np.float32), np.zeros((n_events, 0), np.int64))


def _next_k_arrays(examples: pa.Table, user_ids: np.ndarray, offsets: np.ndarray,
                   vocab: ItemVocab) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per flat event: the next-K targets of ``fct_training_examples`` (ids, soft labels,
    completion, flat index of each target); events without a row get none."""
    missing = set(EXAMPLE_COLUMNS) - set(examples.column_names)
    if missing:
        raise ValueError(f"training examples lack columns {sorted(missing)}")
    n_events = int(offsets[-1])
    examples = examples.combine_chunks()
    k = max((len(v) for v in examples.column("next_k_item_ids").to_pylist()), default=0)
    arrays = _no_targets(n_events) if k == 0 else (
        np.zeros((n_events, k), np.int64), np.zeros((n_events, k), np.float32),
        np.zeros((n_events, k), np.float32), np.full((n_events, k), -1, np.int64))
    if not examples.num_rows or k == 0:
        return arrays
    row_of = {u: i for i, u in enumerate(user_ids)}
    user_row = np.asarray([row_of.get(u, -1) for u in examples.column("user_id").to_pylist()], dtype=np.int64)
    position = examples.column("position").to_numpy().astype(np.int64)
    lengths = np.diff(offsets)
    known = user_row >= 0
    if np.any(position[known] >= lengths[user_row[known]]):
        raise ValueError("a training example's position points past the end of its sequence")
    flat_event = np.where(known, offsets[np.maximum(user_row, 0)] + position, -1)
    ids, labels, completion, flat_target = arrays
    item_lists = examples.column("next_k_item_ids")
    width = pc.list_value_length(item_lists).to_numpy(zero_copy_only=False).astype(np.int64)
    row = np.repeat(np.arange(examples.num_rows), width)
    slot = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width)
    event = flat_event[row]
    ok = event >= 0
    def flat(name: str) -> np.ndarray:
        return pc.list_flatten(examples.column(name)).to_numpy(zero_copy_only=False)

    ids[event[ok], slot[ok]] = vocab.encode(pc.list_flatten(item_lists))[ok]
    labels[event[ok], slot[ok]] = flat("next_k_soft_labels")[ok]
    completion[event[ok], slot[ok]] = flat("next_k_completions")[ok]
    target_position = flat("next_k_positions").astype(np.int64)
    flat_target[event[ok], slot[ok]] = (offsets[user_row[row]] + target_position)[ok]
    unknown = ids == PAD_ID  # an item the vocabulary does not know is no target
    flat_target[unknown] = -1
    labels[unknown] = 0.0
    return ids, labels, completion, flat_target


def _training_windows(end: np.ndarray, max_len: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, window end, is the user's oldest window) of every training window:
    ends ``end, end - stride, ...`` until a window reaches the history's first
    event. With ``stride = L - 1`` consecutive windows share one event, the last
    position of the older window (which has no target inside it) being the first
    of the newer one."""
    if max_len < 2:
        raise ValueError(f"all_windows needs max_seq_len >= 2, got {max_len}")
    n_windows = np.where(end > max_len, 1 + -(-(end - max_len) // stride), 1)
    users = np.repeat(np.arange(len(end)), n_windows)
    first_row = np.cumsum(n_windows) - n_windows
    k = np.arange(len(users)) - np.repeat(first_row, n_windows)
    return users, np.repeat(end, n_windows) - k * stride, k == np.repeat(n_windows, n_windows) - 1


def _window_index(abs_end: np.ndarray, length: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the last ``length`` events before ``abs_end``, left-padded to ``max_len``."""
    cols = np.arange(max_len)
    present = cols[None, :] >= (max_len - length)[:, None]
    idx = abs_end[:, None] - max_len + cols[None, :]
    return np.where(present, idx, 0), present


def time_buckets(seconds: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Bucket ids of time spans (see ``N_TIME_BUCKETS``): 0 where not ``present``, 1 for an unknown
    span (negative seconds), 2 for 0 s, 3 + floor(log2(seconds)) for longer, capped at the last bucket."""
    log2 = torch.floor(torch.log2(seconds.clamp(min=1).double())).long()
    buckets = torch.where(seconds < 0, 1, torch.where(seconds == 0, 2, (3 + log2).clamp(max=N_TIME_BUCKETS - 1)))
    return torch.where(present, buckets, 0)


def window_time_spans(seconds: np.ndarray | None, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gap, age) seconds ``[B, L]`` of left-padded windows with epoch ``seconds`` (None = unknown):
    the gap to the previous event inside the window (its first event: unknown) and the age relative
    to the window's newest (last) event; -1 (unknown) at padding."""
    if seconds is None:
        unknown = np.full(present.shape, UNKNOWN_SECONDS, dtype=np.int64)
        return unknown, unknown.copy()
    has_previous = np.zeros_like(present)
    has_previous[:, 1:] = present[:, :-1] & present[:, 1:]
    previous = np.zeros_like(seconds)
    previous[:, 1:] = seconds[:, :-1]
    return _gap_age_seconds(seconds, previous, has_previous, present)


def _gap_age_seconds(seconds: np.ndarray, previous: np.ndarray, has_previous: np.ndarray,
                     present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gap = np.where(has_previous, seconds - previous, UNKNOWN_SECONDS)
    age = np.where(present, seconds[:, -1:] - seconds, UNKNOWN_SECONDS)
    return gap.astype(np.int64), age.astype(np.int64)


def iterate_batches(
    data: SequenceBatch, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterator[SequenceBatch]:
    """Mini-batches of a split; ``generator`` makes the shuffle reproducible."""
    order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(len(data))
    for start in range(0, len(data), batch_size):
        yield data.take(order[start : start + batch_size])


def history_mask(seq: torch.Tensor, n_items: int, positive_only: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, n_items]`` bool: item (column = id - 1) occurs in the row's ids ``seq`` (a window
    ``[B, L]`` or a ``history`` ``[B, H]``).

    ``positive_only``: a bool mask of ``seq``'s shape selecting which entries count
    (e.g. ``~is_skip`` for "consumed positively")."""
    keep = seq != PAD_ID
    if positive_only is not None:
        keep &= positive_only
    mask = torch.zeros(seq.shape[0], n_items + 1, dtype=torch.bool, device=seq.device)
    mask.scatter_(1, torch.where(keep, seq, 0).clamp(max=n_items), True)
    return mask[:, 1:]


def user_keys(user_ids: np.ndarray | list[str]) -> np.ndarray:
    """Stable int64 key of each user_id string, so a model can store which users
    its user table was trained on and find them again in another ``SequenceData``."""
    return np.asarray(
        [int.from_bytes(hashlib.blake2b(str(u).encode(), digest_size=8).digest(), "little") >> 1 for u in user_ids],
        dtype=np.int64,
    )


def user_rows(known_keys: np.ndarray, user_ids: np.ndarray | list[str]) -> np.ndarray:
    """Row of each user in ``known_keys`` (sorted ``user_keys``), -1 for unknown users."""
    keys = user_keys(user_ids)
    if len(known_keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(known_keys, keys), 0, len(known_keys) - 1)
    return np.where(known_keys[pos] == keys, pos, -1).astype(np.int64)
