with source as (

    select * from {{ lake_source('quarantine') }}

),

renamed as (

    select
        cast(event_id as varchar)               as event_id,
        cast(user_id as varchar)                as user_id,
        cast(item_id as varchar)                as item_id,
        cast(ts as timestamp with time zone)    as event_ts,
        cast(session_id as varchar)             as source_session_id,
        cast(duration_ms as bigint)             as duration_ms,
        cast(item_length_ms as bigint)          as item_length_ms,
        cast(completion as double precision)              as completion,
        cast(skip_level as integer)             as skip_level,
        cast(rating as double precision)                  as rating,
        cast(source as varchar)                 as source_name,
        cast(source_file as varchar)            as source_file,
        cast(source_row as bigint)              as source_row,
        cast(reason as varchar)                 as reason,
        cast(dt as date)                        as ingest_date

    from source

)

select * from renamed
