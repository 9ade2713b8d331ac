-- Reconciliation as of run_date: every clean event ingested up to run_date
-- whose (UTC) event date is up to run_date appears exactly once in
-- sessionized_events, with a session; every sessionized event up to run_date
-- comes from such a clean event. (Clean events dated run_date + 1, allowed by
-- labels.max_future_days, are sessionized by the next night's run.)
-- Returns one row per (event date, problem) with the lake partition to re-run,
-- so a failure names what to fix.

with clean as (

    select event_id, event_date
    from {{ ref('stg_events_clean') }}
    where ingest_date <= {{ as_of_date() }}
      and event_date <= {{ as_of_date() }}

),

sessionized as (

    select event_id, min(event_date) as event_date, count(*) as n_rows, count(session_id) as n_with_session
    from {{ ref('stg_sessionized_events') }}
    where event_date <= {{ as_of_date() }}
    group by event_id

),

problems as (

    select
        coalesce(clean.event_date, sessionized.event_date)                 as event_date,
        case
            when clean.event_id is null then 'sessionized but not a clean event'
            when sessionized.event_id is null then 'clean event missing from sessionized_events'
            when sessionized.n_rows > 1 then 'clean event sessionized more than once'
            else 'sessionized without a session id'
        end                                                                  as problem

    from clean
    full outer join sessionized on sessionized.event_id = clean.event_id
    where clean.event_id is null
       or coalesce(sessionized.n_rows, 0) <> 1
       or coalesce(sessionized.n_with_session, 0) <> 1

)

select
    event_date,
    problem,
    count(*)                                                                as n_events,
    'sessionized_events/dt=' || cast(event_date as varchar)                 as partition_to_rerun

from problems
group by event_date, problem
