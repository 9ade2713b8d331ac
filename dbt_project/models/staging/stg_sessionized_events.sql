with source as (

    select * from {{ lake_source('sessionized_events') }}

),

renamed as (

    select
        cast(event_id as varchar)               as event_id,
        cast(user_id as varchar)                as user_id,
        cast(item_id as varchar)                as item_id,
        cast(session_id as varchar)             as session_id,
        cast(position as integer)               as session_position,
        cast(ts as timestamp with time zone)    as event_ts,
        cast(dt as date)                        as event_date,
        cast(completion as double precision)              as completion,
        cast(skip_level as integer)             as skip_level,
        cast(rating as double precision)                  as rating,
        cast(is_skip as boolean)                as is_skip,
        cast(is_abandoned as boolean)           as is_abandoned,
        cast(engagement as double precision)              as engagement,
        cast(next_positive_item_id as varchar)  as next_positive_item_id,
        cast(source as varchar)                 as source_name

    from source

)

select * from renamed
