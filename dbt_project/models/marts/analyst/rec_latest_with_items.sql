-- The newest published run_date (up to var run_date) of recommendations, with
-- item attributes and popularity from that date's dim_items snapshot.
-- Publishing is atomic per run_date, so every run_date present is complete.

with recommendations as (

    select *
    from {{ ref('stg_recommendations') }}
    where run_date <= {{ as_of_date() }}

),

latest as (

    select max(run_date) as run_date from recommendations

),

latest_recommendations as (

    select recommendations.*
    from recommendations
    inner join latest on recommendations.run_date = latest.run_date

),

catalog as (

    select *
    from (
        select *, row_number() over (partition by item_id order by catalog_date desc) as recency
        from {{ ref('stg_item_catalog') }}
    ) as ranked
    where recency = 1

),

items as (

    select * from {{ ref('dim_items') }}

),

final as (

    select
        latest_recommendations.run_date,
        latest_recommendations.user_id,
        latest_recommendations.rank,
        latest_recommendations.item_id,
        coalesce(items.title, catalog.title)                    as title,
        coalesce(items.genre, catalog.genre)                    as genre,
        coalesce(items.item_length_ms, catalog.item_length_ms)  as item_length_ms,
        latest_recommendations.score,
        latest_recommendations.soft_label,
        latest_recommendations.p_skip,
        latest_recommendations.predicted_completion,
        items.plays_mid                                         as item_plays_mid,
        items.popularity_rank_mid                               as item_popularity_rank_mid,
        items.is_trending                                       as item_is_trending,
        latest_recommendations.model_name,
        latest_recommendations.model_version,
        latest_recommendations.created_at

    from latest_recommendations
    left join items
        on items.item_id = latest_recommendations.item_id
       and items.run_date = latest_recommendations.run_date
    left join catalog
        on catalog.item_id = latest_recommendations.item_id

)

select * from final
