"""Training sequences: lake Parquet (SEQUENCE contract) -> padded id tensors.

Everything here is bulk NumPy over the flattened Arrow list columns (values +
offsets); there is no per-user Python loop, so a few million events load in
seconds.

Ids: padding = 0, items = 1..n_items (sorted item_id strings), mask = n_items + 1
(BERT4Rec's cloze token). ``ItemVocab`` saves/loads that mapping so inference can
map scores back to item_id strings.

Split (temporal leave-last-out, DESIGN "Evaluation protocol"), per user with
``valid_idx`` / ``test_idx`` = positions of the second-last / last positive event:

* train: events ``[0, valid_idx)``; the target of position t is the **next
  non-skipped item** after t inside that range (0 = no target);
* valid: input = events ``[0, valid_idx)``, target = item at ``valid_idx``;
* test:  input = events ``[0, test_idx)``, target = item at ``test_idx``
  (so the validation target and any skips after it are part of the test input);
* inference: input = all events (what the nightly job recommends from).

Inputs longer than ``max_seq_len`` keep their most recent events; shorter ones
are left-padded, so the last column is always the newest event.

Contrastive negatives (seed 000): the skipped items of the whole input window,
the same set for every position of a row (``SequenceBatch.skip_negatives``).
The loss drops a negative that equals the position's positive.
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
import pyarrow.parquet as pq
import torch

from encore.core.config import EncoreConfig

PAD_ID = 0
SPLITS = ("train", "valid", "test", "inference")
TRAIN_TARGETS = ("next_positive", "next_item")


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
    next_pos: torch.Tensor  # next non-skipped item after each position inside the window, 0 = none
    target: torch.Tensor  # held-out target id (valid/test), 0 for train/inference
    user_index: torch.Tensor  # row in SequenceData.user_ids

    def to(self, device: torch.device | str) -> "SequenceBatch":
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    def __len__(self) -> int:
        return self.seq.shape[0]

    def take(self, index: torch.Tensor | slice) -> "SequenceBatch":
        return SequenceBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

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
    vocab: ItemVocab

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return self.vocab.n_items

    @classmethod
    def from_arrow(cls, table: pa.Table, vocab: ItemVocab | None = None) -> "SequenceData":
        """Build from an Arrow table with the SEQUENCE contract columns.

        ``vocab``: reuse an existing mapping (inference with a trained model);
        items it does not know become padding. Default: build one from the table.
        """
        missing = {"user_id", "item_ids", "is_skip", "valid_idx", "test_idx"} - set(table.column_names)
        if missing:
            raise ValueError(f"sequence table lacks columns {sorted(missing)}")
        table = table.combine_chunks()
        item_lists = table.column("item_ids").chunk(0) if table.num_rows else pa.array([], pa.list_(pa.string()))
        offsets = item_lists.offsets.to_numpy().astype(np.int64)
        offsets = offsets - offsets[0]
        flat_items = item_lists.flatten()
        vocab = vocab or ItemVocab.build(flat_items)

        def flat(name: str, fill: float | bool) -> np.ndarray:
            if name not in table.column_names:
                return np.full(len(flat_items), fill)
            column = table.column(name).chunk(0) if table.num_rows else pa.array([], pa.list_(pa.float64()))
            values = pc.fill_null(column.flatten(), fill).to_numpy(zero_copy_only=False)
            if len(values) != len(flat_items):
                raise ValueError(f"list column {name} is not aligned with item_ids")
            return values

        def index_column(name: str) -> np.ndarray:
            return pc.fill_null(table.column(name), -1).to_numpy().astype(np.int64)

        lengths = np.diff(offsets)
        valid_idx, test_idx = index_column("valid_idx"), index_column("test_idx")
        for name, idx in (("valid_idx", valid_idx), ("test_idx", test_idx)):
            if np.any(idx >= lengths):
                raise ValueError(f"{name} points past the end of item_ids")
        return cls(
            user_ids=np.asarray(table.column("user_id").to_pylist(), dtype=object),
            items=vocab.encode(flat_items),
            is_skip=flat("is_skip", False).astype(bool),
            completion=flat("completion", 1.0).astype(np.float32),
            offsets=offsets,
            valid_idx=valid_idx,
            test_idx=test_idx,
            vocab=vocab,
        )

    @classmethod
    def load(cls, cfg: EncoreConfig, run_date: str | dt.date, vocab: ItemVocab | None = None) -> "SequenceData":
        """Read the ``sequences`` lake partition of ``run_date``."""
        path = cfg.lake_path("sequences", run_date)
        columns = ["user_id", "item_ids", "is_skip", "completion", "valid_idx", "test_idx"]
        try:
            table = pq.read_table(path, columns=columns)
        except (FileNotFoundError, OSError) as exc:
            raise FileNotFoundError(f"no sequences for {run_date} at {path}: {exc}") from exc
        return cls.from_arrow(table.sort_by("user_id"), vocab)

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
        or more events of context, closer to training on every prefix, for
        ``(max_seq_len - 1) / window_stride`` times the work.

        ``train_target``: ``next_positive`` (the seeds' task: next non-skipped item)
        or ``next_item`` (every next event, skips included, as RecBole's SASRec
        trains; for data whose negatives are low ratings of consumed items)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        if all_windows and name != "train":
            raise ValueError("all_windows only applies to the train split")
        if train_target not in TRAIN_TARGETS:
            raise ValueError(f"train_target must be one of {TRAIN_TARGETS}, got {train_target!r}")
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

        next_flat = _next_positive_index(self.is_skip if train_target == "next_positive" else np.zeros_like(self.is_skip))
        next_abs = next_flat[idx]
        has_next = present & (next_abs < abs_end[:, None])  # stays inside this user's window
        # overlapping windows: a target belongs to the window whose last `stride` events hold it
        has_next &= oldest[:, None] | (next_abs >= (abs_end - stride)[:, None])
        next_pos = np.where(has_next, self.items[np.minimum(next_abs, len(self.items) - 1)], PAD_ID)

        target = np.zeros(len(end), dtype=np.int64)
        if name in ("valid", "test"):
            target = np.where(keep, self.items[np.clip(abs_end, 0, max(len(self.items) - 1, 0))], PAD_ID)
            keep &= target != PAD_ID  # a target unknown to the vocabulary cannot be scored
        if name == "train":
            keep &= has_next.any(axis=1)
        rows = np.flatnonzero(keep)
        return SequenceBatch(
            seq=torch.from_numpy(seq[rows]),
            is_skip=torch.from_numpy(np.where(present, self.is_skip[idx], False)[rows]),
            completion=torch.from_numpy(np.where(present, self.completion[idx], 0.0).astype(np.float32)[rows]),
            next_pos=torch.from_numpy(next_pos[rows]),
            target=torch.from_numpy(target[rows]),
            user_index=torch.from_numpy(users[rows].astype(np.int64)),
        )


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


def _next_positive_index(is_skip: np.ndarray) -> np.ndarray:
    """For each flat event i, the flat index of the first non-skipped event j > i
    (len(is_skip) if none). Callers bound it by the user's window end."""
    n = len(is_skip)
    candidate = np.where(~is_skip, np.arange(n), n)
    suffix_min = np.minimum.accumulate(candidate[::-1])[::-1]  # min over j >= i
    out = np.full(n, n, dtype=np.int64)
    out[:-1] = suffix_min[1:]
    return out


def iterate_batches(
    data: SequenceBatch, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterator[SequenceBatch]:
    """Mini-batches of a split; ``generator`` makes the shuffle reproducible."""
    order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(len(data))
    for start in range(0, len(data), batch_size):
        yield data.take(order[start : start + batch_size])


def history_mask(seq: torch.Tensor, n_items: int, positive_only: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, n_items]`` bool: item (column = id - 1) occurs in the row's window.

    ``positive_only``: a ``[B, L]`` bool mask selecting which events count
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
