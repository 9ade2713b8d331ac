with source as (

    select * from {{ lake_source('model_runs') }}

),

renamed as (

    select
        cast(run_date as date)                  as run_date,
        cast(mlflow_run_id as varchar)          as mlflow_run_id,
        cast(model_name as varchar)             as model_name,
        cast(model_version as varchar)          as model_version,
        cast(dataset as varchar)                as dataset,
        cast(split as varchar)                  as split,
        cast(seed as integer)                   as seed,
        cast(metric as varchar)                 as metric,
        cast(value as double precision)                   as metric_value,
        cast(dt as date)                        as partition_date

    from source

)

select * from renamed
