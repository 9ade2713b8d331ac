"""PHNS negatives for training and the PHNS-hard / easy test sets (seed 003).

Pools (PHNS_POOL contract, lake table ``phns_pools``, built by the Spark job):
per user ``hard`` (skipped / abandoned, never consumed positively), ``trending``
and ``tailing`` (globally popular / unpopular items the user never touched).
``PhnsPools.from_sequences`` derives the same three pools from the sequences
alone, for data without a pools partition (tests, public datasets).

``PhnsSampler`` draws ``n_negatives`` per user for a mix: ``round(n · hard_share)``
hard, the rest split evenly between trending and tailing (trending gets the odd
one), a short pool filled from the others and then uniformly from unseen items;
``hard_share=None`` is UNIFORM (no PHNS: uniform over the items the user never
interacted with). ``uniform_share`` (default 0, the seed's pure PHNS) reserves
that share of the ``n_negatives`` for uniform unseen items in every mix: PHNS
pools alone never show the model most of the catalogue, which costs it the
easy test set and full ranking. A user's positives are never returned. Draws derive from
(seed, epoch), so they are re-sampled every epoch and reproducible.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import torch

from encore.core import lake
from encore.core.config import ConfigError, EncoreConfig
from training.data import PAD_ID, SequenceBatch, SequenceData

POOLS = ("hard", "trending", "tailing")
UNIFORM_MIX = "UNIFORM"


def hard_share_of(cfg: EncoreConfig, mix: str) -> float | None:
    """Hard share of a named mix (``cfg.phns.mixes``); None for UNIFORM."""
    mix = mix.upper()
    if mix == UNIFORM_MIX:
        return None
    if mix not in cfg.phns.mixes:
        raise ConfigError(f"unknown PHNS mix {mix!r}; known: {sorted(cfg.phns.mixes) + [UNIFORM_MIX]}")
    return cfg.phns.mixes[mix]


class PhnsPools:
    """Per-user pool item ids (arrays of ids, aligned with ``data.user_ids``, hardest / rank 1 first)."""

    def __init__(self, data: SequenceData, pools: dict[str, list[np.ndarray]]):
        self.data = data
        self.pools = pools
        starts, ends = data.offsets[:-1], data.offsets[1:]
        self.seen = [np.unique(data.items[s:e]) for s, e in zip(starts, ends)]
        self.positives = [np.unique(data.items[s:e][~data.is_skip[s:e]]) for s, e in zip(starts, ends)]
        self.seen = [s[s != PAD_ID] for s in self.seen]

    @classmethod
    def from_arrow(cls, table: pa.Table, data: SequenceData) -> "PhnsPools":
        """From PHNS_POOL rows; users without rows get empty pools, unknown items are dropped."""
        table = table.sort_by([("user_id", "ascending"), ("pool", "ascending"), ("pool_rank", "ascending")])
        user_row = {u: i for i, u in enumerate(data.user_ids)}
        rows = np.asarray([user_row.get(u, -1) for u in table.column("user_id").to_pylist()], dtype=np.int64)
        items = data.vocab.encode(table.column("item_id"))
        pool_names = np.asarray(table.column("pool").to_pylist(), dtype=object)
        pools = {}
        for name in POOLS:
            keep = (pool_names == name) & (rows >= 0) & (items != PAD_ID)
            order = np.argsort(rows[keep], kind="stable")
            grouped_rows, grouped_items = rows[keep][order], items[keep][order]
            bounds = np.searchsorted(grouped_rows, np.arange(data.n_users + 1))
            pools[name] = [grouped_items[bounds[u] : bounds[u + 1]] for u in range(data.n_users)]
        return cls(data, pools)

    @classmethod
    def from_sequences(cls, data: SequenceData, pool_size: int = 100, min_support: int = 2) -> "PhnsPools":
        """The three pools from the sequences alone: hard = skipped, never positive
        (most recent first); trending / tailing = most / least frequent items by
        distinct users (tailing: support >= ``min_support``, not trending), minus the user's items."""
        starts, ends = data.offsets[:-1], data.offsets[1:]
        distinct = np.concatenate([np.unique(data.items[s:e]) for s, e in zip(starts, ends)] or [np.zeros(0, np.int64)])
        support = np.bincount(distinct, minlength=data.n_items + 1)[1:]
        by_support = np.lexsort((np.arange(data.n_items), -support))
        trending = by_support[:pool_size] + 1
        tail_order = np.lexsort((np.arange(data.n_items), support))
        tail_order = tail_order[(support[tail_order] >= min_support) & ~np.isin(tail_order + 1, trending)]
        tailing = tail_order[:pool_size] + 1
        pools: dict[str, list[np.ndarray]] = {name: [] for name in POOLS}
        for s, e in zip(starts, ends):
            items, skipped = data.items[s:e], data.is_skip[s:e]
            positive = np.unique(items[~skipped])
            recent_first = items[skipped][::-1]
            _, first = np.unique(recent_first, return_index=True)
            hard = recent_first[np.sort(first)]
            pools["hard"].append(hard[~np.isin(hard, positive) & (hard != PAD_ID)][:pool_size])
            pools["trending"].append(trending[~np.isin(trending, items)])
            pools["tailing"].append(tailing[~np.isin(tailing, items)])
        return cls(data, pools)

    @classmethod
    def load(cls, cfg: EncoreConfig, run_date: str | dt.date, data: SequenceData) -> "PhnsPools":
        """The ``phns_pools`` partition of ``run_date`` (FileNotFoundError if there is none)."""
        return cls.from_arrow(lake.read_partition(cfg, "phns_pools", run_date), data)


class PhnsSampler:
    def __init__(self, pools: PhnsPools, hard_share: float | None, n_negatives: int, seed: int,
                 uniform_share: float = 0.0):
        if hard_share is not None and not 0 <= hard_share <= 1:
            raise ValueError(f"hard_share must be in [0, 1], got {hard_share}")
        if not 0 <= uniform_share <= 1:
            raise ValueError(f"uniform_share must be in [0, 1], got {uniform_share}")
        self.pools, self.hard_share, self.n_negatives, self.seed = pools, hard_share, n_negatives, seed
        self.uniform_share = uniform_share
        self.all_items = np.arange(1, pools.data.n_items + 1)

    def sample(self, epoch: int, users: np.ndarray | None = None) -> torch.Tensor:
        """``[len(users), n_negatives]`` negative ids (0 = nothing left to draw) for
        user rows ``users`` (default: every user)."""
        rng = np.random.default_rng([self.seed, epoch])
        users = np.arange(self.pools.data.n_users) if users is None else np.asarray(users)
        out = np.zeros((len(users), self.n_negatives), dtype=np.int64)
        for row, user in enumerate(users):
            drawn = self._draw_user(int(user), rng)
            out[row, : len(drawn)] = drawn
        return torch.from_numpy(out)

    def _draw_user(self, user: int, rng: np.random.Generator) -> np.ndarray:
        positives, seen = self.pools.positives[user], self.pools.seen[user]
        if self.hard_share is None:
            return self._uniform(seen, self.n_negatives, rng)
        n = self.n_negatives - int(round(self.n_negatives * self.uniform_share))
        candidates = {name: np.setdiff1d(self.pools.pools[name][user], positives) for name in POOLS}
        candidates["trending"] = np.setdiff1d(candidates["trending"], candidates["hard"], assume_unique=True)
        candidates["tailing"] = np.setdiff1d(
            candidates["tailing"], np.concatenate([candidates["hard"], candidates["trending"]]), assume_unique=True
        )
        candidates = {name: rng.permutation(ids) for name, ids in candidates.items()}
        want_hard = int(round(n * self.hard_share))
        rest = n - want_hard
        quota = {"hard": want_hard, "trending": rest - rest // 2, "tailing": rest // 2}
        taken = {name: min(quota[name], len(candidates[name])) for name in POOLS}
        for name in ("trending", "tailing", "hard"):  # fill what a short pool could not give
            short = n - sum(taken.values())
            taken[name] += min(short, len(candidates[name]) - taken[name])
        drawn = np.concatenate([candidates[name][: taken[name]] for name in POOLS])
        if len(drawn) < self.n_negatives:
            fill = self._uniform(np.concatenate([seen, drawn]), self.n_negatives - len(drawn), rng)
            drawn = np.concatenate([drawn, fill])
        return drawn

    def _uniform(self, excluded: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        pool = np.setdiff1d(self.all_items, excluded)
        return rng.choice(pool, size=min(n, len(pool)), replace=False) if len(pool) else pool


def phns_test_candidates(
    pools: PhnsPools, split: SequenceBatch, n_negatives: int, hard_share: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate negatives ``[U, n]`` for the rows of ``split`` (seed 003 test sets):
    PHNS-hard = hard / trending / tailing negatives (``hard_share`` of them hard),
    easy = uniform over unseen items. The target is ranked against them by
    ``evaluate_candidates``; it is a positive of the user, so never a candidate."""
    users = split.user_index.numpy()
    hard = PhnsSampler(pools, hard_share, n_negatives, seed).sample(0, users)
    easy = PhnsSampler(pools, None, n_negatives, seed).sample(0, users)
    return hard, easy


def pool_composition(pools: PhnsPools, negatives: torch.Tensor, users: np.ndarray) -> dict[str, float]:
    """Share of drawn negatives from each pool (and ``other`` = uniform fill), for checks and logs."""
    counts = dict.fromkeys([*POOLS, "other"], 0)
    for row, user in enumerate(users):
        drawn = negatives[row][negatives[row] != PAD_ID].numpy()
        for name in POOLS:
            hit = np.isin(drawn, pools.pools[name][user])
            counts[name] += int(hit.sum())
            drawn = drawn[~hit]
        counts["other"] += len(drawn)
    total = max(sum(counts.values()), 1)
    return {name: value / total for name, value in counts.items()}


__all__ = ["PhnsPools", "PhnsSampler", "hard_share_of", "phns_test_candidates", "pool_composition", "UNIFORM_MIX"]
