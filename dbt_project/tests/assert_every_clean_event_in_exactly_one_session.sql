-- Reconciliation as of run_date: every clean event ingested up to run_date
-- whose (UTC) event date is up to run_date appears exactly once in
-- sessionized_events, with a session; every sessionized event up to run_date
-- comes from such a clean event. (Clean events dated run_date + 1, allowed by
-- labels.max_future_days, are sessionized by the next night's run.)
-- Returns the offending event ids.

with clean as (

    select event_id
    from {{ ref('stg_events_clean') }}
    where ingest_date <= {{ as_of_date() }}
      and event_date <= {{ as_of_date() }}

),

sessionized as (

    select event_id, count(*) as n_rows, count(session_id) as n_with_session
    from {{ ref('stg_sessionized_events') }}
    where event_date <= {{ as_of_date() }}
    group by event_id

)

select
    coalesce(clean.event_id, sessionized.event_id)  as event_id,
    clean.event_id is not null                       as is_clean,
    coalesce(sessionized.n_rows, 0)                  as n_sessionized_rows,
    coalesce(sessionized.n_with_session, 0)          as n_with_session

from clean
full outer join sessionized on sessionized.event_id = clean.event_id
where clean.event_id is null
   or coalesce(sessionized.n_rows, 0) <> 1
   or coalesce(sessionized.n_with_session, 0) <> 1
