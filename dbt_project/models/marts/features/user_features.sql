-- One row per (run_date, user) with any event up to run_date: activity and
-- engagement over the short / mid / long windows the S-MoE-BST experts look
-- at, plus recency and the size of the user's PHNS hard pool.

{% set windows = ['short', 'mid', 'long'] %}

with events as (

    select * from {{ ref('int_events_as_of') }}

),

hard_pool as (

    select user_id, count(*) as hard_pool_size
    from {{ ref('stg_phns_pools') }}
    where snapshot_date = {{ as_of_date() }}
      and pool = 'hard'
    group by user_id

),

user_activity as (

    select
        user_id,
        {% for w in windows %}
        count(*) filter (where in_{{ w }}_window)                                            as plays_{{ w }},
        count(*) filter (where in_{{ w }}_window and not is_skip)                            as positives_{{ w }},
        cast(avg(case when is_skip then 1.0 else 0.0 end) filter (where in_{{ w }}_window) as double precision)        as skip_rate_{{ w }},
        -- a decimal sum is exact, so re-running a date gives bit-identical means (a double sum depends on thread order)
        cast(avg(completion::decimal(18, 9)) filter (where in_{{ w }}_window) as double precision)                     as mean_completion_{{ w }},
        count(distinct session_id) filter (where in_{{ w }}_window)                          as sessions_{{ w }},
        count(distinct event_date) filter (where in_{{ w }}_window)                          as active_days_{{ w }},
        {% endfor %}
        count(distinct item_id) filter (where in_long_window)                                as distinct_items_long,
        cast(avg(case when is_abandoned then 1.0 else 0.0 end) filter (where in_long_window) as double precision)     as abandon_rate_long,
        count(*)                                                                             as plays_total,
        min(event_date)                                                                      as first_event_date,
        max(event_ts)                                                                        as last_event_ts,
        max(event_date)                                                                      as last_event_date

    from events
    group by user_id

),

final as (

    select
        {{ as_of_date() }}                                          as run_date,
        user_activity.user_id,
        {% for w in windows %}
        user_activity.plays_{{ w }},
        user_activity.positives_{{ w }},
        user_activity.skip_rate_{{ w }},
        user_activity.mean_completion_{{ w }},
        user_activity.sessions_{{ w }},
        user_activity.active_days_{{ w }},
        {% endfor %}
        user_activity.distinct_items_long,
        user_activity.abandon_rate_long,
        user_activity.plays_total,
        user_activity.first_event_date,
        user_activity.last_event_ts,
        cast({{ as_of_date() }} - user_activity.last_event_date as integer)  as days_since_last_event,
        coalesce(hard_pool.hard_pool_size, 0)                       as hard_pool_size

    from user_activity
    left join hard_pool on user_activity.user_id = hard_pool.user_id

)

select * from final
