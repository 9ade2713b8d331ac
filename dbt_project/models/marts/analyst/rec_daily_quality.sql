-- Quality of each published run_date (up to var run_date), rebuilt nightly
-- because later data (skips, next-day plays) keeps arriving:
--   coverage          = distinct recommended items / items known on that date;
--   gini              = Gini coefficient of recommendation counts over all
--                       known items (0 = evenly spread, -> 1 = concentrated);
--   top_share         = share of recommendation slots taken by the most
--                       recommended ceil(var top_share_fraction x catalog) items;
--   later_skip_share  = share of recommended (user, item) pairs the user skipped
--                       on a later day (null until a later day has events);
--   next_day_hit_rate = of the recommended users active the next day, the
--                       share who played a recommended item without skipping
--                       (null until the next day's events exist).

with recommendations as (

    select *
    from {{ ref('stg_recommendations') }}
    where run_date <= {{ as_of_date() }}

),

events as (

    select * from {{ ref('int_events_as_of') }}

),

item_universe as (

    select * from {{ ref('int_item_universe') }}

),

run_dates as (

    select distinct run_date from recommendations

),

catalog_sizes as (

    select
        run_dates.run_date,
        count(item_universe.item_id)                as catalog_size

    from run_dates
    left join item_universe on item_universe.known_since <= run_dates.run_date
    group by run_dates.run_date

),

item_counts as (

    select
        run_date,
        item_id,
        count(*)                                    as n_recommended,
        row_number() over (partition by run_date order by count(*), item_id)  as asc_rank,
        row_number() over (partition by run_date order by count(*) desc, item_id) as desc_rank

    from recommendations
    group by run_date, item_id

),

concentration as (

    -- Items never recommended have count 0 and take the lowest ranks, so a
    -- recommended item's rank over the whole catalog is
    -- catalog_size - n_distinct_items + asc_rank.
    select
        item_counts.run_date,
        count(*)                                    as n_distinct_items,
        sum(item_counts.n_recommended)              as n_slots,
        max(catalog_sizes.catalog_size)             as catalog_size,
        sum(
            (greatest(catalog_sizes.catalog_size, n_distinct.n) - n_distinct.n + item_counts.asc_rank)
            * item_counts.n_recommended
        )                                           as weighted_rank_sum,
        sum(item_counts.n_recommended) filter (
            where item_counts.desc_rank <= ceil({{ var('top_share_fraction') }} * greatest(catalog_sizes.catalog_size, n_distinct.n))
        )                                           as top_slots

    from item_counts
    inner join catalog_sizes on catalog_sizes.run_date = item_counts.run_date
    inner join (
        select run_date, count(*) as n from item_counts group by run_date
    ) as n_distinct on n_distinct.run_date = item_counts.run_date
    group by item_counts.run_date

),

per_date as (

    select
        run_date,
        count(distinct user_id)                     as n_users,
        count(*)                                    as n_recommendations,
        avg(score)                                  as mean_score,
        avg(soft_label)                             as mean_soft_label,
        avg(p_skip)                                 as mean_p_skip,
        string_agg(distinct model_name, ',' order by model_name)        as model_names,
        string_agg(distinct model_version, ',' order by model_version)  as model_versions

    from recommendations
    group by run_date

),

later_skipped as (

    -- recommended (user, item) pairs the user skipped on a later day
    select distinct
        recommendations.run_date,
        recommendations.user_id,
        recommendations.item_id

    from recommendations
    inner join events
        on events.user_id = recommendations.user_id
       and events.item_id = recommendations.item_id
       and events.event_date > recommendations.run_date
       and events.is_skip

),

later_skips as (

    select run_date, count(*) as n_later_skipped
    from later_skipped
    group by run_date

),

next_day_users as (

    select
        recommended_users.run_date,
        recommended_users.user_id,
        bool_or(recommendations.item_id is not null and not events.is_skip) as hit

    from (select distinct run_date, user_id from recommendations) as recommended_users
    inner join events
        on events.user_id = recommended_users.user_id
       and events.event_date = recommended_users.run_date + 1
    left join recommendations
        on recommendations.run_date = recommended_users.run_date
       and recommendations.user_id = recommended_users.user_id
       and recommendations.item_id = events.item_id
    group by recommended_users.run_date, recommended_users.user_id

),

next_day as (

    select
        run_date,
        count(*)                                    as n_next_day_active_users,
        count(*) filter (where hit)                 as n_next_day_hit_users

    from next_day_users
    group by run_date

),

data_horizon as (

    select max(event_date) as last_event_date from events

),

final as (

    select
        per_date.run_date,
        per_date.n_users,
        per_date.n_recommendations,
        concentration.n_distinct_items,
        concentration.catalog_size,
        cast(concentration.n_distinct_items * 1.0 / nullif(concentration.catalog_size, 0) as double precision)
                                                                                        as coverage,
        cast(2.0 * concentration.weighted_rank_sum
            / (greatest(concentration.catalog_size, concentration.n_distinct_items) * concentration.n_slots)
            - (greatest(concentration.catalog_size, concentration.n_distinct_items) + 1.0)
            / greatest(concentration.catalog_size, concentration.n_distinct_items) as double precision)
                                                                                        as gini,
        cast(coalesce(concentration.top_slots, 0) * 1.0 / concentration.n_slots as double precision)
                                                                                        as top_share,
        case when data_horizon.last_event_date > per_date.run_date
             then cast(coalesce(later_skips.n_later_skipped, 0) * 1.0 / per_date.n_recommendations as double precision)
        end                                                                             as later_skip_share,
        case when data_horizon.last_event_date > per_date.run_date
             then coalesce(next_day.n_next_day_active_users, 0)
        end                                                                             as next_day_active_users,
        case when data_horizon.last_event_date > per_date.run_date
             then cast(next_day.n_next_day_hit_users * 1.0 / nullif(next_day.n_next_day_active_users, 0) as double precision)
        end                                                                             as next_day_hit_rate,
        per_date.mean_score,
        per_date.mean_soft_label,
        per_date.mean_p_skip,
        per_date.model_names,
        per_date.model_versions

    from per_date
    inner join concentration on concentration.run_date = per_date.run_date
    left join later_skips on later_skips.run_date = per_date.run_date
    left join next_day on next_day.run_date = per_date.run_date
    cross join data_horizon

)

select * from final
