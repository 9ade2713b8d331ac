"""The nightly's data-parallel training: ``training.train`` under ``torchrun`` on ``training.world_size`` processes.

``train_with_torchrun(cfg, run_date, model_name)`` runs::

    python -m torch.distributed.run --standalone --nproc_per_node=<world_size> \\
        -m training.train --model <model> --run-date <D> --quiet --result-json <file>

with the task's whole config in the environment (``cfg.env()``, as spark-submit gets it), and
returns rank 0's result: what ``train_model`` returns in one process (run id, registered
version, validation and test metrics, best epoch). Rank 0 alone evaluates, logs to MLflow and
registers. On CPU each process gets ``cpu_count / world_size`` torch threads (gloo); on CUDA
one GPU per process (nccl), so ``world_size`` must not exceed the GPUs of the machine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from encore.core.config import ConfigError, EncoreConfig
from training.registry import SEQUENCE_MODELS

log = logging.getLogger(__name__)


def torchrun_command(cfg: EncoreConfig, run_date: str | dt.date, model_name: str, result_json: Path,
                     register: bool = True, dataset: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={cfg.training.world_size}",
               "-m", "training.train", "--model", model_name, "--run-date", str(run_date), "--quiet",
               "--result-json", str(result_json)]
    return command + ([] if register else ["--no-register"]) + (["--dataset", dataset] if dataset else [])


def torchrun_env(cfg: EncoreConfig) -> dict[str, str]:
    """This process's environment, the whole config, and the CPU threads per process (torchrun
    would otherwise give each one thread)."""
    threads = max(1, (os.cpu_count() or 1) // cfg.training.world_size)
    return {"OMP_NUM_THREADS": str(threads), **os.environ, **cfg.env()}


def train_with_torchrun(cfg: EncoreConfig, run_date: str | dt.date, model_name: str, register: bool = True,
                        dataset: str | None = None) -> dict:
    """Train a sequence model on ``cfg.training.world_size`` processes; rank 0's ``train_model`` result
    (``dataset``: as ``train_model``'s)."""
    if model_name not in SEQUENCE_MODELS:
        raise ConfigError(f"{model_name!r} is not a sequence model ({', '.join(SEQUENCE_MODELS)}): "
                          "baselines fit in one process")
    with tempfile.TemporaryDirectory(prefix="encore-torchrun-") as scratch:
        result_json = Path(scratch) / "result.json"
        command = torchrun_command(cfg, run_date, model_name, result_json, register, dataset)
        log.info("training %s for %s on %d processes: %s", model_name, run_date, cfg.training.world_size,
                 " ".join(command))
        done = subprocess.run(command, env=torchrun_env(cfg))
        if done.returncode != 0:
            raise RuntimeError(f"torchrun training of {model_name} for {run_date} failed with exit code "
                               f"{done.returncode}; each rank's error is in the output above")
        return json.loads(result_json.read_text())
