with source as (

    select * from {{ source('warehouse', 'recommendations') }}

),

renamed as (

    select
        cast(run_date as date)                      as run_date,
        cast(user_id as varchar)                    as user_id,
        cast(rank as integer)                       as rank,
        cast(item_id as varchar)                    as item_id,
        cast(score as double precision)                       as score,
        cast(soft_label as double precision)                  as soft_label,
        cast(p_skip as double precision)                      as p_skip,
        cast(predicted_completion as double precision)        as predicted_completion,
        cast(model_name as varchar)                 as model_name,
        cast(model_version as varchar)              as model_version,
        cast(created_at as timestamp with time zone) as created_at

    from source

)

select * from renamed
