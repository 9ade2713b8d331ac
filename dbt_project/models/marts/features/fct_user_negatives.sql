-- The PHNS negatives of each user as list columns: one row per
-- (run_date, user, mix, draw), ordered by sample_idx: the training negatives of the
-- night (S-MoE-BST reads its mix; epoch e uses draw (e - 1) mod the number of draws)
-- and how much more likely each was drawn than uniformly (its sampling-bias correction).

with negatives as (

    select *
    from {{ ref('stg_phns_negatives') }}
    where snapshot_date = {{ as_of_date() }}

),

per_user_mix as (

    select
        snapshot_date                                               as run_date,
        user_id,
        mix,
        draw,
        cast(array_agg(item_id order by sample_idx) as varchar[])   as negative_item_ids,
        cast(array_agg(pool order by sample_idx) as varchar[])      as negative_pools,
        cast(array_agg(oversampling order by sample_idx) as double precision[]) as negative_oversampling,
        count(*)                                                    as n_negatives,
        count(*) filter (where pool = 'hard')                       as n_hard,
        count(*) filter (where pool = 'trending')                   as n_trending,
        count(*) filter (where pool = 'tailing')                    as n_tailing,
        count(*) filter (where pool = 'uniform')                    as n_uniform

    from negatives
    group by snapshot_date, user_id, mix, draw

)

select * from per_user_mix
