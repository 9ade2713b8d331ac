"""Champion / challenger promotion with MLflow registry aliases.

Tonight's best model gets the alias ``challenger``. It takes ``champion`` only
if it clears the sanity floor (finite metrics and scores, scores that are not
constant per user, the promotion metric at least ``promotion.popularity_floor``
times the most-popular baseline's on the same validation data) and, evaluated on
the same validation data as the current champion, beats it on
``cfg.promotion.metric`` by at least ``cfg.promotion.margin`` without making the
guard metric (skip down-ranking MRR, lower is better) worse. With no champion
yet, a challenger that clears the floor is promoted; one that does not leaves the
night without a champion, so nothing is published. Every decision is logged with
its reason and appended to the lake table ``promotions``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Callable

import pyarrow as pa
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from encore.core import lake
from encore.core.config import EncoreConfig

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass
class PromotionDecision:
    run_date: str
    challenger_version: str | None  # None: no model of the night cleared the sanity floor
    champion_version: str | None  # champion before the decision
    promoted: bool
    metric: str
    challenger_value: float | None
    champion_value: float | None
    guard_metric: str
    challenger_guard: float | None
    champion_guard: float | None
    reason: str


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def sanity_problems(
    metrics: dict[str, float], metric: str, *, popularity: float | None = None, popularity_floor: float = 0.5,
    min_score_std: float = 1e-6,
) -> list[str]:
    """Why a model must not serve, from its validation metrics (empty list = sane).

    ``popularity``: the most-popular baseline's ``metric`` on the same validation data."""
    problems = []
    value = metrics.get(metric)
    if not _finite(value):
        problems.append(f"{metric} is {value}")
    nonfinite = metrics.get("score_nonfinite_share", 0.0)
    if not _finite(nonfinite) or nonfinite > 0:
        problems.append(f"{nonfinite:.1%} of its scores are not finite")
    spread = metrics.get("score_std_median")
    if spread is not None and not (_finite(spread) and spread >= min_score_std):
        problems.append(f"its scores are constant per user (median std {spread:.2e} < {min_score_std:g})")
    if popularity is not None and _finite(value) and value < popularity_floor * popularity:
        problems.append(f"{metric} {value:.4f} is below {popularity_floor:g} x the most-popular baseline's "
                        f"{popularity:.4f}")
    return problems


def decide(
    challenger: dict[str, float], champion: dict[str, float] | None, metric: str, margin: float, guard_metric: str,
    *, popularity: float | None = None, popularity_floor: float = 0.5, min_score_std: float = 1e-6,
) -> tuple[bool, str]:
    """Pure decision rule: (promote?, reason). A challenger that fails ``sanity_problems``
    is never promoted, not even on the first night."""
    if metric not in challenger:
        raise KeyError(f"challenger metrics lack the promotion metric {metric!r}: {sorted(challenger)}")
    problems = sanity_problems(challenger, metric, popularity=popularity, popularity_floor=popularity_floor,
                               min_score_std=min_score_std)
    if problems:
        return False, "challenger fails the sanity floor: " + "; ".join(problems)
    if champion is None:
        return True, "no champion yet: first model that clears the sanity floor becomes champion"
    if not _finite(champion.get(metric)):
        return True, f"champion's {metric} is {champion.get(metric)} on tonight's data; challenger {challenger[metric]:.4f}"
    gain = challenger[metric] - champion[metric]
    if gain < margin or gain <= 0:
        return False, f"{metric} {challenger[metric]:.4f} vs champion {champion[metric]:.4f}: gain {gain:+.4f} below margin {margin}"
    if guard_metric in challenger and guard_metric in champion and _finite(champion[guard_metric]) \
            and not challenger[guard_metric] <= champion[guard_metric]:  # NaN counts as worse
        return False, (
            f"{guard_metric} got worse ({challenger[guard_metric]:.4f} > {champion[guard_metric]:.4f}) "
            f"although {metric} improved by {gain:+.4f}"
        )
    return True, f"{metric} {challenger[metric]:.4f} beats champion {champion[metric]:.4f} by {gain:+.4f}"


def current_champion(client: MlflowClient, model_name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def promote(
    cfg: EncoreConfig,
    run_date: str,
    challenger_version: str,
    evaluate: Callable[[str], dict[str, float]],
    client: MlflowClient | None = None,
    popularity: float | None = None,
) -> PromotionDecision:
    """Set ``challenger`` to the version, compare it with ``champion`` on today's validation data, decide.

    ``evaluate(version)`` returns validation metrics of a registered version on
    the run date's validation data; both models go through the same function.
    ``popularity``: the most-popular baseline's promotion metric on that data (the floor).
    """
    recorded = recorded_decision(cfg, run_date)
    if recorded is not None:
        log.info("promotion %s already decided (%s); clear lake promotions/dt=%s to decide again",
                 run_date, recorded.reason, run_date)
        return recorded
    p = cfg.promotion
    client = client or MlflowClient(cfg.paths.mlflow_tracking_uri)
    client.set_registered_model_alias(p.registered_model, CHALLENGER, challenger_version)
    champion_version = current_champion(client, p.registered_model)
    challenger_metrics = evaluate(challenger_version)
    champion_metrics = evaluate(champion_version) if champion_version else None
    if champion_version == challenger_version:
        promoted, reason = False, "challenger is already champion"
    else:
        promoted, reason = decide(challenger_metrics, champion_metrics, p.metric, p.margin, p.guard_metric,
                                  popularity=popularity, popularity_floor=p.popularity_floor,
                                  min_score_std=p.min_score_std)
    if promoted:
        client.set_registered_model_alias(p.registered_model, CHAMPION, challenger_version)
    decision = PromotionDecision(
        run_date=str(run_date),
        challenger_version=str(challenger_version),
        champion_version=champion_version,
        promoted=promoted,
        metric=p.metric,
        challenger_value=challenger_metrics[p.metric],
        champion_value=champion_metrics[p.metric] if champion_metrics else None,
        guard_metric=p.guard_metric,
        challenger_guard=challenger_metrics.get(p.guard_metric),
        champion_guard=champion_metrics.get(p.guard_metric) if champion_metrics else None,
        reason=reason,
    )
    log.info("promotion %s: %s v%s (%s)", run_date, "PROMOTED" if promoted else "kept champion", challenger_version, reason)
    lake.write_partition(cfg, "promotions", run_date, pa.Table.from_pylist([asdict(decision)]))
    return decision


def record_no_challenger(cfg: EncoreConfig, run_date: str, rejected: dict[str, str],
                         client: MlflowClient | None = None) -> PromotionDecision:
    """Record that no model of the night may challenge (each failed the sanity floor): the
    champion, if any, keeps serving; without one the night has nothing to publish."""
    recorded = recorded_decision(cfg, run_date)
    if recorded is not None:
        return recorded
    p = cfg.promotion
    client = client or MlflowClient(cfg.paths.mlflow_tracking_uri)
    champion_version = current_champion(client, p.registered_model)
    details = "; ".join(f"{name}: {why}" for name, why in sorted(rejected.items()))
    decision = PromotionDecision(
        run_date=str(run_date), challenger_version=None, champion_version=champion_version, promoted=False,
        metric=p.metric, challenger_value=None, champion_value=None, guard_metric=p.guard_metric,
        challenger_guard=None, champion_guard=None,
        reason=f"no model of the night cleared the sanity floor ({details})"
               + ("" if champion_version else "; there is no champion yet, so nothing can be published"),
    )
    log.warning("promotion %s: %s", run_date, decision.reason)
    lake.write_partition(cfg, "promotions", run_date, pa.Table.from_pylist([asdict(decision)]))
    return decision


def recorded_decision(cfg: EncoreConfig, run_date: str) -> PromotionDecision | None:
    """The decision already taken for ``run_date``, if any (re-runs reuse it)."""
    if str(run_date) not in lake.partition_dates(cfg, "promotions"):
        return None
    (row,) = lake.read_partition(cfg, "promotions", run_date).to_pylist()
    return PromotionDecision(**row)


def champion_for_date(cfg: EncoreConfig, run_date: str) -> str:
    """The champion version that serves ``run_date``: the one in place after that night's decision.

    Pinning inference to it (rather than to the moving ``champion`` alias) makes
    a re-run of an old date publish exactly what it published the first time.
    """
    decision = recorded_decision(cfg, run_date)
    if decision is None:
        raise LookupError(f"no promotion decision recorded for {run_date}: run the promote task first")
    version = decision.challenger_version if decision.promoted else decision.champion_version
    if version is None:
        raise LookupError(f"no champion for {run_date}: {decision.reason}")
    return version


def champion_history(cfg: EncoreConfig) -> list[dict]:
    """All promotion decisions so far, oldest first (for the run report)."""
    if not lake.partition_dates(cfg, "promotions"):
        return []
    return lake.read_table(cfg, "promotions").to_pylist()
