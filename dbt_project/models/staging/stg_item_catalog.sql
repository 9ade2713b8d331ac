with source as (

    select * from {{ lake_source('item_catalog') }}

),

renamed as (

    select
        cast(item_id as varchar)                as item_id,
        cast(title as varchar)                  as title,
        cast(genre as varchar)                  as genre,
        cast(item_length_ms as bigint)          as item_length_ms,
        cast(dt as date)                        as catalog_date

    from source

)

select * from renamed
