"""Public / synthetic raw-event tables for offline experiments and benchmarks.

* ``ml100k_events`` — MovieLens-100k as raw events (rating kept, so the label
  rule "rating <= 2 = negative signal" applies downstream). The file is the
  RecBole atomic file ``ml-100k.inter`` that ships inside the ``recbole==1.2.1``
  wheel: the wheel is fetched once from PyPI with ``pip download --no-deps`` into the
  dataset cache (``_cache_dir``) and only that member is extracted; recbole itself is
  never installed or imported.
* ``synthetic_events`` — ``encore.ingest.generator`` days for a config, concatenated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow as pa

from encore.core.config import EncoreConfig

RECBOLE_WHEEL = "recbole==1.2.1"
ML100K_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def _cache_dir(cache_dir: str | Path | None) -> Path:
    """Where fetched datasets are kept: ``cache_dir``, else ``ENCORE_DATASET_CACHE``, else
    ``~/.cache/encore/datasets`` (shared by every state dir and test on the machine)."""
    if cache_dir is None:
        cache_dir = os.environ.get("ENCORE_DATASET_CACHE") or Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "encore" / "datasets"
    path = Path(cache_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def ml100k_path(cache_dir: str | Path | None = None) -> Path:
    """Path of ``ml-100k.inter`` (downloaded + extracted on first use)."""
    cache = _cache_dir(cache_dir)
    target = cache / "ml-100k" / "ml-100k.inter"
    if target.exists():
        return target
    wheels = sorted(cache.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RECBOLE_WHEEL, "-d", str(cache)],
            check=True,
        )
        wheels = sorted(cache.glob("recbole-1.2.1-*.whl"))
        if not wheels:
            raise FileNotFoundError(f"pip download {RECBOLE_WHEEL} left no wheel in {cache}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(wheel.read(ML100K_MEMBER))
        tmp.replace(target)
    return target


def ml100k_events(cache_dir: str | Path | None = None) -> pa.Table:
    """MovieLens-100k ratings as raw events (user_id, item_id, ts, rating, source=movielens)."""
    from encore.ingest.adapters import read_movielens

    table = read_movielens(ml100k_path(cache_dir), source="movielens")
    if "parse_error" in table.column_names:
        errors = table.column("parse_error").null_count
        if errors != table.num_rows:
            raise ValueError(f"ml-100k: {table.num_rows - errors} rows failed to parse")
        table = table.drop(["parse_error"])
    return table


def synthetic_events(cfg: EncoreConfig) -> pa.Table:
    """Every day of the generator's dataset for ``cfg.data`` (deterministic by seed)."""
    from encore.ingest.generator import dataset_days, generate_day

    table = pa.concat_tables([generate_day(cfg, day) for day in dataset_days(cfg)])
    return table.drop(["parse_error"]) if "parse_error" in table.column_names else table
