-- next_k lists are aligned, start with the main target and carry the soft
-- labels of var next_k_soft_labels in order (a prefix of it).

{% set soft_labels = var('next_k_soft_labels') %}

select run_date, user_id, position
from {{ ref('fct_training_examples') }}
where {{ list_length('next_k_item_ids') }} <> {{ list_length('next_k_soft_labels') }}
   or {{ list_length('next_k_item_ids') }} not between 1 and {{ soft_labels | length }}
   or next_k_item_ids[1] <> target_item_id
   or next_k_soft_labels <> (cast(array[{{ soft_labels | join(', ') }}] as double precision[]))[1:{{ list_length('next_k_soft_labels') }}]
