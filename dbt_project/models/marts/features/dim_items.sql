-- One row per (run_date, item) known as of run_date: popularity per window,
-- skip rate and mean completion per window, PHNS trending / tailing flags and
-- catalog attributes. Rebuilding a run_date replaces exactly that date.

{% set windows = ['short', 'mid', 'long'] %}

with items as (

    select *
    from {{ ref('int_item_universe') }}
    where known_since <= {{ as_of_date() }}

),

catalog as (

    -- latest catalog attributes known as of the run date
    select *
    from (
        select *, row_number() over (partition by item_id order by catalog_date desc) as recency
        from {{ ref('stg_item_catalog') }}
        where catalog_date <= {{ as_of_date() }}
    ) as ranked
    where recency = 1

),

events as (

    select * from {{ ref('int_events_as_of') }}

),

item_activity as (

    select
        item_id,
        {% for w in windows %}
        count(*) filter (where in_{{ w }}_window)                                            as plays_{{ w }},
        count(distinct user_id) filter (where in_{{ w }}_window)                             as users_{{ w }},
        cast(avg(case when is_skip then 1.0 else 0.0 end) filter (where in_{{ w }}_window) as double precision)        as skip_rate_{{ w }},
        -- a decimal sum is exact, so re-running a date gives bit-identical means (a double sum depends on thread order)
        cast(avg(completion::decimal(18, 9)) filter (where in_{{ w }}_window) as double precision)                     as mean_completion_{{ w }},
        {% endfor %}
        cast(avg(case when is_abandoned then 1.0 else 0.0 end) filter (where in_long_window) as double precision)     as abandon_rate_long,
        count(*)                                                                             as plays_total,
        max(event_date)                                                                      as last_played_date

    from events
    group by item_id

),

phns_flags as (

    -- Trending / tailing exactly as the PHNS job saw them on the run date: an item
    -- is flagged when it sits in at least one user's global pool of that kind.
    select
        item_id,
        bool_or(pool = 'trending')  as is_trending,
        bool_or(pool = 'tailing')   as is_tailing

    from {{ ref('stg_phns_pools') }}
    where snapshot_date = {{ as_of_date() }}
      and pool in ('trending', 'tailing')
    group by item_id

),

final as (

    select
        {{ as_of_date() }}                                          as run_date,
        items.item_id,
        catalog.title,
        catalog.genre,
        catalog.item_length_ms,
        coalesce(items.in_catalog, false)                           as in_catalog,
        items.known_since,
        {% for w in windows %}
        coalesce(item_activity.plays_{{ w }}, 0)                    as plays_{{ w }},
        coalesce(item_activity.users_{{ w }}, 0)                    as users_{{ w }},
        item_activity.skip_rate_{{ w }},
        item_activity.mean_completion_{{ w }},
        {% endfor %}
        item_activity.abandon_rate_long,
        coalesce(item_activity.plays_total, 0)                      as plays_total,
        item_activity.last_played_date,
        cast(row_number() over (
            order by coalesce(item_activity.plays_mid, 0) desc,
                     coalesce(item_activity.plays_long, 0) desc,
                     items.item_id
        ) as integer)                                               as popularity_rank_mid,
        coalesce(phns_flags.is_trending, false)                     as is_trending,
        coalesce(phns_flags.is_tailing, false)                      as is_tailing

    from items
    left join catalog on items.item_id = catalog.item_id
    left join item_activity on items.item_id = item_activity.item_id
    left join phns_flags on items.item_id = phns_flags.item_id

)

select * from final
