"""Realistic synthetic listening / watching events, deterministic by seed.

Generative process
------------------
**World** (fixed by ``data.seed``, ``n_users``, ``n_items``, ``domain``):

* ``G`` genres (12; ``n_items // 8`` for tiny catalogs, at least 2), each a random unit vector in a
  16-dimensional taste space. Every item belongs to one genre; its latent
  vector is the genre centre plus Gaussian noise (normalised), so items of a
  genre are close and genres overlap a little.
* Popularity is Zipf-like: items get a random rank ``r`` and a base weight
  ``(r + 1) ** -0.9``. Each item's weight also swings slowly over days
  (``exp(0.5 sin(2 pi t / P_i + phi_i))``, periods 14-60 days), so some items
  trend and others fade.
* Item length: music ~ lognormal around 3.5 min (90 s - 8 min); video 70 %
  episodes (20-60 min), 30 % films (80-140 min).
* Users have a base taste: a Dirichlet mixture of 1-3 genre centres plus noise.
  Taste drifts slowly and smoothly: ``taste(t) = normalise(base + 0.35 (cos(w t
  + phi) v1 + sin(w t + phi) v2))`` with a per-user period of 45-120 days, ``t``
  the absolute day number. Users also differ in activity (lognormal, mean 1)
  and in the hour they usually start listening / watching.

**One day** (fixed by ``(seed, day)`` alone, so days can be generated
independently and in any order; memory is bounded by one day):

* Each user starts ``Poisson(sessions_per_user_day * activity)`` sessions
  (at most 4 music / 3 video). Music sessions hold 10-20 tracks (like Spotify's
  MSSD, ``session_id`` given); video sessions hold 1-3 watches (``session_id``
  null: downstream sessionizes by the 30-minute gap).
* The next item depends on the sequence: 24 candidates are proposed by
  popularity and 8 from the 32 nearest neighbours (latent cosine) of the
  *anchor* = the session's last item that was not skipped / abandoned (so after a
  skip the user steers back); the first item of a session gets 32 popularity
  candidates. One candidate is drawn with Gumbel-max on
  ``4 fit(user, item) + 2 sim(anchor, item)`` where ``fit`` = cosine between the
  user's taste that day and the item vector (see ``user_item_fit``). On the
  default config about 80 % of consecutive plays share a genre (chance: 9 %).
* Negative feedback carries signal: ``P(skip)`` (music) / ``P(abandon)``
  (video) = ``sigmoid(b - 5 fit - 2 sim(anchor, item))``; the intercept ``b`` is
  solved at every position so that the expected rate is 15 % skips / 10 %
  abandoned watches.
* Music: a skip is level 1 (very brief, completion 1-10 %) or 2 (brief, 10-24 %),
  level 1 more likely the worse the fit; a non-skip is level 3 (mostly played,
  55-95 %, 12 % of non-skipped plays) or 0 (played out: completion 1.0, or 95-100 %).
  ``duration_ms = round(completion * item_length_ms)`` and completion is then
  recomputed from the rounded duration so the three columns agree exactly. The
  next track starts at ``ts + duration_ms + gap`` with the gap exponential
  (mean 2 s) and below 60 s.
* Video: abandoned watches have completion 0.5-5 %; the rest finish (1.0) with
  probability ``0.25 + 0.5 fit+`` or stop at ``0.06 + 0.93 Beta(2 + 3 fit+, 2)``.
  The next watch starts 0.5-10 min after the previous one ended.
* A user's sessions of the day are laid out in order from their usual hour,
  at least 45 minutes apart, and shifted earlier when needed so every event of
  day D has a UTC timestamp on day D.

Ids: users ``u000042``, items ``t000123`` (music) / ``v000123`` (video),
sessions ``s20261001-000042-0`` (user, day, session index).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from encore.core.config import EncoreConfig, load_config
from encore.core.contracts import ITEM_CATALOG, LANDING_EVENT, arrow_schema

log = logging.getLogger(__name__)

LATENT_DIM = 16
N_NEIGHBOURS = 32
N_POP_CANDIDATES = 24
N_NEIGHBOUR_CANDIDATES = 8
ZIPF_EXPONENT = 0.9
ITEM_NOISE = 0.6  # norm of an item's offset from its genre centre
TASTE_NOISE = 0.4
TASTE_DRIFT = 0.35
CHOICE_TASTE_WEIGHT = 4.0
CHOICE_SEQUENCE_WEIGHT = 2.0
NEGATIVE_TASTE_WEIGHT = 5.0
NEGATIVE_SEQUENCE_WEIGHT = 2.0
MUSIC_SKIP_RATE = 0.15
VIDEO_ABANDON_RATE = 0.10
SESSION_SPACING_MS = 45 * 60_000
DAY_MS = 86_400_000

MUSIC_GENRES = ("pop", "rock", "hip-hop", "electronic", "jazz", "classical",
                "country", "r&b", "metal", "folk", "latin", "indie")
VIDEO_GENRES = ("drama", "comedy", "action", "documentary", "thriller", "animation",
                "romance", "sci-fi", "horror", "crime", "family", "reality")


@dataclasses.dataclass(frozen=True, eq=False)
class World:
    """Everything fixed by the seed: items, genres, popularity, users' tastes."""

    domain: str
    seed: int
    item_ids: pa.Array
    user_ids: pa.Array
    item_vectors: np.ndarray  # (n_items, d), unit norm
    item_genre: np.ndarray  # (n_items,) genre index
    genre_names: tuple[str, ...]
    item_length_ms: np.ndarray  # (n_items,) int64
    popularity: np.ndarray  # (n_items,) base Zipf weight
    trend_period: np.ndarray  # (n_items,) days
    trend_phase: np.ndarray
    neighbours: np.ndarray  # (n_items, N_NEIGHBOURS) nearest items by cosine, self excluded
    taste_base: np.ndarray  # (n_users, d)
    taste_drift: np.ndarray  # (n_users, 2, d)
    drift_period: np.ndarray  # (n_users,) days
    drift_phase: np.ndarray
    activity: np.ndarray  # (n_users,) mean 1
    usual_start_ms: np.ndarray  # (n_users,) ms after midnight UTC

    def taste_on(self, day: dt.date, users: np.ndarray | None = None) -> np.ndarray:
        """Users' unit taste vectors on ``day`` (all users, or the given indices)."""
        users = np.arange(len(self.taste_base)) if users is None else users
        angle = 2 * np.pi * day.toordinal() / self.drift_period[users] + self.drift_phase[users]
        drift = np.cos(angle)[:, None] * self.taste_drift[users, 0] + np.sin(angle)[:, None] * self.taste_drift[users, 1]
        return _normalise(self.taste_base[users] + TASTE_DRIFT * drift)

    def popularity_on(self, day: dt.date) -> np.ndarray:
        """Item sampling weights on ``day`` (Zipf base times a slow trend), summing to 1."""
        weight = self.popularity * np.exp(0.5 * np.sin(2 * np.pi * day.toordinal() / self.trend_period + self.trend_phase))
        return weight / weight.sum()


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _id_array(prefix: str, n: int) -> pa.Array:
    width = max(6, len(str(n - 1)))
    return pa.array([f"{prefix}{i:0{width}d}" for i in range(n)], pa.string())


def build_world(cfg: EncoreConfig) -> World:
    """The seed-fixed world of ``cfg.data`` (cached per process)."""
    d = cfg.data
    return _build_world(d.domain, d.seed, d.n_users, d.n_items)


@functools.lru_cache(maxsize=4)
def _build_world(domain: str, seed: int, n_users: int, n_items: int) -> World:
    started = time.perf_counter()
    rng = np.random.default_rng([seed, 0, n_users, n_items])
    genre_names = (MUSIC_GENRES if domain == "music" else VIDEO_GENRES)[: max(2, min(12, n_items // 8))]
    n_genres = len(genre_names)
    genre_centres = _normalise(rng.standard_normal((n_genres, LATENT_DIM)))

    item_genre = rng.integers(0, n_genres, n_items)
    item_vectors = _normalise(genre_centres[item_genre] + ITEM_NOISE * rng.standard_normal((n_items, LATENT_DIM)) / np.sqrt(LATENT_DIM))
    popularity = (rng.permutation(n_items) + 1.0) ** -ZIPF_EXPONENT
    trend_period = rng.uniform(14, 60, n_items)
    trend_phase = rng.uniform(0, 2 * np.pi, n_items)
    if domain == "music":
        length_s = np.clip(rng.lognormal(np.log(210), 0.25, n_items), 90, 480)
    else:
        film = rng.random(n_items) < 0.3
        length_s = np.where(film, rng.uniform(80, 140, n_items), rng.uniform(20, 60, n_items)) * 60
    item_length_ms = np.round(length_s * 1000).astype(np.int64)

    n_liked = rng.integers(1, 4, n_users)
    mixture = rng.dirichlet(np.ones(n_genres) * 0.3, n_users)
    # keep each user's n_liked strongest genres
    order = np.argsort(-mixture, axis=1)
    keep = np.zeros_like(mixture, dtype=bool)
    np.put_along_axis(keep, order, np.arange(n_genres)[None, :] < n_liked[:, None], axis=1)
    mixture = np.where(keep, mixture, 0.0)
    mixture /= mixture.sum(axis=1, keepdims=True)
    taste_base = _normalise(mixture @ genre_centres + TASTE_NOISE * rng.standard_normal((n_users, LATENT_DIM)) / np.sqrt(LATENT_DIM))
    taste_drift = _normalise(rng.standard_normal((n_users, 2, LATENT_DIM)))
    drift_period = rng.uniform(45, 120, n_users)
    drift_phase = rng.uniform(0, 2 * np.pi, n_users)
    activity = rng.lognormal(-0.32, 0.8, n_users)  # mean exp(-0.32 + 0.32) = 1
    usual_start_ms = (rng.normal(17, 4, n_users) % 24 * 3_600_000).astype(np.int64)

    world = World(
        domain=domain,
        seed=seed,
        item_ids=_id_array("t" if domain == "music" else "v", n_items),
        user_ids=_id_array("u", n_users),
        item_vectors=item_vectors,
        item_genre=item_genre,
        genre_names=genre_names,
        item_length_ms=item_length_ms,
        popularity=popularity,
        trend_period=trend_period,
        trend_phase=trend_phase,
        neighbours=_nearest_neighbours(item_vectors),
        taste_base=taste_base,
        taste_drift=taste_drift,
        drift_period=drift_period,
        drift_phase=drift_phase,
        activity=activity,
        usual_start_ms=usual_start_ms,
    )
    log.info("world %s seed=%d: %d users, %d items, %d genres built in %.1fs",
             domain, seed, n_users, n_items, n_genres, time.perf_counter() - started)
    return world


def _nearest_neighbours(vectors: np.ndarray) -> np.ndarray:
    n = len(vectors)
    chunk = max(64, (1 << 22) // n)  # ~32 MiB of similarities at a time
    k = min(N_NEIGHBOURS, n - 1)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        sims = vectors[start:start + chunk] @ vectors.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[start:start + chunk] = top
    return out


def user_item_fit(world: World, users: np.ndarray, items: np.ndarray, days: np.ndarray | dt.date) -> np.ndarray:
    """Latent fit in [-1, 1]: cosine between the user's taste on that day and the item vector.

    ``users`` / ``items`` are integer indices; ``days`` one date or an array of dates
    aligned with them. This is what drives choice, skips and abandonment.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    if isinstance(days, dt.date):
        return np.einsum("nd,nd->n", world.taste_on(days, users), world.item_vectors[items])
    days = np.asarray(days)
    fit = np.empty(len(users))
    for day in np.unique(days):
        rows = days == day
        fit[rows] = np.einsum("nd,nd->n", world.taste_on(day, users[rows]), world.item_vectors[items[rows]])
    return fit


def event_fit(cfg: EncoreConfig, events: pa.Table) -> np.ndarray:
    """``user_item_fit`` of each row of a generated events table (ids parsed back to indices)."""
    world = build_world(cfg)
    users = np.array([int(u[1:]) for u in events["user_id"].to_pylist()])
    items = np.array([int(i[1:]) for i in events["item_id"].to_pylist()])
    days = np.array([ts.date() for ts in events["ts"].to_pylist()])
    return user_item_fit(world, users, items, days)


def _calibrated_intercept(score: np.ndarray, target_rate: float) -> float:
    """b such that mean(sigmoid(b + score)) == target_rate (bisection; monotone in b)."""
    low, high = -30.0, 30.0
    for _ in range(50):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(mid + score)))) < target_rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


class _PopularitySampler:
    """Draws items by popularity: one inverse-CDF pass fills an urn (at most 2^20 draws), then cheap picks from it."""

    MAX_URN = 1 << 20

    def __init__(self, weights: np.ndarray, rng: np.random.Generator, expected_draws: int):
        cdf = np.cumsum(weights)
        size = int(np.clip(expected_draws, 1024, self.MAX_URN))
        self.urn = np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), len(cdf) - 1)
        self.rng = rng

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.urn[self.rng.integers(0, len(self.urn), shape)]


def _day_rng(cfg: EncoreConfig, day: dt.date) -> np.random.Generator:
    return np.random.default_rng([cfg.data.seed, 1, day.toordinal()])


def generate_day(cfg: EncoreConfig, day: dt.date) -> pa.Table:
    """All events of ``day`` (``arrow_schema(LANDING_EVENT)``), deterministic from (seed, day)."""
    world = build_world(cfg)
    music = world.domain == "music"
    rng = _day_rng(cfg, day)
    n_users = len(world.user_ids)

    # sessions of the day, grouped by user (user-major order)
    per_user = np.minimum(rng.poisson(cfg.data.sessions_per_user_day * world.activity), 4 if music else 3)
    session_user = np.repeat(np.arange(n_users), per_user)
    first_session_of_user = np.repeat(np.cumsum(per_user) - per_user, per_user)
    session_index = np.arange(len(session_user)) - first_session_of_user
    lengths = rng.integers(10, 21, len(session_user)) if music else rng.integers(1, 4, len(session_user))

    items, negative, fit = _choose_items(world, rng, day, session_user, lengths)
    ev_session = np.repeat(np.arange(len(session_user)), lengths)
    n_events = len(items)
    length_ms = world.item_length_ms[items]
    if music:
        skip_level, completion = _music_feedback(rng, negative, fit)
        gap_ms = np.minimum(rng.exponential(2000, n_events), 59_000).astype(np.int64)
    else:
        skip_level = None
        completion = _video_completion(rng, negative, fit)
        gap_ms = rng.integers(30_000, 600_001, n_events)
    duration_ms = np.round(completion * length_ms).astype(np.int64)
    completion = duration_ms / length_ms
    ts_ms = _event_times(world, rng, day, session_user, first_session_of_user, lengths, duration_ms, gap_ms)

    if music:
        session_names = pa.array(
            [f"s{day:%Y%m%d}-{u:06d}-{k}" for u, k in zip(session_user.tolist(), session_index.tolist())], pa.string())
        session_col = pc.take(session_names, pa.array(ev_session, pa.int64()))
        skip_col = pa.array(skip_level, pa.int32())
    else:
        session_col = pa.nulls(n_events, pa.string())
        skip_col = pa.nulls(n_events, pa.int32())
    return pa.table(
        {
            "user_id": pc.take(world.user_ids, pa.array(session_user[ev_session], pa.int64())),
            "item_id": pc.take(world.item_ids, pa.array(items, pa.int64())),
            "ts": pa.array(ts_ms * 1000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "session_id": session_col,
            "duration_ms": pa.array(duration_ms, pa.int64()),
            "item_length_ms": pa.array(length_ms, pa.int64()),
            "completion": pa.array(completion, pa.float64()),
            "skip_level": skip_col,
            "rating": pa.nulls(n_events, pa.float64()),
            "source": pa.array(np.full(n_events, cfg.data.source, dtype=object), pa.string()),
            "parse_error": pa.nulls(n_events, pa.string()),
        },
        schema=arrow_schema(LANDING_EVENT),
    )


def _choose_items(world: World, rng: np.random.Generator, day: dt.date, session_user: np.ndarray,
                  lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items, negative flags (skip / abandon) and fits of every event, sessions simulated position by position."""
    n_sessions = len(session_user)
    max_len = int(lengths.max()) if n_sessions else 0
    target_rate = MUSIC_SKIP_RATE if world.domain == "music" else VIDEO_ABANDON_RATE
    taste = world.taste_on(day, session_user)
    expected_draws = n_sessions * (N_NEIGHBOUR_CANDIDATES + max_len * N_POP_CANDIDATES)
    popular = _PopularitySampler(world.popularity_on(day), rng, expected_draws)
    items = np.zeros((n_sessions, max_len), dtype=np.int64)
    negative = np.zeros((n_sessions, max_len), dtype=bool)
    fit = np.zeros((n_sessions, max_len))
    anchor = np.full(n_sessions, -1)
    rows = np.arange(n_sessions)
    for pos in range(max_len):
        if pos == 0:
            candidates = popular((n_sessions, N_POP_CANDIDATES + N_NEIGHBOUR_CANDIDATES))
        else:
            pick = rng.integers(0, world.neighbours.shape[1], (n_sessions, N_NEIGHBOUR_CANDIDATES))
            candidates = np.concatenate(
                [popular((n_sessions, N_POP_CANDIDATES)),
                 np.take_along_axis(world.neighbours[anchor], pick, axis=1)], axis=1)
        cand_vectors = world.item_vectors[candidates]
        cand_fit = np.einsum("sd,scd->sc", taste, cand_vectors)
        cand_sim = np.einsum("sd,scd->sc", world.item_vectors[anchor], cand_vectors) if pos else np.zeros_like(cand_fit)
        utility = CHOICE_TASTE_WEIGHT * cand_fit + CHOICE_SEQUENCE_WEIGHT * cand_sim
        chosen = np.argmax(utility + rng.gumbel(size=utility.shape), axis=1)
        items[:, pos] = candidates[rows, chosen]
        fit[:, pos] = cand_fit[rows, chosen]

        score = -NEGATIVE_TASTE_WEIGHT * fit[:, pos] - NEGATIVE_SEQUENCE_WEIGHT * cand_sim[rows, chosen]
        b = _calibrated_intercept(score[pos < lengths], target_rate)
        negative[:, pos] = rng.random(n_sessions) < 1 / (1 + np.exp(-(b + score)))
        # steer from the last item the user kept (the first item anchors even if skipped)
        anchor = np.where(~negative[:, pos] | (anchor < 0), items[:, pos], anchor)
    played = np.arange(max_len)[None, :] < lengths[:, None]
    return items[played], negative[played], fit[played]


def _event_times(world: World, rng: np.random.Generator, day: dt.date, session_user: np.ndarray,
                 first_session_of_user: np.ndarray, lengths: np.ndarray, duration_ms: np.ndarray,
                 gap_ms: np.ndarray) -> np.ndarray:
    """Epoch milliseconds of every event: plays back to back inside a session, sessions laid out in the day."""
    n_users = len(world.user_ids)
    if len(duration_ms) == 0:
        return np.zeros(0, np.int64)
    step_ms = duration_ms + gap_ms
    first_event = np.cumsum(lengths) - lengths
    before = np.cumsum(step_ms) - step_ms
    offset_in_session = before - np.repeat(before[first_event], lengths)
    session_span = np.add.reduceat(step_ms, first_event) - gap_ms[first_event + lengths - 1]
    # a user's sessions back to back (with a pause) from their usual hour, all inside the day
    slot = session_span + SESSION_SPACING_MS
    before_slot = np.cumsum(slot) - slot
    offset_in_day = before_slot - before_slot[first_session_of_user]
    user_span = np.zeros(n_users, np.int64)
    np.add.at(user_span, session_user, slot)
    user_span = np.maximum(user_span - SESSION_SPACING_MS, 0)
    jitter = rng.integers(-30 * 60_000, 30 * 60_000, n_users)
    user_start = np.clip(world.usual_start_ms + jitter, 0, np.maximum(DAY_MS - 1 - user_span, 0))
    session_start = user_start[session_user] + offset_in_day
    midnight_ms = (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * DAY_MS
    return midnight_ms + np.repeat(session_start, lengths) + offset_in_session


def _music_feedback(rng: np.random.Generator, skipped: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(skipped)
    very_brief = rng.random(n) < np.clip(0.5 - 0.4 * fit, 0.2, 0.8)
    mostly_played = rng.random(n) < 0.12
    level = np.where(skipped, np.where(very_brief, 1, 2), np.where(mostly_played, 3, 0)).astype(np.int32)
    played_out = np.where(rng.random(n) < 0.85, 1.0, rng.uniform(0.95, 1.0, n))
    completion = np.select(
        [level == 1, level == 2, level == 3],
        [rng.uniform(0.01, 0.10, n), rng.uniform(0.10, 0.24, n), rng.uniform(0.55, 0.95, n)],
        played_out,
    )
    return level, completion


def _video_completion(rng: np.random.Generator, abandoned: np.ndarray, fit: np.ndarray) -> np.ndarray:
    n = len(abandoned)
    liking = np.clip(fit, 0, 1)
    finished = rng.random(n) < 0.25 + 0.5 * liking
    partial = 0.06 + 0.93 * rng.beta(2 + 3 * liking, 2)
    return np.where(abandoned, rng.uniform(0.005, 0.05, n), np.where(finished, 1.0, partial))


def generate_catalog(cfg: EncoreConfig) -> pa.Table:
    """Item attributes (``arrow_schema(ITEM_CATALOG)``)."""
    world = build_world(cfg)
    kind = "Track" if world.domain == "music" else "Title"
    ids = world.item_ids.to_pylist()
    genres = [world.genre_names[g] for g in world.item_genre]
    return pa.table(
        {
            "item_id": world.item_ids,
            "title": pa.array([f"{kind} {i[1:]} ({g})" for i, g in zip(ids, genres)], pa.string()),
            "genre": pa.array(genres, pa.string()),
            "item_length_ms": pa.array(world.item_length_ms, pa.int64()),
        },
        schema=arrow_schema(ITEM_CATALOG),
    )


def dataset_days(cfg: EncoreConfig) -> list[dt.date]:
    start = dt.date.fromisoformat(cfg.data.start_date)
    return [start + dt.timedelta(days=i) for i in range(cfg.data.n_days)]


def _write_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_landing(cfg: EncoreConfig, days: list[dt.date] | None = None, overwrite: bool = False) -> int:
    """Write ``landing/<source>/dt=D/events.parquet`` per day and the catalog; return events written.

    Days already present are skipped unless ``overwrite``; each file appears atomically.
    """
    days = dataset_days(cfg) if days is None else days
    catalog_path = Path(cfg.paths.landing) / cfg.data.source / "catalog.parquet"
    if overwrite or not catalog_path.exists():
        _write_atomically(generate_catalog(cfg), catalog_path)
    written = 0
    started = time.perf_counter()
    for i, day in enumerate(days, 1):
        path = Path(cfg.landing_path(day)) / "events.parquet"
        if path.exists() and not overwrite:
            log.info("[%d/%d] %s exists, skipped", i, len(days), path)
            continue
        table = generate_day(cfg, day)
        _write_atomically(table, path)
        written += table.num_rows
        log.info("[%d/%d] %s: %d events (%.0f events/s so far)", i, len(days), path, table.num_rows,
                 written / max(time.perf_counter() - started, 1e-9))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the synthetic Encore dataset into the landing zone.")
    parser.add_argument("--users", type=int, dest="n_users")
    parser.add_argument("--items", type=int, dest="n_items")
    parser.add_argument("--days", type=int, dest="n_days")
    parser.add_argument("--domain", choices=["music", "video"])
    parser.add_argument("--start", dest="start_date", help="first day, YYYY-MM-DD")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sessions-per-user-day", type=float, dest="sessions_per_user_day")
    parser.add_argument("--source", help="source name (default synthetic_<domain> when --domain is given)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate days already present")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    data = {k: v for k, v in vars(args).items() if k not in {"overwrite", "source"} and v is not None}
    if args.source:
        data["source"] = args.source
    elif args.domain:
        data["source"] = f"synthetic_{args.domain}"
    cfg = load_config(data=data)
    started = time.perf_counter()
    n = write_landing(cfg, overwrite=args.overwrite)
    elapsed = time.perf_counter() - started
    log.info("wrote %d events for %d days to %s/%s in %.1fs (%.0f events/s)", n, cfg.data.n_days,
             cfg.paths.landing, cfg.data.source, elapsed, n / max(elapsed, 1e-9))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
