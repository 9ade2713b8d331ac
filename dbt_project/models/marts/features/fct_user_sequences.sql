-- One row per (run_date, user): the sequence snapshot the night's models train on,
-- evaluate on and recommend from (Spark's sequences as of the run date): the most
-- recent events with skip flags, engagement and times, the leave-last-out indices
-- and the distinct items of the user's older events (for whole-history exclusion).
-- The per-position targets are in fct_training_examples.

with sequences as (

    select *
    from {{ ref('stg_sequences') }}
    where snapshot_date = {{ as_of_date() }}

),

final as (

    select
        snapshot_date                                   as run_date,
        user_id,
        item_ids,
        is_skip,
        completion,
        event_ts,
        valid_idx,
        test_idx,
        earlier_item_ids,
        n_events

    from sequences

)

select * from final
