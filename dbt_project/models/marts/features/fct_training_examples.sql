-- One row per (run_date, user, position) of the run date's sequence snapshot
-- that has a next positive: the model reads the prefix item_ids[0..position]
-- and must predict target_item_id (the next non-skipped item).
--
-- next_k_* hold the next K positives (items, positions in the sequence, completion)
-- with the soft labels of var next_k_soft_labels (1.0 / 0.6 / 0.3). They never cross
-- the leave-last-out split boundary: a train row's next-K stops before the validation
-- target, so valid / test rows carry exactly one target. Training reads this mart: it
-- is the one definition of the sequence models' targets.
--
-- PHNS negatives are not repeated per row: join fct_user_negatives on
-- (run_date, user_id) and pick a mix.

{% set soft_labels = var('next_k_soft_labels') %}
{% set k = soft_labels | length %}

with positions as (

    select * from {{ ref('int_sequence_positions') }}

),

counted as (

    -- how many positives the user had at or before each position
    select
        *,
        sum(case when is_skip then 0 else 1 end) over (
            partition by user_id
            order by position
            rows between unbounded preceding and current row
        ) as positives_so_far

    from positions

),

positives as (

    select
        user_id,
        position                                                        as target_position,
        item_id                                                         as target_item_id,
        completion                                                      as target_completion,
        split                                                           as target_split,
        row_number() over (partition by user_id order by position)      as positive_ordinal

    from positions
    where not is_skip

),

next_positives as (

    -- the 1st .. K-th positive after each position
    select
        counted.run_date,
        counted.user_id,
        counted.position,
        counted.item_id                                                 as input_item_id,
        counted.is_skip                                                 as input_is_skip,
        positives.positive_ordinal - counted.positives_so_far           as k,
        positives.target_item_id,
        positives.target_position,
        positives.target_completion,
        positives.target_split

    from counted
    inner join positives
        on positives.user_id = counted.user_id
       and positives.positive_ordinal > counted.positives_so_far
       and positives.positive_ordinal <= counted.positives_so_far + {{ k }}

),

first_target as (

    select * from next_positives where k = 1

),

soft_targets as (

    select
        next_positives.user_id,
        next_positives.position,
        array_agg(next_positives.target_item_id order by next_positives.k)    as next_k_item_ids,
        array_agg(
            case next_positives.k
                {% for label in soft_labels %}
                when {{ loop.index }} then cast({{ label }} as double precision)
                {% endfor %}
            end
            order by next_positives.k
        )                                                                       as next_k_soft_labels,
        array_agg(coalesce(next_positives.target_completion, 1.0) order by next_positives.k)
                                                                                as next_k_completions,
        array_agg(next_positives.target_position order by next_positives.k)    as next_k_positions

    from next_positives
    inner join first_target
        on first_target.user_id = next_positives.user_id
       and first_target.position = next_positives.position
    where next_positives.target_split = first_target.target_split
    group by next_positives.user_id, next_positives.position

),

final as (

    select
        first_target.run_date,
        first_target.user_id,
        first_target.position,
        first_target.position + 1                                           as history_length,
        first_target.input_item_id,
        first_target.input_is_skip,
        cast(first_target.target_split as varchar)                          as split,
        first_target.target_item_id,
        first_target.target_position,
        coalesce(first_target.target_completion, 1.0)                       as engagement_weight,
        cast(soft_targets.next_k_item_ids as varchar[])                     as next_k_item_ids,
        cast(soft_targets.next_k_soft_labels as double precision[])         as next_k_soft_labels,
        cast(soft_targets.next_k_completions as double precision[])         as next_k_completions,
        cast(soft_targets.next_k_positions as integer[])                    as next_k_positions

    from first_target
    inner join soft_targets
        on soft_targets.user_id = first_target.user_id
       and soft_targets.position = first_target.position

)

select * from final
