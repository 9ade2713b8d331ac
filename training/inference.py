"""Model bundles (weights + config + vocabulary) and batch top-K inference.

A bundle is one ``torch.save`` file holding everything needed to rebuild a
model without the training code path: model name, config dataclass values,
state dict, the item-id vocabulary and free-form metadata. The MLflow pyfunc
artifact wraps exactly this file (see ``training.tracking``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from training.data import ItemVocab, SequenceBatch, history_mask
from training.models import MODELS
from training.models.ensemble import SeedEnsemble, SeedEnsembleConfig

BUNDLE_FILE = "bundle.pt"


@dataclass
class InferenceBundle:
    model: torch.nn.Module
    vocab: ItemVocab
    model_name: str
    meta: dict = field(default_factory=dict)

    @property
    def max_seq_len(self) -> int:
        return self.model.config.max_seq_len


def save_bundle(path, model: torch.nn.Module, vocab: ItemVocab, model_name: str, meta: dict | None = None):
    """Write the bundle to ``path`` (a file path, or a binary file object)."""
    if not hasattr(path, "write"):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(model, torch.nn.Module):  # a fitted baseline (training.baselines): pickled whole
        torch.save({"model_name": model_name, "baseline": model, "item_ids": vocab.item_ids, "meta": meta or {}}, path)
        return path
    torch.save(
        {
            "model_name": model_name,
            "config": dataclasses.asdict(model.config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "item_ids": vocab.item_ids,
            "meta": meta or {},
            **({"seed_ensemble": True} if isinstance(model, SeedEnsemble) else {}),
        },
        path,
    )
    return path


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> InferenceBundle:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if "baseline" in blob:
        return InferenceBundle(blob["baseline"], ItemVocab(blob["item_ids"]), blob["model_name"], blob.get("meta", {}))
    family = blob["model_name"].split("+")[0]
    if family not in MODELS:
        raise ValueError(f"bundle {path} holds unknown model {blob['model_name']!r}")
    config_cls, model_cls = (SeedEnsembleConfig, SeedEnsemble) if blob.get("seed_ensemble") else MODELS[family]
    model = model_cls(config_cls(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.to(device).eval()
    return InferenceBundle(model, ItemVocab(blob["item_ids"]), blob["model_name"], blob.get("meta", {}))


def load_model_for_inference(cfg=None, model_uri: str | None = None, *, alias: str = "champion", device: str = "auto") -> InferenceBundle:
    """Load a bundle from a local ``.pt`` path, an MLflow model URI
    (``models:/name/3``, ``runs:/<id>/model``) or, by default, the registered
    model ``cfg.promotion.registered_model`` at ``alias``.
    ``meta["model_version"]`` is filled for registry URIs."""
    from training.trainer import resolve_device

    device = resolve_device(device)
    if model_uri and Path(model_uri).is_file():
        return load_bundle(model_uri, device)
    import mlflow
    from mlflow import MlflowClient

    if cfg is not None:
        mlflow.set_tracking_uri(cfg.paths.mlflow_tracking_uri)
    version = None
    if model_uri is None:
        if cfg is None:
            raise ValueError("need cfg (registered model name) or model_uri")
        name = cfg.promotion.registered_model
        version = MlflowClient().get_model_version_by_alias(name, alias).version
        model_uri = f"models:/{name}/{version}"
    elif model_uri.startswith("models:/") and "@" not in model_uri:
        version = model_uri.rstrip("/").split("/")[-1]
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    found = sorted(local.rglob(BUNDLE_FILE))
    if not found:
        raise FileNotFoundError(f"{model_uri} has no {BUNDLE_FILE} artifact")
    bundle = load_bundle(found[0], device)
    bundle.meta.setdefault("model_uri", model_uri)
    if version is not None:
        bundle.meta["model_version"] = str(version)
    return bundle


@torch.no_grad()
def recommend_top_k(
    model,
    seqs: torch.Tensor,
    k: int,
    exclude: bool | torch.Tensor = True,
    *,
    chunk_size: int = 4096,
    device: str | torch.device | None = None,
    context: SequenceBatch | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item ids and scores (``[U, k]`` each, on CPU) for left-padded
    windows ``seqs`` ``[U, L]``, in chunks of ``chunk_size`` users.

    ``exclude``: True = drop every item of the window; a ``[U, n_items]`` bool
    tensor = drop those columns; False = nothing. ``context``: the batch the windows
    come from, for models that read per-event context (skip flags, completion, user)."""
    if device is None:
        device = next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
    if isinstance(model, torch.nn.Module):
        model.eval()
    top_ids, top_scores = [], []
    for start in range(0, len(seqs), chunk_size):
        chunk = seqs[start : start + chunk_size].to(device)
        rows = None if context is None else context.take(slice(start, start + chunk_size)).to(device)
        scores = model.score_all(chunk, context=rows).float()
        if isinstance(exclude, torch.Tensor):
            scores = scores.masked_fill(exclude[start : start + chunk_size].to(device), float("-inf"))
        elif exclude:
            scores = scores.masked_fill(history_mask(chunk, scores.shape[1]), float("-inf"))
        values, columns = scores.topk(min(k, scores.shape[1]), dim=1)
        top_ids.append((columns + 1).cpu())
        top_scores.append(values.cpu())
    if not top_ids:
        return torch.zeros(0, k, dtype=torch.long), torch.zeros(0, k)
    return torch.cat(top_ids), torch.cat(top_scores)
