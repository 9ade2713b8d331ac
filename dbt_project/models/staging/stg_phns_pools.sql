with source as (

    select * from {{ lake_source('phns_pools') }}

),

renamed as (

    select
        cast(dt as date)                        as snapshot_date,
        cast(user_id as varchar)                as user_id,
        cast(pool as varchar)                   as pool,
        cast(item_id as varchar)                as item_id,
        cast(pool_rank as integer)              as pool_rank

    from source

)

select * from renamed
