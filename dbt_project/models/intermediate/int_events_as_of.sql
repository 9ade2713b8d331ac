{{ config(materialized='ephemeral') }}
-- Sessionized events up to the run date, with the feature windows flagged.
-- A window of N days ends at run_date inclusive: the short window (1 day) is
-- the run date alone, a 7-day window is run_date - 6 .. run_date.

with events as (

    select * from {{ ref('stg_sessionized_events') }}

),

as_of as (

    select {{ as_of_date() }} as run_date

),

flagged as (

    select
        as_of.run_date,
        events.*,
        as_of.run_date - events.event_date                                        as days_ago,
        (as_of.run_date - events.event_date) < {{ var('window_short_days') }}   as in_short_window,
        (as_of.run_date - events.event_date) < {{ var('window_mid_days') }}     as in_mid_window,
        (as_of.run_date - events.event_date) < {{ var('window_long_days') }}    as in_long_window

    from events
    cross join as_of
    where events.event_date <= as_of.run_date

)

select * from flagged
