{{ config(materialized='ephemeral') }}
-- The run date's sequence snapshot exploded to one row per (user, position),
-- with the leave-last-out split each position belongs to when it is a target:
-- test = test_idx (last positive), valid = valid_idx (second-last), else train.

with sequences as (

    select *
    from {{ ref('stg_sequences') }}
    where snapshot_date = {{ as_of_date() }}

),

positions as (

    select
        snapshot_date                               as run_date,
        user_id,
        valid_idx,
        test_idx,
        item_ids,
        is_skip,
        completion,
        event_ts,
        generate_subscripts(item_ids, 1) - 1        as position

    from sequences

),

aligned as (

    select
        run_date,
        user_id,
        cast(position as integer)                   as position,
        item_ids[position + 1]                      as item_id,
        is_skip[position + 1]                       as is_skip,
        completion[position + 1]                    as completion,
        event_ts[position + 1]                      as event_ts,
        valid_idx,
        test_idx,
        case
            when position = test_idx then 'test'
            when position = valid_idx then 'valid'
            else 'train'
        end                                         as split

    from positions

)

select * from aligned
