"""MLflow tracking and the lake copy of run metrics (MODEL_RUN contract).

* ``start_run`` points MLflow at ``cfg.paths.mlflow_tracking_uri`` and the
  experiment (created with its artifact root under ``cfg.paths.mlflow_artifacts``).
* ``log_model_bundle`` logs the bundle as an ``mlflow.pyfunc`` model with a
  signature and registers it under ``cfg.promotion.registered_model``.
* ``write_model_runs`` writes the long-format rows to
  ``lake/model_runs/dt=<run_date>/<run_id>.parquet`` (one file per run, so runs
  of the same date coexist and a re-run of one run id overwrites only itself).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import math
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.types.schema import ColSpec, Schema

from encore.core import lake
from encore.core.config import EncoreConfig
from encore.core.contracts import MODEL_RUN, arrow_schema
from training.data import SequenceBatch
from training.inference import BUNDLE_FILE, load_bundle, recommend_top_k, save_bundle

EXPERIMENT = "encore"
_CODE_ROOT = Path(__file__).resolve().parent.parent


def start_run(cfg: EncoreConfig, run_name: str, experiment: str = EXPERIMENT, tags: dict | None = None):
    """Start an MLflow run; an earlier run of the same name (and the same ``dataset`` tag) still
    RUNNING was killed (a run that ends normally or by an exception is closed by MLflow), so it
    is marked FAILED first."""
    mlflow.set_tracking_uri(cfg.paths.mlflow_tracking_uri)
    with sqlite_setup_lock(cfg.paths.mlflow_tracking_uri):
        if mlflow.get_experiment_by_name(experiment) is None:
            Path(cfg.paths.mlflow_artifacts).mkdir(parents=True, exist_ok=True)
            mlflow.create_experiment(experiment, artifact_location=Path(cfg.paths.mlflow_artifacts).resolve().as_uri())
        found = mlflow.set_experiment(experiment)
    fail_abandoned_runs(MlflowClient(), found.experiment_id, run_name, (tags or {}).get("dataset"))
    return mlflow.start_run(run_name=run_name, tags=tags)


@contextlib.contextmanager
def sqlite_setup_lock(tracking_uri: str):
    """For a ``sqlite:///`` store, an exclusive lock on ``<db>.lock`` around a process's first
    contact: MLflow creates (or migrates) the tables when a process first opens the file, and
    two processes doing so on a new file at once collide ("table ... already exists"; seen with
    benchmarks started side by side). Other stores (a tracking server) need no lock."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    path = Path(tracking_uri.removeprefix("sqlite:///") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fail_abandoned_runs(client: MlflowClient, experiment_id: str, run_name: str, dataset: str | None = None) -> list[str]:
    """Mark runs named ``run_name`` (of ``dataset``, when given) that are still RUNNING as FAILED
    (their process is gone: runs of one name and dataset never overlap, the nightly runs one
    night at a time; benchmarks train side by side under dataset names of their own)."""
    query = f"attributes.run_name = '{run_name}' and attributes.status = 'RUNNING'"
    if dataset is not None:
        query += f" and tags.dataset = '{dataset}'"
    stale = client.search_runs([experiment_id], filter_string=query)
    for run in stale:
        client.set_tag(run.info.run_id, "encore.ended", "killed: marked FAILED by the next run of the same name")
        client.set_terminated(run.info.run_id, status="FAILED")
    return [run.info.run_id for run in stale]


def log_epoch(epoch: int, row: dict[str, float]) -> None:
    mlflow.log_metrics({_metric_key(k): float(v) for k, v in row.items() if k != "epoch" and _finite(v)}, step=epoch)


def log_final_metrics(metrics_by_split: dict[str, dict[str, float]]) -> None:
    flat = {f"{split}_{k}": float(v) for split, m in metrics_by_split.items() for k, v in m.items() if _finite(v)}
    mlflow.log_metrics({_metric_key(k): v for k, v in flat.items()})


class SequenceRecommenderModel(mlflow.pyfunc.PythonModel):
    """pyfunc: input DataFrame with ``item_ids`` (list of item_id strings, oldest
    first) and optionally ``is_skip`` (list of bools aligned with ``item_ids``: the events the
    user skipped, which a model with ``feedback_embedding`` reads; absent = none skipped) and
    ``event_ts`` (the events' times in epoch seconds, aligned with ``item_ids``, which a model with
    ``time_embedding`` or ``time_attention`` needs);
    output DataFrame with ``item_ids`` / ``scores`` (top-k lists). Param ``k`` (default 20).
    History is excluded."""

    def load_context(self, context):
        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", 20))
        length = self.bundle.max_seq_len
        seqs = np.zeros((len(model_input), length), dtype=np.int64)
        skips = np.zeros((len(model_input), length), dtype=bool)
        seconds = np.zeros((len(model_input), length), dtype=np.int64)
        flags = model_input["is_skip"] if "is_skip" in model_input else [None] * len(model_input)
        if "event_ts" not in model_input and _reads_times(self.bundle.model):
            raise ValueError("this model reads each event's time: pass an event_ts list aligned with item_ids")
        times = model_input["event_ts"] if "event_ts" in model_input else [None] * len(model_input)
        for row, (items, skipped, when) in enumerate(zip(model_input["item_ids"], flags, times)):
            items = list(items)
            skipped = [False] * len(items) if skipped is None else [bool(x) for x in skipped]
            if len(skipped) != len(items):
                raise ValueError(f"row {row}: is_skip has {len(skipped)} flags for {len(items)} item_ids")
            when = [0] * len(items) if when is None else [int(x) for x in when]
            if len(when) != len(items):
                raise ValueError(f"row {row}: event_ts has {len(when)} times for {len(items)} item_ids")
            ids = self.bundle.vocab.encode(items[-length:])
            if len(ids):
                seqs[row, -len(ids):] = ids
                skips[row, -len(ids):] = skipped[-length:]
                seconds[row, -len(ids):] = when[-length:]
        seqs_t = torch.from_numpy(seqs)
        event_seconds = torch.from_numpy(seconds) if "event_ts" in model_input else None
        context = SequenceBatch.of_inputs(seqs_t, torch.from_numpy(skips), event_seconds)
        ids, scores = recommend_top_k(self.bundle.model, seqs_t, k, exclude=True, context=context)
        return pd.DataFrame(
            {
                "item_ids": [list(self.bundle.vocab.decode(r[np.isfinite(s)])) for r, s in zip(ids.numpy(), scores.numpy())],
                "scores": [[float(x) for x in s[np.isfinite(s)]] for s in scores.numpy()],
            }
        )


def _reads_times(model: torch.nn.Module) -> bool:
    return any(getattr(getattr(m, "config", None), name, False) for m in model.modules()
               for name in ("time_embedding", "time_attention"))


def log_model_bundle(
    cfg: EncoreConfig, model, vocab, model_name: str, meta: dict, register: bool = True
) -> str | None:
    """Log the pyfunc model (artifact path ``model``); returns the registered version.

    A model identical to a registered version (same weights, config, vocabulary and name,
    e.g. a re-run of a date that resumed a finished checkpoint) is not registered again:
    the existing version is returned."""
    digest = bundle_digest(model, vocab, model_name)
    existing = _version_with_digest(cfg, digest) if register else None
    if existing:
        mlflow.set_tag("encore.model_version", existing)
        return existing
    meta = {**meta, "weights_digest": digest}
    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = save_bundle(Path(tmp) / BUNDLE_FILE, model, vocab, model_name, meta)
        shown = len(vocab.item_ids[:3])
        example = pd.DataFrame({"item_ids": [vocab.item_ids[:3]], "is_skip": [[False, True, False][:shown]],
                                "event_ts": [[1_700_000_000, 1_700_000_060, 1_700_000_200][:shown]]})
        signature = infer_signature(
            example, pd.DataFrame({"item_ids": [vocab.item_ids[:2]], "scores": [[1.0, 0.5]]}), params={"k": 20}
        )
        signature.inputs = Schema([ColSpec(c.type, c.name, required=c.name not in ("is_skip", "event_ts")) for c in signature.inputs.inputs])
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SequenceRecommenderModel(),
            artifacts={"bundle": str(bundle_path)},
            signature=signature,
            code_paths=[str(_CODE_ROOT / "training"), str(_CODE_ROOT / "encore")],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy", "pandas", "pyarrow", "tqdm"],
            registered_model_name=cfg.promotion.registered_model if register else None,
        )
    version = getattr(info, "registered_model_version", None)
    if register and version is not None:
        client = MlflowClient()
        for key, value in {"model_name": model_name, **{k: v for k, v in meta.items() if _scalar(v)}}.items():
            client.set_model_version_tag(cfg.promotion.registered_model, str(version), key, str(value))
        return str(version)
    return None


def bundle_digest(model, vocab, model_name: str) -> str:
    """sha256 of what the model computes: name, config, weights (or the fitted baseline) and vocabulary."""
    buffer = io.BytesIO()
    save_bundle(buffer, model, vocab, model_name, {})
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _version_with_digest(cfg: EncoreConfig, digest: str) -> str | None:
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{cfg.promotion.registered_model}'")
    except mlflow.exceptions.MlflowException:
        return None
    same = [v.version for v in versions if v.tags.get("weights_digest") == digest]
    return str(min(same, key=int)) if same else None


def model_run_rows(
    run_date: str | dt.date,
    run_id: str,
    model_name: str,
    model_version: str | None,
    dataset: str,
    seed: int,
    metrics_by_split: dict[str, dict[str, float]],
) -> pa.Table:
    """Long-format MODEL_RUN rows (one per split x metric)."""
    rows = [
        {
            "run_date": dt.date.fromisoformat(str(run_date)),
            "mlflow_run_id": run_id,
            "model_name": model_name,
            "model_version": model_version,
            "dataset": dataset,
            "split": split,
            "seed": int(seed),
            "metric": metric,
            "value": float(value),
        }
        for split, metrics in metrics_by_split.items()
        for metric, value in metrics.items()
    ]
    return pa.Table.from_pylist(rows, schema=arrow_schema(MODEL_RUN))


def write_model_runs(cfg: EncoreConfig, run_date: str | dt.date, table: pa.Table) -> str:
    run_ids = set(table.column("mlflow_run_id").to_pylist())
    if len(run_ids) != 1:
        raise ValueError(f"expected rows of exactly one run, got {sorted(run_ids)}")
    partition = cfg.lake_path("model_runs", run_date)
    path = f"{partition}/{run_ids.pop()}.parquet"
    # one file per run, appended to the date's partition: each file lands whole (written
    # aside, renamed), then the partition carries the lake's completeness marker
    if "://" in partition:
        from pyarrow import fs

        filesystem, inner = fs.FileSystem.from_uri(path)
        pq.write_table(table, inner, filesystem=filesystem)
        with filesystem.open_output_stream(f"{inner.rsplit('/', 1)[0]}/{lake.SUCCESS}"):
            pass
    else:
        Path(partition).mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp"
        pq.write_table(table, tmp)
        Path(tmp).replace(path)
        Path(partition, lake.SUCCESS).touch()
    return path


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_")  # MLflow metric names may not contain "@": ndcg@10 -> ndcg_at_10


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool))
