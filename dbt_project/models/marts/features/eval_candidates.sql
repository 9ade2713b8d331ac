-- Evaluation candidate sets of seed 003, one row per (run_date, user,
-- eval_set, candidate item) with label 1 for the user's test target:
--   phns_hard: test target + the top var eval_negatives_per_pool items of each
--              of the user's hard / trending / tailing PHNS pools;
--   easy:      test target + the user's negatives of mix var eval_easy_mix
--              (UNIFORM = random / uniform negatives).
-- A negative equal to the target, or present in two pools, appears once.

with positions as (

    select * from {{ ref('int_sequence_positions') }}

),

test_targets as (

    select run_date, user_id, item_id as target_item_id
    from positions
    where position = test_idx

),

pools as (

    select *
    from {{ ref('stg_phns_pools') }}
    where snapshot_date = {{ as_of_date() }}
      and pool_rank <= {{ var('eval_negatives_per_pool') }}

),

easy_negatives as (

    select *
    from {{ ref('stg_phns_negatives') }}
    where snapshot_date = {{ as_of_date() }}
      and mix = '{{ var("eval_easy_mix") }}'
      and draw = 0

),

candidates as (

    select run_date, user_id, 'phns_hard' as eval_set, target_item_id as item_id,
           1 as label, 'target' as candidate_source, cast(null as integer) as source_rank, 0 as source_priority
    from test_targets

    union all

    select test_targets.run_date, test_targets.user_id, 'phns_hard', pools.item_id,
           0, pools.pool, pools.pool_rank,
           case pools.pool when 'hard' then 1 when 'trending' then 2 else 3 end
    from test_targets
    inner join pools on pools.user_id = test_targets.user_id

    union all

    select run_date, user_id, 'easy', target_item_id, 1, 'target', cast(null as integer), 0
    from test_targets

    union all

    select test_targets.run_date, test_targets.user_id, 'easy', easy_negatives.item_id,
           0, easy_negatives.pool, easy_negatives.sample_idx + 1, 1
    from test_targets
    inner join easy_negatives on easy_negatives.user_id = test_targets.user_id

),

deduplicated as (

    select *
    from (
        select
            *,
            row_number() over (
                partition by run_date, user_id, eval_set, item_id
                order by source_priority, source_rank
            ) as candidate_order
        from candidates
    ) as ranked
    where candidate_order = 1

),

final as (

    select
        run_date,
        user_id,
        cast(eval_set as varchar)       as eval_set,
        item_id,
        cast(label as integer)          as label,
        cast(candidate_source as varchar) as candidate_source,
        cast(source_rank as integer)    as source_rank

    from deduplicated

)

select * from final
