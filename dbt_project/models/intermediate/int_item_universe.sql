-- Every item known as of the run date: catalog items plus items seen in events,
-- with the date each became known (catalog items count from their catalog date).

with catalog as (

    select item_id, min(catalog_date) as known_since
    from {{ ref('stg_item_catalog') }}
    group by item_id

),

played as (

    select item_id, min(event_date) as known_since
    from {{ ref('stg_sessionized_events') }}
    group by item_id

),

unioned as (

    select item_id, known_since, true as in_catalog from catalog
    union all
    select item_id, known_since, false as in_catalog from played

),

items as (

    select
        item_id,
        min(known_since)    as known_since,
        bool_or(in_catalog) as in_catalog

    from unioned
    group by item_id

)

select * from items
