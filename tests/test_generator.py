import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from encore.ingest import generator
from encore.core.config import load_config
from encore.core.contracts import ITEM_CATALOG, LANDING_EVENT, arrow_schema

DAY = dt.date(2026, 10, 1)


def small_cfg(tmp_path, **data):
    values = {"n_users": 50, "n_items": 100, "n_days": 3, "start_date": DAY.isoformat(), "seed": 7}
    values.update(data)
    return load_config(environ={}, paths={"home": str(tmp_path)}, data=values)


def all_days(cfg):
    return pa.concat_tables([generator.generate_day(cfg, d) for d in generator.dataset_days(cfg)])


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    cfg = small_cfg(tmp_path_factory.mktemp("music"))
    return cfg, all_days(cfg).to_pandas()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    cfg = small_cfg(tmp_path_factory.mktemp("video"), domain="video", source="synthetic_video", n_users=300)
    return cfg, all_days(cfg).to_pandas()


def test_same_seed_same_table_and_days_are_independent(tmp_path):
    cfg = small_cfg(tmp_path)
    third_day = DAY + dt.timedelta(days=2)
    in_sequence = [generator.generate_day(cfg, d) for d in generator.dataset_days(cfg)][2]
    generator._build_world.cache_clear()
    alone = generator.generate_day(cfg, third_day)
    assert alone.num_rows > 0 and alone.equals(in_sequence)


def test_different_seed_or_day_gives_different_events(tmp_path):
    base = generator.generate_day(small_cfg(tmp_path), DAY)
    other_seed = generator.generate_day(small_cfg(tmp_path, seed=8), DAY)
    next_day = generator.generate_day(small_cfg(tmp_path), DAY + dt.timedelta(days=1))
    assert not base.equals(other_seed)
    assert base["item_id"].to_pylist()[:50] != next_day["item_id"].to_pylist()[:50]


def test_schema_is_the_landing_contract(tmp_path):
    cfg = small_cfg(tmp_path, source="my_feed")
    table = generator.generate_day(cfg, DAY)
    assert table.schema == arrow_schema(LANDING_EVENT)
    assert set(table["source"].to_pylist()) == {"my_feed"}
    assert table["parse_error"].null_count == table.num_rows
    assert table["rating"].null_count == table.num_rows
    for column in ("user_id", "item_id", "ts", "duration_ms", "item_length_ms", "completion"):
        assert table[column].null_count == 0, column
    dates = {ts.date() for ts in table["ts"].to_pylist()}
    assert dates == {DAY}


def test_music_sessions_look_like_mssd(music):
    _, df = music
    sessions = df.groupby("session_id")
    assert sessions.size().between(10, 20).all()
    assert (sessions["user_id"].nunique() == 1).all()
    df = df.sort_values(["session_id", "ts"])
    same_session = df["session_id"].values[1:] == df["session_id"].values[:-1]
    end_of_play = df["ts"].values[:-1] + df["duration_ms"].values[:-1].astype("timedelta64[ms]")
    gap_s = (df["ts"].values[1:] - end_of_play)[same_session] / np.timedelta64(1, "s")
    assert gap_s.min() >= 0 and gap_s.max() < 60
    # sessions of one user never overlap: the next session starts well after the previous ended
    bounds = sessions.agg(user=("user_id", "first"), start=("ts", "min"), end=("ts", "max")).sort_values(["user", "start"])
    same_user = bounds["user"].values[1:] == bounds["user"].values[:-1]
    pause = (bounds["start"].values[1:] - bounds["end"].values[:-1])[same_user]
    assert (pause > np.timedelta64(30, "m")).all()


def test_music_skips_and_completion_are_consistent(music):
    _, df = music
    assert set(df["skip_level"].unique()) == {0, 1, 2, 3}
    skip_share = df["skip_level"].isin([1, 2]).mean()
    assert 0.10 <= skip_share <= 0.20
    assert df["completion"].between(0, 1).all()
    assert np.allclose(df["completion"], df["duration_ms"] / df["item_length_ms"])
    by_level = df.groupby("skip_level")["completion"]
    assert by_level.max()[1] <= 0.10 and by_level.max()[2] < 0.25  # skips stay skips under the completion rule
    assert by_level.min()[3] >= 0.55 and by_level.min()[0] >= 0.95


def test_video_watches_have_abandonment_and_no_sessions(video):
    _, df = video
    assert df["session_id"].isna().all() and df["skip_level"].isna().all()
    assert df["item_id"].str.startswith("v").all()
    abandoned_share = (df["completion"] <= 0.05).mean()
    assert 0.05 <= abandoned_share <= 0.15
    assert df["completion"].between(0, 1).all()
    assert (df["completion"] == 1.0).mean() > 0.2  # many watches finish


def test_negative_feedback_follows_user_item_fit(music, video):
    for (cfg, df), negative in ((music, lambda d: d["skip_level"].isin([1, 2])), (video, lambda d: d["completion"] <= 0.05)):
        fit = generator.event_fit(cfg, pa.Table.from_pandas(df, preserve_index=False))
        assert fit.min() >= -1 and fit.max() <= 1
        low, high = np.quantile(fit, [0.25, 0.75])
        is_negative = negative(df).values
        far, close = is_negative[fit <= low].mean(), is_negative[fit >= high].mean()
        assert far > 3 * close, (cfg.data.domain, far, close)


def test_next_item_depends_on_the_previous_one(music):
    cfg, df = music
    world = generator.build_world(cfg)
    genre = world.item_genre[df["item_id"].str[1:].astype(int).values]
    same_session = df["session_id"].values[1:] == df["session_id"].values[:-1]
    share_same_genre = (genre[1:] == genre[:-1])[same_session].mean()
    freq = np.bincount(genre) / len(genre)
    assert share_same_genre > 3 * float(freq @ freq)


def test_popularity_is_skewed(tmp_path):
    cfg = small_cfg(tmp_path, n_users=200, n_items=500)
    counts = np.sort(pc.value_counts(all_days(cfg)["item_id"]).field("counts").to_numpy())[::-1]
    top_tenth_share = counts[: 50].sum() / counts.sum()
    assert top_tenth_share > 0.25  # uniform popularity would give 0.10


def test_tastes_drift_slowly(tmp_path):
    world = generator.build_world(small_cfg(tmp_path))
    today, tomorrow, later = (world.taste_on(DAY + dt.timedelta(days=k)) for k in (0, 1, 40))
    next_day_cos = np.einsum("ud,ud->u", today, tomorrow)
    later_cos = np.einsum("ud,ud->u", today, later)
    assert next_day_cos.min() > 0.99
    assert later_cos.mean() < next_day_cos.mean() - 0.02


def test_catalog_matches_the_events(tmp_path):
    cfg = small_cfg(tmp_path)
    catalog = generator.generate_catalog(cfg)
    assert catalog.schema == arrow_schema(ITEM_CATALOG)
    assert catalog.num_rows == 100 and len(set(catalog["item_id"].to_pylist())) == 100
    events = generator.generate_day(cfg, DAY).to_pandas()
    lengths = dict(zip(catalog["item_id"].to_pylist(), catalog["item_length_ms"].to_pylist()))
    assert (events["item_length_ms"] == events["item_id"].map(lengths)).all()
    assert catalog.to_pandas()["item_length_ms"].between(90_000, 480_000).all()


def test_write_landing_writes_each_day_once(tmp_path):
    cfg = small_cfg(tmp_path)
    written = generator.write_landing(cfg)
    files = [f"{cfg.landing_path(d)}/events.parquet" for d in generator.dataset_days(cfg)]
    per_file = [pq.read_table(f) for f in files]
    assert written == sum(t.num_rows for t in per_file) > 0
    assert all(t.schema == arrow_schema(LANDING_EVENT) for t in per_file)
    assert pq.read_table(f"{cfg.paths.landing}/synthetic_music/catalog.parquet").num_rows == 100
    assert generator.write_landing(cfg) == 0  # present days are skipped
    assert generator.write_landing(cfg, days=[DAY], overwrite=True) == per_file[0].num_rows


def test_cli_overrides_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("ENCORE_HOME", str(tmp_path))
    assert generator.main(["--users", "20", "--items", "40", "--days", "2", "--domain", "video",
                           "--start", "2026-01-30", "--seed", "3"]) == 0
    landing = tmp_path / "landing" / "synthetic_video"
    assert sorted(p.name for p in landing.iterdir()) == ["catalog.parquet", "dt=2026-01-30", "dt=2026-01-31"]
    table = pq.read_table(landing / "dt=2026-01-31" / "events.parquet")
    assert set(table["source"].to_pylist()) == {"synthetic_video"}
    assert pc.max(pc.utf8_slice_codeunits(table["user_id"], 1)).as_py() <= "000019"
