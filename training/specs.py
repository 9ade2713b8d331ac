"""What makes each trainable model different, so ``training.train.train_model`` runs one
tracked-fit path for all of them (no branching on name strings there).

A spec knows how to build its model from the training config (unknown settings are
rejected), fit it (the shared ``Trainer`` with the model's objective, or a baseline's
closed-form ``fit``), evaluate anything extra, and name the variant it trained.
``SPECS`` holds exactly the names of ``training.registry.MODEL_NAMES`` (the DAG's enum).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from encore.core.config import ConfigError, EncoreConfig
from training import distributed
from training.baselines import BASELINES
from training.data import SequenceData
from training.evaluation import evaluate_model
from training.losses import MultiTaskSettings
from training.models import MODELS
from training.models.ensemble import SeedEnsemble
from training.registry import MODEL_NAMES
from training.trainer import Trainer, TrainSettings, seed_everything
from training.user_features import USER_FEATURE_COLUMNS, attach_users


@dataclass
class Fitted:
    """A fitted model and its evaluation: what ``train_model`` tracks and registers."""

    model: object  # a torch module, or a fitted baseline
    variant: str  # registered name, e.g. sasrec+cl_item
    params: dict  # logged to MLflow
    valid: dict[str, float]
    test: dict[str, float]
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # e.g. phns_hard / easy metrics
    best_epoch: int = 0
    stopped_early: bool = False


def split_overrides(overrides: dict, **groups: set[str]) -> dict[str, dict]:
    """Sort keyword overrides into named groups of known keys; an unknown key is an error."""
    out = {name: {} for name in groups}
    for key, value in overrides.items():
        owner = next((name for name, keys in groups.items() if key in keys), None)
        if owner is None:
            known = sorted(set().union(*groups.values()))
            raise ConfigError(f"unknown setting {key!r}; known: {known}")
        if value is not None:
            out[owner][key] = value
    return out


def model_config(config_cls: type, cfg: EncoreConfig, n_items: int, **values):
    """The model's config dataclass: fields the training config has take its values, then ``values``."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    defaults = {name: getattr(cfg.training, name) for name in names if hasattr(cfg.training, name)}
    return config_cls(**{**defaults, **values, "n_items": n_items})


class SequenceModelSpec:
    """A torch model trained by the shared ``Trainer`` (next-item NLL + InfoNCE unless it brings
    its own objective)."""

    def __init__(self, name: str, *, contrastive: bool = True, users: bool = False,
                 objective: Callable | None = None, objective_keys: frozenset[str] = frozenset(),
                 extra: Callable | None = None):
        self.name = name
        self.config_cls, self.model_cls = MODELS[name]
        self.contrastive = contrastive  # whether the InfoNCE term applies
        self.users = users  # the model has a user table bound to the data's users
        self.objective = objective  # (cfg, run_date, data, model, settings, objective settings) -> (objective, variant)
        self.objective_keys = objective_keys  # settings the objective takes
        self.extra = extra  # (cfg, run_date, data, trainer) -> {split: metrics}

    def settings(self, cfg: EncoreConfig, overrides: dict) -> tuple[TrainSettings, dict, dict]:
        groups = split_overrides(
            overrides,
            trainer={f.name for f in dataclasses.fields(TrainSettings)},
            model={f.name for f in dataclasses.fields(self.config_cls)} - {"n_items", "n_users", "max_seq_len"},
            objective=set(self.objective_keys),
        )
        if not self.contrastive:
            groups["trainer"]["contrastive"] = "none"
        settings = TrainSettings.from_config(cfg.training, **groups["trainer"])
        return settings, groups["model"], groups["objective"]

    def check(self, cfg: EncoreConfig, overrides: dict) -> None:
        """Reject bad settings before any data is read."""
        settings, model_values, _ = self.settings(cfg, overrides)
        config = model_config(self.config_cls, cfg, 2, max_seq_len=settings.max_seq_len, **model_values)
        hidden, heads = getattr(config, "hidden", 1), getattr(config, "heads", 1)
        if hidden % heads:
            raise ConfigError(f"hidden={hidden} must be divisible by heads={heads}")
        if settings.ensemble_seeds > 1 and self.extra is not None:
            raise ConfigError(f"{self.name}: ensemble_seeds > 1 is not supported (its extra evaluation reads one model)")

    def fit(self, cfg: EncoreConfig, run_date: dt.date, data: SequenceData, overrides: dict, *,
            checkpoints: Path, resume: bool, on_epoch_end: Callable | None) -> Fitted:
        settings, model_values, objective_values = self.settings(cfg, overrides)
        if settings.ensemble_seeds > 1:
            return self._fit_ensemble(cfg, run_date, data, settings, model_values, objective_values,
                                      checkpoints=checkpoints, resume=resume, on_epoch_end=on_epoch_end)
        trainer, result, params, variant = self._train(cfg, run_date, data, settings, model_values, objective_values,
                                                       checkpoints=checkpoints, resume=resume, on_epoch_end=on_epoch_end)
        if not distributed.is_main():  # torchrun: rank 0 evaluates, tracks and registers
            return Fitted(trainer.model, variant, params, {}, {}, best_epoch=result.best_epoch)
        test = trainer.evaluate("test")
        extra = self.extra(cfg, run_date, data, trainer) if self.extra else {}
        test = {**test, **extra.pop("test", {})}
        return Fitted(trainer.model, variant, params, result.best_valid, test, extra, result.best_epoch,
                      result.stopped_early)

    def build_model(self, cfg: EncoreConfig, run_date: dt.date, data: SequenceData, settings: TrainSettings,
                    model_values: dict) -> tuple[torch.nn.Module, object]:
        """(the untrained model of ``settings.seed``, its config) for ``data``, bound to its users."""
        seed_everything(settings.seed)
        extra_values = {"max_seq_len": settings.max_seq_len}
        if "n_users" in {f.name for f in dataclasses.fields(self.config_cls)}:
            extra_values["n_users"] = data.n_users
        if self.name == "smoe_bst" and cfg.training.user_features:
            extra_values["n_user_features"] = len(USER_FEATURE_COLUMNS)
        config = model_config(self.config_cls, cfg, data.n_items, **extra_values, **model_values)
        model = self.model_cls(config)
        if self.users:
            attach_users(model, data.user_ids, cfg, run_date)
        return model, config

    def _train(self, cfg: EncoreConfig, run_date: dt.date, data: SequenceData, settings: TrainSettings,
               model_values: dict, objective_values: dict, *, checkpoints: Path, resume: bool,
               on_epoch_end: Callable | None):
        """One model trained from ``settings.seed``: (trainer, its TrainResult, params, variant)."""
        distributed.init_from_env(settings.device)  # under torchrun: join the other ranks
        model, config = self.build_model(cfg, run_date, data, settings, model_values)
        objective, variant = None, self.name
        if self.objective is not None:
            objective, variant = self.objective(cfg, run_date, data, model, settings, dict(objective_values))
        elif settings.contrastive != "none":
            variant = f"{self.name}+cl_{settings.contrastive}"
        trainer = Trainer(model, data, settings, checkpoint_dir=checkpoints / variant / f"seed{settings.seed}",
                          on_epoch_end=on_epoch_end if distributed.is_main() else None, objective=objective)
        result = trainer.fit(resume=resume)
        params = {**dataclasses.asdict(settings), **dataclasses.asdict(config), **(objective.params if objective else {})}
        return trainer, result, params, variant

    def _fit_ensemble(self, cfg: EncoreConfig, run_date: dt.date, data: SequenceData, settings: TrainSettings,
                      model_values: dict, objective_values: dict, *, checkpoints: Path, resume: bool,
                      on_epoch_end: Callable | None) -> Fitted:
        """``settings.ensemble_seeds`` members from seeds ``seed, seed + 1, ...``, each trained and
        early-stopped on its own (epoch metrics logged as ``member<i>_<metric>``), scored as one
        ``SeedEnsemble`` on validation and test."""
        members, results = [], []  # the trainers (and their splits) are dropped as each member ends
        for i in range(settings.ensemble_seeds):
            hook = None if on_epoch_end is None else _member_hook(on_epoch_end, i)
            print(f"{self.name}: ensemble member {i + 1}/{settings.ensemble_seeds} (seed {settings.seed + i})", flush=True)
            member = dataclasses.replace(settings, seed=settings.seed + i)
            trainer, result, params, variant = self._train(cfg, run_date, data, member, model_values, objective_values,
                                                           checkpoints=checkpoints, resume=resume, on_epoch_end=hook)
            members.append(trainer.model)
            results.append(result)
            device = trainer.device
        params = {**params, "seed": settings.seed, "member_best_epochs": [r.best_epoch for r in results]}
        variant = f"{variant}+ensemble{settings.ensemble_seeds}"
        ensemble = SeedEnsemble.of(members, self.name, data.n_items, settings.max_seq_len)
        best_epoch = max(r.best_epoch for r in results)
        if not distributed.is_main():
            return Fitted(ensemble, variant, params, {}, {}, best_epoch=best_epoch)
        metrics = {split: evaluate_model(ensemble, data.split(split, settings.max_seq_len), data.n_items,
                                         exclude=settings.eval_exclude, batch_size=settings.eval_batch_size,
                                         device=device, bf16=settings.bf16)
                   for split in ("valid", "test")}
        return Fitted(ensemble, variant, params, metrics["valid"], metrics["test"], best_epoch=best_epoch,
                      stopped_early=all(r.stopped_early for r in results))


class BaselineSpec:
    """A non-neural baseline (``training.baselines``): fitted in closed form on the train split."""

    def __init__(self, name: str):
        self.name = name
        self.config_cls, self.cls, self.fixed = BASELINES[name]

    def check(self, cfg: EncoreConfig, overrides: dict) -> None:
        self._values(overrides)

    def _values(self, overrides: dict) -> dict:
        return split_overrides(overrides, model={f.name for f in dataclasses.fields(self.config_cls)} - {"n_items"}
                               | {"seed", "max_seq_len"})["model"]

    def fit(self, cfg: EncoreConfig, run_date: dt.date, data: SequenceData, overrides: dict, *,
            checkpoints: Path, resume: bool, on_epoch_end: Callable | None) -> Fitted:
        values = self._values(overrides)
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        values = {"seed": cfg.training.seed, "max_seq_len": cfg.training.max_seq_len, **values}
        config = self.config_cls(n_items=data.n_items, **{**self.fixed, **{k: v for k, v in values.items() if k in known}})
        model = self.cls(config)
        length = values["max_seq_len"]
        model.fit(data.split("train", length), data.user_ids)
        attach_users(model, data.user_ids)
        metrics = {split: evaluate_model(model, data.split(split, length), data.n_items,
                                         exclude=cfg.training.eval_exclude) for split in ("valid", "test")}
        params = {**dataclasses.asdict(config), "seed": values["seed"]}
        return Fitted(model, self.name, params, metrics["valid"], metrics["test"])


def _member_hook(on_epoch_end: Callable, member: int) -> Callable:
    """An ensemble member's epoch hook: its metrics under ``member<i>_<name>`` (the members' epochs overlap)."""
    def hook(epoch: int, row: dict[str, float]) -> None:
        on_epoch_end(epoch, {(k if k == "epoch" else f"member{member}_{k}"): v for k, v in row.items()})

    return hook


def _smoe_objective(cfg, run_date, data, model, settings, values):
    from training.losses import MultiTaskSettings
    from training.multitask import MultiTaskObjective
    from training.negatives import check_mix, mix_negatives

    mix = check_mix(cfg, values.pop("phns_mix", None) or cfg.phns.default_mix)
    defaults = {name: getattr(cfg.training, name) for name in vars(MultiTaskSettings()) if hasattr(cfg.training, name)}
    objective = MultiTaskObjective(mix_negatives(cfg, run_date, data, mix), MultiTaskSettings(**{**defaults, **values}),
                                   tuple(model.config.experts), mix)
    return objective, f"smoe_bst+phns_{mix.lower()}"


def _smoe_extra(cfg, run_date, data, trainer):
    from training.multitask import evaluate_phns_sets, gate_usage
    from training.negatives import eval_candidate_sets

    split = data.split("test", trainer.settings.max_seq_len)
    candidates = eval_candidate_sets(cfg, run_date, data, split)
    return {**evaluate_phns_sets(trainer.model, split, candidates, trainer.device),
            "test": gate_usage(trainer.model, split, trainer.device)}


def _hinge(name: str):
    def objective(cfg, run_date, data, model, settings, values):
        from training.models.attrec import HingeObjective

        return HingeObjective(), name

    return objective


SPECS: dict[str, SequenceModelSpec | BaselineSpec] = {
    "sasrec": SequenceModelSpec("sasrec"),
    "bert4rec": SequenceModelSpec("bert4rec"),
    # AttRec trains with its own hinge loss, no InfoNCE term
    "attrec": SequenceModelSpec("attrec", contrastive=False, users=True, objective=_hinge("attrec")),
    "attrec_neg": SequenceModelSpec("attrec_neg", contrastive=False, users=True, objective=_hinge("attrec_neg")),
    "smoe_bst": SequenceModelSpec(
        "smoe_bst", contrastive=False, users=True, objective=_smoe_objective, extra=_smoe_extra,
        objective_keys=frozenset({f.name for f in dataclasses.fields(MultiTaskSettings)} | {"phns_mix"})),
    **{name: BaselineSpec(name) for name in BASELINES},
}
if set(SPECS) != set(MODEL_NAMES):
    raise RuntimeError(f"training.specs and training.registry disagree: {sorted(set(SPECS) ^ set(MODEL_NAMES))}")


def model_spec(name: str) -> SequenceModelSpec | BaselineSpec:
    if name not in SPECS:
        raise ConfigError(f"unknown model {name!r}; known: {sorted(SPECS)}")
    return SPECS[name]


def model_device(model) -> torch.device:
    return next(model.parameters()).device if isinstance(model, torch.nn.Module) else torch.device("cpu")
