"""Nightly run report: one HTML page with PNG plots per run date, under ``<home>/reports/<date>/``.

Sections: data quality (raw / clean / quarantined per date and reasons),
model metrics per model over dates, champion history, quality of the published
recommendations (coverage, predicted and realised skip rate), S-MoE-BST expert
gate usage. Every number is read back from the lake / warehouse, so the report
can be rebuilt for any date.
"""

from __future__ import annotations

import datetime as dt

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import duckdb  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from encore.core import lake  # noqa: E402
from encore.core.config import EncoreConfig  # noqa: E402
from encore.core.warehouse import has_table, query  # noqa: E402

log = logging.getLogger(__name__)


def _lake_frame(cfg: EncoreConfig, table: str, until: str) -> pd.DataFrame:
    if not [d for d in lake.partition_dates(cfg, table) if d <= until]:
        return pd.DataFrame()
    return lake.read_table(cfg, table, until=until).to_pandas()


def data_quality(cfg: EncoreConfig, until: str) -> pd.DataFrame:
    reports = _lake_frame(cfg, "ingest_reports", until)
    rows = [json.loads(s) for s in reports.get("summary_json", [])]
    return pd.DataFrame(
        [
            {"run_date": r["run_date"], "raw": r["raw_rows"], "clean": r["clean_rows"],
             "quarantined": r["quarantined_rows"], "reconciles": r["reconciles"],
             "reasons": ", ".join(f"{k}: {v}" for k, v in r["quarantine_reasons"].items())}
            for r in rows
        ]
    )


def recommendation_quality(cfg: EncoreConfig, until: str) -> pd.DataFrame:
    """Per published date: users, coverage of the catalogue, predicted skip and realised next-day skip share."""
    events = f"{cfg.lake_path('sessionized_events')}/dt=*/*.parquet".replace("'", "''")  # a SQL literal
    has_events = bool(lake.partition_dates(cfg, "sessionized_events"))
    realised = (
        f"""LEFT JOIN (
                SELECT r.run_date, avg(e.is_skip::DOUBLE) AS realised_skip_rate, count(*) AS later_plays
                FROM recommendations r
                JOIN read_parquet('{events}', hive_partitioning = true) e
                  ON e.user_id = r.user_id AND e.item_id = r.item_id AND e.dt > r.run_date
                GROUP BY r.run_date
            ) later USING (run_date)"""
        if has_events else ""
    )
    select_realised = "later.realised_skip_rate, later.later_plays" if has_events else "NULL AS realised_skip_rate, 0 AS later_plays"
    if not has_table(cfg, "recommendations"):
        return pd.DataFrame()
    with duckdb.connect() as con:  # the warehouse's rows (either backend) joined with the lake's events here
        con.register("recommendations", query(cfg, "SELECT * FROM recommendations WHERE run_date <= ?", [until]))
        return con.execute(
            f"""
            WITH per_date AS (
                SELECT run_date, count(DISTINCT user_id) AS users, count(DISTINCT item_id) AS distinct_items,
                       avg(p_skip) AS mean_p_skip, avg(soft_label) AS mean_soft_label,
                       any_value(model_name) || ' v' || any_value(model_version) AS model
                FROM recommendations WHERE run_date <= ? GROUP BY run_date
            )
            SELECT per_date.*, {select_realised}
            FROM per_date {realised}
            ORDER BY run_date
            """,
            [until],
        ).df()


def _plot(path: Path, draw) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    draw(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def build_report(cfg: EncoreConfig, run_date: dt.date) -> Path:
    day = run_date.isoformat()
    out = Path(cfg.paths.reports) / day
    out.mkdir(parents=True, exist_ok=True)
    quality = data_quality(cfg, day)
    runs = _lake_frame(cfg, "model_runs", day)
    promotions = _lake_frame(cfg, "promotions", day)
    recs = recommendation_quality(cfg, day)
    sections = [f"<h1>Encore nightly report {day}</h1>"]

    sections.append("<h2>Data quality</h2>")
    if not quality.empty:
        img = _plot(out / "data_quality.png", lambda ax: quality.set_index("run_date")[["clean", "quarantined"]]
                    .plot.bar(stacked=True, ax=ax, title="raw events = clean + quarantined"))
        sections += [f'<img src="{img}">', quality.to_html(index=False)]

    sections.append("<h2>Model metrics</h2>")
    if not runs.empty:
        valid = runs[(runs["split"] == "valid") & (runs["metric"].isin(["ndcg@10", "hr@10", "skip_mrr"]))]
        table = valid.pivot_table(index=["run_date", "model_name"], columns="metric", values="value").reset_index()
        ndcg = valid[valid["metric"] == "ndcg@10"]
        if not ndcg.empty:
            img = _plot(out / "model_metrics.png", lambda ax: ndcg.pivot_table(
                index="run_date", columns="model_name", values="value").plot(ax=ax, marker="o", title="validation NDCG@10"))
            sections.append(f'<img src="{img}">')
        sections.append(table.to_html(index=False, float_format="%.4f"))
        gates = runs[runs["metric"].str.startswith("gate_mean_")]
        if not gates.empty:
            latest = gates[gates["run_date"] == gates["run_date"].max()]
            img = _plot(out / "expert_gates.png", lambda ax: latest.groupby("metric")["value"].mean()
                        .plot.bar(ax=ax, title="S-MoE-BST mean gate weight per expert"))
            sections += ["<h3>Expert gate usage</h3>", f'<img src="{img}">']

    sections.append("<h2>Champion history</h2>")
    if not promotions.empty:
        cols = ["run_date", "challenger_version", "champion_version", "promoted", "metric",
                "challenger_value", "champion_value", "reason"]
        sections.append(promotions[cols].to_html(index=False, float_format="%.4f"))

    outcomes = _lake_frame(cfg, "outcome_models", day)
    sections.append("<h2>Skip and completion models (p_skip, predicted_completion)</h2>")
    if not outcomes.empty:
        metrics = [dict(json.loads(m), run_date=d) for m, d in zip(outcomes["metrics_json"], outcomes["dt"])]
        latest = metrics[-1]
        if latest.get("reliability"):
            bins = pd.DataFrame(latest["reliability"])
            img = _plot(out / "skip_reliability.png", lambda ax: (
                ax.plot([0, 1], [0, 1], color="grey", linestyle=":"),
                ax.plot(bins["predicted"], bins["observed"], marker="o"),
                ax.set(xlabel="predicted p_skip", ylabel="observed skip share",
                       title=f"reliability on held-out users, {latest['run_date']}")))
            sections.append(f'<img src="{img}">')
        columns = ["run_date", "examples", "skip_log_loss", "skip_log_loss_item_rate", "skip_auc", "skip_auc_item_rate",
                   "skip_ece", "completion_mae", "completion_mae_item_mean"]
        table = pd.DataFrame([{c: m.get(c) for c in columns} for m in metrics])
        sections.append(table.to_html(index=False, float_format="%.4f"))

    sections.append("<h2>Published recommendations</h2>")
    if not recs.empty:
        img = _plot(out / "recommendations.png", lambda ax: recs.set_index("run_date")[
            ["mean_p_skip", "realised_skip_rate"]].plot(ax=ax, marker="o", title="predicted vs realised skip rate"))
        sections += [f'<img src="{img}">', recs.to_html(index=False, float_format="%.4f")]

    page = out / "report.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Encore "
        f"{day}</title><style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}</style>"
        "</head><body>" + "\n".join(sections) + "</body></html>"
    )
    log.info("run report: %s", page)
    return page
