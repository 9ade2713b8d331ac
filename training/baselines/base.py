"""What every baseline shares: the training events of a split and the window vector.

Baselines fit on the ``train`` split (``SequenceData.split("train", max_seq_len)``:
each user's events before the validation target) and score the windows the shared
evaluation hands them, like the sequence models. Negative feedback: without it
every event counts as a positive interaction; with it, skipped events carry
weight ``-skip_weight`` (or are left out where a method has no negative notion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.data import PAD_ID, SequenceBatch


@dataclass
class Events:
    """The non-padding events of a split, flattened."""

    row: np.ndarray  # row of the split the event belongs to
    column: np.ndarray  # item column (id - 1)
    is_skip: np.ndarray
    age: np.ndarray  # 0 = the row's newest event, 1 = the one before, ...


def split_events(split: SequenceBatch) -> Events:
    seq = split.seq.numpy()
    present = seq != PAD_ID
    rows, positions = np.nonzero(present)
    ages = present[:, ::-1].cumsum(axis=1)[:, ::-1] - 1  # count of present events at or after each column, minus 1
    return Events(
        row=rows,
        column=seq[rows, positions] - 1,
        is_skip=split.is_skip.numpy()[rows, positions],
        age=ages[rows, positions],
    )


def event_weights(is_skip: np.ndarray, negative_feedback: bool, skip_weight: float) -> np.ndarray:
    """+1 per event; with negative feedback a skip counts ``-skip_weight``."""
    if not negative_feedback:
        return np.ones(len(is_skip), dtype=np.float32)
    return np.where(is_skip, -skip_weight, 1.0).astype(np.float32)


def window_vectors(
    seqs: torch.Tensor, is_skip: torch.Tensor | None, n_items: int, negative_feedback: bool, skip_weight: float
) -> torch.Tensor:
    """``[B, n_items]``: 1 for items in the window; with negative feedback (and skip
    flags known) items that were only skipped get ``-skip_weight`` instead."""
    present = seqs != PAD_ID
    vectors = torch.zeros(seqs.shape[0], n_items + 1, device=seqs.device)
    index = torch.where(present, seqs, 0)
    if negative_feedback and is_skip is not None:
        vectors.scatter_(1, torch.where(present & is_skip, index, 0), -skip_weight)
        vectors.scatter_(1, torch.where(present & ~is_skip, index, 0), 1.0)  # consumed positively wins
    else:
        vectors.scatter_(1, index, 1.0)
    return vectors[:, 1:]


def context_skips(context) -> torch.Tensor | None:
    return None if context is None else context.is_skip
