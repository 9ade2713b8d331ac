-- Leaderboard of tracked runs: per (model, dataset, split, metric), the runs
-- of the latest run_date (up to var run_date) summarised over seeds as
-- mean ± sample std. Several runs with the same seed on that date are averaged
-- first, so every seed counts once.

{%- set lower_is_better -%}
    ('{{ (var('lower_is_better_metrics') | list + ['']) | join("', '") }}')
{%- endset %}

with runs as (

    select *
    from {{ ref('stg_model_runs') }}
    where run_date <= {{ as_of_date() }}

),

latest as (

    select model_name, dataset, split, max(run_date) as run_date
    from runs
    group by model_name, dataset, split

),

per_seed as (

    select
        runs.run_date,
        runs.model_name,
        runs.dataset,
        runs.split,
        runs.metric,
        runs.seed,
        avg(runs.metric_value)                          as metric_value,
        max(runs.model_version)                         as model_version

    from runs
    inner join latest
        on latest.model_name = runs.model_name
       and latest.dataset = runs.dataset
       and latest.split = runs.split
       and latest.run_date = runs.run_date
    group by runs.run_date, runs.model_name, runs.dataset, runs.split, runs.metric, runs.seed

),

summary as (

    select
        run_date,
        model_name,
        dataset,
        split,
        metric,
        count(*)                                        as n_seeds,
        avg(metric_value)                               as mean_value,
        stddev_samp(metric_value)                       as std_value,
        min(metric_value)                               as min_value,
        max(metric_value)                               as max_value,
        max(model_version)                              as model_version

    from per_seed
    group by run_date, model_name, dataset, split, metric

),

final as (

    select
        model_name,
        dataset,
        split,
        metric,
        run_date                                        as latest_run_date,
        model_version,
        n_seeds,
        mean_value,
        std_value,
        min_value,
        max_value,
        {{ format_mean_pm_std('mean_value', 'std_value') }}          as mean_pm_std,
        metric in {{ lower_is_better }}                                               as lower_is_better,
        cast(rank() over (
            partition by dataset, split, metric
            order by case when metric in {{ lower_is_better }} then mean_value else -mean_value end
        ) as integer)                                   as rank_in_split

    from summary

)

select * from final
