with source as (

    select * from {{ lake_source('sequences') }}

),

renamed as (

    select
        cast(dt as date)                                as snapshot_date,
        cast(user_id as varchar)                        as user_id,
        cast(item_ids as varchar[])                     as item_ids,
        cast(is_skip as boolean[])                      as is_skip,
        cast(completion as double precision[])                    as completion,
        cast(ts as timestamp with time zone[])          as event_ts,
        cast(valid_idx as integer)                      as valid_idx,
        cast(test_idx as integer)                       as test_idx,
        cast(earlier_item_ids as varchar[])             as earlier_item_ids,
        cast(n_events as bigint)                        as n_events

    from source

)

select * from renamed
