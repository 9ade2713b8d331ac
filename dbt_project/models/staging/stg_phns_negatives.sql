with source as (

    select * from {{ lake_source('phns_negatives') }}

),

renamed as (

    select
        cast(dt as date)                        as snapshot_date,
        cast(user_id as varchar)                as user_id,
        cast(mix as varchar)                    as mix,
        cast(draw as integer)                   as draw,
        cast(item_id as varchar)                as item_id,
        cast(pool as varchar)                   as pool,
        cast(sample_idx as integer)             as sample_idx,
        cast(oversampling as double precision)  as oversampling

    from source

)

select * from renamed
